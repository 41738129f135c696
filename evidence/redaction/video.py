"""Reading a clip's frames and writing its redacted copy (H.264, frame rate and size kept).

Frames are decoded to their yuv420p planes (``evidence.redaction.picture.Picture``) on a
read-ahead thread (``pictures``), so decoding overlaps the detectors or the masking, and
no frame is converted to RGB: the mask is drawn in the Y, U and V planes and the planes
go to x264 as they are (``RENDER_PIXEL_FORMAT``). The redacted video is encoded by PyAV's
libx264 (CRF 16, preset ultrafast, yuv420p, no
B-frame reordering of timestamps: frame ``n`` gets pts ``n`` at the source's frame rate), then
ffmpeg muxes it with the source's audio stream copied, or with no audio when it is
muted, without metadata and with bit-exact flags, so the same input gives the same file.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from evidence.redaction.detect import Frame
from evidence.redaction.picture import Picture, check_even_size
from storage.errors import InvalidInputError, StorageError

CRF = "16"
PRESET = "ultrafast"
"""2.2x cheaper than veryfast on grainy 720p (22 vs 50 CPU-ms a frame), with less loss
(1.59 vs 1.74 grey levels), for files about half as large again."""
RENDER_PIXEL_FORMAT = "yuv420p"
ENCODER_THREADS = 0
"""x264's threads; 0 lets it choose (frame threads, 1.5 a core)."""
READ_AHEAD = 8
"""Decoded frames the read-ahead thread may hold (8 x 1.4 MB at 720p)."""


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    fps: Fraction
    frame_count: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return float(self.frame_count / self.fps) if self.fps else 0.0


def video_facts(path: Path, *, decode: bool = True) -> VideoFacts:
    """Size, frame rate, frame count and whether there is audio.

    ``decode=False`` counts the video packets instead of decoded frames (what decoding
    will almost always give; the pipeline counts the decoded frames itself).
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInputError(f"{path.name} has no video stream.")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            count = (sum(1 for _ in container.decode(stream)) if decode
                     else sum(1 for packet in container.demux(stream) if packet.size))
            return VideoFacts(width=stream.codec_context.width,
                              height=stream.codec_context.height, fps=fps,
                              frame_count=count, has_audio=bool(container.streams.audio))
    except av.FFmpegError as exc:
        raise InvalidInputError(f"{path.name} cannot be decoded ({exc}).") from exc


def stream_facts(path: Path) -> VideoFacts:
    """``video_facts`` without decoding the frames."""
    return video_facts(path, decode=False)


def frames(path: Path) -> Iterator[Frame]:
    """Every decoded frame of the first video stream, as RGB arrays, in order (decoded
    on FFmpeg's threads, so decoding overlaps the caller's work)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    except av.FFmpegError as exc:
        raise InvalidInputError(f"{path.name} cannot be decoded ({exc}).") from exc


def frame_at(path: Path, index: int) -> Frame:
    """Frame ``index`` (0-based) of the clip. Raises ``InvalidInputError`` past its end."""
    for number, frame in enumerate(frames(path)):
        if number == index:
            return frame
    raise InvalidInputError(f"{path.name} has no frame {index}.")


def _decoded_pictures(path: Path) -> Generator[Picture, None, None]:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            check_even_size(stream.codec_context.width, stream.codec_context.height,
                            path.name)
            for frame in container.decode(stream):
                yield Picture(np.ascontiguousarray(frame.to_ndarray(format="yuv420p")))
    except av.FFmpegError as exc:
        raise InvalidInputError(f"{path.name} cannot be decoded ({exc}).") from exc


_END = object()


def pictures(path: Path) -> Iterator[Picture]:
    """Every decoded frame of the first video stream as its yuv420p planes, in order,
    decoded on a read-ahead thread (at most ``READ_AHEAD`` frames ahead), so decoding
    runs while the caller works on the previous frames. Raises ``InvalidInputError``
    for a clip that cannot be decoded or whose width or height is odd."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()

    def read() -> None:
        decoded = _decoded_pictures(path)
        try:
            for picture in decoded:
                while not stop.is_set():
                    try:
                        ahead.put(picture, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            ahead.put(exc)
        finally:
            decoded.close()

    reader = threading.Thread(target=read, name=f"decode {path.name}", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Picture)
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.1)
        reader.join()


def picture_at(path: Path, index: int) -> Picture:
    """Frame ``index`` (0-based) as planes. Raises ``InvalidInputError`` past its end."""
    for number, picture in enumerate(_decoded_pictures(path)):
        if number == index:
            return picture
    raise InvalidInputError(f"{path.name} has no frame {index}.")


def write_redacted(source: Path, out: Path, *, facts: VideoFacts,
                   transform: Callable[[int, Picture], Picture], mute_audio: bool) -> None:
    """Decode ``source``, apply ``transform(index, picture)`` to every frame's planes and
    write the H.264 result to ``out`` with the source's audio (unless muted). Raises
    ``InvalidInputError`` for an odd width or height (nothing written) and
    ``StorageError`` when encoding or muxing fails; ``out`` is then not left behind."""
    check_even_size(facts.width, facts.height, source.name)
    video_only = out.with_name(out.stem + "-video.mp4")
    try:
        with av.open(str(video_only), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=facts.fps)
            stream.width, stream.height = facts.width, facts.height
            stream.pix_fmt = RENDER_PIXEL_FORMAT
            stream.options = {"crf": CRF, "preset": PRESET, "bf": "0"}
            if ENCODER_THREADS:
                stream.codec_context.thread_count = ENCODER_THREADS
            stream.codec_context.flags |= av.codec.context.Flags.bitexact
            stream.codec_context.time_base = Fraction(1, 1) / facts.fps
            for index, picture in enumerate(pictures(source)):
                masked = np.ascontiguousarray(transform(index, picture).data)
                frame = av.VideoFrame.from_ndarray(masked, format=RENDER_PIXEL_FORMAT)
                frame.pts = index
                frame.time_base = stream.codec_context.time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        audio = [] if mute_audio or not facts.has_audio else \
            ["-i", str(source), "-map", "1:a:0", "-c:a", "copy"]
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel",
             "error", "-y", "-i", str(video_only), *audio[:2], "-map", "0:v:0",
             *audio[2:], "-c:v", "copy", "-map_metadata", "-1", "-map_chapters", "-1",
             "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             "-f", "mp4", str(out)], capture_output=True, text=True, check=False)
        if run.returncode != 0 or not out.is_file():
            raise StorageError(f"ffmpeg could not write the redacted clip: "
                               f"{run.stderr.strip()[-300:]}")
    except (av.FFmpegError, OSError) as exc:
        out.unlink(missing_ok=True)
        raise StorageError(f"The redacted clip could not be encoded ({exc}).") from exc
    finally:
        video_only.unlink(missing_ok=True)


def render_parameters() -> dict[str, str]:
    """How the redacted video is made, for the redaction's record."""
    return {"codec": "H.264 (libx264 via PyAV)", "crf": CRF, "preset": PRESET,
            "pixel_format": RENDER_PIXEL_FORMAT,
            "masking": "in the decoded Y, U and V planes, no RGB conversion; boxes "
                       "grown to even pixel edges (whole 2x2 chroma samples)"}


__all__ = ["READ_AHEAD", "RENDER_PIXEL_FORMAT", "VideoFacts", "frame_at", "frames",
           "picture_at", "pictures", "render_parameters", "stream_facts", "video_facts",
           "write_redacted"]
