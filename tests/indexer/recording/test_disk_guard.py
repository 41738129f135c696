"""The free-space guard: below OKO_RECORD_MIN_FREE_MB in the spool dir or a blob store,
recording stops (state ``disk_full``, one sentence, an audit entry), nothing already
recorded is dropped, and recording resumes when space returns."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session, col, select

from search_api.cli.common import operator_usecase
from search_api.state import AppState
from search_api.usecases.recording import build_recorder, camera_status
from storage.models.access import AuditEvent
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


def _state_is(state: AppState, name: str) -> bool:
    return getattr(recorder_state(state), "state", "") == name


def _alerts(state: AppState) -> list[dict[str, object]]:
    with Session(state.engine) as session:
        return [e.details for e in session.exec(
            select(AuditEvent).where(AuditEvent.action == "disk_alert")
            .order_by(col(AuditEvent.seq))).all()]


def _spooled(state: AppState) -> list[Path]:
    return sorted((state.settings.spool_dir / CAMERA).glob("session-*/*.ts"))


def _quarantined(state: AppState) -> list[Path]:
    return sorted((state.settings.spool_dir / CAMERA / "quarantine").glob("*"))


def test_a_threshold_above_the_real_free_space_stops_recording_until_it_is_lowered(
        recording: AppState, serve: Serve) -> None:
    server = serve("http")
    recorder = build_recorder(recording, camera_id=CAMERA, url=server.url)
    assert recorder.config.store_dirs == (recording.settings.blobs_dir,
                                          recording.settings.derived_dir)
    with running(recorder):
        wait_for(lambda: len(originals(recording)) >= 1, what="a recorded file")
        spool = recording.settings.spool_dir
        above = shutil.disk_usage(spool).free + 2**40  # more than this disk has: it trips
        recorder.config = dataclasses.replace(recorder.config, min_free_bytes=above)
        wait_for(lambda: _state_is(recording, "disk_full"), what="recording to stop")
        # a file whose ingest began before the guard tripped is finished, not cut short
        wait_for(lambda: all(o.status != "processing" for o in originals(recording)),
                 what="the ingest in flight to finish")
        accepted = originals(recording)
        with operator_usecase(recording) as ctx:
            status = camera_status(ctx, camera_id=CAMERA)
        assert status.state == "disk_full"
        assert status.message.startswith(f"The spool dir {spool} has ")
        assert status.message.endswith(f"less than the {above // 2**20} MiB recording needs; "
                                       "recording is paused so no file is cut short.")
        assert _alerts(recording) == [{"camera_id": CAMERA, "state": "disk_full",
                                       "message": status.message}]
        assert gaps(recording)[-1].end_utc is None
        # what was recorded is whole; a file the stores had no room for waits in the spool
        assert all(o.status == "ready" and recording.originals.verify(o.sha256)
                   for o in accepted)
        waiting = _spooled(recording)
        assert all(p.stat().st_size > 0 for p in waiting)
        assert _quarantined(recording) == []

        recorder.config = dataclasses.replace(recorder.config, min_free_bytes=0)
        wait_for(lambda: _state_is(recording, "recording"), what="recording to resume")
        wait_for(lambda: len(originals(recording)) > len(accepted) + len(waiting),
                 what="new files after the waiting ones")
    assert [a["state"] for a in _alerts(recording)] == ["disk_full", "resumed"]
    assert [o.sha256 for o in originals(recording)][:len(accepted)] == [
        o.sha256 for o in accepted]
    assert _quarantined(recording) == []
    assert gaps(recording)[0].end_utc is not None  # the pause's gap closed on reconnection


def test_a_full_blob_store_keeps_recorded_files_in_the_spool_until_there_is_room(
        recording: AppState, serve: Serve) -> None:
    server = serve("http")
    full = {"now": False}
    blobs = recording.settings.blobs_dir

    def free_bytes(path: Path) -> int:
        return 5 * 2**20 if full["now"] and path == blobs else 10 * 2**40

    recording.settings.record_min_free_mb = 100
    recorder = build_recorder(recording, camera_id=CAMERA, url=server.url,
                              free_bytes=free_bytes)
    with running(recorder):
        wait_for(lambda: len(originals(recording)) >= 1, what="a recorded file")
        full["now"] = True
        wait_for(lambda: _state_is(recording, "disk_full"), what="recording to stop")
        state = recorder_state(recording)
        assert state is not None and state.message == (
            f"The blob store {blobs} has 5 MiB free, less than the 100 MiB recording needs; "
            "recording is paused and recorded files wait in the spool until there is room.")
        accepted = originals(recording)
        waiting = _spooled(recording)
        assert waiting and all(p.stat().st_size > 0 for p in waiting)
        full["now"] = False
        wait_for(lambda: len(originals(recording)) >= len(accepted) + len(waiting),
                 what="the waiting files ingested")
        wait_for(lambda: not set(waiting) & set(_spooled(recording)),
                 what="the spool emptied of them")
    assert [o.sha256 for o in originals(recording)][:len(accepted)] == [
        o.sha256 for o in accepted]
    assert _quarantined(recording) == []
    assert all(o.status == "ready" for o in originals(recording))
