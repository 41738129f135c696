"""Export jobs: the DB row is the source of truth for an export's progress and result.

``run_export_job`` is what the worker's task and the CLI's in-process run both call:

1. claim the job with one conditional UPDATE (queued -> running) in its own committed
   transaction, naming this process (``worker``, ``host:pid``), so a worker and a CLI
   can never run the same job twice at once;
2. build, sign and zip the bundle (``evidence.exports.export_case``) to a ``.part``,
   writing progress through their own short transactions so readers see it while the
   export runs. The export writes nothing in the caller's session until its bundle is
   complete: only then does it append the custody entry (see ``evidence.exports``);
3. record the bundle's path and hashes on the row (still running, stage "publishing")
   and commit them with the custody entry, in one short write transaction;
4. the ``.part`` is renamed into place and the row marked done; the caller commits.

A process killed on the way leaves a running row whose ``worker`` no longer exists.
``recover_export_jobs`` (run by every worker as it starts) settles it: one stopped
before step 3 failed, with nothing in custody; one stopped after it is finished by
moving its ``.part`` into place once its hash is the one recorded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from evidence.exports import (
    BundleNotPublishedError,
    ExportResult,
    export_case,
    pending_parts,
    publish_bundle,
)
from evidence.keys import Signer
from evidence.report_text import DEFAULT_LANGUAGE, check_language
from evidence.timestamp import TimestampAuthority
from evidence.viewing_copy import ViewingTranscoder
from storage.blobstore import BlobStore, sha256_file
from storage.db import session_scope
from storage.errors import ConflictError, NotFoundError, PermissionDeniedError
from storage.models.access import User
from storage.models.evidence import Case, ExportJob
from storage.types import utcnow

if TYPE_CHECKING:
    from evidence.disclosure import DisclosureResult

AWAITING_APPROVAL = "awaiting_approval"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STALE_RUNNING_AFTER = timedelta(hours=1)
"""A running export with no progress for this long whose process cannot be checked (no
``worker`` recorded, or one on another host) is presumed to have lost it."""
PUBLISHING = "publishing"
INTERRUPTED = ("The export stopped when the process running it ended before its bundle "
               "was recorded; nothing was added to the custody log, so request it again.")
LOST = ("The export was recorded in the custody log but its bundle file was lost when the "
        "process running it ended; request the export again.")
FINISHED_BY_RECOVERY = "done (finished by a worker after its process ended)"
WorkerAlive = Callable[[str, datetime], bool | None]
"""``worker_alive(worker, seen_at)``: whether the ``host:pid`` process that last wrote
the row at ``seen_at`` still runs; None when it cannot be checked (another host)."""


def worker_name() -> str:
    """The ``host:pid`` an export job records for the process running it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def bundle_path_for(exports_dir: Path, *, case: Case, job_id: int, redact: str = "") -> Path:
    """Where export job ``job_id`` of ``case`` puts its bundle (a disclosure's, when it
    ``redact``s, is named ``-redacted-``)."""
    kind = "redacted" if redact else "export"
    return exports_dir / f"{case.number}-{kind}-{job_id}.zip"


@dataclass(frozen=True)
class ExportEnvironment:
    """What an export needs besides the DB: stores, key, paths and policy."""

    signer: Signer
    originals: BlobStore
    derived: BlobStore
    tmp_dir: Path
    exports_dir: Path
    organisation: str
    full_original_max_bytes: int
    transcoder: ViewingTranscoder  # indexer.transcode.viewing_copy (evidence.viewing_copy)
    timestamp_authority: TimestampAuthority | None = None  # OKO_TSA_URL; None: no TSA


def request_export(session: Session, *, case: Case, requested_by: User | None,
                   needs_approval: bool, no_timestamp: bool = False,
                   lang: str = DEFAULT_LANGUAGE, redact: str = "") -> ExportJob:
    """A queued (or awaiting-approval) export job; flushed, not committed.

    ``requested_by`` is None for the CLI's local operator, who is no Oko user.
    ``no_timestamp``: the requester declines a trusted timestamp (recorded in the bundle).
    ``lang``: the report's language (uk, en); raises ``UnsupportedLanguageError`` for
    another, before anything is added. ``redact`` (faces,plates): a disclosure export,
    built by ``evidence.disclosure`` from the clips' approved redactions; it follows
    the same approval rule.
    """
    assert case.id is not None
    job = ExportJob(case_id=case.id, requested_by_id=requested_by.id if requested_by else None,
                    no_timestamp=no_timestamp, lang=check_language(lang), redact=redact,
                    status=AWAITING_APPROVAL if needs_approval else QUEUED,
                    stage="waiting for a supervisor's approval" if needs_approval else "")
    session.add(job)
    session.flush()
    return job


def approve_export(session: Session, *, job: ExportJob, approver: User) -> ExportJob:
    """Release an export for running; the requester cannot approve their own export."""
    if job.status != AWAITING_APPROVAL:
        raise ConflictError(f"Export {job.id} is not waiting for approval.")
    if job.requested_by_id == approver.id:
        raise PermissionDeniedError("An export must be approved by someone other than "
                                    "the person who requested it.")
    job.status, job.stage, job.updated_at = QUEUED, f"approved by {approver.username}", utcnow()
    session.add(job)
    session.flush()
    return job


