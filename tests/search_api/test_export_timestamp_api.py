"""The API's export request takes ``no_timestamp``: with the configured TSA down an export
fails in one sentence, writing no custody entry, unless the requester declined the
timestamp, which the job, the request's audit entry and the bundle record."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from evidence.timestamp import TsaUnreachableError
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from search_api.usecases.exports import WORKER_ACTOR, run_export
from storage.models.access import AuditEvent
from storage.models.evidence import ExportJob
from tests.search_api.case_world import CLIP_1, CaseWorld, build_case_world
from tests.tsa_service import TsaService


@pytest.fixture
def world(state: AppState, tmp_path: Path, down_tsa: TsaService) -> Iterator[CaseWorld]:
    state.settings.tsa_url = down_tsa.url
    state.settings.tsa_ca_cert = down_tsa.ca_cert_path
    built = build_case_world(state, tmp_path)
    yield built
    built.client.close()


def run_job(world: CaseWorld, job_id: int) -> ExportJob:
    """What the worker's task runs (``export_case_task``'s body); a failure is raised after
    the job is marked failed."""
    with Session(world.state.engine, expire_on_commit=False) as session:
        ctx = UseCaseContext(session=session, state=world.state, actor=WORKER_ACTOR)
        with contextlib.suppress(TsaUnreachableError):  # marked failed, then raised
            run_export(ctx, export_id=job_id)
        job = session.get(ExportJob, job_id, populate_existing=True)
        assert job is not None
        return job


def test_no_timestamp_is_refused_unless_boolean_and_recorded(world: CaseWorld,
                                                             down_tsa: TsaService) -> None:
    case_id = world.new_case("KV-7", CLIP_1)
    owner = world.as_("owner")
    before = world.snapshot()
    refused = owner.post(f"/api/cases/{case_id}/exports", json={"no_timestamp": "perhaps"})
    assert refused.status_code == 422
    assert world.snapshot().exports == before.exports

    plain = owner.post(f"/api/cases/{case_id}/exports")
    assert plain.status_code == 202 and plain.json()["no_timestamp"] is False
    failed = run_job(world, plain.json()["id"])
    assert failed.status == "failed"
    assert failed.message.startswith(f"The time-stamping authority at {down_tsa.url} cannot "
                                     "be reached")
    assert world.snapshot().custody == before.custody  # no export entry

    declined = owner.post(f"/api/cases/{case_id}/exports", json={"no_timestamp": True})
    assert declined.status_code == 202 and declined.json()["no_timestamp"] is True
    done = run_job(world, declined.json()["id"])
    assert done.status == "done", done.message
    with Session(world.state.engine) as session:
        requests = session.exec(select(AuditEvent).where(AuditEvent.action == "export")
                                .order_by(col(AuditEvent.seq))).all()
    flags = [(e.details.get("export_id"), e.details.get("no_timestamp")) for e in requests
             if e.details.get("change") == "request"]
    assert flags == [(plain.json()["id"], False), (declined.json()["id"], True)]
    download = owner.get(f"/api/cases/{case_id}/exports/{done.id}/download")
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        [info] = [n for n in archive.namelist() if n.endswith("/bag-info.txt")]
        text = archive.read(info).decode()
        assert not any(n.endswith("/timestamp.tsr") for n in archive.namelist())
    assert "Oko-Trusted-Time: none (declined: --no-timestamp by " in text
