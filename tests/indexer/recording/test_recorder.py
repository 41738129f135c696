"""Recording real loopback streams: files, gaps, reconnection, no duplicates, no secrets."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from search_api.state import AppState
from search_api.usecases.recording import build_recorder
from storage.gaps import parse_gap_reason
from storage.models.evidence import CustodyEntry
from tests.indexer.recording.conftest import (
    CAMERA,
    StreamServer,
    gaps,
    originals,
    recorder_state,
    running,
    wait_for,
)

Serve = Callable[..., StreamServer]
# files of one connection follow each other to within a frame or two
CONTIGUOUS_S = 0.15


def _assert_no_overlap_or_duplicates(state: AppState) -> None:
    rows = originals(state)
    assert len({row.sha256 for row in rows}) == len(rows)
    for before, after in itertools.pairwise(rows):
        before_end = before.recording_start_utc + timedelta(seconds=before.duration_s)
        assert after.recording_start_utc >= before_end - timedelta(seconds=CONTIGUOUS_S), (
            before.filename, after.filename)


@pytest.mark.parametrize("kind", ["http", "rtsp"])
def test_a_stream_is_recorded_and_a_drop_becomes_a_gap_then_recording_resumes(
        recording: AppState, serve: Serve, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = serve(kind)
    url = server.url if kind == "http" else server.url.replace("rtsp://", "rtsp+listen://")
    recorder = build_recorder(recording, camera_id=CAMERA, url=url)
    with running(recorder):
        wait_for(lambda: len(originals(recording)) >= 3, what="three recorded files")
        assert recorder_state(recording).state == "recording"  # type: ignore[union-attr]
        assert gaps(recording) == []

        server.kill()
        wait_for(lambda: any(g.end_utc is None for g in gaps(recording)), what="an open gap")
        # an outage well beyond the anchor's estimation error (a few tenths of a second):
        # several failed attempts (each backoff doubles; RTSP listens 3 s per attempt)
        attempt = "(attempt 4)" if kind == "http" else "(attempt 2)"
        wait_for(lambda: attempt in getattr(recorder_state(recording), "message", ""),
                 what="the recorder to try to reconnect")
        before = len(originals(recording))

        server.start()
        wait_for(lambda: gaps(recording) and gaps(recording)[-1].end_utc is not None,
                 what="the gap to close")
        wait_for(lambda: len(originals(recording)) >= before + 2, what="recording to resume")

    rows = originals(recording)
    [gap] = [g for g in gaps(recording) if g.reason != "recorder_stopped"]
    assert gap.end_utc is not None and gap.end_utc > gap.start_utc
    # a stable code (the stream went away: refused, timed out, ended ...), never a sentence
    code, _detail = parse_gap_reason(gap.reason)
    assert code is not None and code.value.startswith(("stream_", "connection_", "host_"))
    first_after = next(r for r in rows if r.recording_start_utc >= gap.end_utc)
    last_before = [r for r in rows if r.recording_start_utc < gap.start_utc][-1]
    assert last_before.recording_start_utc + timedelta(
        seconds=last_before.duration_s) <= gap.start_utc + timedelta(seconds=CONTIGUOUS_S)
    assert first_after.recording_start_utc >= gap.end_utc
    _assert_no_overlap_or_duplicates(recording)
    for row in rows:
        assert row.start_source == "stream_clock"
        assert row.status == "ready" and row.sampling == "keyframes"
        assert row.filename.startswith(f"{CAMERA}_") and row.filename.endswith("Z.ts")
        assert 0 < row.duration_s < 5
    with Session(recording.engine) as session:
        custody = session.exec(select(CustodyEntry).where(
            CustodyEntry.action == "acquisition")).all()
    assert len(custody) == len(rows)
    assert {entry.actor for entry in custody} == {"recorder"}
    # every file was ingested and removed from the spool; nothing half-written is left
    spool = recording.settings.spool_dir / CAMERA
    assert [p for p in spool.rglob("*") if p.is_file()] == []
    assert "recording" in caplog.text


def test_two_cameras_sending_the_same_pictures_keep_their_own_originals(
        recording: AppState, serve: Serve) -> None:
    from storage.cameras import add_camera, validate_camera
    from storage.db import session_scope
    from storage.models.media import Original

    with session_scope(recording.engine) as session:
        add_camera(session, camera=validate_camera(
            id="CAM-TWIN", name="Twin", latitude=50.45, longitude=30.52, agency="police"))
    first, second = serve("http"), serve("http")  # the same footage, looping
    with running(build_recorder(recording, camera_id=CAMERA, url=first.url)), \
            running(build_recorder(recording, camera_id="CAM-TWIN", url=second.url)):
        def per_camera() -> dict[str, int]:
            with Session(recording.engine) as session:
                rows = session.exec(select(Original)).all()
            return {camera: sum(r.camera_id == camera for r in rows)
                    for camera in (CAMERA, "CAM-TWIN")}
        wait_for(lambda: min(per_camera().values()) >= 2, what="files from both cameras")
    with Session(recording.engine) as session:
        rows = session.exec(select(Original)).all()
    assert len({r.sha256 for r in rows}) == len(rows)
