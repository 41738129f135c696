"""Export crash recovery with REAL worker processes, and the start-up sweep's rules.

A worker is killed with SIGKILL while it exports, at a controlled point: a
``sitecustomize`` on its PYTHONPATH (test code only) replaces one step of
``evidence.exports`` with a pause that writes a marker file. Once the marker is there
the test kills the worker's process group, then starts a clean worker and checks what
its start-up recovery leaves: no duplicate custody sequence, no orphaned bundle, no
stale files, and a retry that makes exactly one valid bundle with the next sequence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from oko_verify.trust import TrustAnchors
from sqlmodel import Session, col, select

from evidence.export_jobs import (
    DONE,
    FAILED,
    FINISHED_BY_RECOVERY,
    INTERRUPTED,
    PUBLISHING,
    RUNNING,
    request_export,
)
from evidence.exports import pending_parts
from evidence.verify import verify_bundle
from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState
from search_api.tasks.app import make_celery
from search_api.tasks.worker import STALE_TEMP_AGE_S, sweep_stale_files
from storage.atomic import owner_tag
from storage.models.evidence import Case, CustodyEntry, ExportJob
from storage.settings import Settings
from tests.evidence.conftest import EvidenceWorld, build_world
from tests.search_api.jobs.conftest import WorkerProcess, settings_env, wait_until

BAG = "oko-KV-2026-001"
PAUSE_HOOK = '''
import os, time
from pathlib import Path

import evidence.exports as exports

def _pause(*_args, **_kwargs):
    Path(os.environ["TEST_EXPORT_PAUSE_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)  # the test kills this process here
    raise SystemExit("the test never killed the worker")

setattr(exports, os.environ["TEST_EXPORT_PAUSE_AT"], _pause)
'''


# --- helpers ----------------------------------------------------------------------


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers, one of them pausing at ``pause_at``; all killed at teardown."""
    started: list[WorkerProcess] = []

    def _start(pause_at: str | None = None) -> WorkerProcess:
        env = settings_env(settings)
        if pause_at is not None:
            hook = tmp_path / "pause-hook"
            hook.mkdir(exist_ok=True)
            (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
            env.update(PYTHONPATH=f"{hook}{os.pathsep}{env['PYTHONPATH']}",
                       TEST_EXPORT_PAUSE_AT=pause_at,
                       TEST_EXPORT_PAUSE_MARKER=str(tmp_path / "paused"))
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "search_api.cli", "worker", "--pool", "solo"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=tmp_path)
        worker = WorkerProcess(process=process, log_path=log_path)
        started.append(worker)
        return worker

    try:
        yield _start
    finally:
        for worker in started:
            worker.kill()


def _job(state: AppState, job_id: int) -> ExportJob:
    with Session(state.engine) as session:
        job = session.get(ExportJob, job_id, populate_existing=True)
        assert job is not None
        return job


def _queue_export(state: AppState, world: EvidenceWorld) -> int:
    with Session(state.engine, expire_on_commit=False) as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        job = request_export(session, case=case, requested_by=world.investigator,
                             needs_approval=False)
        session.commit()
    assert job.id is not None
    CeleryJobQueue(state.settings).enqueue_export(job.id)
    return job.id


def _case_chain(state: AppState, world: EvidenceWorld) -> list[CustodyEntry]:
    with Session(state.engine) as session:
        return list(session.exec(select(CustodyEntry).where(
            CustodyEntry.chain == f"case:{world.case.id}").order_by(
            col(CustodyEntry.seq))).all())


def _export_seqs(state: AppState, world: EvidenceWorld) -> list[int]:
    return [e.seq for e in _case_chain(state, world) if e.action == "export"]


