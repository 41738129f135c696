"""POST /api/ingest reads only under OKO_INGEST_ROOTS, answers outside and missing alike,
queues a folder as one job at once, and leaves the walk to the worker."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

import indexer.ingest
from indexer.jobs import list_jobs, run_ingest_job
from search_api.state import AppState
from search_api.usecases.ingest import ingest_options, run_ingest
from storage.models.access import AuditEvent, Role
from tests.search_api.jobs.conftest import all_jobs, job_row


class RecordingQueue:
    """A job queue that only remembers what it was handed."""

    def __init__(self) -> None:
        self.ingest: list[int] = []

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        self.ingest.extend(job_ids)

    def enqueue_export(self, job_id: int) -> None:
        raise AssertionError("no export here")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The test's own ingest root (listed in the jobs suite's settings)."""
    path = tmp_path / "roots"
    path.mkdir()
    return path


@pytest.fixture
def admin(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.ADMIN, agency="police")


def _post(client: TestClient, path: Path | str, camera: str) -> tuple[int, str]:
    response = client.post("/api/ingest", json={"path": str(path), "camera_id": camera})
    return response.status_code, response.json()["detail"] if response.status_code >= 400 else ""


def test_outside_the_roots_existing_or_missing_gets_one_answer(
    state: AppState, camera: str, admin: TestClient, root: Path, tmp_path: Path,
    short_clip: Path,
) -> None:
    existing = tmp_path / "elsewhere" / short_clip.name
    existing.parent.mkdir()
    shutil.copyfile(short_clip, existing)
    missing = tmp_path / "elsewhere" / "missing.mp4"
    answers = {path: _post(admin, path, camera)
               for path in (existing, missing, Path("/etc/passwd"), Path("/etc/nope"),
                            root / "missing.mp4", root / ".." / "elsewhere" / short_clip.name)}
    for path, (status, detail) in answers.items():
        assert (status, detail) == (
            404, f"'{path}' is not under an ingest root or does not exist."), path
    assert all_jobs(state) == []


def test_a_symlink_out_of_a_root_is_refused_like_a_missing_file(
    state: AppState, camera: str, admin: TestClient, root: Path, tmp_path: Path,
    short_clip: Path,
) -> None:
    (root / "escape.mp4").symlink_to(short_clip)  # short_clip is in another root, though:
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copyfile(short_clip, secret / "clip.mp4")
    (root / "leak.mp4").symlink_to(secret / "clip.mp4")
    (root / "dir").symlink_to(secret)
    for path in (root / "leak.mp4", root / "dir", root / "dir" / "clip.mp4"):
        assert _post(admin, path, camera) == (
            404, f"'{path}' is not under an ingest root or does not exist."), path
    assert all_jobs(state) == []
    # a link to a file under another root is that file, resolved
    status, _ = _post(admin, root / "escape.mp4", camera)
    [job] = all_jobs(state)
    assert status == 202 and job.source_path == str(short_clip.resolve())


def test_no_roots_means_no_server_path_ingest(
    state: AppState, camera: str, admin: TestClient, short_clip: Path,
) -> None:
    state.settings.ingest_roots = []
    assert _post(admin, short_clip, camera) == (
        403, "This server ingests no server paths: set OKO_INGEST_ROOTS to the folders it may"
             " read.")
    assert all_jobs(state) == []


def test_the_whole_disk_is_one_job_queued_at_once(
    state: AppState, camera: str, admin: TestClient,
) -> None:
    state.settings.ingest_roots = [Path("/")]
    started = time.monotonic()
    response = admin.post("/api/ingest", json={"path": "/", "camera_id": camera})
    assert time.monotonic() - started < 5
    assert response.status_code == 202, response.text
    [job] = response.json()
    assert (job["source_path"], job["status"], job["files"]) == ("/", "queued", 0)
    assert len(all_jobs(state)) == 1


