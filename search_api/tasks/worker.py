"""The worker process: its state, the recovery of dead jobs and the sweep of their files.

When a worker starts, and then every half lease, its recovery loop (which also runs
the retention sweep every ``OKO_RETENTION_INTERVAL_MINUTES``):

1. deletes the scratch dirs of worker processes that are gone (``sweep_dead_scratch``);
2. settles export jobs whose process is gone (``recover_exports``): failed when their
   custody entry was never committed, finished from their ``.part`` when it was;
3. sweeps stale temp files (``sweep_stale_files``): ``tmp/bundle-*``, ``tmp/clip-*``,
   ``tmp/verify-*`` (and ``verify-*`` in ``OKO_SCRATCH_DIR``), ``tmp/upload-*``,
   ``tmp/blob-*.part``, ``exports/.*.part``, and the ``.part`` files and
   ``.quantize-*`` dirs an interrupted ONNX export leaves in ``models/onnx``. A
   name that carries its writer's owner tag goes once that process is gone; any other
   once untouched for ``STALE_TEMP_AGE_S``; a live job's files never go, nor the
   ``.part`` of a bundle recorded in custody;
4. puts ingest jobs whose worker died back in the queue (``recover_jobs``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from evidence.export_jobs import RecoveredExports, recover_export_jobs, unpublished_bundles
from evidence.exports import pending_parts
from indexer.jobs import requeue_stale_jobs
from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState, build_state
from search_api.tasks.app import enqueue_ingest
from storage.atomic import process_alive, sweep_stale_temp
from storage.blobstore import BlobStore
from storage.db import session_scope
from storage.settings import Settings

logger = logging.getLogger(__name__)

_state_lock = threading.Lock()


SCRATCH_PREFIX = "worker-"
STALE_TEMP_AGE_S = 6 * 3600.0
"""A temp file without an owner tag is swept once nothing in it changed for this long:
far longer than any upload or verification takes between two writes."""
TMP_PATTERNS = ("bundle-*", "clip-*", "verify-*", "upload-*", "blob-*.part")
EXPORT_PART_PATTERNS = (".*.part",)


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
        if not process_alive(int(pid_text), int(started_text)):
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
        process = psutil.Process(int(pid_text))
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # it has exited; only its parent has not reaped it yet
    except psutil.Error:
        return False
    return started <= seen_at.timestamp() + 1


def worker_alive_here(worker: str, seen_at: datetime) -> bool | None:
    """``local_worker_alive``, but None for a worker on another host (not checkable)."""
    if worker.rpartition(":")[0] != socket.gethostname():
        return None
    return local_worker_alive(worker, seen_at)


def recover_exports(app: Celery) -> RecoveredExports:
    """Settle export jobs whose process is gone (``evidence.export_jobs``); committed."""
    state = worker_state(app)
    with session_scope(state.engine) as session:
        recovered = recover_export_jobs(session, worker_alive=worker_alive_here)
    if recovered.failed or recovered.finished:
        logger.warning("exports whose process ended: failed %s, finished %s",
                       recovered.failed, recovered.finished)
    return recovered


def recover_redactions(app: Celery, *, include_queued: bool) -> list[int]:
    """Queue again once, then fail, the detections whose process is gone
    (``evidence.redaction.jobs``) and, on the first pass, enqueue again those still
    queued (their message may be lost); committed. Returns the failed ids."""
    from evidence.redaction.jobs import queued_redactions, recover_redaction_jobs
    from search_api.tasks.app import enqueue_redaction

    state = worker_state(app)
    with session_scope(state.engine) as session:
        recovered = recover_redaction_jobs(session, worker_alive=worker_alive_here)
        queued = queued_redactions(session) if include_queued else recovered.requeued
    if recovered.failed:
        logger.warning("redaction detections whose process ended, failed: %s",
                       recovered.failed)
    if recovered.requeued:
        logger.warning("redaction detections whose process ended, queued again: %s",
                       recovered.requeued)
    for redaction_id in queued:
        enqueue_redaction(app, redaction_id)
    return recovered.failed


def sweep_stale_files(app: Celery) -> list[Path]:
    """Delete the temp and ``.part`` files that crashed writers left; returns them.

    The ``.part`` of a bundle already recorded in custody is kept for its recovery.
    """
    state = worker_state(app)
    settings = state.settings
    with session_scope(state.engine) as session:
        keep = {part for out in unpublished_bundles(session) for part in pending_parts(out)}
    removed = sweep_stale_temp(settings.tmp_dir, TMP_PATTERNS, max_age_s=STALE_TEMP_AGE_S)
    removed += sweep_stale_temp(settings.exports_dir, EXPORT_PART_PATTERNS,
                                max_age_s=STALE_TEMP_AGE_S, keep=keep)
    removed += sweep_stale_temp(settings.onnx_dir, (".quantize-*",),
                                max_age_s=STALE_TEMP_AGE_S)
    for weights_dir in sorted(settings.onnx_dir.glob("*")):
        if weights_dir.is_dir() and not weights_dir.name.startswith("."):
            removed += sweep_stale_temp(weights_dir, (".*.part",), max_age_s=STALE_TEMP_AGE_S)
    if settings.scratch_dir is not None and settings.scratch_dir != settings.tmp_dir:
        removed += sweep_stale_temp(settings.scratch_dir, ("verify-*",),
                                    max_age_s=STALE_TEMP_AGE_S)
    if removed:
        logger.info("swept %d stale temp files: %s", len(removed),
                    ", ".join(path.name for path in removed[:20]))
    return removed


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
        retention_due = 0.0
        while not self.stop.is_set():
            try:
                sweep_dead_scratch(settings.tmp_dir)
                recover_exports(self.app)  # before the sweep: it may publish a .part
                recover_redactions(self.app, include_queued=include_queued)
                sweep_stale_files(self.app)
                recover_jobs(self.app, include_queued=include_queued)
                include_queued = False
                if time.monotonic() >= retention_due:
                    from search_api.usecases.retention import sweep_now

                    retention_due = time.monotonic() + settings.retention_interval_minutes * 60
                    sweep_now(worker_state(self.app))
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


__all__ = [
    "STALE_TEMP_AGE_S",
    "local_worker_alive",
    "recover_exports",
    "recover_jobs",
    "recover_redactions",
    "sweep_dead_scratch",
    "sweep_stale_files",
    "worker_alive_here",
    "worker_state",
]
