"""The demo's live cameras (issue 15, "Done when"): ``oko demo`` starts two looping
loopback streams, registers them as cameras (again on a second demo), the real
recorder records files from each, and when the demo stops no ffmpeg is left and the
cameras no longer name a stream."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from search_api.cli.common import operator_usecase
from search_api.cli.demo_streams import DEMO_STREAM_CAMERAS, DemoStreams
from search_api.state import AppState, build_state
from search_api.usecases.recording import build_recorder_pool
from storage.models.access import AuditEvent
from storage.models.media import Camera, Original
from storage.settings import Settings

WAIT_S = 120.0


@pytest.fixture
def state(tmp_path: Path) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", record_segment_seconds=2,
                        record_backoff_seconds=0.2, record_backoff_max_seconds=1.0,
                        record_timeout_seconds=5.0, record_min_free_mb=0)
    built = build_state(settings)
    yield built
    built.engine.dispose()


def _streams(state: AppState, footage: Path) -> DemoStreams:
    return DemoStreams(footage_dir=footage, usecase=lambda: operator_usecase(state),
                       size=(160, 90), seconds=6)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in \
        Path(f"/proc/{pid}/status").read_text().lower()


def _recorded(state: AppState) -> dict[str, int]:
    with Session(state.engine) as session:
        rows = session.exec(select(Original.camera_id, func.count()).group_by(
            col(Original.camera_id))).all()
    return {camera_id: count for camera_id, count in rows}


def test_the_demo_streams_are_recorded_as_cameras_and_leave_no_ffmpeg_behind(
        state: AppState, tmp_path: Path) -> None:
    streams = _streams(state, tmp_path / "footage")
    urls = streams.start()
    pool = build_recorder_pool(state, refresh_s=1.0)
    try:
        ids = [c.id for c in DEMO_STREAM_CAMERAS]
        assert sorted(urls) == sorted(ids) and len(set(urls.values())) == 2
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
        with Session(state.engine) as session:
            assert {c.id: c.stream_url for c in session.exec(select(Camera)).all()} == urls
        pool.start()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not all(
                _recorded(state).get(camera_id, 0) >= 1 for camera_id in ids):
            time.sleep(0.5)
        recorded = _recorded(state)
        assert all(recorded.get(camera_id, 0) >= 1 for camera_id in ids), recorded
    finally:
        pool.stop()
        streams.stop()
    pids = [pid for stream in streams.streams.values() for pid in stream.pids]
    assert len(pids) >= 2
    assert [pid for pid in pids if _alive(pid)] == []
    with Session(state.engine) as session:
        assert all(c.stream_url is None for c in session.exec(select(Camera)).all())
        originals = session.exec(select(Original)).all()
        assert {o.start_source for o in originals} == {"stream_clock"}

    # a second demo: the same two cameras, pointed at the new streams, none added
    again = _streams(state, tmp_path / "footage")
    try:
        second = again.start()
        with Session(state.engine) as session:
            cameras = session.exec(select(Camera)).all()
            created = session.exec(select(func.count()).select_from(AuditEvent).where(
                col(AuditEvent.action) == "camera_change",
                col(AuditEvent.details)["change"].as_string() == "create")).one()
        assert {c.id: c.stream_url for c in cameras} == second and created == 2
    finally:
        again.stop()
    assert [pid for s in again.streams.values() for pid in s.pids if _alive(pid)] == []
