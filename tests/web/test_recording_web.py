"""Recording in the web app (issue 15): a camera's recording gaps on the moment page's
timeline and on the admin page, and an HEVC camera's segment playing in Chromium.

This module runs its own server. Into its data dir it writes two gap rows for the
shared footage's camera: one a few seconds after the footage (on the moment's
timeline; its reason a code, shown from the catalog) and one from the last 24 hours
(on the admin page; its reason an English sentence stored before codes, shown as is),
and one for the HEVC camera, so the admin page draws two strips. It also ingests 6 s
of HEVC (libx265 in Matroska, generated here) for a camera of its own. Chromium cannot
play that segment itself, so the player gets the H.264 playback proxy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect
from sqlmodel import Session, col, select

from indexer.ingest import IngestOptions, ingest_file
from indexer.recording.state import update_state
from indexer.samples import HEVC, day_scene, encode_scene
from search_api.state import build_state
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.gaps import GapReason, gap_reason, record_gap
from storage.media_copies import proxy_record_path
from storage.models.access import Role
from storage.models.media import Frame, Original, Segment
from storage.models.recording import RecorderState
from storage.settings import Settings
from storage.state_messages import StateMessage, said
from storage.types import utcnow
from tests.web.conftest import (
    CAMERA,
    CAPTURE_START,
    PASSPHRASE,
    USERS,
    LiveServer,
    new_page,
    running_server,
)
from tests.web.helpers import check_page, serious_violations, sign_in, wait_until

HEVC_CAMERA = "CAM-HEVC"
GAP_REASON = gap_reason(GapReason.STREAM_TIMEOUT, "10")
GAP_REASON_UK = "Потік не відповів протягом 10 с."
RECENT_REASON = "The camera does not answer."


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("web-recording") / "oko-home") as server:
        yield server


@pytest.fixture(scope="module")
def world(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, Any]]:
    """The gap rows and the HEVC camera's ingested clip; the frame ids to open."""
    state = build_state(Settings(home=live_server.home, environment="test",
                                 key_passphrase=PASSPHRASE))
    now = utcnow()
    with session_scope(state.engine) as session:
        record_gap(session, camera_id=CAMERA, start=CAPTURE_START + timedelta(seconds=14),
                   end=CAPTURE_START + timedelta(minutes=4, seconds=14), reason=GAP_REASON)
        record_gap(session, camera_id=CAMERA, start=now - timedelta(hours=2),
                   end=now - timedelta(hours=2) + timedelta(minutes=30),
                   reason=RECENT_REASON)
        add_camera(session, camera=validate_camera(
            id=HEVC_CAMERA, name="Поштова площа", district="Подільський", latitude=50.459,
            longitude=30.525, agency="police"))
    clip = tmp_path_factory.mktemp("hevc") / "CAM-HEVC.mkv"
    encode_scene(out=clip, graph=day_scene(320, 180, 6), codec_args=HEVC)
    with session_scope(state.engine) as session:  # a second strip on the admin page
        record_gap(session, camera_id=HEVC_CAMERA, start=now - timedelta(hours=5),
                   end=now - timedelta(hours=5) + timedelta(minutes=10),
                   reason=gap_reason(GapReason.CONNECTION_REFUSED))
    outcome = ingest_file(engine=state.engine, originals=state.originals,
                          derived=state.derived, path=clip, camera_id=HEVC_CAMERA,
                          start=CAPTURE_START, options=IngestOptions(sample_interval_seconds=2.0))
    assert outcome.frame_count
    silent_since = (now - timedelta(hours=1)).replace(microsecond=0)
    with session_scope(state.engine) as session:  # its recorder went silent an hour ago
        update_state(session, camera_id=HEVC_CAMERA, state="recording", worker="rec-7:4242",
                     **said(StateMessage.RECORDING, url="rtsp://10.0.0.7/live").row_fields())
        session.get_one(RecorderState, HEVC_CAMERA).updated_at = silent_since
    with Session(state.engine) as session:
        night = session.exec(select(Frame).where(Frame.camera_id == CAMERA)
                             .order_by(col(Frame.id))).first()
        hevc = session.exec(select(Frame).where(Frame.camera_id == HEVC_CAMERA)
                            .order_by(col(Frame.id))).first()
        original = session.exec(select(Original).where(
            Original.camera_id == HEVC_CAMERA)).one()
        assert original.video_codec == "hevc"
        assert night is not None and night.id and hevc is not None and hevc.id
        segment = session.get(Segment, hevc.segment_id)
        assert segment is not None
    state.engine.dispose()
    yield {"night_frame": night.id, "hevc_frame": hevc.id, "hevc_segment": segment.sha256,
           "silent_since": silent_since}