def _last_custody_line(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read(f"{BAG}/data/custody.jsonl").decode().splitlines()
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def _bundles(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.exports_dir.iterdir() if p.suffix == ".zip")


def _leftovers(settings: Settings) -> list[str]:
    """Everything a crash may leave: ``.part`` zips and temp bags."""
    return sorted([p.name for p in settings.exports_dir.glob(".*.part")]
                  + [p.name for p in settings.tmp_dir.glob("bundle-*")])


def _kill_while_paused(workers: Callable[..., WorkerProcess], state: AppState,
                       world: EvidenceWorld, pause_at: str, tmp_path: Path) -> tuple[int, int]:
    """Export in a worker that pauses at ``pause_at``; SIGKILL it there. Returns the job
    id and the killed worker's pid."""
    job_id = _queue_export(state, world)
    worker = workers(pause_at)
    marker = tmp_path / "paused"
    wait_until(marker.is_file, timeout=120, what=f"the export to reach {pause_at}",
               worker=worker)
    pid = int(marker.read_text())
    worker.kill()
    return job_id, pid


def verify_ok(bundle: Path, world: EvidenceWorld) -> bool:
    """VALID, with the installation's signing certificate as the trust anchor."""
    return verify_bundle(bundle, TrustAnchors(certificates=(world.signer.certificate,))).ok


def _retry(workers_started: WorkerProcess, state: AppState, world: EvidenceWorld) -> Path:
    job_id = _queue_export(state, world)
    wait_until(lambda: _job(state, job_id).status in (DONE, FAILED), timeout=120,
               what="the retried export to finish", worker=workers_started)
    done = _job(state, job_id)
    assert done.status == DONE and done.bundle_path is not None, (done.message,
                                                                  workers_started.log())
    return Path(done.bundle_path)


# --- kill -9 mid-export --------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_before_the_custody_commit(
        state: AppState, settings: Settings, tmp_path: Path,
        workers: Callable[..., WorkerProcess]) -> None:
    world = build_world(state, tmp_path)
    job_id, pid = _kill_while_paused(workers, state, world, "append_custody_entry", tmp_path)
    killed = _job(state, job_id)
    assert killed.status == RUNNING and killed.worker is not None
    assert killed.worker.endswith(f":{pid}") and killed.bundle_sha256 is None
    out = settings.exports_dir / f"KV-2026-001-export-{job_id}.zip"
    [part] = pending_parts(out)  # the complete zip, waiting for a commit that never came
    planned = _last_custody_line(part)
    assert _bundles(settings) == [] and _export_seqs(state, world) == []
    assert any(name.startswith("bundle-owner-") for name in _leftovers(settings))
    seqs_before = [e.seq for e in _case_chain(state, world)]

    clean = workers()
    wait_until(lambda: _job(state, job_id).status != RUNNING, timeout=60,
               what="the new worker to settle the killed export", worker=clean)
    failed = _job(state, job_id)
    assert (failed.status, failed.message) == (FAILED, INTERRUPTED)
    wait_until(lambda: _leftovers(settings) == [], timeout=30,
               what="the sweep of the killed export's files", worker=clean)
    assert _bundles(settings) == [] and _export_seqs(state, world) == []

    bundle = _retry(clean, state, world)
    chain = _case_chain(state, world)
    assert [e.seq for e in chain] == [*seqs_before, seqs_before[-1] + 1]
    assert _export_seqs(state, world) == [planned["seq"]]  # the seq the killed one planned
    assert _last_custody_line(bundle)["entry_hash"] == chain[-1].entry_hash
    assert verify_ok(bundle, world)
    assert _bundles(settings) == [bundle.name] and _leftovers(settings) == []


@pytest.mark.slow
def test_a_worker_killed_after_the_custody_commit(
        state: AppState, settings: Settings, tmp_path: Path,
        workers: Callable[..., WorkerProcess]) -> None:
    world = build_world(state, tmp_path)
    job_id, _pid = _kill_while_paused(workers, state, world, "move_into_place", tmp_path)
    killed = _job(state, job_id)
    assert (killed.status, killed.stage) == (RUNNING, PUBLISHING)
    assert killed.bundle_path is not None and killed.bundle_sha256 is not None
    out = Path(killed.bundle_path)
    assert not out.exists() and len(pending_parts(out)) == 1
    [entry] = [e for e in _case_chain(state, world) if e.action == "export"]

    clean = workers()
    wait_until(lambda: _job(state, job_id).status != RUNNING, timeout=60,
               what="the new worker to finish the killed export", worker=clean)
    done = _job(state, job_id)
    assert (done.status, done.stage) == (DONE, FINISHED_BY_RECOVERY), clean.log()
    assert _bundles(settings) == [out.name] and pending_parts(out) == []
    assert _last_custody_line(out)["entry_hash"] == entry.entry_hash
    assert verify_ok(out, world)

    bundle = _retry(clean, state, world)
    assert _export_seqs(state, world) == [entry.seq, entry.seq + 1]
    assert _last_custody_line(bundle)["seq"] == entry.seq + 1
    assert verify_ok(bundle, world)
    assert _bundles(settings) == sorted([out.name, bundle.name])
    assert _leftovers(settings) == []


# --- the sweep's rules ---------------------------------------------------------------


@pytest.fixture
def app(settings: Settings, state: AppState) -> Celery:
    return make_celery(settings)


