"""POST /api/search and /api/search/image on the indexed sample corpus."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from search_api.state import AppState
from storage.models.access import AuditEvent, Role
from storage.models.media import Frame
from storage.models.search_index import FrameIndexEntry
from tests.search_corpus import SearchCorpus, copy_corpus, red_frame_id

UPLOAD_LIMIT = 200_000

PURPOSE = {"purpose": "case 2026/117: hit and run"}  # every search states one


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    """The API runs on a private copy of the indexed corpus (overrides the empty state)."""
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    copy.settings.max_upload_bytes = UPLOAD_LIMIT
    yield copy
    copy.engine.dispose()


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.INVESTIGATOR, agency="police")


@pytest.fixture
def red_frame(state: AppState) -> int:
    with Session(state.engine) as session:
        return red_frame_id(session)


def _thumbnail(state: AppState, frame_id: int) -> bytes:
    with Session(state.engine) as session:
        frame = session.get(Frame, frame_id)
        assert frame is not None
    with state.derived.open(frame.thumbnail_sha256) as handle:
        return handle.read()


def _snapshot(state: AppState) -> tuple[int, int, list[str]]:
    with Session(state.engine) as session:
        frames = session.exec(select(func.count()).select_from(Frame)).one()
        entries = session.exec(select(func.count()).select_from(FrameIndexEntry)).one()
    files = sorted(str(p) for p in state.settings.home.rglob("*")
                   if "derived" not in p.parts and "blobs" not in p.parts
                   and not p.name.startswith("oko.db"))
    return frames, entries, files


def test_text_search_at_night(investigator: TestClient, state: AppState) -> None:
    response = investigator.post("/api/search", json={**PURPOSE,
        "text": "red car at night", "purpose": "case 2026/117: hit and run"})
    assert response.status_code == 200, response.text
    body = response.json()
    prov = body["provenance"]
    assert prov["clip_text"] == "red car"
    assert {"name": "day_phase", "value": "night",
            "source": "query phrase 'at night'"} in prov["filters"]
    assert prov["preset"] == "test-tiny" and len(prov["weights_sha256"]) == 64
    assert prov["k"] == 50 and prov["truncated"] is False and prov["elapsed_ms"] > 0
    assert prov["shards_searched"] == ["CAM-001/2026-01-25", "CAM-002/2026-01-25",
                                       "CAM-003/2026-01-25"]
    assert prov["shard_index_types"] == dict.fromkeys(prov["shards_searched"], "flat")
    assert prov["partial"] is False and prov["shards_left_out"] == []
    moment = body["moments"][0]
    assert moment["thumbnail_url"] == f"/api/frames/{moment['best_frame_id']}/thumbnail"
    assert moment["video_url"] == f"/api/segments/{moment['segment_id']}/video"
    assert moment["start_local"].endswith("+02:00")
    assert moment["start_utc"].endswith(("Z", "+00:00"))
    for moment in body["moments"]:
        assert moment["start_local"][11:13] in {"21", "22", "23"}


def test_the_answer_and_its_audit_entry_name_the_text_tower_and_the_cache(
        investigator: TestClient, state: AppState) -> None:
    weights = state.embedder.weights_sha256 if state.embedder else ""
    bodies = [investigator.post("/api/search", json={**PURPOSE, "text": text}).json()
              for text in ("red car", "RED car")]
    first, again = (body["provenance"] for body in bodies)
    assert first["text_encoder"] == {"backend": "torch", "precision": "fp32",
                                     "weights_sha256": weights, "onnx_path": None,
                                     "onnx_sha256": None,
                                     "text_sequence": state.embedder.text_sequence
                                     if state.embedder else None}
    assert (first["query_vector_cached"], again["query_vector_cached"]) == (False, True)
    assert first["image_tower"] == {"preset": "test-tiny", "weights_sha256": weights,
                                    "backend": None}
    with Session(state.engine) as session:
        entry = session.get(AuditEvent, bodies[1]["search_id"])
        assert entry is not None
    assert entry.details["text_encoder"] == first["text_encoder"]
    assert entry.details["query_vector_cached"] is True


def test_a_corrupt_shard_gives_a_partial_answer_that_says_why(
        investigator: TestClient, state: AppState, red_frame: int) -> None:
    index_dir = state.settings.index_dir
    sidecar = json.loads((index_dir / "cam-CAM-003" / "2026-01-25.json").read_text())
    data = index_dir / "cam-CAM-003" / sidecar["data_file"]
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = b"\xff" * 64  # same size, unreadable content
    data.write_bytes(bytes(raw))
    response = investigator.post("/api/search", json={**PURPOSE,
        "similar_to_frame_id": red_frame, "purpose": "case 2026/117: hit and run"})
    assert response.status_code == 200, response.text
    prov = response.json()["provenance"]
    assert prov["partial"] is True
    assert [s["shard"] for s in prov["shards_left_out"]] == ["CAM-003/2026-01-25"]
    assert "corrupt" in prov["shards_left_out"][0]["reason"]
    assert "CAM-003/2026-01-25" not in prov["shards_searched"]
    assert response.json()["moments"][0]["best_frame_id"] == red_frame
    assert data.read_bytes() == bytes(raw)  # the search wrote nothing


def test_find_similar_returns_the_red_car_moment_first(investigator: TestClient,
                                                      red_frame: int) -> None:
    response = investigator.post("/api/search", json={**PURPOSE,
        "similar_to_frame_id": red_frame, "day_phase": "night", "k": 20})
    assert response.status_code == 200, response.text
    first = response.json()["moments"][0]
    assert red_frame in first["frame_ids"] and first["camera_id"] == "CAM-001"
    assert first["score"] == pytest.approx(1.0, abs=1e-4)


def test_image_upload_finds_the_frame_it_came_from(investigator: TestClient, state: AppState,
                                                   red_frame: int) -> None:
    response = investigator.post(
        "/api/search/image", files={"image": ("red.jpg", _thumbnail(state, red_frame),
                                              "image/jpeg")},
        data={"cameras": ["CAM-001"], "k": "10", "purpose": "lookout"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert red_frame in body["moments"][0]["frame_ids"]
    assert body["provenance"]["image_supplied"] is True
    assert {"name": "cameras", "value": ["CAM-001"], "source": "request"} \
        in body["provenance"]["filters"]


def test_results_only_from_visible_cameras(client_as: Callable[..., TestClient],
                                           red_frame: int) -> None:
    guard = client_as(Role.INVESTIGATOR, agency="municipal_guard")  # sees CAM-001 only
    body = guard.post("/api/search", json={**PURPOSE, "text": "street", "k": 500}).json()
    assert {m["camera_id"] for m in body["moments"]} == {"CAM-001"}
    hidden = guard.post("/api/search", json={**PURPOSE, "text": "street", "cameras": ["CAM-002"]})
    unknown = guard.post("/api/search", json={**PURPOSE, "text": "street", "cameras": ["CAM-999"]})
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == "Camera 'CAM-002' does not exist."
    other = client_as(Role.INVESTIGATOR, agency="border_guard")
    similar = other.post("/api/search", json={**PURPOSE, "similar_to_frame_id": red_frame})
    assert similar.status_code == 404


def test_search_needs_the_search_permission(client_as: Callable[..., TestClient]) -> None:
    prosecutor = client_as(Role.PROSECUTOR, agency="police")
    response = prosecutor.post("/api/search", json={**PURPOSE, "text": "car"})
    assert response.status_code == 403


def test_no_model_installed_answers_503_with_how_to_install(investigator: TestClient,
                                                            state: AppState) -> None:
    state.embedder = None
    response = investigator.post("/api/search", json={**PURPOSE, "text": "car"})
    assert response.status_code == 503
    assert "No CLIP weights are installed" in response.json()["detail"]
    assert "oko models import" in response.json()["detail"]


def test_embedder_failure_is_an_error_not_an_empty_answer(investigator: TestClient,
                                                          state: AppState) -> None:
    class Broken:
        preset, weights_sha256, dim = "test-tiny", "0" * 64, 32

        def encode_text(self, texts: list[str]) -> None:
            raise RuntimeError("model crashed")

        def encode_images(self, images: list[object]) -> None:
            raise RuntimeError("model crashed")

    state.embedder = Broken()
    response = investigator.post("/api/search", json={**PURPOSE, "text": "car"})
    assert response.status_code == 503
    assert "failed to encode the query" in response.json()["detail"]


@pytest.mark.parametrize(("body", "status", "sentence"), [
    ({}, 422, "the query is empty"),
    ({"text": "  "}, 422, "the query is empty"),
    ({"text": "car", "k": 0}, 422, "k must be between 1 and 500; got 0."),
    ({"text": "car", "k": 501}, 422, "k must be between 1 and 500; got 501."),
    ({"text": "car", "cameras": ["CAM-999"]}, 404, "Camera 'CAM-999' does not exist."),
    ({"text": "car", "from": "2026-01-26T00:00:00+02:00", "to": "2026-01-25T00:00:00+02:00"},
     422, "is later than 'to'"),
    ({"similar_to_frame_id": 999999}, 404, "Frame 999999 does not exist."),
])
def test_bad_json_input(investigator: TestClient, state: AppState, body: dict[str, object],
                        status: int, sentence: str) -> None:
    before = _snapshot(state)
    response = investigator.post("/api/search", json={**PURPOSE, **body})
    assert response.status_code == status, response.text
    assert sentence in response.json()["detail"]
    assert _snapshot(state) == before


def test_upload_that_is_not_an_image(investigator: TestClient, state: AppState) -> None:
    before = _snapshot(state)
    response = investigator.post("/api/search/image",
                                 files={"image": ("notes.jpg", b"%PDF-1.7 hello", "image/jpeg")},
                                 data=PURPOSE)
    assert response.status_code == 415
    assert response.json()["detail"] == ("The uploaded file is not an image Oko can read "
                                         "(use JPEG, PNG or WebP).")
    assert _snapshot(state) == before


def test_oversized_upload(investigator: TestClient, state: AppState) -> None:
    before = _snapshot(state)
    response = investigator.post("/api/search/image", files={
        "image": ("big.jpg", b"\xff\xd8" + b"0" * (UPLOAD_LIMIT + 10), "image/jpeg")},
        data=PURPOSE)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert _snapshot(state) == before


def test_empty_upload(investigator: TestClient) -> None:
    response = investigator.post("/api/search/image",
                                 files={"image": ("empty.jpg", b"", "image/jpeg")},
                                 data=PURPOSE)
    assert response.status_code == 422
    assert response.json()["detail"] == "The uploaded image is empty."


def test_openapi_documents_the_search_routes(investigator: TestClient) -> None:
    schema = investigator.get("/openapi.json").json()
    for path in ("/api/search", "/api/search/image"):
        ok = schema["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith("/SearchResultPublic")
    assert "purpose" in schema["components"]["schemas"]["SearchQuery"]["properties"]
