"""Crash-safe export: the custody entry commits before the zip gets its final name, and
``recover_export_jobs`` settles an export whose process ended, on either side of it.

A crash is simulated in-process by raising a ``BaseException`` at the step it would
happen at (clean-up code still runs, so a ``.part`` written before the commit is gone
here); the real ``kill -9`` of a worker is in tests/search_api/jobs/test_export_recovery.py.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from oko_verify.trust import TrustAnchors
from sqlalchemy import update
from sqlmodel import Session, col, select

from evidence import export_jobs, exports
from evidence.export_jobs import (
    DONE,
    FAILED,
    FINISHED_BY_RECOVERY,
    INTERRUPTED,
    LOST,
    PUBLISHING,
    RUNNING,
    ExportEnvironment,
    claim_export_job,
    recover_export_jobs,
    request_export,
    run_export_job,
    unpublished_bundles,
    worker_name,
)
from evidence.exports import (
    BundleNotPublishedError,
    ExportResult,
    export_case,
    part_path,
    pending_parts,
    publish_bundle,
)
from evidence.verify import verify_bundle
from indexer.transcode import viewing_copy
from storage.atomic import owner_tag
from storage.blobstore import sha256_file
from storage.models.evidence import Case, CustodyEntry, ExportJob
from storage.settings import Settings
from storage.types import utcnow
from tests.evidence.conftest import EvidenceWorld
from tests.services import DATABASE_BACKENDS, database_url_for

BAG = "oko-KV-2026-001"


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path, migrated=True)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Both backends: recovery's conditional UPDATEs compare the row's time as read."""
    return Settings(home=tmp_path / "oko-home", database_url=database_url,
                    environment="test", key_passphrase="test-passphrase")


class _Crash(BaseException):
    """Stands for the process dying here: no ``except Exception`` or clean-up catches it."""


def _anchors(world: EvidenceWorld) -> TrustAnchors:
    return TrustAnchors(certificates=(world.signer.certificate,))


def _env(world: EvidenceWorld) -> ExportEnvironment:
    settings = world.state.settings
    return ExportEnvironment(
        signer=world.signer, originals=world.state.originals, derived=world.state.derived,
        tmp_dir=settings.tmp_dir, exports_dir=settings.exports_dir,
        organisation=settings.organisation,
        transcoder=viewing_copy,
        full_original_max_bytes=settings.full_original_max_bytes)


def _export_entries(world: EvidenceWorld) -> list[CustodyEntry]:
    with world.session() as session:
        return list(session.exec(select(CustodyEntry).where(
            CustodyEntry.action == "export").order_by(col(CustodyEntry.seq))).all())


def _case_seqs(world: EvidenceWorld) -> list[int]:
    with world.session() as session:
        return list(session.exec(select(CustodyEntry.seq).where(
            CustodyEntry.chain == f"case:{world.case.id}").order_by(
            col(CustodyEntry.seq))).all())


