"""Text and plate combined: "red car" plus plate ``AE*`` ranks the plate hits by CLIP.

One data dir for the module: two clips with rendered plates, read with the real PP-OCRv4
models and embedded with the tests' small random open_clip model (the real code path;
its vectors mean nothing, so the expected scores are computed here from the stored
vectors, independently of the use case).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from uuid import uuid4
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from indexer.embed_queue import embed_pending_frames
from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder
from indexer.plates.footage import PlatePass, write_plate_clip
from indexer.vectors import vector_from_bytes
from search_api.cli import main
from search_api.state import AppState, build_state
from search_api.usecases.plate_watch import read_waiting_plates
from storage.models.access import AuditEvent, Role
from storage.models.media import Frame
from storage.models.plates import PlateSighting
from storage.models.search import FrameEmbedding
from storage.settings import Settings
from tests.indexer.plates.conftest import add_camera, ingest_clip

PURPOSE = "case 2026/312: red car at the gate"


@pytest.fixture(scope="module")
def embedder() -> ClipEmbedder:
    return build_unsafe_random_embedder(seed=0)


@pytest.fixture(scope="module")
def text_world(tmp_path_factory: pytest.TempPathFactory,
               embedder: ClipEmbedder) -> Iterator[AppState]:
    root = tmp_path_factory.mktemp("plate-text-world")
    state = build_state(Settings(home=root / "home", environment="test",
                                 key_passphrase="test-passphrase"))
    add_camera(state, "CAM-P01", district="Podilskyi")
    add_camera(state, "CAM-P02", district="Obolonskyi")
    ingest_clip(state, write_plate_clip(
        root / "CAM-P01_20260125T120000.mp4", seconds=12,
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=120),
                PlatePass("AE5678BC", 6.5, 11.5, plate_width=120)]), "CAM-P01")
    ingest_clip(state, write_plate_clip(
        root / "CAM-P02_20260125T121000.mp4", seconds=6,
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=130)]), "CAM-P02")
    read_waiting_plates(state)
    embed_pending_frames(engine=state.engine, derived=state.derived, embedder=embedder,
                         batch_size=16, motion_threshold=state.settings.motion_threshold)
    yield state
    state.engine.dispose()


@pytest.fixture
def state(text_world: AppState) -> AppState:
    return text_world


@pytest.fixture
def with_model(state: AppState, embedder: ClipEmbedder,
               monkeypatch: pytest.MonkeyPatch) -> AppState:
    """The query embedder is the random test model (no weights can be installed)."""
    monkeypatch.setattr(AppState, "query_embedder", lambda _state: embedder)
    return state


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.INVESTIGATOR, agency="police", username=f"inv-{uuid4().hex[:8]}")


def expected_scores(state: AppState, embedder: ClipEmbedder, text: str) -> dict[int, float]:
    """Best similarity of ``text`` over each sighting's frames, from the stored vectors."""
    query = embedder.encode_text([text])[0]
    query = query / np.linalg.norm(query)
    scores: dict[int, float] = {}
    with Session(state.engine) as session:
        for sighting in session.exec(select(PlateSighting)).all():
            frames = session.exec(select(Frame).where(
                Frame.camera_id == sighting.camera_id,
                col(Frame.captured_at_utc) >= sighting.first_seen_utc,
                col(Frame.captured_at_utc) <= sighting.last_seen_utc)).all()
            values = []
            for frame in frames:
                row = session.get(FrameEmbedding, frame.id)
                if row is not None and row.linked_frame_id is not None and row.vector is None:
                    row = session.get(FrameEmbedding, row.linked_frame_id)
                if row is not None and row.vector is not None:
                    values.append(float(vector_from_bytes(row.vector) @ query))
            if values:
                assert sighting.id is not None
                scores[sighting.id] = max(values)
    return scores


def _last_audit(state: AppState) -> AuditEvent:
    with Session(state.engine) as session:
        return session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()


