"""Stream URLs set by CLI and API (checked, never shown with secrets) and camera health."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from indexer.recording.ffmpeg import stop_cause
from indexer.recording.state import update_state
from search_api.app import create_app
from search_api.cli import main
from search_api.deps import get_current_user
from search_api.state import AppState, build_state
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.gaps import (
    GapReason,
    close_gap,
    gap_reason,
    gaps_near,
    open_gap,
    parse_gap_reason,
    record_gap,
)
from storage.models.access import AuditEvent, Role, User
from storage.models.media import Camera
from storage.models.recording import CameraGap, RecorderState
from storage.settings import Settings
from storage.state_messages import StateMessage, said
from storage.stream_urls import InvalidStreamUrlError, redact_stream_url, validate_stream_url
from storage.types import utcnow

SECRET = "Hunter2secret"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppState]:
    monkeypatch.setenv("OKO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OKO_DATABASE_URL", raising=False)
    state = build_state(Settings(home=tmp_path / "home", environment="test",
                                 key_passphrase="test-passphrase"))
    with session_scope(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id="CAM-001", name="Maidan", latitude=50.45, longitude=30.52, agency="police"))
    yield state
    state.engine.dispose()


def _camera(state: AppState) -> Camera:
    with Session(state.engine) as session:
        camera = session.get(Camera, "CAM-001")
        assert camera is not None
        return camera


def _audit_count(state: AppState) -> int:
    with Session(state.engine) as session:
        return session.exec(select(func.count()).select_from(AuditEvent)).one()


@pytest.mark.parametrize(("url", "sentence"), [
    ("rtsp//10.0.0.5/stream", "'rtsp//10.0.0.5/stream' is not a stream URL: expected "
                              "scheme://host/path, e.g. rtsp://user:password@10.0.0.5:554/stream1."),
    ("ftp://10.0.0.5/a.ts", "The stream URL 'ftp://10.0.0.5/a.ts' uses 'ftp', which the "
                            "recorder does not read; use one of rtsp, rtsps, rtsp+listen, "
                            "http, https, srt, rtmp, rtmps, udp, rtp, tcp."),
    (f"rtsp://admin:{SECRET}@/stream", "The stream URL 'rtsp://***@/stream' names no host; "
                                       "e.g. rtsp://user:password@10.0.0.5:554/stream1."),
    (f"rtsp://admin:{SECRET}@10.0.0.5:99999/s", "The stream URL 'rtsp://***@10.0.0.5:99999/s'"
                                               " has an invalid host or port; e.g. "
                                               "rtsp://user:password@10.0.0.5:554/stream1."),
    ("rtsp://10.0.0.5/my stream", "The stream URL 'rtsp://10.0.0.5/my stream' contains "
                                  "spaces or control characters; percent-encode them."),
    ("rtsp+listen://0.0.0.0/cam", "The stream URL 'rtsp+listen://0.0.0.0/cam' must name the "
                                  "port to listen on, e.g. rtsp+listen://0.0.0.0:8554/cam1."),
    ("", "The stream URL is empty; give one, e.g. rtsp://user:password@10.0.0.5:554/stream1."),
])
def test_a_malformed_stream_url_is_refused_with_one_sentence_and_changes_nothing(
        home: AppState, url: str, sentence: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidStreamUrlError) as raised:
        validate_stream_url(url)
    assert raised.value.message == sentence
    assert SECRET not in raised.value.message
    before, audited = _camera(home), _audit_count(home)
    assert main(["cameras", "set", "CAM-001", "--stream-url", url]) == 2
    err = capsys.readouterr().err
    assert " ".join(sentence.split()) in " ".join(err.split())
    assert SECRET not in err
    assert _camera(home) == before and _camera(home).stream_url is None
    assert _audit_count(home) == audited


def test_the_cli_sets_and_removes_a_stream_url_and_shows_it_redacted(
        home: AppState, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"rtsp://admin:{SECRET}@10.0.0.5:554/Streaming/101?token={SECRET}x"
    assert main(["cameras", "set", "CAM-001", "--stream-url", url]) == 0
    out = capsys.readouterr().out
    assert "rtsp://***@10.0.0.5:554/Streaming/101?token=***" in out and SECRET not in out
    assert _camera(home).stream_url == url
    assert main(["cameras", "status", "CAM-001", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["stream_url"] == redact_stream_url(url) and SECRET not in json.dumps(status)
    assert (status["state"], status["gaps_last_24h"]) == ("idle", [])
    with Session(home.engine) as session:
        details = [e.details for e in session.exec(select(AuditEvent)).all()]
    assert {"change": "stream_url", "camera_id": "CAM-001",
            "stream_url": redact_stream_url(url)}.items() <= details[-1].items()
    assert SECRET not in json.dumps(details)
    assert main(["cameras", "add", "--id", "CAM-002", "--name", "Podil", "--lat", "50.4",
                 "--lon", "30.5", "--agency", "police", "--stream-url",
                 f"http://u:{SECRET}@10.0.0.6/cam.ts"]) == 0
    assert SECRET not in capsys.readouterr().out
    assert main(["cameras", "set", "CAM-001", "--no-stream"]) == 0
    assert _camera(home).stream_url is None


@pytest.fixture
def admin(home: AppState) -> Iterator[TestClient]:
    app = create_app(home.settings, state=home)
    with Session(home.engine, expire_on_commit=False) as session:
        user = User(username="admin-city", agency="city", role=Role.ADMIN, password_hash="!")
        session.add(user)
        session.commit()
        session.refresh(user)
    app.dependency_overrides[get_current_user] = lambda: user
    with TestClient(app) as client:
        yield client


def test_the_api_takes_a_stream_url_but_never_gives_its_secrets_back(
        home: AppState, admin: TestClient) -> None:
    url = f"rtsp://admin:{SECRET}@10.0.0.5/stream1"
    answer = admin.put("/api/cameras/CAM-001/stream", json={"stream_url": url})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stream_url"] == "rtsp://***@10.0.0.5/stream1"
    for path in ("/api/cameras", "/api/cameras/CAM-001", "/api/cameras/CAM-001/status"):
        assert SECRET not in admin.get(path).text
    bad = admin.put("/api/cameras/CAM-001/stream", json={"stream_url": "nonsense"})
    assert bad.status_code == 422 and "is not a stream URL" in bad.text
    assert _camera(home).stream_url == url


def test_status_states_the_recorder_and_the_gaps_of_the_last_day(
        home: AppState, admin: TestClient) -> None:
    now = utcnow()
    with session_scope(home.engine) as session:
        session.add(RecorderState(camera_id="CAM-001", state="recording", message="Recording.",
                                  last_file_end_utc=now - timedelta(seconds=30),
                                  ingest_lag_s=4.5, bitrate_bps=512_000.0, fps=25.0,
                                  files_recorded=7))
        record_gap(session, camera_id="CAM-001", start=now - timedelta(hours=30),
                   end=now - timedelta(hours=29), reason="old")
        record_gap(session, camera_id="CAM-001", start=now - timedelta(hours=2),
                   end=now - timedelta(hours=2) + timedelta(seconds=90),
                   reason="The stream ended.")
    status = admin.get("/api/cameras/CAM-001/status").json()
    assert (status["state"], status["files_recorded"], status["fps"]) == ("recording", 7, 25.0)
    assert (status["bitrate_bps"], status["ingest_lag_s"]) == (512_000.0, 4.5)
    assert [g["reason"] for g in status["gaps_last_24h"]] == ["The stream ended."]
    assert status["gap_seconds_last_24h"] == pytest.approx(90, abs=0.01)
    assert admin.get("/api/cameras/CAM-404/status").status_code == 404


def test_status_gives_the_recorders_message_as_a_code_with_its_values(
        home: AppState, admin: TestClient) -> None:
    reason = gap_reason(GapReason.STREAM_TIMEOUT, "10")
    with session_scope(home.engine) as session:
        update_state(session, camera_id="CAM-001", state="reconnecting", worker="rec:1",
                     **said(StateMessage.RECONNECTING, reason=reason, delay=4.0,
                            attempt=2).row_fields())
    status = admin.get("/api/cameras/CAM-001/status").json()
    assert status["message"] == ("The stream did not answer within 10 s. Reconnecting in 4 s "
                                 "(attempt 2).")
    assert status["message_code"] == "reconnecting"
    assert status["message_args"] == {"reason": reason, "delay": "4", "attempt": "2",
                                      "reason_code": "stream_timeout", "reason_detail": "10"}
    with session_scope(home.engine) as session:  # a row from before codes, and one gone quiet
        row = session.get_one(RecorderState, "CAM-001")
        row.message_code, row.message_args, row.message = "", {}, "Recording."
    status = admin.get("/api/cameras/CAM-001/status").json()
    assert (status["message"], status["message_code"], status["message_args"]) == (
        "Recording.", "", {})
    with session_scope(home.engine) as session:
        session.get_one(RecorderState, "CAM-001").updated_at = utcnow() - timedelta(hours=1)
    status = admin.get("/api/cameras/CAM-001/status").json()
    assert (status["state"], status["message_code"]) == ("stale", "recorder_silent")
    assert status["message_args"]["worker"] == "rec:1"
    assert status["message"].startswith("The recorder (rec:1) has not reported since ")


def test_a_gap_reason_is_a_stable_code_the_api_returns_and_old_sentences_still_show(
        home: AppState, admin: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()
    with session_scope(home.engine) as session:
        record_gap(session, camera_id="CAM-001", start=now - timedelta(hours=3),
                   end=now - timedelta(hours=3) + timedelta(seconds=20),
                   reason=gap_reason(GapReason.STREAM_TIMEOUT, "10"))
        record_gap(session, camera_id="CAM-001", start=now - timedelta(hours=2),
                   end=now - timedelta(hours=2) + timedelta(seconds=5),
                   reason="The stream ended.")  # stored before codes: free text
        open_gap(session, camera_id="CAM-001", start=now - timedelta(minutes=1),
                 reason=gap_reason(GapReason.NO_RECORDER))
    status = admin.get("/api/cameras/CAM-001/status").json()
    assert [(g["reason_code"], g["reason_detail"], g["reason"])
            for g in status["gaps_last_24h"]] == [
        ("stream_timeout", "10", "The stream did not answer within 10 s."),
        (None, "The stream ended.", "The stream ended."),
        ("no_recorder", "", "No recorder was running for this camera.")]
    assert main(["cameras", "status"]) == 0  # the table lists each gap with its reason
    table = " ".join(capsys.readouterr().out.split())
    for sentence in ("The stream did not answer within 10 s.", "The stream ended.",
                     "No recorder was running for this camera.", "still open"):
        assert sentence in table
    window = admin.get("/api/cameras/CAM-001/gaps", params={
        "start": (now - timedelta(hours=4)).isoformat(), "end": now.isoformat()}).json()
    assert [g["reason_code"] for g in window] == ["stream_timeout", None, "no_recorder"]
    with Session(home.engine) as session:
        stored = session.exec(select(CameraGap.reason).order_by(col(CameraGap.start_utc))).all()
    assert stored == ["stream_timeout: 10", "The stream ended.", "no_recorder"]


@pytest.mark.parametrize(("stored", "parsed"), [
    ("stream_stopped: Invalid data found", (GapReason.STREAM_STOPPED, "Invalid data found")),
    ("recorder_stopped", (GapReason.RECORDER_STOPPED, "")),
    ("made_up_code: x", (None, "made_up_code: x")),  # an unknown code is free text
    ("The recorder was stopped.", (None, "The recorder was stopped.")),
])
def test_a_stored_reason_parses_to_its_code_or_stays_free_text(
        stored: str, parsed: tuple[GapReason | None, str]) -> None:
    assert parse_gap_reason(stored) == parsed


def test_the_stored_detail_is_one_short_line() -> None:
    assert gap_reason(GapReason.STREAM_STOPPED, "a\nb  " + "x" * 300) == (
        "stream_stopped: a b " + "x" * 196)


@pytest.mark.parametrize(("log", "returncode", "cause"), [
    (["rtsp://h/s: Connection timed out"], 1, (GapReason.STREAM_TIMEOUT, "5")),
    (["Connection refused"], 1, (GapReason.CONNECTION_REFUSED, "")),
    (["Server returned 401 Unauthorized"], 1, (GapReason.CREDENTIALS_REFUSED, "")),
    ([], 0, (GapReason.STREAM_ENDED, "")),
    (["", "Invalid data found when processing input"], 1,
     (GapReason.STREAM_STOPPED, "Invalid data found when processing input")),
])
def test_why_ffmpeg_stopped_is_a_code(log: list[str], returncode: int,
                                      cause: tuple[GapReason, str]) -> None:
    assert stop_cause(log, returncode=returncode, timeout_s=5) == cause


def test_gaps_near_a_clip_are_those_within_ten_minutes(home: AppState) -> None:
    clip_start = utcnow() - timedelta(hours=3)
    clip_end = clip_start + timedelta(minutes=1)
    with session_scope(home.engine) as session:
        record_gap(session, camera_id="CAM-001", start=clip_start - timedelta(minutes=15),
                   end=clip_start - timedelta(minutes=11), reason="too early")
        record_gap(session, camera_id="CAM-001", start=clip_start - timedelta(minutes=9),
                   end=clip_start - timedelta(minutes=8), reason="just before")
        open_gap(session, camera_id="CAM-001", start=clip_end + timedelta(minutes=5),
                 reason="still down")
    with Session(home.engine) as session:
        near = gaps_near(session, "CAM-001", clip_start, clip_end)
    assert [(g.reason, g.end_utc is None) for g in near] == [
        ("just before", False), ("still down", True)]
    assert near[0].seconds == 60.0 and near[0].to_dict()["reason"] == "just before"
    with session_scope(home.engine) as session:
        closed = close_gap(session, camera_id="CAM-001", end=clip_end + timedelta(minutes=6))
        assert closed is not None and closed.end_utc is not None