def test_a_big_tree_is_one_job_and_its_walk_stops_at_the_limit_with_one_sentence(
    state: AppState, camera: str, admin: TestClient, root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = root / "tree"
    for day in range(30):
        (tree / f"day-{day:02d}").mkdir(parents=True)
        for hour in range(24):
            (tree / f"day-{day:02d}" / f"CAM-001_202601{day + 1:02d}T{hour:02d}0000.mp4"
             ).write_bytes(b"x")
    response = admin.post("/api/ingest", json={"path": str(tree), "camera_id": camera})
    assert response.status_code == 202, response.text
    [job] = response.json()
    assert len(all_jobs(state)) == 1

    monkeypatch.setattr(indexer.ingest, "MAX_WALK_FILES", 500)
    state.job_queue = queue = RecordingQueue()
    assert run_ingest(state, job_id=job["id"]) is False
    row = job_row(state, job["id"])
    assert (row.status, row.message) == (
        "failed", f"'{tree}' holds more than 500 video files; ingest its subfolders one at a"
                  " time.")
    assert len(all_jobs(state)) == 1 and queue.ingest == []


def test_the_worker_walks_a_folder_into_file_jobs_and_the_audit_names_the_folder_job(
    state: AppState, camera: str, admin: TestClient, root: Path, short_clip: Path,
) -> None:
    folder = root / "incoming"
    (folder / "b").mkdir(parents=True)
    shutil.copyfile(short_clip, folder / "b" / short_clip.name)
    shutil.copyfile(short_clip, folder / "CAM-001_20260125T090000.mp4")
    (folder / "notes.txt").write_text("not footage")
    response = admin.post("/api/ingest", json={"path": str(folder), "camera_id": camera})
    assert response.status_code == 202, response.text
    [folder_job] = response.json()
    with Session(state.engine) as session:
        [entry] = session.exec(select(AuditEvent).where(AuditEvent.action == "ingest")
                               .order_by(col(AuditEvent.seq))).all()
    assert entry.details == {"paths": [str(folder)], "camera_id": camera,
                             "job_ids": [folder_job["id"]]}

    state.job_queue = queue = RecordingQueue()
    assert run_ingest(state, job_id=folder_job["id"]) is False
    with Session(state.engine) as session:
        files = sorted(list_jobs(session, parent_ids=[folder_job["id"]]),
                       key=lambda job: job.source_path)
    assert [Path(job.source_path) for job in files] == [
        folder / "CAM-001_20260125T090000.mp4", folder / "b" / short_clip.name]
    assert {(job.status, job.parent_id, job.requested_by) for job in files} == {
        ("queued", folder_job["id"], "admin-police")}
    assert sorted(queue.ingest) == sorted(job.id for job in files if job.id is not None)

    listed = {job["id"]: job for job in admin.get("/api/jobs").json()}
    assert listed[folder_job["id"]]["files"] == 2
    assert {listed[job.id]["parent_id"] for job in files if job.id} == {folder_job["id"]}
    assert files[0].id is not None
    assert run_ingest(state, job_id=files[0].id) is True
    assert job_row(state, files[0].id).status == "done"


def test_a_queued_file_swapped_for_a_link_fails_without_being_read(
    state: AppState, camera: str, admin: TestClient, root: Path, tmp_path: Path,
    short_clip: Path,
) -> None:
    clip = root / short_clip.name
    shutil.copyfile(short_clip, clip)
    status, _ = _post(admin, clip, camera)
    [job] = all_jobs(state)
    assert status == 202 and job.id is not None
    clip.unlink()
    outside = tmp_path / "outside.mp4"
    shutil.copyfile(short_clip, outside)
    os.symlink(outside, clip)
    finished = run_ingest_job(engine=state.engine, originals=state.originals,
                              derived=state.derived, job_id=job.id,
                              options=ingest_options(state.settings))
    assert finished is not None and (finished.status, finished.message) == (
        "failed", f"'{clip}' was replaced by a link after it was queued; queue the file it"
                  " points to instead.")
    assert list(state.originals.iter_hashes()) == []
