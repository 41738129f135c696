"""Choose how a recording is sampled, and sample it from its keyframes alone when it can.

1. ``choose_sampling`` looks at the probed keyframe times: when no two keyframes (nor
   the start and the first one, nor the last one and the end) are more than the sample
   interval apart, every interval holds a keyframe and the file is sampled by
   ``KEYFRAMES``; otherwise by ``REDUCED_DECODE``.
2. ``KEYFRAMES``: the decoder is told to skip every non-key frame (``skip_frame =
   NONKEY``) and is only handed the first keyframe packet of each interval, so a 2 s GOP
   sampled every 2 s decodes one frame in fifty. Damage still shows: decoding reaches
   only as far as packets can be demuxed, and a keyframe that does not decode is noted.
3. ``REDUCED_DECODE`` is ``indexer.media.sample_frames``: threaded decoding that skips
   non-reference frames, each sample scaled down before it is encoded as JPEG.

The path taken is recorded on the original (``Original.sampling``).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.video.reformatter import VideoReformatter

from indexer.media import DecodeReport, MediaInfo, SampledFrame, sample_frames

KEYFRAMES = "keyframes"
REDUCED_DECODE = "reduced_decode"
SAMPLING_PATHS = (KEYFRAMES, REDUCED_DECODE)
# samples are scaled and JPEG-encoded beside the decoder (the scaler drops the GIL)
JPEG_THREADS = 2
# keyframe times come from container timestamps; allow their rounding
_TOLERANCE_S = 1e-3


def choose_sampling(info: MediaInfo, *, interval_s: float) -> str:
    """``KEYFRAMES`` when every ``interval_s`` of ``info``'s footage holds a keyframe."""
    keys = sorted(info.keyframe_times_s)
    if not keys or interval_s <= 0:
        return REDUCED_DECODE
    end = max(info.duration_s, info.frame_times_s[-1] if info.frame_times_s else 0.0)
    spans = [keys[0], *(b - a for a, b in itertools.pairwise(keys)), end - keys[-1]]
    return KEYFRAMES if max(spans) <= interval_s + _TOLERANCE_S else REDUCED_DECODE


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


_encoders = threading.local()


def _jpeg_encoder(size: tuple[int, int], quality: int
                  ) -> tuple[VideoReformatter, Any, int]:
    """This thread's scaler and MJPEG encoder for ``size`` at ``quality`` (made once),
    and the next timestamp to encode at."""
    key = (size, quality)
    if getattr(_encoders, "key", None) != key:
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = size
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        # a fixed quantiser: qmin = qmax, as ``ffmpeg -q:v`` would choose it
        encoder.qscale = True
        encoder.qmin = encoder.qmax = jpeg_qscale(quality)
        _encoders.scaler, _encoders.encoder, _encoders.key = VideoReformatter(), encoder, key
        _encoders.count = 0
    _encoders.count += 1  # the encoder wants rising timestamps, whatever the source's
    return _encoders.scaler, _encoders.encoder, _encoders.count


def jpeg_qscale(quality: int) -> int:
    """The MJPEG quantiser scale (2 best .. 31) standing for a JPEG quality of 1..100."""
    return max(2, min(31, round((100 - quality) / 4)))


def _jpeg(frame: Any, size: tuple[int, int], quality: int) -> bytes:
    """``frame`` scaled to ``size`` as a baseline JPEG, encoded by FFmpeg's MJPEG encoder.

    The frame is scaled in YUV (fast bilinear: a third of the default's cost and alike at
    thumbnail size) and encoded without an RGB round trip: half the cost of converting
    to RGB for Pillow's encoder. Each thread keeps its own scaler and encoder.
    """
    scaler, encoder, pts = _jpeg_encoder(size, quality)
    scaled = scaler.reformat(frame, width=size[0], height=size[1], format="yuvj420p",
                             interpolation="FAST_BILINEAR")
    scaled.pts, scaled.time_base = pts, encoder.time_base
    return b"".join(bytes(packet) for packet in encoder.encode(scaled))


def sample_keyframes(source: Path, *, origin_s: float, interval_s: float, max_side: int,
                     report: DecodeReport, jpeg_quality: int = 90,
                     progress: Callable[[float], None] | None = None,
                     duration_s: float = 0.0) -> Iterator[SampledFrame]:
    """Yield one reduced-size JPEG per ``interval_s``: the first keyframe in each interval.

    Offsets count from ``origin_s`` (the first frame). ``report.decoded_until_s`` is how
    far packets could be demuxed; a keyframe that fails to decode is noted in
    ``report.errors`` and the next one in its interval is tried.
    """
    with av.open(str(source)) as container, ThreadPoolExecutor(
            max_workers=JPEG_THREADS, thread_name_prefix="jpeg") as pool:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        context.skip_frame = "NONKEY"
        size = _scaled_size(context.width, context.height, max_side)
        step = 1 / float(stream.average_rate) if stream.average_rate else 0.04
        base = float(stream.time_base or Fraction(1, 90_000))
        taken: set[int] = set()  # intervals that already have their sample
        pending: set[int] = set()  # intervals whose keyframe is inside the decoder
        encoding: deque[tuple[float, Future[bytes]]] = deque()
        packets = container.demux(stream)

        def emit(frames: list[Any]) -> None:
            for frame in frames:
                if frame.pts is None:
                    continue
                offset = float(frame.pts * base) - origin_s
                slot = int((offset + 1e-6) // interval_s)
                pending.discard(slot)
                if slot in taken:
                    continue
                taken.add(slot)
                report.frames_decoded += 1
                encoding.append((offset, pool.submit(_jpeg, frame, size, jpeg_quality)))

        def finished(keep: int) -> Iterator[SampledFrame]:
            """Samples encoded so far, in order, leaving ``keep`` still encoding."""
            while len(encoding) > keep:
                offset, jpeg = encoding.popleft()
                yield SampledFrame(offset_s=round(offset, 6), width=size[0], height=size[1],
                                   jpeg=jpeg.result())
                if progress and duration_s:
                    progress(min(1.0, offset / duration_s))

        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                report.errors.append(f"demuxing stopped: {exc}")
                break
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.size == 0:
                continue
            offset = float(stamp * base) - origin_s
            report.decoded_until_s = max(report.decoded_until_s, offset + step)
            slot = int((offset + 1e-6) // interval_s)
            if not packet.is_keyframe or slot in taken or slot in pending:
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                report.errors.append(f"corrupt keyframe skipped: {exc}")
                continue
            pending.add(slot)
            emit(frames)
            yield from finished(keep=2 * JPEG_THREADS)
        try:
            emit(stream.decode(None))  # frames still inside a threaded decoder
        except av.error.FFmpegError as exc:
            report.errors.append(f"corrupt keyframe skipped: {exc}")
        yield from finished(keep=0)


def sample_recording(source: Path, *, sampling: str, origin_s: float, interval_s: float,
                     max_side: int, report: DecodeReport, jpeg_quality: int = 90,
                     progress: Callable[[float], None] | None = None,
                     duration_s: float = 0.0) -> Iterator[SampledFrame]:
    """Sample ``source`` by the path ``choose_sampling`` picked for it."""
    sampler = sample_keyframes if sampling == KEYFRAMES else sample_frames
    return sampler(source, origin_s=origin_s, interval_s=interval_s, max_side=max_side,
                   report=report, jpeg_quality=jpeg_quality, progress=progress,
                   duration_s=duration_s)


__all__ = [
    "KEYFRAMES",
    "REDUCED_DECODE",
    "SAMPLING_PATHS",
    "choose_sampling",
    "sample_keyframes",
    "sample_recording",
]
