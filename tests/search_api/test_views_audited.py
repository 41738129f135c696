"""Every response that serves footage is audited, whatever its byte range; repeated
views of one segment or frame by one person within the window are one entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

import search_api.usecases.media
from search_api.state import AppState
from search_api.usecases.media import VIEW_WINDOW
from storage.models.access import AuditEvent, Role
from storage.models.media import Frame
from storage.types import utcnow
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
def frame(state: AppState) -> Frame:
    with Session(state.engine) as session:
        found = session.get(Frame, red_frame_id(session))
        assert found is not None
        return found


def _entries(state: AppState, *actions: str) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(col(AuditEvent.action).in_(actions))
                                 .order_by(col(AuditEvent.seq))).all())


def _video(client: TestClient, frame: Frame, range_header: str | None = None) -> int:
    headers = {} if range_header is None else {"Range": range_header}
    return client.get(f"/api/segments/{frame.segment_id}/video", headers=headers).status_code


def _later(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """The views' clock moves ``by`` ahead (entries keep their real times)."""
    moved = utcnow() + by
    monkeypatch.setattr(search_api.usecases.media, "utcnow", lambda: moved)


@pytest.mark.parametrize("header", ["bytes=-999999999999", "bytes=00-", "bytes=1-",
                                    "BYTES=5-9", "bytes=" + "0" * 5000 + "-"])
def test_any_range_that_serves_bytes_is_a_view(investigator: TestClient, frame: Frame,
                                               state: AppState, header: str) -> None:
    assert _video(investigator, frame, header) == 206
    [entry] = _entries(state, "view_video")
    assert (entry.actor, entry.details["segment_id"]) == ("investigator-police",
                                                          frame.segment_id)
    assert entry.details["original_id"] == frame.original_id
    assert entry.details["bytes"].split("/")[0] != ""


def test_seeking_within_the_window_is_one_view(investigator: TestClient, frame: Frame,
                                               state: AppState) -> None:
    for header in ("bytes=500-", None, "bytes=0-99", "bytes=100-", "bytes=-50", "bytes=00-"):
        assert _video(investigator, frame, header) in (200, 206)
    [entry] = _entries(state, "view_video")
    assert entry.details["bytes"].startswith("500-")  # the span that was first served


def test_a_view_after_the_window_is_a_new_entry(investigator: TestClient, frame: Frame,
                                                state: AppState,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert _video(investigator, frame, "bytes=1-") == 206
    _later(monkeypatch, VIEW_WINDOW / 2)
    assert _video(investigator, frame, "bytes=2-") == 206
    assert len(_entries(state, "view_video")) == 1
    _later(monkeypatch, VIEW_WINDOW)
    assert _video(investigator, frame, "bytes=3-") == 206
    assert len(_entries(state, "view_video")) == 2


def test_each_person_is_recorded_for_their_own_view(
        client_as: Callable[..., TestClient], frame: Frame, state: AppState) -> None:
    assert _video(client_as(Role.INVESTIGATOR, username="first"), frame, "bytes=1-") == 206
    assert _video(client_as(Role.INVESTIGATOR, username="second"), frame, "bytes=1-") == 206
    assert [e.actor for e in _entries(state, "view_video")] == ["first", "second"]


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "bytes=abc", "bytes=9-3",
                                    "bytes=99999999999999999999999999-", "bytes=-0",
                                    "bytes=-", "bytes 0-1", "bytes=" + "9" * 5000 + "-"])
def test_malformed_or_unsatisfiable_ranges_answer_416_and_are_no_view(
        investigator: TestClient, frame: Frame, state: AppState, header: str) -> None:
    response = investigator.get(f"/api/segments/{frame.segment_id}/video",
                                headers={"Range": header})
    assert response.status_code == 416, response.text
    assert response.headers["content-range"].startswith("bytes */")
    assert _entries(state, "view_video") == []


def test_frame_details_and_image_are_each_one_view_per_window(
        investigator: TestClient, frame: Frame, state: AppState,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        assert investigator.get(f"/api/frames/{frame.id}").status_code == 200
        assert investigator.get(f"/api/frames/{frame.id}/thumbnail").status_code == 200
    entries = _entries(state, "view_frame")
    assert [(e.details["frame_id"], e.details["what"]) for e in entries] == [
        (frame.id, "details"), (frame.id, "image")]
    _later(monkeypatch, VIEW_WINDOW)
    assert investigator.get(f"/api/frames/{frame.id}/thumbnail").status_code == 200
    assert len(_entries(state, "view_frame")) == 3


def test_probing_another_agencys_frame_leaves_a_not_found_entry(
        client_as: Callable[..., TestClient], state: AppState) -> None:
    guard = client_as(Role.INVESTIGATOR, agency="municipal_guard")  # sees CAM-001 only
    with Session(state.engine) as session:
        hidden = session.exec(select(Frame).where(Frame.camera_id == "CAM-002")).first()
        assert hidden is not None
    for path in (f"/api/frames/{hidden.id}", f"/api/frames/{hidden.id}/thumbnail",
                 f"/api/segments/{hidden.segment_id}/video"):
        assert guard.get(path).status_code == 404
    probes = _entries(state, "not_found")
    assert [(e.actor, e.details["path"]) for e in probes] == [
        ("investigator-municipal_guard", f"/api/frames/{hidden.id}"),
        ("investigator-municipal_guard", f"/api/frames/{hidden.id}/thumbnail"),
        ("investigator-municipal_guard", f"/api/segments/{hidden.segment_id}/video")]
    assert probes[0].details["reason"] == f"Frame {hidden.id} does not exist."
    assert _entries(state, "view_frame", "view_video") == []


def test_a_role_that_may_not_view_footage_leaves_access_denied(
        client_as: Callable[..., TestClient], frame: Frame, state: AppState) -> None:
    auditor = client_as(Role.AUDITOR, agency="police")
    assert auditor.get(f"/api/segments/{frame.segment_id}/video").status_code == 403
    [entry] = _entries(state, "access_denied")
    assert (entry.actor, entry.details["status"], entry.details["path"]) == (
        "auditor-police", 403, f"/api/segments/{frame.segment_id}/video")