def test_a_recorded_gap_is_a_hatched_band_on_the_moment_timeline(
        browser: Browser, live_server: LiveServer, world: dict[str, Any]) -> None:
    page = new_page(browser, live_server)
    sign_in(page, USERS[Role.INVESTIGATOR])
    page.goto(f"/#/moment/{world['night_frame']}")
    band = page.locator("svg.timeline rect.gap")
    expect(band).to_have_count(1)  # the one near the footage, not last night's
    label = band.get_attribute("aria-label") or ""
    # Ukrainian first, times in the camera's zone (Kyiv, UTC+2 in January)
    assert label.startswith("Пропуск запису з 25.01.2026 21:00:14 до 25.01.2026 21:04:14")
    assert "(4 хв)" in label and label.endswith(f": {GAP_REASON_UK}")
    expect(page.locator("#gap-detail")).to_contain_text("Пропусків запису на шкалі: 1")
    band.focus()  # keyboard: the band takes focus and its sentence is read out
    assert page.evaluate("document.activeElement.classList.contains('gap')")
    expect(page.locator("#gap-detail")).to_have_text(label)
    assert band.locator("title").text_content() == label  # the hover text
    check_page(page, "moment-gap")
    page.context.close()


def test_the_admin_page_states_the_gaps_of_the_last_day(
        browser: Browser, live_server: LiveServer, world: dict[str, Any]) -> None:
    page = new_page(browser, live_server, lang="en")
    sign_in(page, "admin")
    page.goto("/#/admin")
    row = page.locator("tr", has=page.locator("td.mono", has_text=CAMERA))
    expect(row.locator(".gap-summary")).to_have_text("Gaps in the last 24 h: 1, 30 min in all")
    band = row.locator("rect.gap")
    expect(band).to_have_count(1)
    band.hover()
    expect(row.locator(".gap-strip [role=status]")).to_contain_text(RECENT_REASON)
    podil = page.locator("tr", has=page.locator("td.mono", has_text="CAM-PODIL"))
    expect(podil.locator(".gap-summary")).to_have_text("No gaps in the last 24 h")
    hevc = page.locator("tr", has=page.locator("td.mono", has_text=HEVC_CAMERA))
    hevc.locator("rect.gap").hover()
    expect(hevc.locator(".gap-strip [role=status]")).to_contain_text(
        "The stream refused the connection.")
    # each strip has its own hatch pattern, and no id is used twice in the page
    expect(page.locator(".gap-strip svg pattern")).to_have_count(2)
    ids = page.evaluate("[...document.querySelectorAll('[id]')].map((e) => e.id)")
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    fills = page.eval_on_selector_all(".gap-strip rect.gap",
                                      "(r) => r.map((e) => e.getAttribute('fill'))")
    patterns = page.eval_on_selector_all(".gap-strip svg pattern", "(p) => p.map((e) => e.id)")
    assert sorted(fills) == sorted(f"url(#{i})" for i in patterns)  # each names its own
    assert serious_violations(page) == []
    page.context.close()


def test_the_admin_page_says_what_went_wrong_with_a_recorder_in_ukrainian(
        browser: Browser, live_server: LiveServer, world: dict[str, Any]) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "admin")
    page.goto("/#/admin")
    hevc = page.locator("tr", has=page.locator("td.mono", has_text=HEVC_CAMERA))
    expect(hevc.locator("span.bad")).to_have_text("немає звісток від записувача")
    # from the catalog by its code, the time in the camera's zone (Kyiv)
    since = world["silent_since"].astimezone(ZoneInfo("Europe/Kyiv"))
    expect(hevc.locator("td div.hint").first).to_have_text(
        f"Записувач (rec-7:4242) не звітує з {since:%d.%m.%Y %H:%M:%S}.")
    hevc.scroll_into_view_if_needed()
    check_page(page, "admin-recorder-state")
    page.context.close()


def test_an_hevc_cameras_segment_plays_in_chromium_through_the_proxy(
        browser: Browser, live_server: LiveServer, world: dict[str, Any]) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "ivan")
    page.goto(f"/#/moment/{world['hevc_frame']}")
    expect(page.locator("#player")).to_be_visible()
    support = page.evaluate("""(() => { const v = document.createElement('video'); return {
        h264: v.canPlayType('video/mp4; codecs="avc1.64001f"'),
        hevc: v.canPlayType('video/mp4; codecs="hvc1.1.6.L93.B0"'),
        mkv: v.canPlayType('video/x-matroska; codecs="hvc1"')}; })()""")
    print("chromium canPlayType:", json.dumps(support))
    assert support["h264"] in ("probably", "maybe")  # what the proxy is
    page.locator("#play-moment").click()
    wait_until(page, "document.querySelector('#player').readyState >= 2", timeout_s=120)
    start = page.evaluate("document.querySelector('#player').currentTime")
    wait_until(page, f"document.querySelector('#player').currentTime > {start + 0.3}")
    assert page.evaluate("document.querySelector('#player').error") is None
    size = page.evaluate("[document.querySelector('#player').videoWidth,"
                         " document.querySelector('#player').videoHeight]")
    assert size == [320, 180]
    page.evaluate("document.querySelector('#player').pause()")
    # what played is the proxy: recorded as derived from the HEVC segment
    state = build_state(Settings(home=live_server.home, environment="test",
                                 key_passphrase=PASSPHRASE))
    record = json.loads(proxy_record_path(state.derived, world["hevc_segment"]).read_text())
    state.engine.dispose()
    assert record["profile"] == "playback-proxy" and record["derived"] is True
    assert record["source_sha256"] == world["hevc_segment"]
    page.context.close()
