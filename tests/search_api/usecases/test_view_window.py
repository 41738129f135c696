"""The view window's lookup in the audit log, on SQLite and PostgreSQL: per actor, action,
id and ``what``, younger than ``VIEW_WINDOW``, and safe on rows of any other shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import search_api.usecases.media as media
from search_api.audit import AuditAction
from search_api.state import AppState, build_state
from search_api.usecases.context import Actor
from search_api.usecases.media import VIEW_WINDOW, viewed_recently
from storage.settings import Settings
from storage.types import utcnow
from tests.search_api.access_helpers import acting
from tests.services import DATABASE_BACKENDS, database_url_for

BIG_ID = 2**62  # past a 32-bit INTEGER cast


@pytest.fixture(params=DATABASE_BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        database_url=database_url_for(request, tmp_path, migrated=True))
    app_state = build_state(settings)
    yield app_state
    app_state.engine.dispose()


def test_the_window_matches_actor_action_id_and_what(
        state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = Actor(name="alice", agency="police", ip="203.0.113.7")
    with acting(state, alice) as ctx:
        ctx.audit(AuditAction.SEARCH, segment_id="not a number", frame_id=[1, 2])
        ctx.audit(AuditAction.VIEW_VIDEO, segment_id=BIG_ID, original_id=1)
        ctx.audit(AuditAction.VIEW_FRAME, frame_id=7, what="image")
        ctx.commit()
        assert viewed_recently(ctx, AuditAction.VIEW_VIDEO, key="segment_id", value=BIG_ID)
        assert not viewed_recently(ctx, AuditAction.VIEW_VIDEO, key="segment_id", value=7)
        assert viewed_recently(ctx, AuditAction.VIEW_FRAME, key="frame_id", value=7,
                               what="image")
        assert not viewed_recently(ctx, AuditAction.VIEW_FRAME, key="frame_id", value=7,
                                   what="details")
    with acting(state, Actor(name="bob", agency="police", ip="")) as ctx:
        assert not viewed_recently(ctx, AuditAction.VIEW_VIDEO, key="segment_id",
                                   value=BIG_ID)
    later = utcnow() + VIEW_WINDOW
    monkeypatch.setattr(media, "utcnow", lambda: later)
    with acting(state, alice) as ctx:
        assert not viewed_recently(ctx, AuditAction.VIEW_VIDEO, key="segment_id",
                                   value=BIG_ID)
