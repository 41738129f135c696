"""Exports check camera visibility again (issue 9, item 5).

Seeing a case by a share is not enough to take its footage out: requesting, approving,
running (the worker checks the requester) and downloading an export each need the
user's agency to be allowed, now, on every camera in the case. Prosecutors, who
receive bundles by design, download regardless.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from search_api.state import AppState
from search_api.tasks.evidence import export_case_task
from storage.models.evidence import ExportJob
from tests.search_api.case_world import CLIP_1, CaseWorld, build_case_world


@pytest.fixture
def world(state: AppState, tmp_path: Path) -> Iterator[CaseWorld]:
    built = build_case_world(state, tmp_path)
    yield built
    built.client.close()


def _refused(action: str, user: str, agency: str) -> str:
    return (f"{action} case KV-1 is refused: it holds footage of camera cam-1, which the "
            f"{agency} agency of {user} may not search.")


def _export(world: CaseWorld, case_id: int, by: str) -> int:
    response = world.as_(by).post(f"/api/cases/{case_id}/exports")
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def _bundles(world: CaseWorld) -> list[str]:
    return sorted(p.name for p in world.state.settings.exports_dir.glob("*"))


def test_a_share_to_another_agencys_investigator_is_refused_so_no_export(
        world: CaseWorld) -> None:
    case_id = world.new_case("KV-1", CLIP_1)
    status, body = world.share(case_id, by="owner", to="sbu")
    assert status == 403 and body["code"] == "share_refused"
    sbu = world.as_("sbu")
    assert sbu.get(f"/api/cases/{case_id}").status_code == 404
    assert sbu.post(f"/api/cases/{case_id}/exports").status_code == 404
    assert world.snapshot().exports == []


def test_a_recipient_whose_agency_lost_the_camera_cannot_export_or_download(
        world: CaseWorld) -> None:
    case_id = world.new_case("KV-1", CLIP_1)
    for name in ("guard", "prosecutor"):
        assert world.share(case_id, by="owner", to=name)[0] == 200
    done = _export(world, case_id, by="owner")
    export_case_task(done)
    url = f"/api/cases/{case_id}/exports/{done}/download"
    assert world.as_("guard").get(url).status_code == 200  # allowed on cam-1 for now
    queued = _export(world, case_id, by="guard")  # requested while still allowed
    world.set_allowed("cam-1", [])  # the guard agency loses cam-1
    bundles, before = _bundles(world), world.snapshot()

    guard = world.as_("guard")
    request = guard.post(f"/api/cases/{case_id}/exports")
    assert request.status_code == 403
    assert request.json()["detail"] == _refused("Exporting", "guard", "guard")
    assert request.json()["code"] == "case_footage_not_visible"
    download = guard.get(url)
    assert download.status_code == 403
    assert download.json()["detail"] == _refused("Downloading an export of", "guard", "guard")
    export_case_task(queued)  # the worker checks the requester before building anything

    after = world.snapshot()
    assert (after.custody, after.shares) == (before.custody, before.shares)
    assert after.exports == [(done, "done"), (queued, "failed")]
    assert after.audit - before.audit == {"access_denied": 2}
    assert _bundles(world) == bundles
    with Session(world.state.engine) as session:
        failed = session.get(ExportJob, queued)
        assert failed is not None and failed.bundle_path is None
        assert failed.message == _refused("Exporting", "guard", "guard")
    assert world.as_("prosecutor").get(url).status_code == 200  # receives by design
    assert world.as_("owner").get(url).status_code == 200


def test_an_approver_whose_agency_lost_the_camera_cannot_release_the_export(
        world: CaseWorld) -> None:
    world.state.settings.exports_need_approval = True
    case_id = world.new_case("KV-1", CLIP_1)
    for name in ("guard-chief", "chief"):
        assert world.share(case_id, by="owner", to=name)[0] == 200
    job = _export(world, case_id, by="owner")
    world.set_allowed("cam-1", [])
    before = world.snapshot()
    refused = world.as_("guard-chief").post(f"/api/cases/{case_id}/exports/{job}/approve")
    assert refused.status_code == 403
    assert refused.json()["detail"] == _refused("Approving an export of", "guard-chief",
                                                "guard")
    after = world.snapshot()
    assert after.exports == [(job, "awaiting_approval")] and after.custody == before.custody
    approved = world.as_("chief").post(f"/api/cases/{case_id}/exports/{job}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "queued"
