"""/api/ingest queues a server-side file for roles that may ingest; /api/jobs follows jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.state import AppState
from storage.models.access import Role
from tests.search_api.jobs.conftest import all_jobs


def test_admin_queues_a_server_file_and_follows_the_job(
    state: AppState, camera: str, short_clip: Path, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    response = admin.post("/api/ingest", json={"path": str(short_clip), "camera_id": camera})
    assert response.status_code == 202, response.text
    [job] = response.json()
    assert (job["status"], job["progress"], job["duplicate"]) == ("queued", 0.0, False)

    listed = admin.get("/api/jobs")
    assert listed.status_code == 200
    assert [entry["id"] for entry in listed.json()] == [job["id"]]
    one = admin.get(f"/api/jobs/{job['id']}")
    assert one.status_code == 200 and one.json()["source_path"] == str(short_clip)


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"path": "relative/clip.mp4", "camera_id": "CAM-001"}, 422,
     "'relative/clip.mp4' is not an absolute path on the server."),
    ({"path": "/nonexistent/clip.mp4", "camera_id": "CAM-001"}, 404,
     "'/nonexistent/clip.mp4' is not under an ingest root or does not exist."),
    ({"path": "{clip}", "camera_id": "CAM-404"}, 404, "Camera 'CAM-404' does not exist."),
    ({"path": "{clip}", "camera_id": "CAM-001", "start": "noon"}, 422,
     "Cannot parse start time 'noon': use ISO 8601, e.g. 2026-01-25T21:00:00+02:00."),
])
def test_bad_ingest_requests_queue_nothing(
    state: AppState, camera: str, short_clip: Path, client_as: Callable[..., TestClient],
    body: dict[str, str], status: int, detail: str,
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    payload = {key: value.format(clip=short_clip) for key, value in body.items()}
    response = admin.post("/api/ingest", json=payload)
    assert response.status_code == status
    assert response.json()["detail"] == detail
    assert all_jobs(state) == []


def test_roles_without_ingest_permission_cannot_queue_or_list_jobs(
    state: AppState, camera: str, short_clip: Path, client_as: Callable[..., TestClient],
) -> None:
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    refused = investigator.post("/api/ingest",
                                json={"path": str(short_clip), "camera_id": camera})
    assert refused.status_code == 403
    assert investigator.get("/api/jobs").status_code == 403
    assert all_jobs(state) == []