def get_export_job(session: Session, *, case: Case, job_id: int) -> ExportJob:
    """The job as it is now in the DB (another process may run it); raises
    ``NotFoundError`` for a missing job and for one of another case."""
    job = session.get(ExportJob, job_id, populate_existing=True)
    if job is None or job.case_id != case.id:
        raise NotFoundError(f"Export {job_id} of case {case.number} does not exist.")
    return job


def done_export_with_bundle(session: Session, *, case: Case,
                            bundle_sha256: str) -> ExportJob | None:
    """The newest finished export of ``case`` whose bundle has this SHA-256, if any."""
    return session.exec(select(ExportJob).where(
        ExportJob.case_id == case.id, ExportJob.status == DONE,
        ExportJob.bundle_sha256 == bundle_sha256).order_by(col(ExportJob.id).desc())).first()


def claim_export_job(engine: Engine, *, job_id: int) -> bool:
    """Mark a queued job (or a stale running one) running; False if someone else has it.

    One conditional UPDATE in its own committed transaction, so of two processes that
    try at once exactly one wins; the row names this process (``worker_name``). Done,
    failed and unapproved jobs are never claimed, nor a running one whose custody entry
    is committed (it is published, never exported twice: ``recover_export_jobs``).
    """
    now = utcnow()
    claimable = or_(col(ExportJob.status) == QUEUED,
                    and_(col(ExportJob.status) == RUNNING,
                         col(ExportJob.bundle_sha256).is_(None),
                         col(ExportJob.updated_at) < now - STALE_RUNNING_AFTER))
    with session_scope(engine) as session:
        result = session.execute(
            update(ExportJob).where(and_(col(ExportJob.id) == job_id, claimable))
            .values(status=RUNNING, stage="starting", progress=0.0, message="",
                    worker=worker_name(), updated_at=now)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _record_progress(engine: Engine, job_id: int, stage: str, fraction: float) -> None:
    with session_scope(engine) as session:
        job = session.get(ExportJob, job_id)
        if job is not None:
            job.status, job.stage, job.progress = RUNNING, stage, round(fraction, 3)
            job.updated_at = utcnow()
            session.add(job)


def run_export_job(session: Session, *, engine: Engine, job_id: int, env: ExportEnvironment,
                   exporter_if_no_requester: str = "system",
                   commit: Callable[[], None] | None = None) -> ExportJob | None:
    """Claim and run a queued export; the caller commits the row's "done" at the end.

    ``commit`` (by default ``session.commit``) makes the custody entry durable together
    with the bundle's path and hashes on the row, before the zip gets its final name.
    The bundle names the requester as its exporter (``exporter_if_no_requester`` for an
    export the CLI's operator requested). Returns None, doing nothing, for a job that is
    missing, done, failed, not yet approved or running in another process. Raises what
    ``export_case`` raises; the caller then marks the job failed (``fail_export_job``).
    """
    if not claim_export_job(engine, job_id=job_id):
        return None
    job = session.get(ExportJob, job_id, populate_existing=True)
    assert job is not None
    case = session.get(Case, job.case_id)
    if case is None:
        raise NotFoundError(f"Case {job.case_id} of export {job_id} does not exist.")
    requester = session.get(User, job.requested_by_id) if job.requested_by_id else None
    out = bundle_path_for(env.exports_dir, case=case, job_id=job_id, redact=job.redact)
    exporter = requester.username if requester else exporter_if_no_requester

    def record_bundle(result: ExportResult | DisclosureResult) -> None:
        session.refresh(job)
        job.stage, job.bundle_path = PUBLISHING, str(result.bundle_path)
        job.bundle_sha256, job.size_bytes = result.bundle_sha256, result.size_bytes
        job.tag_manifest_sha256, job.updated_at = result.tag_manifest_sha256, utcnow()
        session.add(job)
        session.flush()
        (commit or session.commit)()

    if job.redact:  # a disclosure: redacted clips, never the originals
        from evidence.disclosure import export_disclosure

        _record_progress(engine, job_id, "redacting", 0.0)
        export_disclosure(session, case=case, redact=job.redact.split(","),
                          exporter=exporter, signer=env.signer, originals=env.originals,
                          derived=env.derived, tmp_dir=env.tmp_dir, out_path=out,
                          organisation=env.organisation, commit=record_bundle,
                          lang=job.lang, timestamp_authority=env.timestamp_authority,
                          no_timestamp=job.no_timestamp)
    else:
        _export_full(session, case=case, exporter=exporter, env=env, job=job, out=out,
                     progress=lambda stage, fraction: _record_progress(
                         engine, job_id, stage, fraction), commit=record_bundle)
    session.refresh(job)
    job.status, job.stage, job.progress, job.message = DONE, "done", 1.0, ""
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def _export_full(session: Session, *, case: Case, exporter: str, env: ExportEnvironment,
                 job: ExportJob, out: Path, progress: Callable[[str, float], None],
                 commit: Callable[[ExportResult], None]) -> None:
    export_case(
        session, case=case,
        exporter=exporter,
        signer=env.signer, originals=env.originals, derived=env.derived,
        tmp_dir=env.tmp_dir, out_path=out, organisation=env.organisation,
        full_original_max_bytes=env.full_original_max_bytes, transcoder=env.transcoder,
        timestamp_authority=env.timestamp_authority, no_timestamp=job.no_timestamp,
        lang=job.lang, progress=progress, commit=commit,
    )


def fail_export_job(session: Session, *, job_id: int, message: str) -> None:
    job = session.get(ExportJob, job_id)
    if job is not None:
        job.status, job.message, job.updated_at = FAILED, message, utcnow()
        session.add(job)


@dataclass(frozen=True)
class RecoveredExports:
    """What ``recover_export_jobs`` did with exports whose process had ended."""

    failed: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def _process_gone(job: ExportJob, worker_alive: WorkerAlive, now: datetime) -> bool:
    alive = worker_alive(job.worker, job.updated_at) if job.worker else None
    if alive is None:  # no process to check: judged by its progress alone
        return job.updated_at < now - STALE_RUNNING_AFTER
    return not alive


def _publish_recorded(session: Session, job: ExportJob) -> bool:
    """Put a recorded bundle under its final name from its ``.part``; True when it is."""
    assert job.bundle_path is not None and job.bundle_sha256 is not None
    out = Path(job.bundle_path)
    if out.is_file():  # moved already; the process ended before marking the job done
        return sha256_file(out) == job.bundle_sha256
    case = session.get(Case, job.case_id)
    number = case.number if case is not None else str(job.case_id)
    for part in pending_parts(out):
        try:
            publish_bundle(part, out, sha256=job.bundle_sha256, case_number=number)
            return True
        except BundleNotPublishedError:
            continue  # not this bundle (left to the sweep), or not movable: try the next
    return False


def recover_export_jobs(session: Session, *, worker_alive: WorkerAlive,
                        now: datetime | None = None) -> RecoveredExports:
    """Settle the running exports whose process has ended (killed or crashed).

    An export whose custody entry was not committed is marked failed (``INTERRUPTED``);
    nothing of it is in custody, and its ``.part`` and temp bag are left to the sweep. One
    whose entry was committed is finished: its ``.part`` is moved into place after its
    hash is checked against the row, and it is done; failed (``LOST``) when no such file
    is left. A process is gone when ``worker_alive`` says so, or, when it cannot tell,
    after ``STALE_RUNNING_AFTER`` without progress. Each row is changed only if nobody
    wrote it meanwhile. Flushes; the caller commits.
    """
    now = now or utcnow()
    recovered = RecoveredExports()
    running = session.exec(select(ExportJob).where(ExportJob.status == RUNNING)
                           .execution_options(populate_existing=True)).all()
    for job in running:
        assert job.id is not None
        if not _process_gone(job, worker_alive, now):
            continue
        values: dict[str, object]
        if job.bundle_sha256 is None or job.bundle_path is None:
            values = {"status": FAILED, "message": INTERRUPTED}
        elif _publish_recorded(session, job):
            values = {"status": DONE, "stage": FINISHED_BY_RECOVERY, "progress": 1.0,
                      "message": ""}
        else:
            values = {"status": FAILED, "message": LOST}
        unchanged = and_(col(ExportJob.id) == job.id, col(ExportJob.status) == RUNNING,
                         col(ExportJob.updated_at) == job.updated_at)
        result = session.execute(update(ExportJob).where(unchanged)
                                 .values(updated_at=now, **values)
                                 .execution_options(synchronize_session=False))
        if result.rowcount == 1:  # type: ignore[attr-defined]
            (recovered.finished if values["status"] == DONE else recovered.failed).append(job.id)
    session.flush()
    return recovered


def unpublished_bundles(session: Session) -> list[Path]:
    """The final paths of bundles recorded in custody but not (yet) marked done; their
    ``.part`` files must survive any sweep."""
    paths = session.exec(select(ExportJob.bundle_path).where(
        col(ExportJob.bundle_sha256).is_not(None), ExportJob.status != DONE)).all()
    return [Path(path) for path in paths if path]


__all__ = [
    "AWAITING_APPROVAL",
    "DONE",
    "FAILED",
    "FINISHED_BY_RECOVERY",
    "INTERRUPTED",
    "LOST",
    "PUBLISHING",
    "QUEUED",
    "RUNNING",
    "STALE_RUNNING_AFTER",
    "ExportEnvironment",
    "RecoveredExports",
    "approve_export",
    "bundle_path_for",
    "claim_export_job",
    "done_export_with_bundle",
    "fail_export_job",
    "get_export_job",
    "recover_export_jobs",
    "request_export",
    "run_export_job",
    "unpublished_bundles",
    "worker_name",
]
