"""The worker process: its state, scratch-dir clean-up and the recovery of dead jobs."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from indexer.jobs import requeue_stale_jobs
from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState, build_state
from search_api.tasks.app import enqueue_ingest
from storage.blobstore import BlobStore
from storage.db import session_scope
from storage.settings import Settings

logger = logging.getLogger(__name__)

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
            settings: Settings = app.oko_settings
            state = build_state(settings, job_queue=CeleryJobQueue(settings))
            scratch = settings.tmp_dir / _scratch_name(psutil.Process(pid))
            scratch.mkdir(parents=True, exist_ok=True)
            state.originals = BlobStore(settings.blobs_dir, scratch)
            state.derived = BlobStore(settings.derived_dir, scratch)
            built = (pid, state)
            app._oko_state = built
        return built[1]


def local_worker_alive(worker: str, seen_at: datetime) -> bool:
    """True when ``worker`` (``host:pid``) is a process on this host that ran at ``seen_at``.

    Comparing the start time rules out a recycled pid. Workers on other hosts are
    judged by their lease alone.
    """
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        started = psutil.Process(int(pid_text)).create_time()
    except psutil.Error:
        return False
    return started <= seen_at.timestamp() + 1


def recover_jobs(app: Celery, *, include_queued: bool) -> list[int]:
    """Put jobs whose worker died back in the queue; returns the re-enqueued ids."""
    state = worker_state(app)
    with session_scope(state.engine) as session:
        recovered = requeue_stale_jobs(
            session, lease_seconds=state.settings.job_lease_seconds,
            max_attempts=state.settings.job_max_attempts, include_queued=include_queued,
            worker_alive=local_worker_alive,
        )
    enqueue_ingest(app, recovered.requeued)
    return recovered.requeued


class _RecoveryLoop:
    """Re-enqueues jobs whose worker died; runs in the worker's main process."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="oko-job-recovery", daemon=True)

    def _run(self) -> None:
        settings: Settings = self.app.oko_settings
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


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _start_recovery(sender: Any = None, **_kwargs: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None or not hasattr(app, "oko_settings"):
        return
    loop = _RecoveryLoop(app)
    _recovery[os.getpid()] = loop
    loop.thread.start()


@worker_shutdown.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _stop_recovery(**_kwargs: Any) -> None:
    loop = _recovery.pop(os.getpid(), None)
    if loop is not None:
        loop.stop.set()


__all__ = ["local_worker_alive", "recover_jobs", "sweep_dead_scratch", "worker_state"]
