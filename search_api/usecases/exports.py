"""Use cases: request, approve, run, read and download a case's export; transfer custody.

The export job row is the source of truth. The flow, the same for the API and the CLI:

1. ``request_export``: a queued job, or one awaiting a supervisor's approval when
   ``settings.exports_need_approval``; the job goes to the worker after the commit.
2. ``approve_export``: a named supervisor other than the requester releases it.
3. ``run_export``: the worker's task, or ``oko case export`` in-process, claims the job
   (never two runners at once), builds the signed bundle and records it.
4. ``download_export``: hands the finished bundle out (a ``download`` audit entry).
5. ``transfer_case``: records handing that bundle to a named recipient.

Seeing a case (e.g. by a share) is not enough to take its footage out: requesting,
approving, running (the worker checks the requester) and downloading an export each
check again that the user's agency may search every camera in the case
(``require_case_footage_visible``), and refuse with one sentence, writing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from evidence import export_jobs as jobs
from evidence.cases import transfer_case as record_transfer
from evidence.report_text import check_language
from evidence.timestamp import authority_from
from indexer.transcode import viewing_copy
from search_api.audit import AuditAction
from search_api.state import AppState
from search_api.usecases.cases import (
    CustodyPublic,
    get_visible_case,
    require_case_footage_visible,
)
from search_api.usecases.context import Actor, UseCaseContext
from storage.blobstore import sha256_file
from storage.errors import ConflictError, InvalidInputError, NotFoundError, OkoError
from storage.models.access import User
from storage.models.evidence import Case, ExportJob
from storage.permissions import Permission

WORKER_ACTOR = Actor(name="system", agency="", ip="worker")
"""The worker runs jobs with the data dir's own rights; the bundle names the requester."""


class ExportJobPublic(BaseModel):
    id: int
    case_id: int
    status: str = Field(description="awaiting_approval, queued, running, done or failed")
    stage: str
    progress: float
    message: str
    bundle_sha256: str | None
    tag_manifest_sha256: str | None
    no_timestamp: bool = Field(default=False, description="the requester declined a "
                               "trusted timestamp")
    lang: str = Field(default="uk", description="the report's language: uk or en")
    redact: str = Field(default="", description="a disclosure export's masks "
                        "(faces,plates); empty for a full export")
    size_bytes: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_job(cls, job: ExportJob) -> ExportJobPublic:
        return cls.model_validate(job, from_attributes=True)


@dataclass(frozen=True)
class ExportDownload:
    """A finished bundle handed out: where it lies and its job."""

    path: Path
    job: ExportJobPublic


def export_environment(state: AppState) -> jobs.ExportEnvironment:
    """What an export needs besides the DB; raises ``evidence.keys``' errors when the
    signing key cannot be read (no passphrase, wrong passphrase, no key)."""
    settings = state.settings
    return jobs.ExportEnvironment(
        signer=state.signer(), originals=state.originals, derived=state.derived,
        tmp_dir=settings.tmp_dir, exports_dir=settings.exports_dir,
        organisation=settings.organisation,
        full_original_max_bytes=settings.full_original_max_bytes, transcoder=viewing_copy,
        timestamp_authority=authority_from(settings.tsa_url, settings.tsa_ca_cert,
                                           timeout_seconds=settings.tsa_timeout_seconds),
    )


def _job_of_case(ctx: UseCaseContext, case_id: int, export_id: int) -> tuple[Case, ExportJob]:
    case = get_visible_case(ctx, case_id)
    return case, jobs.get_export_job(ctx.session, case=case, job_id=export_id)


def _require_requester_may_export(ctx: UseCaseContext, job: ExportJob, case: Case) -> None:
    """The worker (and the CLI) run a job for its requester: that user's agency must still
    be allowed on every camera of the case. Raises ``FootageNotVisibleError``."""
    requester = ctx.session.get(User, job.requested_by_id) if job.requested_by_id else None
    require_case_footage_visible(ctx, case=case, user=requester, action="Exporting")


def _finished_bundle(job: ExportJob) -> Path:
    if job.status != jobs.DONE or not job.bundle_path or not Path(job.bundle_path).is_file():
        raise ConflictError(f"Export {job.id} has no bundle yet (status {job.status}).")
    return Path(job.bundle_path)


