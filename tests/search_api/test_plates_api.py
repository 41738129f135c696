"""Plate search, journeys, crops, the watch list and its events, over real read footage.

One data dir per module: three short clips with rendered plates are ingested and read
with the real PP-OCRv4 models once (a few dozen OCR calls), with a watch-list entry
added between the first clip and the others, so the later sightings raise an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from indexer.plates.footage import PlatePass, write_plate_clip
from search_api.cli import main
from search_api.state import AppState, build_state
from search_api.usecases.context import Actor, UseCaseContext
from search_api.usecases.plate_watch import WatchCreate, add_watch, read_waiting_plates
from storage.models.access import AuditEvent, Role
from storage.models.plates import PlateEvent, PlateSighting, WatchlistEntry
from storage.settings import Settings
from storage.types import utcnow
from tests.indexer.plates.conftest import add_camera, ingest_clip

PURPOSE = "case 2026/311: stolen Skoda"


@pytest.fixture(scope="module")
def plate_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppState]:
    root = tmp_path_factory.mktemp("plate-world")
    state = build_state(Settings(home=root / "home", environment="test",
                                 key_passphrase="test-passphrase"))
    add_camera(state, "CAM-P01", district="Podilskyi")
    add_camera(state, "CAM-P02", district="Obolonskyi")
    add_camera(state, "CAM-P03", district="Darnytskyi", agency="municipal_guard")
    ingest_clip(state, write_plate_clip(
        root / "CAM-P01_20260125T120000.mp4", seconds=12,
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=120),
                PlatePass("BC0815AA", 6.5, 11.5, plate_width=100)]), "CAM-P01")
    read_waiting_plates(state)
    with Session(state.engine, expire_on_commit=False) as session:
        ctx = UseCaseContext(session=session, state=state, actor=Actor.local_operator())
        add_watch(ctx, body=WatchCreate(plate="АЕ 1234 КХ", reason="stolen, case 2026/311",
                                        expires_at=utcnow() + timedelta(days=30)))
    ingest_clip(state, write_plate_clip(
        root / "CAM-P02_20260125T121000.mp4", seconds=6,
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=130)]), "CAM-P02")
    ingest_clip(state, write_plate_clip(
        root / "CAM-P03_20260125T122000.mp4", seconds=6,  # not the same bytes as P02's
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=124)]), "CAM-P03")
    read_waiting_plates(state)
    yield state
    state.engine.dispose()


@pytest.fixture
def state(plate_world: AppState) -> AppState:
    return plate_world


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    # the data dir lives for the module: each test signs in as a user of its own
    return client_as(Role.INVESTIGATOR, agency="police", username=f"inv-{uuid4().hex[:8]}")


def _audit_count(state: AppState) -> int:
    with Session(state.engine) as session:
        return session.exec(select(func.count()).select_from(AuditEvent)).one()


def _last_audit(state: AppState) -> AuditEvent:
    with Session(state.engine) as session:
        return session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()


def _search(client: TestClient, plate: str, **extra: object) -> dict[str, object]:
    response = client.post("/api/plates/search",
                           json={"plate": plate, "purpose": PURPOSE, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_exact_search_finds_the_plate_on_visible_cameras_and_is_audited(
        state: AppState, investigator: TestClient) -> None:
    body = _search(investigator, "ае 1234 кх")  # Cyrillic, lower case, spaces
    moments = body["moments"]
    exact = [m for m in moments if m["plate_match"] == "exact"]
    # CAM-P03 belongs to another agency: its sighting is not the investigator's to see
    assert sorted(m["camera_id"] for m in exact) == ["CAM-P01", "CAM-P02"]
    first = exact[0]
    assert first["plate"] == "AE1234KX" and first["plate_display"] == "AE 1234 KX"
    assert 0.5 < first["plate_confidence"] <= 1.0
    assert first["video_url"] == f"/api/segments/{first['segment_id']}/video"
    assert first["thumbnail_url"] == f"/api/frames/{first['best_frame_id']}/thumbnail"
    entry = _last_audit(state)
    assert entry.action == "search" and entry.details["plate"] == "ае 1234 кх"
    assert entry.details["purpose"] == PURPOSE
    assert entry.details["results"] == len(moments)
    assert {m["sighting_id"] for m in entry.details["moments"]} == {
        m["sighting_id"] for m in moments}
    assert body["search_id"] == entry.seq
    # the crop is served (and its view audited)
    crop = investigator.get(first["crop_url"])
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
    assert _last_audit(state).details["what"] == "plate_crop"


def test_wildcards_and_filters(investigator: TestClient) -> None:
    two_wild = _search(investigator, "AE12??KX")["moments"]
    assert {m["camera_id"] for m in two_wild} == {"CAM-P01", "CAM-P02"}
    assert {m["plate_match"] for m in two_wild} == {"wildcard"}
    tail = _search(investigator, "*15AA")["moments"]
    assert [m["plate"] for m in tail] == ["BC0815AA"]
    only_p02 = _search(investigator, "AE*", cameras=["CAM-P02"])["moments"]
    assert [m["camera_id"] for m in only_p02] == ["CAM-P02"]
    district = _search(investigator, "AE*", districts=["Podilskyi"])["moments"]
    assert {m["camera_id"] for m in district} == {"CAM-P01"}
    # local time: the first clip starts 12:00 Kyiv; the others at 12:10 and 12:20
    late = _search(investigator, "AE*", **{"from": "2026-01-25T12:09:00"})["moments"]
    assert [m["camera_id"] for m in late] == ["CAM-P02"]
    assert _search(investigator, "AE*", day_phase="night")["moments"] == []


def test_fuzzy_matches_rank_below_exact(investigator: TestClient) -> None:
    # one wrong character (K read as H is a look-alike, 9 for 4 is not)
    near = _search(investigator, "AE1239KX")["moments"]
    assert near and {m["plate_match"] for m in near} == {"fuzzy"}
    assert {m["plate"] for m in near} == {"AE1234KX"}
    assert all(m["plate_distance"] > 0 for m in near)
    mixed = _search(investigator, "AE1234KX")["moments"]
    kinds = [m["plate_match"] for m in mixed]
    assert kinds == sorted(kinds, key=["exact", "wildcard", "fuzzy"].index)
    assert _search(investigator, "AE1239KX", fuzzy=False)["moments"] == []


def test_absent_plate_has_no_exact_hit(investigator: TestClient) -> None:
    moments = _search(investigator, "KA7777MM")["moments"]
    assert [m for m in moments if m["plate_match"] == "exact"] == []


@pytest.mark.parametrize(("plate", "message"), [
    ("", "empty"),
    ("*?*", "only wildcards"),
    ("AY 1234 KX", "cannot be on a Ukrainian plate"),
    ("AE 1234 KX 1234", "longer than any plate"),
])
def test_bad_plate_queries_are_refused_and_write_nothing(
        state: AppState, investigator: TestClient, plate: str, message: str) -> None:
    before = _audit_count(state)
    response = investigator.post("/api/plates/search", json={"plate": plate, "purpose": PURPOSE})
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert _audit_count(state) == before


def test_a_plate_search_needs_a_purpose(state: AppState, investigator: TestClient) -> None:
    before = _audit_count(state)
    response = investigator.post("/api/plates/search", json={"plate": "AE1234KX"})
    assert response.status_code in (400, 422)
    assert "purpose" in response.json()["detail"]
    assert _audit_count(state) == before


def test_journey_lists_the_sightings_in_time_order(state: AppState,
                                                   investigator: TestClient) -> None:
    response = investigator.get("/api/plates/AE 1234 KX/journey", params={"purpose": PURPOSE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plate"] == "AE1234KX"
    assert body["cameras"] == ["CAM-P01", "CAM-P02"]
    times = [m["start_utc"] for m in body["sightings"]]
    assert times == sorted(times)
    entry = _last_audit(state)
    assert entry.action == "search" and entry.details["journey"] is True
    refused = investigator.get("/api/plates/AE12*/journey", params={"purpose": PURPOSE})
    assert refused.status_code == 422 and "whole plate" in refused.json()["detail"]


def test_watch_list_events_are_raised_once_and_audited(
        state: AppState, client_as: Callable[..., TestClient]) -> None:
    with Session(state.engine) as session:
        events = session.exec(select(PlateEvent)).all()
        # listed after the first clip was read: only the later sightings raise events
        assert sorted(e.camera_id for e in events) == ["CAM-P02", "CAM-P03"]
        alerts = session.exec(select(AuditEvent).where(AuditEvent.action == "plate_alert")).all()
        assert sorted(a.details["event_id"] for a in alerts) == sorted(e.id for e in events)
    read_waiting_plates(state)  # nothing pending: no new events
    with Session(state.engine) as session:
        assert len(session.exec(select(PlateEvent)).all()) == 2
    investigator = client_as(Role.INVESTIGATOR, agency="police", username="inv-events")
    listed = investigator.get("/api/plates/events").json()
    assert [e["camera_id"] for e in listed] == ["CAM-P02"]  # CAM-P03 is not theirs
    assert listed[0]["plate_display"] == "AE 1234 KX"


def test_admins_keep_the_watch_list(state: AppState,
                                    client_as: Callable[..., TestClient]) -> None:
    admin = client_as(Role.ADMIN, agency="police", username="admin-plates")
    expires = (utcnow() + timedelta(days=10)).isoformat()
    made = admin.post("/api/plates/watchlist", json={
        "plate": "BC 0815 AA", "reason": "witness report", "expires_at": expires})
    assert made.status_code == 201, made.text
    assert made.json()["plate"] == "BC0815AA" and made.json()["active"] is True
    assert _last_audit(state).action == "watchlist_change"
    listed = admin.get("/api/plates/watchlist").json()
    assert {w["plate"] for w in listed} >= {"AE1234KX", "BC0815AA"}
    before = _audit_count(state)
    for body, status in [
        ({"plate": "BC 0815 AA", "reason": "again", "expires_at": expires}, 409),
        ({"plate": "BC08*", "reason": "x", "expires_at": expires}, 422),
        ({"plate": "KA 7777 MM", "reason": "  ", "expires_at": expires}, 422),
        ({"plate": "KA 7777 MM", "reason": "x",
          "expires_at": (utcnow() - timedelta(days=1)).isoformat()}, 422),
    ]:
        assert admin.post("/api/plates/watchlist", json=body).status_code == status
    assert _audit_count(state) == before
    with Session(state.engine) as session:
        assert session.exec(select(func.count()).select_from(WatchlistEntry)).one() == 2
        bc = session.exec(select(WatchlistEntry).where(WatchlistEntry.plate == "BC0815AA")).one()
    assert admin.delete(f"/api/plates/watchlist/{bc.id}").status_code == 204
    assert {w["plate"] for w in admin.get("/api/plates/watchlist").json()} == {"AE1234KX"}
    investigator = client_as(Role.INVESTIGATOR, agency="police", username="inv-watch")
    assert investigator.get("/api/plates/watchlist").status_code == 403


def test_sightings_have_crops_with_provenance(state: AppState) -> None:
    with Session(state.engine) as session:
        sightings = session.exec(select(PlateSighting)).all()
    assert len(sightings) == 4
    for sighting in sightings:
        assert state.derived.exists(sighting.crop_sha256)
        assert sighting.crop_provenance["models"]["detector"]["file"].endswith(".onnx")


@pytest.fixture
def oko_cli(state: AppState, monkeypatch: pytest.MonkeyPatch) -> AppState:
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    return state


def test_cli_plate_search_and_track(oko_cli: AppState,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--plate", "AE12??KX", "--purpose", PURPOSE, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    # the local operator sees every camera, the other agency's too
    assert sorted(m["camera_id"] for m in body["moments"]) == ["CAM-P01", "CAM-P02", "CAM-P03"]
    assert main(["plates", "track", "AE 1234 KX", "--purpose", PURPOSE, "--json"]) == 0
    journey = json.loads(capsys.readouterr().out)
    assert journey["cameras"] == ["CAM-P01", "CAM-P02", "CAM-P03"]
    before = _audit_count(oko_cli)
    assert main(["search", "--plate", "***", "--purpose", PURPOSE]) == 2
    assert "only wildcards" in capsys.readouterr().err
    assert _audit_count(oko_cli) == before


def test_the_search_route_takes_a_plate_field_without_clip(
        state: AppState, investigator: TestClient) -> None:
    assert state.embedder is None  # no CLIP model in this data dir
    response = investigator.post("/api/search", json={
        "plate": "AE 1234 KX", "text": "blue car", "cameras": ["CAM-P01"], "purpose": PURPOSE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["camera_id"] for m in body["moments"]] == ["CAM-P01"]
    moment = body["moments"][0]
    assert (moment["plate"], moment["plate_match"]) == ("AE1234KX", "exact")
    assert moment["crop_url"].endswith("/crop") and moment["plate_confidence"] > 0.5
    assert body["provenance"]["preset"] == "rapidocr PP-OCRv4"
    entry = _last_audit(state)
    assert (entry.details["text"], entry.details["plate"]) == ("blue car", "AE 1234 KX")
    before = _audit_count(state)
    refused = investigator.post("/api/search", json={"plate": "", "purpose": PURPOSE})
    assert refused.status_code == 422 and "empty" in refused.json()["detail"]
    assert _audit_count(state) == before