@pytest.fixture(scope="module")
def dead_tag() -> str:
    """The owner tag of a real process that has exited."""
    run = subprocess.run([sys.executable, "-c",
                          "from storage.atomic import owner_tag; print(owner_tag())"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    return run.stdout.strip()


def _make(path: Path, *, age_s: float = 0.0, directory: bool = False) -> Path:
    if directory:
        path.mkdir(parents=True)
        (path / "inner.bin").write_bytes(b"x")
        inner = [path / "inner.bin", path]
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        inner = [path]
    when = time.time() - age_s
    for item in inner:
        os.utime(item, (when, when))
    return path


def test_files_of_a_dead_process_go_and_a_live_ones_stay_however_old(
        app: Celery, settings: Settings, dead_tag: str) -> None:
    old = STALE_TEMP_AGE_S * 10
    tmp, exports = settings.tmp_dir, settings.exports_dir
    dead = [_make(tmp / f"bundle-{dead_tag}-k2j3h4", directory=True),
            _make(exports / f".KV-1-export-1.zip.{dead_tag}.part"),
            _make(exports / f"..KV-1-export-1.zip.{dead_tag}.part.ab12cd.part")]
    live = [_make(tmp / f"bundle-{owner_tag()}-z9y8x7", directory=True, age_s=old),
            _make(exports / f".KV-1-export-2.zip.{owner_tag()}.part", age_s=old)]
    never = [_make(exports / "KV-1-export-3.zip", age_s=old),
             _make(tmp / "notes.txt", age_s=old),
             _make(exports / ".hidden-but-no-part", age_s=old)]

    assert sorted(sweep_stale_files(app)) == sorted(dead)
    assert [p.exists() for p in dead] == [False] * len(dead)
    assert all(p.exists() for p in live + never)
    assert sweep_stale_files(app) == []


def test_files_without_an_owner_go_only_after_the_safe_age(
        app: Celery, settings: Settings) -> None:
    tmp, old = settings.tmp_dir, STALE_TEMP_AGE_S + 60
    stale = [_make(tmp / "verify-a1b2c3", directory=True, age_s=old),
             _make(tmp / "upload-d4e5f6.zip", age_s=old),
             _make(tmp / "clip-g7h8i9", directory=True, age_s=old),
             _make(tmp / "blob-j1k2l3.part", age_s=old),
             _make(settings.exports_dir / ".KV-1-export-4.zip-staged.m4n5.part", age_s=old)]
    fresh = [_make(tmp / "upload-recent.zip", age_s=STALE_TEMP_AGE_S - 60),
             _make(tmp / "verify-busy", directory=True, age_s=old)]
    os.utime(fresh[1] / "inner.bin")  # an old folder still being written: kept

    assert sorted(sweep_stale_files(app)) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in fresh)


def test_an_interrupted_onnx_export_leaves_nothing_once_stale(
        app: Celery, settings: Settings) -> None:
    weights_dir, old = settings.onnx_dir / ("ab" * 32), STALE_TEMP_AGE_S + 60
    stale = [_make(weights_dir / ".text-fp32.onnx.x1y2z3.part", age_s=old),
             _make(settings.onnx_dir / ".quantize-q9w8e7", directory=True, age_s=old)]
    kept = [_make(weights_dir / "text-fp32.onnx", age_s=old),
            _make(weights_dir / "text-fp32.json", age_s=old),
            _make(weights_dir / ".image-fp32.onnx.a1b2c3.part")]  # an export writing now

    assert sorted(sweep_stale_files(app)) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_old_verify_folders_in_the_scratch_dir_go_and_nothing_else_there(
        app: Celery, settings: Settings, tmp_path: Path) -> None:
    settings.scratch_dir = tmp_path / "scratch"
    old = STALE_TEMP_AGE_S + 60
    stale = _make(settings.scratch_dir / "verify-q1w2e3", directory=True, age_s=old)
    fresh = _make(settings.scratch_dir / "verify-r4t5y6", directory=True)
    other = _make(settings.scratch_dir / "upload-u7i8o9.zip", age_s=old)

    assert sweep_stale_files(app) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()


def test_a_link_is_removed_and_never_followed(app: Celery, settings: Settings,
                                              tmp_path: Path) -> None:
    outside = _make(tmp_path / "outside" / "keep.bin")
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    link = settings.tmp_dir / "upload-link.zip"
    link.symlink_to(outside.parent, target_is_directory=True)
    when = time.time() - STALE_TEMP_AGE_S - 60
    os.utime(link, (when, when), follow_symlinks=False)

    assert sweep_stale_files(app) == [link]
    assert not link.is_symlink() and outside.read_bytes() == b"x"


def test_the_part_of_a_bundle_recorded_in_custody_is_never_swept(
        app: Celery, state: AppState, settings: Settings, tmp_path: Path,
        dead_tag: str) -> None:
    world = build_world(state, tmp_path)
    out = settings.exports_dir / "KV-2026-001-export-9.zip"
    part = _make(out.with_name(f".{out.name}.{dead_tag}.part"))
    other = _make(settings.exports_dir / f".KV-2026-001-export-8.zip.{dead_tag}.part")
    with Session(state.engine) as session:
        session.add(ExportJob(case_id=world.case.id or 0, status=FAILED, bundle_path=str(out),
                              bundle_sha256="0" * 64, message="recorded, never moved"))
        session.commit()

    assert sweep_stale_files(app) == [other]
    assert part.is_file()