def _last_custody_line(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read(f"{BAG}/data/custody.jsonl").decode().splitlines()
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def _job(world: EvidenceWorld, job_id: int) -> ExportJob:
    with world.session() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        return job


def _queued_job(world: EvidenceWorld) -> int:
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        job = request_export(session, case=case, requested_by=world.investigator,
                             needs_approval=False)
        session.commit()
        assert job.id is not None
        return job.id


def _run(world: EvidenceWorld, job_id: int) -> ExportJob | None:
    with world.session() as session:
        done = run_export_job(session, engine=world.state.engine, job_id=job_id,
                              env=_env(world))
        session.commit()
        return done


def _crash_at(monkeypatch: pytest.MonkeyPatch, name: str,
              before: Callable[[], None] = lambda: None) -> None:
    def crash(*_args: Any, **_kwargs: Any) -> Any:
        before()
        raise _Crash(name)
    monkeypatch.setattr(exports, name, crash)


def _run_until_crash(world: EvidenceWorld, job_id: int) -> None:
    with world.session() as session, pytest.raises(_Crash):
        run_export_job(session, engine=world.state.engine, job_id=job_id, env=_env(world))
    # the process is gone: its session's open transaction is lost, as on a real kill


def _dead(_worker: str, _seen_at: object) -> bool:
    return False


def _recover(world: EvidenceWorld, **kwargs: Any) -> export_jobs.RecoveredExports:
    with world.session() as session:
        recovered = recover_export_jobs(session, **{"worker_alive": _dead, **kwargs})
        session.commit()
    return recovered


# --- export_case: commit first, then the final name ------------------------------------


def test_the_zip_gets_its_final_name_only_after_its_custody_entry_commits(
        world: EvidenceWorld, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "bundle.zip"
    seen: dict[str, Any] = {}

    def commit(result: ExportResult) -> None:
        seen["final_exists"] = out.exists()
        seen["parts"] = pending_parts(out)
        session.commit()
        seen["committed"] = [e.entry_hash for e in _export_entries(world)]

    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        result = export_case(session, case=case, exporter="x", signer=world.signer,
                             originals=world.state.originals, derived=world.state.derived,
                             tmp_dir=world.state.settings.tmp_dir, out_path=out,
                             transcoder=viewing_copy,
                             organisation="o", full_original_max_bytes=10**9, commit=commit)
    assert seen["final_exists"] is False
    assert seen["parts"] == [part_path(out)] and owner_tag() in seen["parts"][0].name
    assert seen["committed"] == [_last_custody_line(out)["entry_hash"]]
    assert pending_parts(out) == [] and sorted(out.parent.iterdir()) == [out]
    assert result.bundle_sha256 == sha256_file(out) and result.size_bytes == out.stat().st_size
    assert verify_bundle(out, _anchors(world)).ok
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []


def test_a_commit_that_fails_leaves_no_bundle_no_part_and_no_entry(
        world: EvidenceWorld, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "bundle.zip"

    def commit(_result: ExportResult) -> None:
        raise RuntimeError("the database went away")

    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        with pytest.raises(RuntimeError, match="the database went away"):
            export_case(session, case=case, exporter="x", signer=world.signer,
                        originals=world.state.originals, derived=world.state.derived,
                        tmp_dir=world.state.settings.tmp_dir, out_path=out,
                        transcoder=viewing_copy,
                        organisation="o", full_original_max_bytes=10**9, commit=commit)
        session.rollback()
    assert _export_entries(world) == []
    assert list(out.parent.iterdir()) == []
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []


def test_publish_bundle_refuses_a_part_that_is_not_the_recorded_bundle(tmp_path: Path) -> None:
    out = tmp_path / "KV-1-export-1.zip"
    part = part_path(out)
    part.write_bytes(b"not the bundle")
    with pytest.raises(BundleNotPublishedError, match=(
            r"^The unfinished bundle \.KV-1-export-1\.zip\.owner-.+\.part of case KV-1 is "
            r"not the one its custody entry records\.$")):
        publish_bundle(part, out, sha256="0" * 64, case_number="KV-1")
    assert not out.exists() and part.read_bytes() == b"not the bundle"


def test_publish_bundle_never_replaces_a_bundle_already_in_place(tmp_path: Path) -> None:
    out = tmp_path / "KV-1-export-1.zip"
    out.write_bytes(b"the bundle handed out")
    part = part_path(out)
    part.write_bytes(b"another zip")
    with pytest.raises(BundleNotPublishedError, match=(
            r"^The bundle of case KV-1 is recorded in its custody log but could not be moved "
            r"into place \(File exists\); a worker finishes it when it next starts\.$")):
        publish_bundle(part, out, sha256=sha256_file(part), case_number="KV-1")
    assert out.read_bytes() == b"the bundle handed out" and part.is_file()


# --- recovery of an export whose process ended ---------------------------------------


def test_an_export_killed_before_its_commit_fails_and_a_retry_takes_the_same_seq(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    out = world.state.settings.exports_dir / f"KV-2026-001-export-{job_id}.zip"
    planned: list[int] = []

    def read_planned_seq() -> None:  # the zip is complete when the entry is appended
        planned.extend(_last_custody_line(part)["seq"] for part in pending_parts(out))

    _crash_at(monkeypatch, "append_custody_entry", before=read_planned_seq)
    _run_until_crash(world, job_id)
    monkeypatch.undo()
    killed = _job(world, job_id)
    assert (killed.status, killed.worker, killed.bundle_sha256) == (RUNNING, worker_name(), None)
    assert len(planned) == 1 and not out.exists()
    seqs_before = _case_seqs(world)

    assert _recover(world) == export_jobs.RecoveredExports(failed=[job_id])
    failed = _job(world, job_id)
    assert (failed.status, failed.message) == (FAILED, INTERRUPTED)
    assert _export_entries(world) == [] and _case_seqs(world) == seqs_before
    assert not out.exists()

    retry = _queued_job(world)
    done = _run(world, retry)
    assert done is not None and done.status == DONE and done.bundle_path is not None
    bundle = Path(done.bundle_path)
    entries = _export_entries(world)
    assert [e.seq for e in entries] == planned == [seqs_before[-1] + 1]
    assert _last_custody_line(bundle)["entry_hash"] == entries[0].entry_hash
    assert verify_bundle(bundle, _anchors(world)).ok
    assert [p.name for p in bundle.parent.iterdir() if p.name.endswith(".zip")] == [bundle.name]


def test_an_export_killed_after_its_commit_is_finished_from_its_part(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    _crash_at(monkeypatch, "move_into_place")
    _run_until_crash(world, job_id)
    monkeypatch.undo()
    killed = _job(world, job_id)
    assert killed.status == RUNNING and killed.stage == PUBLISHING
    assert killed.bundle_path is not None and killed.bundle_sha256 is not None
    out = Path(killed.bundle_path)
    assert not out.exists() and len(pending_parts(out)) == 1
    [entry] = _export_entries(world)  # committed before the crash
    with world.session() as session:
        assert unpublished_bundles(session) == [out]

    assert _recover(world) == export_jobs.RecoveredExports(finished=[job_id])
    done = _job(world, job_id)
    assert (done.status, done.stage, done.progress) == (DONE, FINISHED_BY_RECOVERY, 1.0)
    assert sha256_file(out) == killed.bundle_sha256 and pending_parts(out) == []
    assert _last_custody_line(out)["entry_hash"] == entry.entry_hash
    assert verify_bundle(out, _anchors(world)).ok
    with world.session() as session:
        assert unpublished_bundles(session) == []
    assert _run(world, job_id) is None  # never exported twice

    retry = _queued_job(world)
    again = _run(world, retry)
    assert again is not None and again.bundle_path is not None
    seqs = [e.seq for e in _export_entries(world)]
    assert seqs == [entry.seq, entry.seq + 1]
    assert _last_custody_line(Path(again.bundle_path))["seq"] == entry.seq + 1


def test_a_recorded_export_whose_part_was_altered_fails_and_its_part_is_kept(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    _crash_at(monkeypatch, "move_into_place")
    _run_until_crash(world, job_id)
    monkeypatch.undo()
    out = Path(_job(world, job_id).bundle_path or "")
    [part] = pending_parts(out)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))

    assert _recover(world) == export_jobs.RecoveredExports(failed=[job_id])
    failed = _job(world, job_id)
    assert (failed.status, failed.message) == (FAILED, LOST)
    assert not out.exists() and pending_parts(out) == [part]
    with world.session() as session:
        assert unpublished_bundles(session) == [out]  # the sweep keeps it


def test_a_bundle_moved_before_the_process_ended_is_marked_done(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    real_move = exports.move_into_place

    def move_then_crash(part: Path, out: Path, *, case_number: str) -> None:
        real_move(part, out, case_number=case_number)
        raise _Crash("after the rename, before the job is marked done")

    monkeypatch.setattr(exports, "move_into_place", move_then_crash)
    _run_until_crash(world, job_id)
    monkeypatch.undo()
    out = Path(_job(world, job_id).bundle_path or "")
    before = out.read_bytes()
    assert _recover(world) == export_jobs.RecoveredExports(finished=[job_id])
    assert _job(world, job_id).status == DONE and out.read_bytes() == before


def test_an_export_whose_process_runs_is_left_alone(world: EvidenceWorld,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    _crash_at(monkeypatch, "append_custody_entry")
    _run_until_crash(world, job_id)
    asked: list[str] = []

    def alive(worker: str, _seen_at: object) -> bool:
        asked.append(worker)
        return True

    assert _recover(world, worker_alive=alive) == export_jobs.RecoveredExports()
    assert asked == [worker_name()] and _job(world, job_id).status == RUNNING


def test_an_export_on_another_host_is_judged_by_its_progress(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    _crash_at(monkeypatch, "append_custody_entry")
    _run_until_crash(world, job_id)

    def elsewhere(_worker: str, _seen_at: object) -> None:
        return None

    assert _recover(world, worker_alive=elsewhere) == export_jobs.RecoveredExports()
    assert _job(world, job_id).status == RUNNING
    later = utcnow() + export_jobs.STALE_RUNNING_AFTER + timedelta(seconds=1)
    assert _recover(world, worker_alive=elsewhere, now=later) == \
        export_jobs.RecoveredExports(failed=[job_id])
    assert _job(world, job_id).message == INTERRUPTED


def test_a_recorded_export_is_never_claimed_again_however_stale(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued_job(world)
    _crash_at(monkeypatch, "move_into_place")
    _run_until_crash(world, job_id)
    monkeypatch.undo()
    long_ago = utcnow() - export_jobs.STALE_RUNNING_AFTER - timedelta(minutes=1)
    with Session(world.state.engine) as session:
        session.execute(update(ExportJob).where(col(ExportJob.id) == job_id)
                        .values(updated_at=long_ago))
        session.commit()
    assert claim_export_job(world.state.engine, job_id=job_id) is False
    assert len(_export_entries(world)) == 1
