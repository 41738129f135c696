"""Frame metadata and thumbnails, and segment video with HTTP Range for <video> seeking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from search_api.state import AppState
from storage.models.access import Role
from storage.models.media import Frame, Segment
from tests.search_corpus import SearchCorpus, copy_corpus, red_frame_id


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    yield copy
    copy.engine.dispose()


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.INVESTIGATOR, agency="police")


@pytest.fixture
def red_frame(state: AppState) -> Frame:
    with Session(state.engine) as session:
        frame = session.get(Frame, red_frame_id(session))
        assert frame is not None
        return frame


@pytest.fixture
def segment_bytes(state: AppState, red_frame: Frame) -> tuple[Segment, bytes]:
    with Session(state.engine) as session:
        segment = session.get(Segment, red_frame.segment_id)
        assert segment is not None
    return segment, state.derived.path_for(segment.sha256).read_bytes()


def test_frame_metadata(investigator: TestClient, red_frame: Frame) -> None:
    response = investigator.get(f"/api/frames/{red_frame.id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["camera_id"] == "CAM-001" and body["segment_id"] == red_frame.segment_id
    assert body["captured_at_local"].startswith("2026-01-25T21:00:0")
    assert body["captured_at_local"].endswith("+02:00")
    assert body["day_phase"] == "night" and body["embedding_status"] in {"embedded", "linked"}
    assert body["thumbnail_url"] == f"/api/frames/{red_frame.id}/thumbnail"
    assert 0 <= body["offset_in_segment_s"] <= body["offset_s"]


def test_thumbnail_is_the_stored_jpeg(investigator: TestClient, state: AppState,
                                      red_frame: Frame) -> None:
    response = investigator.get(f"/api/frames/{red_frame.id}/thumbnail")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    with state.derived.open(red_frame.thumbnail_sha256) as handle:
        assert response.content == handle.read()


def test_whole_segment_advertises_ranges(investigator: TestClient,
                                         segment_bytes: tuple[Segment, bytes]) -> None:
    segment, data = segment_bytes
    response = investigator.get(f"/api/segments/{segment.id}/video")
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"].startswith("video/")  # sniffed from the container
    assert int(response.headers["content-length"]) == len(data) and response.content == data


@pytest.mark.parametrize(("header", "span"), [
    ("bytes=0-99", (0, 99)),
    ("bytes=100-", (100, None)),
    ("bytes=-50", (-50, None)),
    ("bytes=10-999999999", (10, None)),
])
def test_range_requests_answer_206(investigator: TestClient,
                                   segment_bytes: tuple[Segment, bytes], header: str,
                                   span: tuple[int, int | None]) -> None:
    segment, data = segment_bytes
    size = len(data)
    start = span[0] if span[0] >= 0 else size + span[0]
    end = span[1] if span[1] is not None else size - 1
    response = investigator.get(f"/api/segments/{segment.id}/video", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == data[start:end + 1]


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=5-2", "items=0-1", "bytes=0-1,5-9"])
def test_unsatisfiable_range_answers_416(investigator: TestClient,
                                         segment_bytes: tuple[Segment, bytes],
                                         header: str) -> None:
    segment, data = segment_bytes
    response = investigator.get(f"/api/segments/{segment.id}/video", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(data)}"
    assert response.json()["detail"].startswith("Range ")


def test_unknown_and_invisible_media_answer_404(client_as: Callable[..., TestClient],
                                                state: AppState) -> None:
    guard = client_as(Role.INVESTIGATOR, agency="municipal_guard")  # sees CAM-001 only
    with Session(state.engine) as session:
        cam2_frame = session.exec(select(Frame).where(Frame.camera_id == "CAM-002")).first()
        assert cam2_frame is not None
    hidden = guard.get(f"/api/frames/{cam2_frame.id}")
    missing = guard.get("/api/frames/999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"Frame {cam2_frame.id} does not exist."
    assert missing.json()["detail"] == "Frame 999999 does not exist."
    assert guard.get(f"/api/frames/{cam2_frame.id}/thumbnail").status_code == 404
    assert guard.get(f"/api/segments/{cam2_frame.segment_id}/video").status_code == 404
    assert guard.get("/api/segments/999999/video").json()["detail"] \
        == "Segment 999999 does not exist."


def test_media_needs_the_view_footage_permission(client_as: Callable[..., TestClient],
                                                 red_frame: Frame) -> None:
    auditor = client_as(Role.AUDITOR, agency="police")
    assert auditor.get(f"/api/frames/{red_frame.id}").status_code == 403
    assert auditor.get(f"/api/segments/{red_frame.segment_id}/video").status_code == 403
