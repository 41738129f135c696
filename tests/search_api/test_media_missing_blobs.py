"""A thumbnail or segment video missing from the derived store answers 404 and is not
recorded as a view in the audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from search_api.state import AppState
from storage.blobstore import BlobStore
from storage.models.access import AuditEvent, Role
from storage.models.media import Frame
from tests.search_corpus import SearchCorpus, copy_corpus


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    empty = tmp_path / "empty-derived"
    empty.mkdir()
    copy.derived = BlobStore(empty)  # every derived file is gone
    yield copy
    copy.engine.dispose()


def _view_entries(state: AppState) -> list[str]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent.action).where(
            col(AuditEvent.action).in_(["view_frame", "view_video"]))).all())


def test_missing_derived_files_answer_404_without_a_view_entry(
        state: AppState, client_as: Callable[..., TestClient]) -> None:
    with Session(state.engine) as session:
        frame = session.exec(select(Frame).where(Frame.camera_id == "CAM-001")).first()
        assert frame is not None
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    thumbnail = investigator.get(f"/api/frames/{frame.id}/thumbnail")
    assert thumbnail.status_code == 404
    assert thumbnail.json()["detail"] == f"Blob {frame.thumbnail_sha256} is not in the store."
    for headers in ({}, {"Range": "bytes=0-"}):
        video = investigator.get(f"/api/segments/{frame.segment_id}/video", headers=headers)
        assert video.status_code == 404
        assert video.json()["detail"] == (
            f"The video of segment {frame.segment_id} is missing from the store.")
    assert _view_entries(state) == []
