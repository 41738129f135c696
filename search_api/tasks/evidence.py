"""Celery tasks: export a case as a signed bundle (a thin adapter over evidence.export_jobs)."""

from __future__ import annotations

from celery import Celery, shared_task
from kombu.exceptions import OperationalError
from sqlmodel import Session

from evidence.export_jobs import ExportEnvironment, fail_export_job, run_export_job
from evidence.keys import load_signer
from search_api.state import AppState
from search_api.tasks import QUEUE
from search_api.tasks.background import background_task
from search_api.tasks.ingest import BrokerUnavailableError

EXPORT_TASK = "oko.export_case"


def export_environment(state: AppState) -> ExportEnvironment:
    settings = state.settings
    return ExportEnvironment(
        signer=load_signer(keys_dir=settings.keys_dir, passphrase=settings.key_passphrase),
        originals=state.originals, derived=state.derived, tmp_dir=settings.tmp_dir,
        exports_dir=settings.exports_dir, organisation=settings.organisation,
        full_original_max_bytes=settings.full_original_max_bytes,
    )


@shared_task(name=EXPORT_TASK, acks_late=True)
@background_task(mark_failed=fail_export_job)
def export_case_task(*, state: AppState, session: Session, job_id: int) -> None:
    """Run export job ``job_id``; its custody entry commits with the job's result."""
    run_export_job(session, engine=state.engine, job_id=job_id, env=export_environment(state))


def enqueue_export(app: Celery, job_id: int) -> None:
    """Send the export task after its job row is committed."""
    try:
        app.send_task(EXPORT_TASK, args=[job_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the export stays queued.") from exc