def request_export(ctx: UseCaseContext, *, case_id: int, run_in_worker: bool = True,
                   no_timestamp: bool = False, lang: str = "uk",
                   redact: list[str] | None = None) -> ExportJobPublic:
    """Ask for a signed bundle of the case; it waits for approval when the settings say so.

    ``no_timestamp`` declines the TSA's trusted timestamp (``--no-timestamp``): the
    export then goes ahead when the TSA is down, and the bundle and this request's audit
    entry say so. ``lang`` is the report's language, Ukrainian unless ``en``.
    ``redact`` (checked by ``usecases.redaction.request_disclosure``) makes it a
    disclosure export of the clips' approved redactions, under the same approval rule.

    A job that needs no approval is handed to the worker after the commit, unless
    ``run_in_worker`` is False (the CLI then runs it itself with ``run_export``).
    Raises ``PermissionDeniedError`` for a role that may not export, ``NotFoundError``
    for an invisible case, ``FootageNotVisibleError`` when the actor's agency may not
    search a camera of the case, ``UnsupportedLanguageError`` for a language other than
    uk or en, ``OperatorNotNamedError`` for the CLI's operator acting as nobody (the
    export's custody entry names a person), and
    ``BrokerUnavailableError`` when the job cannot be
    queued (the request itself is then committed and stays queued).
    """
    ctx.require(Permission.EXPORT)
    check_language(lang)
    ctx.custody_actor("Exporting a case")
    case = get_visible_case(ctx, case_id)
    require_case_footage_visible(ctx, case=case, user=ctx.user, action="Exporting")
    needs_approval = ctx.settings.exports_need_approval
    job = jobs.request_export(ctx.session, case=case, requested_by=ctx.user,
                              needs_approval=needs_approval, no_timestamp=no_timestamp,
                              lang=lang, redact=",".join(redact or []))
    ctx.audit(AuditAction.EXPORT, change="request", case_id=case.id, export_id=job.id,
              needs_approval=needs_approval, no_timestamp=no_timestamp, lang=lang,
              **({"redact": job.redact} if job.redact else {}))
    ctx.commit()
    assert job.id is not None
    if not needs_approval and run_in_worker:
        ctx.state.jobs().enqueue_export(job.id)
    return ExportJobPublic.from_job(job)


def approve_export(ctx: UseCaseContext, *, case_id: int, export_id: int) -> ExportJobPublic:
    """A supervisor releases an export for running; it goes to the worker after the commit.

    Raises ``PermissionDeniedError`` for a role that may not approve, for the local
    operator acting as nobody (approval needs a named user) and for the requester
    approving their own export; ``NotFoundError`` for an invisible case or export;
    ``FootageNotVisibleError`` when the approver's agency may not search a camera of the
    case; ``ConflictError`` for an export that is not awaiting approval.
    """
    ctx.require(Permission.APPROVE_EXPORT)
    approver = ctx.require_named_user("Approving an export")
    case, job = _job_of_case(ctx, case_id, export_id)
    require_case_footage_visible(ctx, case=case, user=approver, action="Approving an export of")
    job = jobs.approve_export(ctx.session, job=job, approver=approver)
    ctx.audit(AuditAction.EXPORT, change="approve", case_id=job.case_id, export_id=export_id)
    ctx.commit()
    ctx.state.jobs().enqueue_export(export_id)
    return ExportJobPublic.from_job(job)


def read_export(ctx: UseCaseContext, *, case_id: int, export_id: int) -> ExportJobPublic:
    """An export's status and progress; raises ``NotFoundError`` for an invisible one."""
    return ExportJobPublic.from_job(_job_of_case(ctx, case_id, export_id)[1])


def _failure_sentence(exc: BaseException) -> str:
    if isinstance(exc, OkoError):
        return exc.message
    return f"The export stopped on an unexpected {type(exc).__name__}."


