"""Streams that go wrong: silent, uncopyable codec, clock going back, spool filling up.

Each ends in one sentence in the camera's status and leaves its other data untouched.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from search_api.state import AppState
from search_api.usecases.recording import build_recorder
from storage.models.media import Camera
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
SECRET = "s3cretPa55"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def _camera(state: AppState) -> Camera:
    with Session(state.engine) as session:
        camera = session.get(Camera, CAMERA)
        assert camera is not None
        return camera


def _spool_files(state: AppState) -> list[Path]:
    return sorted(p for p in (state.settings.spool_dir / CAMERA).rglob("*") if p.is_file())


def test_a_url_that_never_answers_is_retried_and_its_password_never_shown(
        recording: AppState, silent_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://admin:{SECRET}@127.0.0.1:{silent_port}/cam.ts"
    camera_before = _camera(recording)
    recorder = build_recorder(recording, camera_id=CAMERA, url=url)
    with running(recorder):
        wait_for(lambda: "(attempt 3)" in getattr(recorder_state(recording), "message", ""),
                 what="three attempts")
        state = recorder_state(recording)
    assert state is not None
    assert "did not answer within 3 s" in caplog.text
    assert SECRET not in caplog.text and "admin:" not in caplog.text
    assert "http://***@127.0.0.1" in caplog.text
    assert SECRET not in state.message
    assert originals(recording) == [] and gaps(recording) == []  # nothing was ever recorded
    assert _spool_files(recording) == []
    assert _camera(recording) == camera_before


def test_a_codec_that_cannot_be_stream_copied_fails_with_one_sentence(
        recording: AppState, serve: Serve) -> None:
    server = serve("http", codec_args=["-c:v", "mjpeg", "-q:v", "5"], container="matroska")
    recorder = build_recorder(recording, camera_id=CAMERA, url=server.url)
    with running(recorder):
        wait_for(lambda: getattr(recorder_state(recording), "state", "") == "failed",
                 what="the recorder to give up on the codec")
        state = recorder_state(recording)
    assert state is not None
    assert state.message.startswith(
        "The stream carries mjpeg video, which cannot be copied into MPEG-TS recording "
        "files; set the camera to H.264 or H.265.")
    assert (state.message_code, state.message_args["codec"]) == ("codec_not_copyable", "mjpeg")
    assert originals(recording) == [] and gaps(recording) == []
    assert _spool_files(recording) == []


def test_a_clock_that_jumps_back_keeps_the_file_out_of_the_record(
        recording: AppState, serve: Serve) -> None:
    server = serve("http")
    with running(build_recorder(recording, camera_id=CAMERA, url=server.url)):
        wait_for(lambda: len(originals(recording)) >= 1, what="a first recorded file")
    kept = originals(recording)
    gaps_before = gaps(recording)

    def an_hour_ago() -> datetime:
        return datetime.now(UTC) - timedelta(hours=1)

    server.kill()
    server.start()
    with running(build_recorder(recording, camera_id=CAMERA, url=server.url,
                                clock=an_hour_ago)):
        wait_for(lambda: getattr(recorder_state(recording), "state", "") == "clock_error",
                 what="the clock error")
        clock_state = recorder_state(recording)
    assert clock_state is not None and clock_state.message_code == "clock_went_back"
    assert set(clock_state.message_args) == {"start_utc", "seconds", "last_end_utc", "kept"}
    message = clock_state.message
    assert message.startswith("The clock went back: a file would start at ")
    assert "before the end of the last recording" in message
    assert "and not ingested." in message
    assert [o.sha256 for o in originals(recording)] == [o.sha256 for o in kept]
    quarantined = list((recording.settings.spool_dir / CAMERA / "quarantine").glob("*.ts"))
    assert quarantined and all(p.stat().st_size > 0 for p in quarantined)
    assert [g.id for g in gaps(recording)][:len(gaps_before)] == [g.id for g in gaps_before]


def test_a_spool_that_fills_pauses_recording_and_keeps_what_was_accepted(
        recording: AppState, serve: Serve) -> None:
    server = serve("http")
    full = {"now": False}

    def free_bytes(path: Path) -> int:  # only the spool fills; the stores have room
        return 10 * 2**20 if full["now"] and path == recording.settings.spool_dir else 10 * 2**40

    recording.settings.record_min_free_mb = 100
    recorder = build_recorder(recording, camera_id=CAMERA, url=server.url,
                              free_bytes=free_bytes)
    with running(recorder):
        wait_for(lambda: len(originals(recording)) >= 2, what="two recorded files")
        full["now"] = True
        wait_for(lambda: getattr(recorder_state(recording), "state", "") == "disk_full",
                 what="recording to stop for space")
        accepted = originals(recording)
        state = recorder_state(recording)
        assert state is not None
        assert state.message == (
            f"The spool dir {recording.settings.spool_dir} has 10 MiB free, less than the "
            "100 MiB recording needs; recording is paused so no file is cut short.")
        assert (state.message_code, state.message_args["free_mib"]) == ("spool_low", "10")
        [gap] = gaps(recording)
        # stored as a code and the directory; every edge translates the code
        assert gap.end_utc is None
        assert gap.reason == f"spool_low: {recording.settings.spool_dir}"
    # everything recorded before the pause was ingested whole and stays
    assert [o.sha256 for o in originals(recording)][:len(accepted)] == [
        o.sha256 for o in accepted]
    assert all(o.status == "ready" and not o.damaged for o in accepted)
    assert all(recording.originals.verify(o.sha256) for o in accepted)
    assert _spool_files(recording) == []