def _search(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/api/search", json={"purpose": PURPOSE, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_world_has_three_plate_hits_with_embedded_frames(state: AppState) -> None:
    with Session(state.engine) as session:
        plates = sorted(s.plate for s in session.exec(select(PlateSighting)).all())
        embedded = session.exec(select(func.count()).select_from(FrameEmbedding)).one()
    assert plates == ["AE1234KX", "AE1234KX", "AE5678BC"]
    assert embedded > 0


def test_text_ranks_the_plate_hits_by_clip_score(
        with_model: AppState, embedder: ClipEmbedder, investigator: TestClient) -> None:
    body = _search(investigator, plate="AE*", text="red car")
    moments = body["moments"]
    expected = expected_scores(with_model, embedder, "red car")
    assert len(moments) == 3 and {m["sighting_id"] for m in moments} == set(expected)
    scores = [m["clip_score"] for m in moments]
    assert scores == sorted(scores, reverse=True)
    for moment in moments:
        assert moment["clip_score"] == pytest.approx(expected[moment["sighting_id"]], abs=1e-5)
        assert moment["score"] == pytest.approx(moment["clip_score"], abs=1e-4)
        assert moment["plate_match"] == "wildcard"
    prov = body["provenance"]
    assert prov["clip_text"] == "red car" and prov["text_not_applied"] is None
    assert prov["dim"] == embedder.dim
    entry = _last_audit(with_model)
    assert entry.details["text"] == "red car" and entry.details["text_applied"] is True
    assert entry.details["clip_weights_sha256"] == embedder.weights_sha256
    assert [m["sighting_id"] for m in entry.details["moments"]] == [
        m["sighting_id"] for m in moments]
    # other words give other scores: the text, not the plate, orders the hits
    other = expected_scores(with_model, embedder, "blue bus near the gate")
    assert other != expected
    again = _search(investigator, plate="AE*", text="blue bus near the gate")["moments"]
    assert [m["sighting_id"] for m in again] == sorted(other, key=lambda i: -other[i])


def test_exact_hits_stay_above_fuzzy_ones_with_text(
        with_model: AppState, investigator: TestClient) -> None:
    moments = _search(investigator, plate="AE1234KX", text="red car")["moments"]
    kinds = [m["plate_match"] for m in moments]
    assert kinds == sorted(kinds, key=["exact", "wildcard", "fuzzy"].index)
    exact = [m["clip_score"] for m in moments if m["plate_match"] == "exact"]
    assert len(exact) == 2 and exact == sorted(exact, reverse=True)


def test_without_a_model_the_plate_order_stays_and_the_answer_says_so(
        state: AppState, investigator: TestClient) -> None:
    assert state.embedder is None  # nothing installed in this data dir
    plain = _search(investigator, plate="AE*")["moments"]
    body = _search(investigator, plate="AE*", text="red car")
    assert [m["sighting_id"] for m in body["moments"]] == [m["sighting_id"] for m in plain]
    assert [m["score"] for m in body["moments"]] == [m["score"] for m in plain]
    assert all(m["clip_score"] is None for m in body["moments"])
    prov = body["provenance"]
    assert prov["clip_text"] is None and prov["dim"] == 0
    assert "No CLIP model is installed" in prov["text_not_applied"]
    assert "'red car' was not applied" in prov["text_not_applied"]
    entry = _last_audit(state)
    assert entry.details["text"] == "red car" and entry.details["text_applied"] is False
    # the plate route says the same
    response = investigator.post("/api/plates/search", json={
        "plate": "AE*", "text": "red car", "purpose": PURPOSE})
    assert response.status_code == 200, response.text
    assert response.json()["provenance"]["text_applied"] is False
    assert "not applied" in response.json()["provenance"]["text_not_applied"]


def test_an_over_long_text_is_refused_and_writes_nothing(
        with_model: AppState, investigator: TestClient) -> None:
    before = _last_audit(with_model).seq
    response = investigator.post("/api/plates/search", json={
        "plate": "AE*", "text": "red car " * 100, "purpose": PURPOSE})
    assert response.status_code == 422
    assert _last_audit(with_model).seq == before


@pytest.fixture
def oko_cli(state: AppState, monkeypatch: pytest.MonkeyPatch) -> AppState:
    for name in ("OKO_CLIP_WEIGHTS", "OKO_DATABASE_URL", "OKO_CLIP_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    return state


def test_cli_text_and_plate(oko_cli: AppState, embedder: ClipEmbedder,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "red car", "--plate", "AE*", "--purpose", PURPOSE]) == 0
    assert "was not applied" in " ".join(capsys.readouterr().out.split())  # no model here
    monkeypatch.setattr(AppState, "query_embedder", lambda _state: embedder)
    assert main(["search", "red car", "--plate", "AE*", "--purpose", PURPOSE, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    expected = expected_scores(oko_cli, embedder, "red car")
    assert [m["sighting_id"] for m in body["moments"]] == sorted(
        expected, key=lambda i: -expected[i])
    assert body["provenance"]["text_applied"] is True
    assert body["provenance"]["clip_weights_sha256"] == embedder.weights_sha256
    assert main(["search", "red car", "--plate", "AE*", "--purpose", PURPOSE]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ranked by CLIP" in out and "red car" in out


def test_a_sighting_without_vectors_ranks_last_in_its_kind(
        with_model: AppState, embedder: ClipEmbedder, investigator: TestClient) -> None:
    with Session(with_model.engine) as session:
        target = session.exec(select(PlateSighting).where(
            PlateSighting.plate == "AE5678BC")).one()
        frame_ids = session.exec(select(Frame.id).where(
            Frame.camera_id == target.camera_id,
            col(Frame.captured_at_utc) >= target.first_seen_utc,
            col(Frame.captured_at_utc) <= target.last_seen_utc)).all()
        for row in session.exec(select(FrameEmbedding).where(
                col(FrameEmbedding.frame_id).in_(frame_ids))).all():
            session.delete(row)  # as if these frames still waited for embedding
        target_id = target.id
        session.commit()
    try:
        body = _search(investigator, plate="AE*", text="red car")
        last = body["moments"][-1]
        assert (last["sighting_id"], last["clip_score"]) == (target_id, None)
        with Session(with_model.engine) as session:
            entry = session.exec(select(AuditEvent).order_by(
                col(AuditEvent.seq).desc())).first()
        assert entry.details["moments"][-1]["sighting_id"] == target_id
        plates = investigator.post("/api/plates/search", json={
            "plate": "AE*", "text": "red car", "purpose": PURPOSE}).json()
        assert plates["provenance"]["sightings_without_embedding"] == 1
    finally:
        embed_pending_frames(engine=with_model.engine, derived=with_model.derived,
                             embedder=embedder, batch_size=16,
                             motion_threshold=with_model.settings.motion_threshold)


def _plates(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/api/plates/search", json={"purpose": PURPOSE, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_day_phase_phrase_in_the_text_filters_the_plate_hits(
        state: AppState, investigator: TestClient) -> None:
    with Session(state.engine) as session:
        phases = {s.day_phase for s in session.exec(select(PlateSighting)).all()}
    assert phases == {"day"}  # the clips are of a January noon
    night = _plates(investigator, plate="AE*", text="вночі")
    assert night["moments"] == []
    prov = night["provenance"]
    assert prov["text_filters"] == {"day_phase": "night"}
    assert prov["text_phrases"] == ["вночі"] and prov["filters"]["day_phase"] == "night"
    assert prov["text_not_applied"] is None  # no words were left for CLIP
    entry = _last_audit(state)
    assert entry.details["text"] == "вночі" and entry.details["results"] == 0
    assert entry.details["filters"]["day_phase"] == "night"
    assert entry.details["text_filters"] == {"day_phase": "night"}
    day = _plates(investigator, plate="AE*", text="вдень")
    assert len(day["moments"]) == 3 and day["provenance"]["text_filters"] == {
        "day_phase": "day"}
    # the words left over still go to CLIP: no model here, so the answer says so
    words = _plates(investigator, plate="AE*", text="червоне авто вночі")
    assert words["moments"] == []
    assert "'червоне авто' was not applied" in words["provenance"]["text_not_applied"]
    # POST /api/search with a plate applies it the same way, naming the phrase
    body = _search(investigator, plate="AE*", text="червоне авто вночі")
    assert body["moments"] == []
    applied = {f["name"]: f for f in body["provenance"]["filters"]}
    assert applied["day_phase"]["value"] == "night"
    assert applied["day_phase"]["source"] == "query phrase 'вночі'"


def test_an_hour_phrase_filters_by_the_first_read_local_hour(
        state: AppState, investigator: TestClient) -> None:
    with Session(state.engine) as session:
        first = min(s.first_seen_utc for s in session.exec(select(PlateSighting)).all())
    hour = first.astimezone(ZoneInfo("Europe/Kyiv")).hour
    assert 2 <= hour <= 20
    around = _plates(investigator, plate="AE*", text=f"{hour - 1}:00-{hour + 2}:00")
    assert len(around["moments"]) == 3
    assert around["provenance"]["filters"]["hours"].endswith(
        f"({hour - 1:02d}:00-{hour + 2:02d}:00 local)")
    later = _plates(investigator, plate="AE*", text=f"{hour + 2}:00-{hour + 3}:00")
    assert later["moments"] == []


def test_a_phrase_against_the_day_phase_filter_is_refused_and_writes_nothing(
        state: AppState, investigator: TestClient) -> None:
    before = _last_audit(state).seq
    response = investigator.post("/api/plates/search", json={
        "plate": "AE*", "text": "вночі", "day_phase": "day", "purpose": PURPOSE})
    assert response.status_code == 422
    assert "says night but the day filter is set" in response.text
    both = investigator.post("/api/plates/search", json={
        "plate": "AE*", "text": "вночі і вдень", "purpose": PURPOSE})
    assert both.status_code == 422 and "one time of day at a time" in both.text
    assert _last_audit(state).seq == before
