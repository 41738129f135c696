"""Ingest jobs: the DB row is the source of truth for what is queued, running and done.

A request queues one job per path it names, file or folder, and never walks a folder.
The worker that runs a folder's job walks it (``indexer.ingest.walk_folder``, bounded),
adds one queued job per video file with ``parent_id`` naming the folder's job, and
marks the folder's job done (``stage="walked"``) in the same transaction; the caller
then hands those file jobs to the queue.

A job moves ``queued -> running -> done | duplicate | failed``. A worker *claims* a
job with an atomic UPDATE and then keeps a lease on it by refreshing
``heartbeat_at`` from a background thread. A job whose worker died (its lease
expired) is put back to ``queued`` by ``requeue_stale_jobs`` and run again;
``indexer.ingest.ingest_file`` is idempotent, so the rerun leaves exactly the
segments and frames a clean run would. Recovery therefore never depends on the
broker redelivering a message.

Functions that take a ``session`` flush and leave the commit to the caller;
``run_ingest_job`` takes an engine because it commits each step so that
progress is visible to other processes while it works.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, or_, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from indexer.ingest import (
    VIDEO_EXTENSIONS,
    IngestOptions,
    IngestOutcome,
    ingest_file,
    parse_start,
    resolve_source,
    walk_folder,
)
from indexer.job_lease import LeaseKeeper, ProgressWriter
from storage.blobstore import BlobStore
from storage.cameras import get_camera, get_camera_or_raise
from storage.db import session_scope
from storage.errors import InvalidInputError, NotFoundError, OkoError
from storage.models.media import Frame, IngestJob, Original, Segment
from storage.types import utcnow

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DUPLICATE = "duplicate"
FAILED = "failed"
FINISHED_STATUSES = frozenset({DONE, DUPLICATE, FAILED})

WALKED = "walked"  # the stage of a folder's job once its file jobs are queued

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3


class JobNotFoundError(NotFoundError):
    """No ingest job has the given id."""


class LeaseLostError(OkoError):
    """Another worker took the job over because this one stopped renewing its lease."""


@dataclass(frozen=True)
class JobReport:
    """A job as users see it: its row plus what ingest stored for its file."""

    id: int
    source_path: str
    camera_id: str
    status: str
    stage: str
    progress: float
    message: str
    sha256: str | None
    original_id: int | None
    attempts: int
    worker: str | None
    created_at: datetime
    updated_at: datetime
    parent_id: int | None = None
    files: int = 0
    segments: int = 0
    frames: int = 0
    damaged: bool = False
    decodable_duration_s: float | None = None

    @property
    def duplicate(self) -> bool:
        return self.status == DUPLICATE

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["duplicate"] = self.duplicate
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


@dataclass(frozen=True)
class RecoveredJobs:
    """What ``requeue_stale_jobs`` did: ids to enqueue again and ids given up on."""

    requeued: list[int]
    failed: list[int]


def worker_name() -> str:
    """Identifies the process holding a lease, for ``oko jobs`` and for debugging."""
    return f"{socket.gethostname()}:{os.getpid()}"


def submit_ingest(
    session: Session, *, paths: Sequence[Path], camera_id: str, start: str | None,
    requested_by: str = "system", roots: Sequence[Path] | None = None,
) -> list[IngestJob]:
    """Validate the request and add one queued job per path (a file or a folder).

    Everything a user can get wrong up front is checked here, before any job
    exists: raises ``NotFoundError`` for an unknown camera or a missing path (with
    ``roots``, one answer for a path outside them or missing) and
    ``InvalidInputError`` for an unparseable start time. Folders are not walked here.
    Flushes; the caller commits and then enqueues the returned job ids.
    """
    camera = get_camera_or_raise(session, camera_id)
    if start is not None:
        parse_start(start, camera.timezone)
    sources = [resolve_source(path, roots=roots) for path in paths]
    jobs = [
        IngestJob(source_path=str(source), camera_id=camera_id, requested_start=start,
                  requested_by=requested_by)
        for source in dict.fromkeys(sources)
    ]
    session.add_all(jobs)
    session.flush()
    return jobs


def get_job(session: Session, job_id: int) -> IngestJob | None:
    return session.get(IngestJob, job_id)


def get_job_or_raise(session: Session, job_id: int) -> IngestJob:
    """Raises ``JobNotFoundError`` when there is no such job."""
    job = session.get(IngestJob, job_id)
    if job is None:
        raise JobNotFoundError(f"Ingest job {job_id} does not exist.")
    return job


def list_jobs(
    session: Session,
    *,
    job_ids: Iterable[int] | None = None,
    parent_ids: Iterable[int] | None = None,
    camera_ids: Iterable[str] | None = None,
    statuses: Iterable[str] | None = None,
    limit: int = 200,
) -> list[IngestJob]:
    """Newest first, optionally narrowed to ids, folder jobs' files, cameras or statuses.

    ``limit`` pages a listing; asking for ``job_ids`` or ``parent_ids`` returns every
    one of them (a folder may queue more jobs than a page holds).
    """
    query = select(IngestJob).order_by(col(IngestJob.id).desc())
    if job_ids is not None or parent_ids is not None:
        query = query.where(or_(col(IngestJob.id).in_(list(job_ids or [])),
                                col(IngestJob.parent_id).in_(list(parent_ids or []))))
    else:
        query = query.limit(limit)
    if camera_ids is not None:
        query = query.where(col(IngestJob.camera_id).in_(list(camera_ids)))
    if statuses is not None:
        query = query.where(col(IngestJob.status).in_(list(statuses)))
    return list(session.exec(query).all())


def report_jobs(session: Session, jobs: Sequence[IngestJob]) -> list[JobReport]:
    """Join each job with its original's damage flag and segment and frame counts."""
    original_ids = [job.original_id for job in jobs if job.original_id is not None]
    originals = {o.id: o for o in session.exec(
        select(Original).where(col(Original.id).in_(original_ids))).all()}
    segments = dict(session.exec(
        select(Segment.original_id, func.count()).where(col(Segment.original_id).in_(original_ids))
        .group_by(col(Segment.original_id))).all())
    frames = dict(session.exec(
        select(Frame.original_id, func.count()).where(col(Frame.original_id).in_(original_ids))
        .group_by(col(Frame.original_id))).all())
    files = dict(session.exec(
        select(IngestJob.parent_id, func.count())
        .where(col(IngestJob.parent_id).in_([job.id for job in jobs]))
        .group_by(col(IngestJob.parent_id))).all())
    reports = []
    for job in jobs:
        assert job.id is not None
        original_id = job.original_id
        original = originals.get(original_id) if original_id is not None else None
        reports.append(JobReport(
            id=job.id, source_path=job.source_path, camera_id=job.camera_id,
            status=job.status, stage=job.stage, progress=job.progress, message=job.message,
            sha256=job.sha256, original_id=job.original_id, attempts=job.attempts,
            worker=job.worker, created_at=job.created_at, updated_at=job.updated_at,
            parent_id=job.parent_id, files=files.get(job.id, 0),
            segments=segments.get(original_id, 0) if original_id is not None else 0,
            frames=frames.get(original_id, 0) if original_id is not None else 0,
            damaged=bool(original and original.damaged),
            decodable_duration_s=(original.decodable_duration_s
                                  if original is not None and original.damaged else None),
        ))
    return reports


