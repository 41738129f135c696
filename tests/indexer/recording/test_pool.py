"""The recorder pool follows the camera table: new URL starts, changed restarts, none stops."""

from __future__ import annotations

from collections.abc import Callable

from search_api.state import AppState
from search_api.usecases.recording import build_recorder_pool
from storage.db import session_scope
from storage.models.media import Camera
from tests.indexer.recording.conftest import CAMERA, StreamServer, originals, wait_for

Serve = Callable[..., StreamServer]


def _set_url(state: AppState, url: str | None) -> None:
    with session_scope(state.engine) as session:
        camera = session.get(Camera, CAMERA)
        assert camera is not None
        camera.stream_url = url
        session.add(camera)


def test_the_pool_records_cameras_with_a_url_and_follows_changes(
        recording: AppState, serve: Serve) -> None:
    pool = build_recorder_pool(recording, refresh_s=3600)
    pool.refresh()
    assert pool.running == {}
    server = serve("http")
    _set_url(recording, server.url)
    pool.refresh()
    try:
        assert list(pool.running) == [CAMERA]
        first = pool.running[CAMERA].recorder
        wait_for(lambda: len(originals(recording)) >= 1, what="a recorded file")
        other = serve("http")
        _set_url(recording, other.url)
        pool.refresh()
        assert pool.running[CAMERA].recorder is not first
        assert pool.running[CAMERA].url == other.url
        _set_url(recording, None)
        pool.refresh()
        assert pool.running == {}
    finally:
        pool.stop()