def run_export(ctx: UseCaseContext, *, export_id: int) -> ExportJobPublic | None:
    """Build, sign and record a queued (approved) export: the worker's task and
    ``oko case export`` both call this.

    Returns None, doing nothing, when the job is missing, done, failed, awaiting
    approval or running in another process (the claim is atomic). A failed export is
    marked failed with its one sentence, then its error is raised again; so is a job
    whose requester's (or actor's) agency may no longer search a camera of the case
    (``FootageNotVisibleError``, nothing built). Raises ``PermissionDeniedError`` for a
    role that may not export, ``NotFoundError`` for a job of a case the actor cannot
    see, and the signing key's errors before claiming.
    """
    ctx.require(Permission.EXPORT)
    job = ctx.session.get(ExportJob, export_id, populate_existing=True)
    if job is None or job.status not in (jobs.QUEUED, jobs.RUNNING):
        return None  # checked again by the claim; this only spares reading the key
    case = get_visible_case(ctx, job.case_id)
    env = export_environment(ctx.state)
    try:
        require_case_footage_visible(ctx, case=case, user=ctx.user, action="Exporting")
        _require_requester_may_export(ctx, job, case)
        # ctx.commit makes the custody entry durable before the zip gets its final name.
        done = jobs.run_export_job(ctx.session, engine=ctx.state.engine, job_id=export_id,
                                   env=env, exporter_if_no_requester=ctx.actor.name,
                                   commit=ctx.commit)
        ctx.commit()
    except Exception as exc:
        ctx.session.rollback()
        jobs.fail_export_job(ctx.session, job_id=export_id, message=_failure_sentence(exc))
        ctx.commit()
        raise
    return ExportJobPublic.from_job(done) if done is not None else None


def download_export(ctx: UseCaseContext, *, case_id: int, export_id: int) -> ExportDownload:
    """Hand out a finished bundle, recorded as a ``download`` in the audit log.

    Raises ``NotFoundError`` for an invisible case or export, ``FootageNotVisibleError``
    when the actor's agency may not search a camera of the case (prosecutors, who
    receive bundles, are not asked), and ``ConflictError`` for an export without a
    bundle yet.
    """
    case, job = _job_of_case(ctx, case_id, export_id)
    require_case_footage_visible(ctx, case=case, user=ctx.user, action="Downloading an export of")
    path = _finished_bundle(job)
    ctx.audit(AuditAction.DOWNLOAD, case_id=job.case_id, export_id=export_id,
              bundle_sha256=job.bundle_sha256)
    ctx.commit()
    return ExportDownload(path=path, job=ExportJobPublic.from_job(job))


def transfer_case(ctx: UseCaseContext, *, case_id: int, recipient: str, note: str = "",
                  export_id: int | None = None, bundle: Path | None = None) -> CustodyPublic:
    """Record handing a bundle to a named recipient (a custody entry and an audit entry).

    The bundle is a finished export (``export_id``) or a file (``bundle``); a file that
    is a finished export of this case is recorded with its export id. Raises
    ``PermissionDeniedError`` for a role that may not export, ``NotFoundError`` for an
    invisible case or export or a missing file, ``ConflictError`` for an unfinished
    export and ``InvalidInputError`` without a recipient or without a bundle.
    """
    ctx.require(Permission.EXPORT)
    actor = ctx.custody_actor("Handing over a bundle")
    case = get_visible_case(ctx, case_id)
    job: ExportJob | None
    if export_id is not None:
        job = jobs.get_export_job(ctx.session, case=case, job_id=export_id)
        _finished_bundle(job)
        bundle_sha256 = job.bundle_sha256 or ""
    elif bundle is not None:
        if not bundle.is_file():
            raise NotFoundError(f"{bundle} does not exist.")
        bundle_sha256 = sha256_file(bundle)
        job = jobs.done_export_with_bundle(ctx.session, case=case, bundle_sha256=bundle_sha256)
    else:
        raise InvalidInputError("A transfer names the export or the bundle file handed over.")
    entry = record_transfer(ctx.session, case=case, actor=actor, recipient=recipient,
                            bundle_sha256=bundle_sha256, note=note)
    ctx.audit(AuditAction.CASE_CHANGE, change="transfer", case_id=case.id,
              export_id=job.id if job else None, recipient=recipient)
    ctx.commit()
    return CustodyPublic.from_entry(entry)


__all__ = [
    "WORKER_ACTOR",
    "ExportDownload",
    "ExportJobPublic",
    "approve_export",
    "download_export",
    "export_environment",
    "read_export",
    "request_export",
    "run_export",
    "transfer_case",
]