def _lease_expired(stale_before: datetime) -> ColumnElement[bool]:
    return or_(col(IngestJob.heartbeat_at).is_(None), col(IngestJob.heartbeat_at) < stale_before)


def claim_job(
    session: Session, *, job_id: int, worker: str, lease_seconds: float, now: datetime | None = None
) -> IngestJob | None:
    """Take the lease on a queued job, or on a running one whose lease expired.

    A single conditional UPDATE, so two workers can never both win. Returns the
    claimed job, or ``None`` when the job is finished or another live worker holds
    it (a duplicate delivery of the same task is then a no-op). Raises
    ``JobNotFoundError`` for an unknown id. Flushes; the caller commits.
    """
    get_job_or_raise(session, job_id)
    now = now or utcnow()
    stale_before = now - timedelta(seconds=lease_seconds)
    claimable = or_(col(IngestJob.status) == QUEUED,
                    and_(col(IngestJob.status) == RUNNING, _lease_expired(stale_before)))
    result = session.execute(
        update(IngestJob)
        .where(and_(col(IngestJob.id) == job_id, claimable))
        .values(status=RUNNING, worker=worker, attempts=IngestJob.attempts + 1,
                heartbeat_at=now, updated_at=now, stage="starting", message="")
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.flush()
    job = session.get(IngestJob, job_id, populate_existing=True)
    assert job is not None
    return job


def _owned(job_id: int, worker: str) -> ColumnElement[bool]:
    return and_(col(IngestJob.id) == job_id, col(IngestJob.worker) == worker,
                col(IngestJob.status) == RUNNING)


def heartbeat(session: Session, *, job_id: int, worker: str) -> bool:
    """Renew the lease; False when the job is no longer this worker's."""
    now = utcnow()
    result = session.execute(
        update(IngestJob).where(_owned(job_id, worker))
        .values(heartbeat_at=now).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(
    session: Session | Connection, *, job_id: int, worker: str, stage: str, fraction: float
) -> bool:
    """Store the current stage and overall fraction (0..1); renews the lease too."""
    now = utcnow()
    result = session.execute(
        update(IngestJob).where(_owned(job_id, worker))
        .values(stage=stage, progress=min(max(fraction, 0.0), 1.0),
                heartbeat_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_job(session: Session, *, job_id: int, outcome: IngestOutcome) -> IngestJob:
    """Mark the job done (or duplicate) and link it to the stored original."""
    job = get_job_or_raise(session, job_id)
    job.status = DUPLICATE if outcome.duplicate else DONE
    job.stage = "done"
    job.progress = 1.0
    job.sha256 = outcome.sha256
    job.original_id = outcome.original_id
    job.message = outcome.message
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def expand_folder_job(session: Session, *, job: IngestJob) -> list[IngestJob]:
    """Walk the folder of ``job`` and queue one job per video file, each naming ``job``.

    ``job`` is marked done (stage ``walked``) with a sentence saying what was queued.
    Raises ``FolderTooLargeError`` past the walk's limits and ``InvalidInputError``
    for a folder without video files; nothing is queued then. Flushes; the caller commits.
    """
    assert job.id is not None
    folder = Path(job.source_path)
    walk = walk_folder(folder)
    if not walk.files:
        raise InvalidInputError(f"'{folder}' holds no video files"
                                f" ({', '.join(VIDEO_EXTENSIONS)}).")
    children = [IngestJob(source_path=str(path), camera_id=job.camera_id,
                          requested_start=job.requested_start,
                          requested_by=job.requested_by, parent_id=job.id)
                for path in walk.files]
    session.add_all(children)
    session.flush()
    first, last = children[0].id, children[-1].id
    skipped = (f" {len(walk.unreadable)} folder(s) could not be read, such as"
               f" '{walk.unreadable[0]}'." if walk.unreadable else "")
    job.status, job.stage, job.progress = DONE, WALKED, 1.0
    job.message = (f"Found {len(children)} video file(s) in '{folder}'; queued them as"
                   f" job(s) {first}" + (f" to {last}" if last != first else "") + f".{skipped}")
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return children


def fail_job(session: Session, *, job_id: int, message: str) -> IngestJob:
    """Mark the job failed with one sentence the user will see."""
    job = get_job_or_raise(session, job_id)
    job.status = FAILED
    job.message = message
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def requeue_stale_jobs(
    session: Session,
    *,
    lease_seconds: float,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    include_queued: bool = False,
    worker_alive: Callable[[str, datetime], bool] | None = None,
    now: datetime | None = None,
) -> RecoveredJobs:
    """Find jobs whose worker died and put them back in the queue.

    A running job whose heartbeat is older than the lease goes back to queued, or
    to failed once it has used ``max_attempts`` (a file that kills its worker every
    time must not loop forever). With ``include_queued`` the ids of every queued
    job are returned too, for a worker that starts and cannot know whether their
    broker messages survived. ``worker_alive(worker, updated_at)`` may vouch for a
    holder whose heartbeat is late but whose process is known to run (a busy machine
    starves its heartbeat thread); such jobs are left alone. Flushes; the caller
    commits, then enqueues ``requeued``.
    """
    now = now or utcnow()
    stale_before = now - timedelta(seconds=lease_seconds)
    stale = session.exec(
        select(IngestJob.id, IngestJob.attempts, IngestJob.worker, IngestJob.updated_at)
        .where(IngestJob.status == RUNNING, _lease_expired(stale_before))
    ).all()
    requeued: list[int] = []
    failed: list[int] = []
    for job_id, attempts, holder, updated_at in stale:
        assert job_id is not None
        if holder and worker_alive is not None and worker_alive(holder, updated_at):
            continue
        if attempts >= max_attempts:
            values: dict[str, object] = {
                "status": FAILED, "message": f"The worker stopped {attempts} times while"
                " ingesting this file, so it was given up."}
        else:
            values = {"status": QUEUED, "stage": "requeued", "worker": None}
        # Conditional, like the claim: a worker that took the job over meanwhile keeps it.
        result = session.execute(
            update(IngestJob)
            .where(col(IngestJob.id) == job_id, col(IngestJob.status) == RUNNING,
                   _lease_expired(stale_before))
            .values(updated_at=now, **values).execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            (failed if values["status"] == FAILED else requeued).append(job_id)
    if include_queued:
        queued = session.exec(select(IngestJob.id).where(IngestJob.status == QUEUED)).all()
        requeued.extend(job_id for job_id in queued
                        if job_id is not None and job_id not in requeued)
    session.flush()
    return RecoveredJobs(requeued=sorted(requeued), failed=sorted(failed))


@dataclass
class _ProgressWrite:
    """The last progress written to the job row (stage, fraction, monotonic time)."""

    stage: str
    fraction: float
    at: float


def _lease_keeper(engine: Engine, *, job_id: int, worker: str,
                  lease_seconds: float) -> LeaseKeeper:
    """Renews the job's lease four times a lease (at least every 0.2 s) while open."""
    def beat() -> None:
        with session_scope(engine) as session:
            heartbeat(session, job_id=job_id, worker=worker)

    return LeaseKeeper(beat=beat, interval=max(lease_seconds / 4, 0.2), name=f"lease-{job_id}")


def _progress_writer(engine: Engine, *, job_id: int, worker: str) -> ProgressWriter:
    def write(stage: str, fraction: float) -> bool:
        with engine.begin() as connection:  # one UPDATE: no ORM session needed
            return record_progress(connection, job_id=job_id, worker=worker, stage=stage,
                                   fraction=fraction)

    return ProgressWriter(write=write, name=f"progress-{job_id}")


def run_ingest_job(
    *,
    engine: Engine,
    originals: BlobStore,
    derived: BlobStore,
    job_id: int,
    options: IngestOptions,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    worker: str | None = None,
    on_progress: Callable[[str, float], None] | None = None,
) -> IngestJob | None:
    """Claim the job, ingest its file while holding the lease, then finish it.

    The acquisition custody entry names the job's requester as its actor.

    Returns the finished job (done, duplicate, or failed with the sentence of the
    ``OkoError`` that stopped it), or ``None`` when the job was not this worker's to
    run (already finished, or held by another live worker). Any other exception
    propagates with the job left running, for the caller to record.
    """
    worker = worker or worker_name()
    with session_scope(engine) as session:
        job = claim_job(session, job_id=job_id, worker=worker, lease_seconds=lease_seconds)
        camera_timezone = None
        if job is not None:
            camera = get_camera(session, job.camera_id)
            camera_timezone = camera.timezone if camera is not None else None
    if job is None:
        return None

    last_write = _ProgressWrite(stage="", fraction=-1.0, at=0.0)
    writer = _progress_writer(engine, job_id=job_id, worker=worker)

    def progress(stage: str, fraction: float) -> None:
        # Throttled: one row update per stage change, percent step or half second.
        now = time.monotonic()
        if (stage == last_write.stage and fraction - last_write.fraction < 0.01
                and now - last_write.at < 0.5):
            return
        last_write.stage, last_write.fraction, last_write.at = stage, fraction, now
        if not writer.report(stage, fraction):
            raise LeaseLostError(f"Ingest job {job_id} was taken over by another worker.")
        if on_progress is not None:
            on_progress(stage, fraction)

    source = Path(job.source_path)
    if Path(os.path.realpath(source)) != source:  # queued resolved: a link now is a swap
        with session_scope(engine) as session:
            return fail_job(session, job_id=job_id, message=(
                f"'{source}' was replaced by a link after it was queued; queue the file it"
                " points to instead."))
    if source.is_dir():
        return _run_folder_job(engine=engine, job_id=job_id, worker=worker,
                               lease_seconds=lease_seconds)
    try:
        # A start without an offset is local time at the camera, as at submit time.
        start = (parse_start(job.requested_start, camera_timezone or "Europe/Kyiv")
                 if job.requested_start else None)
        with _lease_keeper(engine, job_id=job_id, worker=worker,
                           lease_seconds=lease_seconds), writer:
            outcome = ingest_file(
                engine=engine, originals=originals, derived=derived,
                path=Path(job.source_path), camera_id=job.camera_id, start=start,
                options=options, progress=progress, actor=job.requested_by,
            )
        if writer.lost:  # found by the last progress writes, after the ingest's end
            return None
    except LeaseLostError:
        return None
    except OkoError as exc:
        with session_scope(engine) as session:
            return fail_job(session, job_id=job_id, message=exc.message)
    with session_scope(engine) as session:
        return finish_job(session, job_id=job_id, outcome=outcome)


def _run_folder_job(*, engine: Engine, job_id: int, worker: str,
                    lease_seconds: float) -> IngestJob | None:
    """Walk a claimed folder job into file jobs while holding its lease."""
    try:
        with _lease_keeper(engine, job_id=job_id, worker=worker,
                           lease_seconds=lease_seconds), session_scope(engine) as session:
            job = session.get(IngestJob, job_id)
            if job is None or job.status != RUNNING or job.worker != worker:
                return None
            expand_folder_job(session, job=job)
            return job
    except OkoError as exc:
        with session_scope(engine) as session:
            return fail_job(session, job_id=job_id, message=exc.message)


__all__ = [
    "DONE",
    "DUPLICATE",
    "FAILED",
    "FINISHED_STATUSES",
    "QUEUED",
    "RUNNING",
    "WALKED",
    "JobNotFoundError",
    "JobReport",
    "LeaseLostError",
    "RecoveredJobs",
    "claim_job",
    "expand_folder_job",
    "fail_job",
    "finish_job",
    "get_job",
    "get_job_or_raise",
    "heartbeat",
    "list_jobs",
    "record_progress",
    "report_jobs",
    "requeue_stale_jobs",
    "run_ingest_job",
    "submit_ingest",
    "worker_name",
]
