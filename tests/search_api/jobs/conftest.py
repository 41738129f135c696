"""Fixtures for the jobs suite: tiny real clips, a camera, the CLI, and real worker processes.

Workers are real ``python -m search_api.cli worker`` processes in their own process
group; every one started here is killed (the whole group) when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import pytest
import redis
from sqlmodel import Session, select

from search_api.cli import main
from search_api.state import AppState
from storage.cameras import add_camera, validate_camera
from storage.models.media import IngestJob
from storage.settings import Settings
from tests.services_redis import redis_url  # noqa: F401  (session fixture used below)

REPO_ROOT = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 3.0
CAMERA_ID = "CAM-001"


def make_clip(path: Path, *, seconds: float, size: str = "320x180",
              mux: tuple[str, ...] = ()) -> Path:
    """A deterministic H.264 test-pattern clip with a 2 s GOP."""
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate=25", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-threads", "1",
         "-fflags", "+bitexact", "-flags:v", "+bitexact", *mux, str(path)],
        check=True, timeout=120,
    )
    return path


@pytest.fixture(scope="session")
def footage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs-footage")


@pytest.fixture(scope="session")
def short_clip(footage_dir: Path) -> Path:
    """6 s; its name carries the recording start."""
    return make_clip(footage_dir / "CAM-001_20260125T100000.mp4", seconds=6)


@pytest.fixture(scope="session")
def long_clip(footage_dir: Path) -> Path:
    """Long enough that ingest is still sampling when the test kills its worker."""
    return make_clip(footage_dir / "CAM-001_20260125T110000.mp4", seconds=240)


@pytest.fixture
def settings(tmp_path: Path, footage_dir: Path) -> Settings:
    """The shared test settings with a short job lease, so recovery happens in seconds.

    The API may ingest from the session's footage and from the test's own temp dir.
    """
    return Settings(home=tmp_path / "oko-home", environment="test",
                    key_passphrase="test-passphrase", job_lease_seconds=LEASE_SECONDS,
                    ingest_roots=[footage_dir, tmp_path / "roots"])


@pytest.fixture
def camera(state: AppState) -> str:
    with Session(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id=CAMERA_ID, name="Test street", district="Center", latitude=50.45,
            longitude=30.52, agency="police"))
        session.commit()
    return CAMERA_ID


def settings_env(settings: Settings) -> dict[str, str]:
    """The process environment that reproduces ``settings`` (and nothing of the caller's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
    env.update(OKO_HOME=str(settings.home), OKO_ENVIRONMENT=settings.environment,
               OKO_JOB_LEASE_SECONDS=str(settings.job_lease_seconds),
               PYTHONPATH=str(REPO_ROOT))
    for name, value in (("OKO_KEY_PASSPHRASE", settings.key_passphrase),
                        ("OKO_DATABASE_URL", settings.database_url),
                        ("OKO_BROKER_URL", settings.broker_url)):
        if value:
            env[name] = value
    return env


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_oko(settings: Settings, state: AppState, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``oko ARGS...`` in this process against the test data dir."""
    for key, value in settings_env(settings).items():
        if key.startswith("OKO_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")

    def _run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code=code, out=captured.out, err=captured.err)

    return _run


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group and wait for it to go."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    """Start a real worker process for ``settings``; all are killed at teardown."""
    workers: list[WorkerProcess] = []

    def _start() -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(workers) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "search_api.cli", "worker", "--pool", "solo"],
                env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=tmp_path,
            )
        worker = WorkerProcess(process=process, log_path=log_path)
        workers.append(worker)
        return worker

    try:
        yield _start
    finally:
        for worker in workers:
            worker.kill()


@pytest.fixture
def redis_broker(redis_url: str, settings: Settings) -> str:  # noqa: F811
    """Point ``settings`` at the session's redis-server, emptied of other tests' messages."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    settings.broker_url = redis_url
    return redis_url


def job_row(state: AppState, job_id: int) -> IngestJob:
    with Session(state.engine) as session:
        job = session.get(IngestJob, job_id)
        assert job is not None
        return job


def all_jobs(state: AppState) -> list[IngestJob]:
    with Session(state.engine) as session:
        return list(session.exec(select(IngestJob)).all())


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str,
               worker: WorkerProcess | None = None, interval: float = 0.1) -> None:
    """Poll ``predicate``; fails with the worker's log when it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    detail = f"\nworker log:\n{worker.log()}" if worker is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
