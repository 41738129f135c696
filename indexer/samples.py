"""Deterministic sample footage: street-like day and night scenes drawn with ffmpeg lavfi.

The same ffmpeg build produces the same bytes on every run: bit-exact muxing, pinned
encoder threads, a fixed GOP and no metadata except a fixed ``creation_time`` where a
clip is meant to test container time. File names follow ``CAM-001_20260125T210000.ext``
(camera id + local start time), so the recording start can also come from the name.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from indexer.media import ffmpeg_exe
from storage.errors import InvalidInputError, StorageError

KYIV = ZoneInfo("Europe/Kyiv")
FPS = 25
GOP = 50  # one keyframe every 2 s, typical of CCTV recorders

PROFILES: dict[str, tuple[int, int, float]] = {
    # name: (width, height, seconds per clip scale)
    "test": (320, 180, 1.0),
    "demo": (640, 360, 4.0),
}


@dataclass(frozen=True)
class SampleCamera:
    id: str
    name: str
    district: str
    latitude: float
    longitude: float
    agency: str
    timezone: str = "Europe/Kyiv"
    allowed_agencies: tuple[str, ...] = ()


CAMERAS: tuple[SampleCamera, ...] = (
    SampleCamera("CAM-001", "Khreshchatyk / Maidan", "Shevchenkivskyi", 50.4501, 30.5234,
                 "police", allowed_agencies=("municipal_guard",)),
    SampleCamera("CAM-002", "Volodymyrska / Golden Gate", "Shevchenkivskyi", 50.4488, 30.5133,
                 "police"),
    SampleCamera("CAM-003", "Pochaina metro exit", "Obolonskyi", 50.4862, 30.4979, "police"),
)


@dataclass(frozen=True)
class SampleClip:
    """One generated recording and what a correct ingest must find in it."""

    path: Path
    camera_id: str
    expected_start_utc: datetime
    start_source: str  # where ingest should take the start from: "container" or "filename"
    description: str
    is_night: bool
    container: str
    video_codec: str
    duration_s: float
    variable_frame_rate: bool = False


@dataclass
class SampleSet:
    clips: list[SampleClip] = field(default_factory=list)
    cameras_csv: Path | None = None

    def by_name(self, name: str) -> SampleClip:
        for clip in self.clips:
            if clip.path.name == name:
                return clip
        raise KeyError(name)


def _box(color: str, x: str, y: str, w: str, h: str) -> str:
    return f"drawbox=x='{x}':y='{y}':w='{w}':h='{h}':color={color}:t=fill"


def _street(*, night: bool) -> str:
    """A road under a sky with buildings; all sizes relative to the frame."""
    sky, road, kerb, house = (("0x0c0f14", "0x1a1a1a", "0x262626", "0x14161a") if night
                              else ("0x87ceeb", "0x555a60", "0xb0aca0", "0xc8a27a"))
    marking = "0x505050" if night else "0xf0f0f0"
    return ",".join([
        _box(sky, "0", "0", "iw", "ih*0.4"),
        _box(house, "iw*0.05", "ih*0.12", "iw*0.22", "ih*0.28"),
        _box(house, "iw*0.62", "ih*0.06", "iw*0.3", "ih*0.34"),
        _box(kerb, "0", "ih*0.4", "iw", "ih*0.08"),
        _box(road, "0", "ih*0.48", "iw", "ih*0.4"),
        *(_box(marking, f"iw*{x}", "ih*0.67", "iw*0.12", "ih*0.015") for x in (0.1, 0.45, 0.8)),
        _box(kerb, "0", "ih*0.88", "iw", "ih*0.12"),
    ])


@dataclass(frozen=True)
class Mover:
    """A solid object crossing the frame; ``speed`` in frame widths per second."""

    color: str
    speed: float
    lane: float  # top edge, as a fraction of the frame height
    size: float  # width, as a fraction of the frame width
    reverse: bool = False
    between: tuple[float, float] | None = None  # visible only in this time window


def _scene(*, width: int, height: int, seconds: float, night: bool,
           before_ir: list[Mover], after_ir: list[Mover]) -> str:
    """A ``-filter_complex`` graph ending in ``[v]``; IR look applies to ``before_ir`` only."""
    duration = f"{seconds:g}"
    parts = [f"color=c=0x5f6f7a:s={width}x{height}:r={FPS}:d={duration},"
             f"{_street(night=night)}[s0]"]
    label = "s0"
    for number, mover in enumerate([*before_ir, None, *after_ir]):
        if mover is None:
            tone = "hue=s=0,eq=brightness=-0.05" if night else "eq=saturation=1.2"
            parts.append(f"[{label}]{tone}[t{number}]")
            label = f"t{number}"
            continue
        w = max(2, int(width * mover.size) // 2 * 2)
        h = max(2, int(w * 0.6) // 2 * 2)
        if mover.between:
            begin, end = mover.between
            x = f"(t-{begin:g})/{end - begin:g}*(W+w)-w"
            enable = f":enable='between(t,{begin:g},{end:g})'"
        else:
            travel = f"mod(t*W*{mover.speed:g},W+w)"
            x = f"W-({travel})" if mover.reverse else f"{travel}-w"
            enable = ""
        parts.append(f"color=c={mover.color}:s={w}x{h}:r={FPS}:d={duration}[o{number}]")
        parts.append(f"[{label}][o{number}]overlay=x='{x}':y='H*{mover.lane:g}':eval=frame"
                     f"{enable}[m{number}]")
        label = f"m{number}"
    parts[-1] = parts[-1].rsplit("[", 1)[0] + "[v]"
    return ";".join(parts)


def day_scene(width: int, height: int, seconds: float) -> str:
    """Blue car, yellow bus and a green-clad pedestrian on a sunny street."""
    return _scene(width=width, height=height, seconds=seconds, night=False, before_ir=[
        Mover("0x1f4fd0", speed=0.18, lane=0.52, size=0.2),
        Mover("0xf0c000", speed=0.11, lane=0.68, size=0.3, reverse=True),
        Mover("0x20a040", speed=0.05, lane=0.86, size=0.05),
    ], after_ir=[])


def night_scene(width: int, height: int, seconds: float) -> str:
    """Infrared-like monochrome street; a red car (lit tail lights) crosses it."""
    return _scene(width=width, height=height, seconds=seconds, night=True, before_ir=[
        Mover("0x606060", speed=0.08, lane=0.86, size=0.05),
    ], after_ir=[
        Mover("0xd01010", speed=0.16, lane=0.55, size=0.22),
    ])


def static_scene(width: int, height: int, seconds: float, burst: tuple[float, float]) -> str:
    """A still street; an orange van crosses only during ``burst`` (start, end seconds)."""
    return _scene(width=width, height=height, seconds=seconds, night=False, before_ir=[
        Mover("0xe07020", speed=0.0, lane=0.55, size=0.25, between=burst),
    ], after_ir=[])


def encode_scene(*, out: Path, graph: str, codec_args: list[str],
                 creation_time: datetime | None = None, vfr: bool = False,
                 extra_mux: list[str] | None = None) -> None:
    """Render a synthetic scene (an ffmpeg filter graph ending in ``[v]``, such as
    ``day_scene``'s) into the video file ``out``, encoded with ``codec_args`` (``H264``,
    ``HEVC``, ``XVID`` ...): 4:2:0, bit-exact, no metadata but ``creation_time``.
    ``vfr`` drops frames as a loaded recorder does. Raises ``StorageError`` when ffmpeg
    fails (its last line in the message).
    """
    if vfr:
        # stretch every third frame: a recorder that drops frames under load
        graph = graph[: -len("[v]")] + ",setpts='N/(25*TB)+floor(N/3)*0.04/TB'[v]"
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-filter_complex", graph, "-map", "[v]",
            *codec_args, "-pix_fmt", "yuv420p",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]
    if vfr:
        args += ["-fps_mode", "vfr"]
    if creation_time is not None:
        stamp = creation_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        args += ["-metadata", f"creation_time={stamp}"]
    args += [*(extra_mux or []), str(out)]
    try:
        subprocess.run(args, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        tail = exc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise StorageError(f"ffmpeg could not write sample footage {out.name}: "
                           f"{tail[0]}.") from exc


H264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(GOP), "-keyint_min", str(GOP),
        "-sc_threshold", "0", "-threads", "2"]
HEVC = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
        f"keyint={GOP}:min-keyint={GOP}:scenecut=0:pools=2:frame-threads=1:log-level=error"]
XVID = ["-c:v", "mpeg4", "-vtag", "XVID", "-q:v", "4", "-g", str(GOP), "-threads", "1"]
FASTSTART = ["-movflags", "+faststart"]


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=KYIV)


def _clip_name(camera_id: str, local_start: str, ext: str) -> str:
    return f"{camera_id}_{local_start}.{ext}"


def write_cameras_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "district", "latitude", "longitude", "agency",
                         "timezone", "allowed_agencies"])
        for cam in CAMERAS:
            writer.writerow([cam.id, cam.name, cam.district, cam.latitude, cam.longitude,
                             cam.agency, cam.timezone, ";".join(cam.allowed_agencies)])
    return path


def generate_sample_footage(out_dir: Path, *, profile: str = "test") -> SampleSet:
    """Write the sample clips and cameras.csv into ``out_dir``; returns what was written.

    Raises ``InvalidInputError`` for an unknown profile.
    """
    if profile not in PROFILES:
        raise InvalidInputError(
            f"Unknown sample profile '{profile}' (expected one of {', '.join(PROFILES)}).")
    width, height, scale = PROFILES[profile]
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = SampleSet(cameras_csv=write_cameras_csv(out_dir / "cameras.csv"))

    def add(camera_id: str, local_start: str, ext: str, *, scene: Callable[..., str],
            seconds: float,
            codec_args: list[str], codec: str, container: str, description: str,
            night: bool, container_time: bool = False, vfr: bool = False,
            mux: list[str] | None = None) -> None:
        start = _local(local_start)
        path = out_dir / _clip_name(camera_id, local_start, ext)
        encode_scene(out=path, graph=scene(width, height, seconds), codec_args=codec_args,
                creation_time=start if container_time else None,
                vfr=vfr, extra_mux=mux)
        samples.clips.append(SampleClip(
            path=path, camera_id=camera_id, expected_start_utc=start.astimezone(UTC),
            start_source="container" if container_time else "filename",
            description=description, is_night=night, container=container,
            video_codec=codec, duration_s=seconds, variable_frame_rate=vfr))

    add("CAM-001", "20260125T100000", "mp4", scene=day_scene, seconds=12 * scale,
        codec_args=H264, codec="h264", container="mp4", mux=FASTSTART, night=False,
        description="Day: blue car, yellow bus and a pedestrian on a sunny street")
    add("CAM-001", "20260125T210000", "mp4", scene=night_scene, seconds=12 * scale,
        codec_args=H264, codec="h264", container="mp4", mux=FASTSTART, night=True,
        container_time=True,
        description="Night, infrared look: a red car moves across the street")
    burst = (6 * scale, 9 * scale)
    add("CAM-002", "20260125T120000", "mp4", scene=partial(static_scene, burst=burst),
        seconds=16 * scale, codec_args=H264, codec="h264", container="mp4", mux=FASTSTART,
        night=False, description="Static street; an orange van passes for a few seconds")
    add("CAM-002", "20260125T220000", "mkv", scene=night_scene, seconds=8 * scale,
        codec_args=HEVC, codec="hevc", container="matroska", night=True,
        container_time=True, description="Night in MKV/HEVC: a red car moves across")
    add("CAM-003", "20260125T140000", "avi", scene=day_scene, seconds=8 * scale,
        codec_args=XVID, codec="mpeg4", container="avi", night=False,
        description="Day in AVI/Xvid (MPEG-4 part 2)")
    add("CAM-003", "20260125T150000", "mp4", scene=day_scene, seconds=8 * scale,
        codec_args=H264, codec="h264", container="mp4", mux=FASTSTART, night=False,
        vfr=True, description="Day with variable frame rate (dropped frames)")
    add("CAM-001", "20260125T230000", "ts", scene=night_scene, seconds=6 * scale,
        codec_args=H264, codec="h264", container="mpegts", night=True,
        description="Night in raw MPEG-TS with no container timestamp")
    return samples


def generate_benchmark_footage(out_dir: Path, *, minutes: float = 2.0,
                               width: int = 1920, height: int = 1080) -> Path:
    """``minutes`` of 1080p H.264 day street footage in one file, for the ingest benchmark."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "CAM-001_20260126T100000.mp4"
    # drawn at quarter size and scaled up: flat shapes look the same, drawing is 16x cheaper
    small = day_scene(width // 4 // 2 * 2, height // 4 // 2 * 2, minutes * 60)
    graph = small.removesuffix("[v]") + f",scale={width}:{height}:flags=neighbor[v]"
    encode_scene(out=path, graph=graph, codec_args=[*H264[:-2], "-threads", "0"],
            extra_mux=FASTSTART)
    return path


def truncated_copy(source: Path, destination: Path, *, keep_fraction: float = 0.6) -> Path:
    """Copy the first ``keep_fraction`` of ``source``'s bytes: a recording cut off mid-write."""
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * keep_fraction)])
    return destination


_encode = encode_scene  # the old private name, still used by benchmarks/recording.py

__all__ = [
    "CAMERAS",
    "H264",
    "HEVC",
    "SampleCamera",
    "SampleClip",
    "SampleSet",
    "day_scene",
    "encode_scene",
    "generate_benchmark_footage",
    "generate_sample_footage",
    "night_scene",
    "truncated_copy",
    "write_cameras_csv",
]
