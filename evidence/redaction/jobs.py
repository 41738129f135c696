"""A redaction's detection as a job: the ``Redaction`` row is the source of truth.

1. ``propose_redaction`` (the use case) stores the row ``queued``, its clip cut and its
   model files checked, and hands its id to the worker (or runs it in-process: the CLI).
2. ``claim_redaction_job``: one conditional UPDATE (queued -> running) in its own
   committed transaction, naming this process (``host:pid``), so a worker and a CLI can
   never run the same detection twice at once.
3. Detection writes ``progress_frames`` through its own short transactions, so the API
   (and the web app, which polls) sees it while it runs.
4. The tracks, facts and detectors are written and the row becomes ``proposed`` in the
   caller's transaction; until then nothing of the proposal is on the record.

A process killed on the way leaves a running row whose process no longer exists.
``recover_redaction_jobs`` (run by the worker's recovery loop) queues it again once
(``MAX_ATTEMPTS``), the interrupted attempt recorded in ``parameters["interrupted"]``
(worker, frames done, when), and marks it ``failed`` with ``INTERRUPTED`` when that
attempt's process ends too: detection writes nothing else, so there is nothing to
undo, and the reviewer proposes it again. A failure (a corrupt model, an undecodable
clip) is recorded with its one sentence by ``fail_redaction_job``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.db import session_scope
from storage.models.redaction import Redaction
from storage.types import utcnow

QUEUED, RUNNING, FAILED, PROPOSED = "queued", "running", "failed", "proposed"
DETECTING = (QUEUED, RUNNING)
STALE_RUNNING_AFTER = timedelta(hours=1)
"""A running detection with no progress for this long whose process cannot be checked
(another host) is presumed lost."""
PROGRESS_EVERY_FRAMES = 25
WorkerAlive = Callable[[str, datetime], bool | None]
"""``worker_alive(worker, seen_at)``, as for export jobs: whether the ``host:pid``
process still runs; None when it cannot be checked (another host)."""
INTERRUPTED = ("The detection stopped when the process running it ended; nothing was "
               "proposed, so propose the redaction again.")
MAX_ATTEMPTS = 2
REQUEUED = ("The detection stopped when the process running it ended; it is queued "
            "again (attempt {attempt} of {most}).")


@dataclass(frozen=True)
class RecoveredJobs:
    """What ``recover_redaction_jobs`` did: ids queued again (to enqueue) and failed."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def worker_name() -> str:
    """The ``host:pid`` a detection records for the process running it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_redaction_job(engine: Engine, *, redaction_id: int) -> bool:
    """Mark a queued redaction running; False when it is not queued (another process
    has it, or it is finished)."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Redaction).where(and_(col(Redaction.id) == redaction_id,
                                         col(Redaction.status) == QUEUED))
            .values(status=RUNNING, worker=worker_name(), progress_frames=0, message="",
                    updated_at=utcnow())
            .execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def progress_writer(engine: Engine, redaction_id: int) -> Callable[[int, int], None]:
    """``progress(done, total)`` for ``pipeline.propose``: writes every
    ``PROGRESS_EVERY_FRAMES`` frames, in its own short transaction."""

    def progress(done: int, total: int) -> None:
        if done % PROGRESS_EVERY_FRAMES and done != total:
            return
        with session_scope(engine) as session:
            session.execute(
                update(Redaction).where(and_(col(Redaction.id) == redaction_id,
                                             col(Redaction.status) == RUNNING))
                .values(progress_frames=done, updated_at=utcnow())
                .execution_options(synchronize_session=False))

    return progress


def fail_redaction_job(session: Session, *, job_id: int, message: str) -> None:
    """Record why detection failed (one sentence); the caller commits."""
    redaction = session.get(Redaction, job_id)
    if redaction is not None and redaction.status in DETECTING:
        redaction.status, redaction.message = FAILED, message
        redaction.updated_at = utcnow()
        session.add(redaction)


def _gone(redaction: Redaction, worker_alive: WorkerAlive, now: datetime) -> bool:
    seen = redaction.updated_at or redaction.created_at
    alive = worker_alive(redaction.worker, seen) if redaction.worker else None
    if alive is None:
        return seen < now - STALE_RUNNING_AFTER
    return not alive


def recover_redaction_jobs(session: Session, *, worker_alive: WorkerAlive,
                           now: datetime | None = None) -> RecoveredJobs:
    """Queue again (``REQUEUED``, the attempt recorded) the running detections whose
    process has ended, or mark them failed (``INTERRUPTED``) after ``MAX_ATTEMPTS``.
    A row is changed only if nobody wrote it meanwhile. Flushes; the caller commits and
    enqueues the ``requeued`` ids."""
    now = now or utcnow()
    result = RecoveredJobs()
    running = session.exec(select(Redaction).where(Redaction.status == RUNNING)
                           .execution_options(populate_existing=True)).all()
    for redaction in running:
        assert redaction.id is not None
        if not _gone(redaction, worker_alive, now):
            continue
        unchanged = and_(col(Redaction.id) == redaction.id,
                         col(Redaction.status) == RUNNING,
                         col(Redaction.progress_frames) == redaction.progress_frames)
        earlier = list((redaction.parameters or {}).get("interrupted", []))
        attempt: dict[str, Any] = {"attempt": len(earlier) + 1, "worker": redaction.worker,
                                   "progress_frames": redaction.progress_frames,
                                   "interrupted_at": now.isoformat()}
        parameters = {**(redaction.parameters or {}), "interrupted": [*earlier, attempt]}
        again = len(earlier) + 1 < MAX_ATTEMPTS
        values: dict[str, Any] = (
            {"status": QUEUED, "worker": None, "progress_frames": 0,
             "message": REQUEUED.format(attempt=len(earlier) + 2, most=MAX_ATTEMPTS)}
            if again else {"status": FAILED, "message": INTERRUPTED})
        changed = session.execute(update(Redaction).where(unchanged)
                                  .values(**values, parameters=parameters, updated_at=now)
                                  .execution_options(synchronize_session=False))
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            (result.requeued if again else result.failed).append(redaction.id)
    session.flush()
    return result


def queued_redactions(session: Session) -> list[int]:
    """Ids of detections still queued (their broker message may have been lost)."""
    return [i for i in session.exec(select(Redaction.id).where(Redaction.status == QUEUED)
                                    .order_by(col(Redaction.id))).all() if i is not None]


__all__ = ["DETECTING", "FAILED", "INTERRUPTED", "MAX_ATTEMPTS", "PROPOSED", "QUEUED",
           "REQUEUED", "RUNNING", "STALE_RUNNING_AFTER", "RecoveredJobs",
           "claim_redaction_job", "fail_redaction_job",
           "progress_writer", "queued_redactions", "recover_redaction_jobs"]
