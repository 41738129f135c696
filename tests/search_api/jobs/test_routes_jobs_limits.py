"""Queueing a folder answers one job at once (API and CLI); its walk queues a job per
file, every one of which a listing by parent returns though a plain listing is paged;
/api/jobs bounds its page size."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from indexer.jobs import list_jobs
from search_api.state import AppState
from search_api.usecases.ingest import run_ingest
from storage.models.access import Role
from tests.search_api.jobs.conftest import CliResult, all_jobs

FILES = 205  # more than list_jobs' default page of 200


class RecordingQueue:
    """A job queue that only remembers what it was handed."""

    def __init__(self) -> None:
        self.ingest: list[int] = []

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        self.ingest.extend(job_ids)

    def enqueue_export(self, job_id: int) -> None:
        raise AssertionError("no export here")


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    folder = tmp_path / "roots" / "many"
    folder.mkdir(parents=True)
    for number in range(FILES):
        (folder / f"clip-{number:03d}.mp4").write_bytes(b"not decoded by the walk")
    return folder


def test_a_folder_of_many_files_is_one_job_whose_walk_queues_every_file(
    state: AppState, camera: str, many_files: Path, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    response = admin.post("/api/ingest", json={"path": str(many_files), "camera_id": camera})
    assert response.status_code == 202, response.text
    [folder_job] = response.json()
    assert (folder_job["source_path"], folder_job["files"]) == (str(many_files), 0)
    assert len(all_jobs(state)) == 1

    queue = RecordingQueue()
    state.job_queue = queue
    assert run_ingest(state, job_id=folder_job["id"]) is False
    with Session(state.engine) as session:
        files = list_jobs(session, parent_ids=[folder_job["id"]])
        assert len(list_jobs(session)) == 200  # a plain listing stays paged
        assert len(list_jobs(session, limit=10)) == 10
    assert len(files) == FILES
    assert sorted(queue.ingest) == sorted(job.id for job in files if job.id is not None)
    walked = admin.get(f"/api/jobs/{folder_job['id']}").json()
    assert (walked["status"], walked["stage"], walked["files"]) == ("done", "walked", FILES)


def test_cli_ingest_of_a_folder_queues_one_job(
    state: AppState, camera: str, many_files: Path, run_oko: Callable[..., CliResult],
) -> None:
    result = run_oko("ingest", str(many_files), "--camera", camera, "--json")
    assert result.code == 0, result.err
    [job] = json.loads(result.out)
    assert (job["source_path"], job["status"]) == (str(many_files), "queued")
    assert len(all_jobs(state)) == 1


def test_job_list_page_size_is_bounded(
    state: AppState, camera: str, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    for limit in ("0", "-1", "501"):
        assert admin.get("/api/jobs", params={"limit": limit}).status_code == 422
    assert admin.get("/api/jobs", params={"limit": "500"}).json() == []
