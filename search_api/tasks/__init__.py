"""Celery wiring: the app factory, the worker's state and job recovery.

Tasks are thin adapters over domain logic (``search_api.tasks.ingest``,
``search_api.tasks.evidence``). The default broker is kombu's SQLAlchemy
transport on a SQLite file in the data dir, so nothing needs a server;
``OKO_BROKER_URL=redis://...`` switches to Redis. The DB job rows, not the broker,
decide what still has to run: a worker re-enqueues stale jobs itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import psutil
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState, build_state
from storage.blobstore import BlobStore
from storage.settings import Settings

logger = logging.getLogger(__name__)

TASK_MODULES = ["search_api.tasks.ingest", "search_api.tasks.evidence"]
QUEUE = "oko"


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings; the worker's state is built lazily per process."""
    broker = settings.resolved_broker_url
    # Only the process-wide default, never a thread-local "current" app: a request
    # thread that builds an app must not leave it current for another thread's tasks.
    app = Celery("oko", broker=broker, include=TASK_MODULES, set_as_current=False)
    transport_options: dict[str, Any] = {}
    if broker.startswith("sqla+"):
        settings.home.mkdir(parents=True, exist_ok=True)
        # Passed to SQLAlchemy's create_engine: wait on a locked SQLite file, don't fail.
        transport_options = {"connect_args": {"timeout": 30}}
    elif broker.startswith(("redis://", "rediss://")):
        # Far longer than any ingest: recovery is done from the DB lease, not redelivery.
        transport_options = {"visibility_timeout": 6 * 3600}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_concurrency=settings.worker_concurrency,
        timezone="UTC",
        enable_utc=True,
    )
    app.oko_settings = settings  # type: ignore[attr-defined]
    app.set_default()
    return app


def celery_for(state: AppState) -> Celery:
    """The Celery app a process with ``state`` sends tasks through, made on first use."""
    app = state.extras.get("celery")
    if app is None:
        app = state.extras["celery"] = make_celery(state.settings)
    assert isinstance(app, Celery)
    return app


_state_lock = threading.Lock()


SCRATCH_PREFIX = "worker-"


def _scratch_name(process: psutil.Process) -> str:
    return f"{SCRATCH_PREFIX}{socket.gethostname()}-{process.pid}-{int(process.create_time())}"


def sweep_dead_scratch(tmp_dir: Path) -> list[Path]:
    """Delete the scratch dirs of worker processes on this host that no longer run.

    A worker killed mid-ingest leaves half-written temp files behind; since each
    worker process writes only under its own ``worker-HOST-PID-START`` dir, the
    leftovers of dead ones can be removed without touching live work.
    """
    removed: list[Path] = []
    for path in tmp_dir.glob(f"{SCRATCH_PREFIX}*"):
        parts = path.name.removeprefix(SCRATCH_PREFIX).rsplit("-", 2)
        if len(parts) != 3 or parts[0] != socket.gethostname():
            continue
        _host, pid_text, started_text = parts
        if not (pid_text.isdigit() and started_text.isdigit()):
            continue
        try:
            alive = int(psutil.Process(int(pid_text)).create_time()) == int(started_text)
        except psutil.Error:
            alive = False
        if not alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def worker_state(app: Celery) -> AppState:
    """The AppState of this worker process, built once per process (never across a fork).

    Its blob stores write temp files under a scratch dir of this process only, so
    ``sweep_dead_scratch`` can clean up after a worker that was killed.
    """
    pid = os.getpid()
    with _state_lock:
        built: tuple[int, AppState] | None = getattr(app, "_oko_state", None)
        if built is None or built[0] != pid:
            settings: Settings = app.oko_settings  # type: ignore[attr-defined]
            state = build_state(settings, job_queue=CeleryJobQueue(settings))
            scratch = settings.tmp_dir / _scratch_name(psutil.Process(pid))
            scratch.mkdir(parents=True, exist_ok=True)
            state.originals = BlobStore(settings.blobs_dir, scratch)
            state.derived = BlobStore(settings.derived_dir, scratch)
            built = (pid, state)
            app._oko_state = built  # type: ignore[attr-defined]
        return built[1]


class _RecoveryLoop:
    """Re-enqueues jobs whose worker died; runs in the worker's main process."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="oko-job-recovery", daemon=True)

    def _run(self) -> None:
        from search_api.tasks.ingest import recover_jobs

        settings: Settings = self.app.oko_settings  # type: ignore[attr-defined]
        include_queued = True  # first pass: queued jobs may have lost their broker message
        interval = max(settings.job_lease_seconds / 2, 0.5)
        while not self.stop.is_set():
            try:
                sweep_dead_scratch(settings.tmp_dir)
                recover_jobs(self.app, include_queued=include_queued)
                include_queued = False
            except Exception:
                logger.exception("job recovery failed; retrying")
            self.stop.wait(interval)


_recovery: dict[int, _RecoveryLoop] = {}


@worker_ready.connect
def _start_recovery(sender: Any = None, **_kwargs: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None or not hasattr(app, "oko_settings"):
        return
    loop = _RecoveryLoop(app)
    _recovery[os.getpid()] = loop
    loop.thread.start()


@worker_shutdown.connect
def _stop_recovery(**_kwargs: Any) -> None:
    loop = _recovery.pop(os.getpid(), None)
    if loop is not None:
        loop.stop.set()


__all__ = [
    "QUEUE",
    "TASK_MODULES",
    "celery_for",
    "make_celery",
    "sweep_dead_scratch",
    "worker_state",
]
