"""The demo's live cameras: two looping loopback streams that ``oko serve`` records.

``oko demo`` (unless ``--no-serve``) runs, around serving:

1. ``demo_stream_footage`` generates each stream's footage once into the data dir's
   ``samples/``: 30 s of H.264 in MPEG-TS, a keyframe every second, no B-frames (as
   cameras send);
2. ``DemoStreams.start`` starts one supervised ffmpeg per camera on 127.0.0.1
   (``-re -stream_loop -1``, serving HTTP MPEG-TS with ``-listen 1``; it is started again
   each time its client goes away), on a free port, and registers the demo cameras with
   those stream URLs (a second demo only updates the URLs);
3. ``oko serve``'s recorder pool records them in ``OKO_RECORD_SEGMENT_SECONDS`` files
   (the demo uses 20 s unless the variable is set), so new footage keeps arriving;
4. ``DemoStreams.stop`` stops the ffmpeg processes (and waits for them) and removes
   the stream URLs, so a later plain ``oko serve`` does not record streams that are
   gone. The processes are also told to end if the demo process dies (Linux
   ``PR_SET_PDEATHSIG``), so none is left behind.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from indexer.media import ffmpeg_exe
from indexer.samples import H264, day_scene, encode_scene, night_scene
from search_api.usecases.cameras import (
    list_visible_cameras,
    register_camera,
    set_stream_url,
)
from search_api.usecases.context import UseCaseContext
from storage.cameras import validate_camera

DEMO_SEGMENT_SECONDS = 20.0
FOOTAGE_SECONDS = 30
RESTART_PAUSE_S = 0.3
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class DemoStreamCamera:
    id: str
    name: str
    district: str
    latitude: float
    longitude: float
    night: bool


DEMO_STREAM_CAMERAS: tuple[DemoStreamCamera, ...] = (
    DemoStreamCamera("CAM-LIVE-1", "Live: Sahaidachnoho / Kontraktova", "Podilskyi",
                     50.4649, 30.5160, night=False),
    DemoStreamCamera("CAM-LIVE-2", "Live: Lva Tolstoho square", "Holosiivskyi",
                     50.4393, 30.5165, night=True),
)

UseCaseFactory = Callable[[], AbstractContextManager[UseCaseContext]]


def demo_stream_footage(directory: Path, camera: DemoStreamCamera, *,
                        size: tuple[int, int] = (640, 360),
                        seconds: int = FOOTAGE_SECONDS) -> Path:
    """The camera's looping footage, generated on first use and kept."""
    width, height = size
    path = directory / f"{camera.id.lower()}-{width}x{height}-{seconds}s.ts"
    if path.is_file() and path.stat().st_size:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    one_second_gop = [*(arg if arg != "50" else "25" for arg in H264), "-bf", "0"]
    scene = night_scene if camera.night else day_scene
    partial = path.with_suffix(".partial.ts")
    encode_scene(out=partial, graph=scene(width, height, seconds), codec_args=one_second_gop)
    partial.replace(path)
    return path


def free_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LoopingStream:
    """One ffmpeg serving ``footage`` in a loop, in real time, as HTTP MPEG-TS at ``url``;
    started again whenever its client (the recorder) goes away, until ``stop``."""

    def __init__(self, footage: Path, *, port: int) -> None:
        self.footage = footage
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every ffmpeg started, for whoever checks they ended
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.ts"

    def command(self) -> list[str]:
        return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                "-stream_loop", "-1", "-i", str(self.footage), "-map", "0:v:0", "-c", "copy",
                "-f", "mpegts", "-listen", "1", self.url]

    def _keep_serving(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    break
                self.process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
                self.pids.append(self.process.pid)
            self.process.wait()
            self._stop.wait(RESTART_PAUSE_S)

    def start(self) -> LoopingStream:
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep_serving, daemon=True,
                                        name=f"demo-stream-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait until the ffmpeg process has ended."""
        self._stop.set()
        with self._lock:
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=15)


class DemoStreams:
    """The demo's live cameras: their streams and their registration."""

    def __init__(self, *, footage_dir: Path, usecase: UseCaseFactory,
                 cameras: tuple[DemoStreamCamera, ...] = DEMO_STREAM_CAMERAS,
                 size: tuple[int, int] = (640, 360), seconds: int = FOOTAGE_SECONDS) -> None:
        self.footage_dir = footage_dir
        self.usecase = usecase
        self.cameras = cameras
        self.size = size
        self.seconds = seconds
        self.streams: dict[str, LoopingStream] = {}

    def start(self) -> dict[str, str]:
        """Start every stream and point its camera at it; the camera id -> URL."""
        for camera in self.cameras:
            footage = demo_stream_footage(self.footage_dir, camera, size=self.size,
                                          seconds=self.seconds)
            self.streams[camera.id] = LoopingStream(footage, port=free_local_port()).start()
        self._register()
        return {camera_id: stream.url for camera_id, stream in self.streams.items()}

    def _register(self) -> None:
        with self.usecase() as ctx:
            known = {c.id for c in list_visible_cameras(ctx)}
        for camera in self.cameras:
            url = self.streams[camera.id].url
            with self.usecase() as ctx:
                if camera.id in known:
                    set_stream_url(ctx, camera_id=camera.id, stream_url=url)
                else:
                    register_camera(ctx, camera=validate_camera(
                        id=camera.id, name=camera.name, district=camera.district,
                        latitude=camera.latitude, longitude=camera.longitude,
                        agency="police"), stream_url=url)

    def stop(self) -> None:
        """Stop every stream (waiting for its ffmpeg) and remove the stream URLs."""
        for stream in self.streams.values():
            stream.stop()
        for camera_id in self.streams:
            with self.usecase() as ctx:
                set_stream_url(ctx, camera_id=camera_id, stream_url=None)


@contextmanager
def running_demo_streams(*, footage_dir: Path, usecase: UseCaseFactory
                         ) -> Iterator[DemoStreams]:
    streams = DemoStreams(footage_dir=footage_dir, usecase=usecase)
    try:
        streams.start()
        yield streams
    finally:
        streams.stop()


__all__ = [
    "DEMO_SEGMENT_SECONDS",
    "DEMO_STREAM_CAMERAS",
    "DemoStreamCamera",
    "DemoStreams",
    "LoopingStream",
    "demo_stream_footage",
    "running_demo_streams",
]
