"""Recording tests: real ffmpeg stream servers on 127.0.0.1 playing generated footage."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from indexer.media import ffmpeg_exe
from indexer.recording.recorder import CameraRecorder
from indexer.samples import H264, day_scene, encode_scene
from search_api.state import AppState, build_state
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.models.media import Original
from storage.models.recording import CameraGap, RecorderState
from storage.settings import Settings
from tests.services import free_port

CAMERA = "CAM-REC"
WAIT_S = 90.0


@pytest.fixture(scope="session")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of 160x90 H.264 at 25 fps, a keyframe every second and no B-frames (as most
    cameras send: RTP carries no decoding times for B-frames), as MPEG-TS."""
    path = tmp_path_factory.mktemp("stream-footage") / "street.ts"
    one_second_gop = [*(arg if arg != "50" else "25" for arg in H264), "-bf", "0"]
    encode_scene(out=path, graph=day_scene(160, 90, 20), codec_args=one_second_gop)
    return path


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[AppState]:
    """A data dir recording in 2 s files, reconnecting quickly, with one camera."""
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", record_segment_seconds=2,
                        record_backoff_seconds=0.2, record_backoff_max_seconds=1.0,
                        record_timeout_seconds=3.0, record_min_free_mb=0)
    state = build_state(settings)
    with session_scope(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id=CAMERA, name="Loopback", latitude=50.45, longitude=30.52, agency="police"))
    yield state
    state.engine.dispose()


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = WAIT_S) -> None:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class StreamServer:
    """An ffmpeg process playing ``footage`` in a loop, in real time, at ``url``.

    ``http``: ffmpeg serves MPEG-TS at the URL (``-listen 1``) for a recorder to pull.
    ``rtsp``: ffmpeg pushes to a recorder listening at the URL (``-rtsp_flags listen``
    on the recorder's side), retrying until the recorder listens.
    """

    def __init__(self, footage: Path, *, kind: str, port: int,
                 codec_args: list[str] | None = None, container: str = "mpegts") -> None:
        self.footage, self.kind, self.port = footage, kind, port
        self.codec_args = codec_args or ["-c", "copy"]
        self.container = container
        self.process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return (f"http://127.0.0.1:{self.port}/cam.ts" if self.kind == "http"
                else f"rtsp://127.0.0.1:{self.port}/cam")

    def _command(self) -> list[str]:
        head = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                "-stream_loop", "-1", "-i", str(self.footage), "-map", "0:v:0",
                *self.codec_args]
        if self.kind == "http":
            return [*head, "-f", self.container, "-listen", "1", self.url]
        return [*head, "-f", "rtsp", "-rtsp_transport", "tcp", self.url]

    def _keep_running(self) -> None:
        while not self._stop.is_set():
            self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            while self.process.poll() is None and not self._stop.is_set():
                time.sleep(0.1)
            if self._stop.is_set():
                break
            time.sleep(0.2)  # the recorder went away or is not listening yet: again

    def start(self) -> StreamServer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep_running, daemon=True)
        self._thread.start()
        return self

    def kill(self) -> None:
        """Stop serving at once (SIGKILL), like a camera losing power."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers() -> Iterator[list[StreamServer]]:
    started: list[StreamServer] = []
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def serve(footage: Path, servers: list[StreamServer]) -> Callable[..., StreamServer]:
    def _serve(kind: str, **options: object) -> StreamServer:
        server = StreamServer(footage, kind=kind, port=free_port(), **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()
    return _serve


@contextmanager
def running(recorder: CameraRecorder) -> Iterator[CameraRecorder]:
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        stop.set()
        recorder.stop_process()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the recorder did not stop"


def originals(state: AppState) -> list[Original]:
    with Session(state.engine) as session:
        return list(session.exec(select(Original).where(Original.camera_id == CAMERA)
                                 .order_by(col(Original.recording_start_utc))).all())


def gaps(state: AppState) -> list[CameraGap]:
    with Session(state.engine) as session:
        return list(session.exec(select(CameraGap).where(CameraGap.camera_id == CAMERA)
                                 .order_by(col(CameraGap.start_utc))).all())


def recorder_state(state: AppState) -> RecorderState | None:
    with Session(state.engine) as session:
        return session.get(RecorderState, CAMERA)
