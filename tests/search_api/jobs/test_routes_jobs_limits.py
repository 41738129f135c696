"""/api/ingest answers every job it queued; /api/jobs bounds its page size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from search_api.state import AppState
from storage.models.access import Role
from tests.search_api.jobs.conftest import all_jobs

FILES = 205  # more than list_jobs' default page of 200


def test_a_folder_of_many_files_answers_every_queued_job(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
    client_as: Callable[..., TestClient],
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(FILES):
        (folder / f"clip-{number:03d}.mp4").symlink_to(short_clip)
    admin = client_as(Role.ADMIN, agency="police")
    response = admin.post("/api/ingest", json={"path": str(folder), "camera_id": camera})
    assert response.status_code == 202, response.text
    assert len(response.json()) == FILES == len(all_jobs(state))


def test_job_list_page_size_is_bounded(
    state: AppState, camera: str, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    for limit in ("0", "-1", "501"):
        assert admin.get("/api/jobs", params={"limit": limit}).status_code == 422
    assert admin.get("/api/jobs", params={"limit": "500"}).json() == []
