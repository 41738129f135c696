"""A disclosure (redacted) export follows ``exports_need_approval`` like any export: it
waits for a supervisor other than its requester, builds nothing until then (nor can it
be written directly), and once approved the worker's run makes a bundle that verifies."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from evidence.verify import verify_bundle
from search_api.state import AppState, build_state
from search_api.usecases import exports
from search_api.usecases import redaction as uc
from storage.errors import PermissionDeniedError
from storage.models.access import Role, User
from storage.models.evidence import CaseShare, CustodyEntry, ExportJob
from storage.settings import Settings
from tests.evidence.redaction.world import RedactionWorld, build_redaction_world
from tests.search_api.access_helpers import oko_runner


class RecordingQueue:
    def __init__(self) -> None:
        self.exports: list[int] = []

    def enqueue_ingest(self, job_ids: object) -> None:
        raise AssertionError("no ingest here")

    def enqueue_export(self, job_id: int) -> None:
        self.exports.append(job_id)

    def enqueue_redaction(self, redaction_id: int) -> None:
        raise AssertionError("the redaction is proposed in-process here")

    def enqueue_embed(self) -> None:
        raise AssertionError("no embedding here")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[RedactionWorld]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", exports_need_approval=True)
    state = build_state(settings)
    built = build_redaction_world(state, tmp_path)
    with Session(state.engine) as session:
        supervisor = User(username="supervisor-police", full_name="Керівник",
                          agency="police", role=Role.SUPERVISOR, password_hash="!")
        session.add(supervisor)
        session.flush()
        assert supervisor.id is not None
        session.add(CaseShare(case_id=built.case_id, user_id=supervisor.id))
        session.commit()
    yield built
    state.engine.dispose()


def _written(state: AppState) -> tuple[int, int, list[Path]]:
    with Session(state.engine) as session:
        return (len(session.exec(select(CustodyEntry)).all()),
                len(session.exec(select(ExportJob)).all()),
                sorted(state.settings.exports_dir.glob("*")))


def test_a_disclosure_waits_for_a_supervisor_then_the_worker_builds_it(
        world: RedactionWorld, tmp_path: Path) -> None:
    state = world.state
    queue = RecordingQueue()
    state.job_queue = queue
    with world.ctx() as ctx:
        proposed = uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1,
                                        run_in_worker=False)
        uc.approve_redaction(ctx, case_id=world.case_id, redaction_id=proposed.id)
    before = _written(state)
    out = tmp_path / "direct.zip"
    with world.ctx("investigator-police") as ctx, pytest.raises(
            uc.DisclosureNeedsApprovalError, match="need a supervisor's approval"):
        uc.export_disclosure(ctx, case_id=world.case_id, redact="faces,plates", out_path=out)
    assert _written(state) == before and not out.exists()  # nothing written directly

    with world.ctx("investigator-police") as ctx:
        job = uc.request_disclosure(ctx, case_id=world.case_id, redact="faces,plates")
    assert (job.status, job.redact) == ("awaiting_approval", "faces,plates")
    assert queue.exports == []  # not handed to the worker
    custody, jobs, files = _written(state)
    assert (custody, files) == (before[0], before[2]) and jobs == before[1] + 1
    with world.ctx("investigator-police") as ctx:
        assert exports.run_export(ctx, export_id=job.id) is None  # not claimable yet
        with pytest.raises(PermissionDeniedError):  # the requester cannot approve it
            exports.approve_export(ctx, case_id=world.case_id, export_id=job.id)
    assert _written(state)[0] == before[0] and _written(state)[2] == before[2]

    with world.ctx("supervisor-police") as ctx:
        exports.approve_export(ctx, case_id=world.case_id, export_id=job.id)
    assert queue.exports == [job.id]
    with world.ctx("investigator-police") as ctx:  # what the worker's export task does
        done = exports.run_export(ctx, export_id=job.id)
    assert done is not None and done.status == "done"
    with Session(state.engine) as session:
        row = session.get(ExportJob, job.id)
        assert row is not None and row.bundle_path is not None
        bundle = Path(row.bundle_path)
    assert bundle.name == f"{world.case_number}-redacted-{job.id}.zip"
    assert verify_bundle(bundle).intact
    names = zipfile.ZipFile(bundle).namelist()
    assert any(n.endswith("data/redaction/clip-001-provenance.json") for n in names)
    assert _written(state)[0] == before[0] + 1  # one custody entry: the disclosure export


def test_the_cli_requests_a_disclosure_for_approval_then_writes_it(
        world: RedactionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    oko = oko_runner(world.state.settings, monkeypatch)
    monkeypatch.setenv("OKO_EXPORTS_NEED_APPROVAL", "true")
    number = world.case_number
    assert oko("redact", "propose", number, "--clip", "1").code == 0
    assert oko("redact", "approve", number, "1").code == 0
    out = tmp_path / "disclosure.zip"
    direct = oko("--as", "investigator-police", "redact", "export", number, "--out",
                 str(out))
    assert direct.code != 0 and "need a supervisor's approval" in direct.err
    asked = oko("--as", "investigator-police", "case", "export", number, "--redact",
                "faces,plates", "--out", str(out))
    assert asked.code == 0, asked.err
    assert "awaits a supervisor's approval; no bundle was written" in asked.out
    assert not out.exists()
    with Session(world.state.engine) as session:
        [job] = session.exec(select(ExportJob)).all()
    assert (job.status, job.redact) == ("awaiting_approval", "faces,plates")
    approved = oko("--as", "supervisor-police", "case", "approve", number, str(job.id))
    assert approved.code == 0, approved.err
    written = oko("--as", "investigator-police", "case", "export", number, "--export",
                  str(job.id), "--out", str(out))
    assert written.code == 0, written.err
    assert verify_bundle(out).intact
