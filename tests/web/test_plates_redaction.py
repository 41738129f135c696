"""The plates and redaction pages in Chromium against the live ``oko serve``.

The shared test data has no plates, so this module renders its own: one car with plate
AE 1234 KX passing camera CAM-P01 and, a minute later, CAM-P02 (rendered by
``indexer.plates.footage``), ingested into the server's data dir and read with the real
PP-OCRv4 reader (6 frames, so few OCR calls). An administrator puts the plate on the
watch list first, so reading it raises events. The redaction test proposes a redaction
of a 2-second clip of that footage (the detectors run on all of its frames).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlmodel import Session, select

from indexer.ingest import IngestOptions, ingest_file
from indexer.plates.footage import PlatePass, write_plate_clip
from search_api.state import build_state
from search_api.usecases.plate_watch import read_waiting_plates
from search_api.usecases.plates import NO_MODEL_NOTE
from storage.cameras import add_camera, validate_camera
from storage.models.plates import PlateSighting
from storage.models.redaction import Redaction
from storage.settings import Settings
from tests.web.conftest import PASSPHRASE, LiveServer, new_page, running_server
from tests.web.helpers import check_page, sign_in

PLATE = "AE1234KX"
PASSED_AT = {"CAM-P01": datetime(2026, 1, 25, 10, 0, tzinfo=UTC),
             "CAM-P02": datetime(2026, 1, 25, 10, 1, tzinfo=UTC)}
PURPOSE = "справа 12026-0777"


def _api(page: Page, server: LiveServer) -> httpx.Client:
    """An httpx client with the page's session cookie and CSRF header."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return httpx.Client(base_url=server.url, cookies=cookies,
                        headers={"X-CSRF-Token": cookies.get("oko_csrf", "")}, timeout=60)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's own server: the plates, cases and downloads it adds must not change
    what the workflow test counts on its server."""
    with running_server(tmp_path_factory.mktemp("web-plates") / "oko-home") as server:
        yield server


@pytest.fixture(scope="module")
def plate_footage(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Path]:
    """Two cameras and a plate clip for each, ingested (not yet read) in the server's data."""
    folder = tmp_path_factory.mktemp("plates")
    settings = Settings(home=live_server.home, environment="test", key_passphrase=PASSPHRASE)
    state = build_state(settings)
    # not byte-identical: content-addressed ingest would take two copies for one recording
    clips = {camera_id: write_plate_clip(
        folder / f"{camera_id}.mp4", seconds=6,
        passes=[PlatePass(PLATE, 0.5, 5.5, plate_width=120 - 4 * number)])
        for number, camera_id in enumerate(PASSED_AT)}
    with Session(state.engine) as session:
        for number, (camera_id, _at) in enumerate(PASSED_AT.items()):
            add_camera(session, camera=validate_camera(
                id=camera_id, name=f"В'їзд {number + 1}", district="Подільський",
                latitude=50.46 + number * 0.01, longitude=30.51, agency="police"))
        session.commit()
    for camera_id, at in PASSED_AT.items():
        ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                    path=clips[camera_id], camera_id=camera_id, start=at,
                    options=IngestOptions(sample_interval_seconds=2.0))
    state.engine.dispose()
    yield folder


def _read_plates(server: LiveServer) -> list[int]:
    state = build_state(Settings(home=server.home, environment="test",
                                 key_passphrase=PASSPHRASE))
    try:
        report, events = read_waiting_plates(state)
        assert report.frames_read >= 2
        with Session(state.engine) as session:
            plates = {s.camera_id: s.plate for s in session.exec(select(PlateSighting))
                      if s.camera_id in PASSED_AT}  # the shared test pattern may read too
        assert plates == {"CAM-P01": PLATE, "CAM-P02": PLATE}
        return events
    finally:
        state.engine.dispose()


def test_watch_list_plate_search_journey_and_events(
        browser: Browser, live_server: LiveServer, plate_footage: Path) -> None:
    # the administrator lists the plate; a past expiry is refused and lists nothing
    page = new_page(browser, live_server)
    sign_in(page, "admin")
    page.get_by_role("link", name="Список стеження").click()
    expect(page.locator("h1")).to_have_text("Список стеження")
    expect(page.get_by_text("Список порожній.")).to_be_visible()
    page.locator("#watch-plate").fill("АЕ 1234 КХ")  # Cyrillic, as a witness would type it
    page.locator("#watch-reason").fill("орієнтування 12026-0777")
    page.locator("#watch-expires").fill("2020-01-01T10:00")
    page.get_by_role("button", name="Додати до списку").click()
    expect(page.locator("[role=alert]:not(:empty)")).to_contain_text("expiry")
    expect(page.get_by_text("Список порожній.")).to_be_visible()
    later = (datetime.now() + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M")
    page.locator("#watch-expires").fill(later)
    page.get_by_role("button", name="Додати до списку").click()
    expect(page.get_by_text("Додано: AE 1234 KX")).to_be_visible()
    expect(page.locator("table.watchlist tbody tr")).to_have_count(1)
    expect(page.locator("table.watchlist")).to_contain_text("діє")
    # the same plate again is refused with the server's sentence, still one row
    page.get_by_role("button", name="Додати до списку").click()
    expect(page.locator("[role=alert]:not(:empty)")).to_contain_text("already")
    expect(page.locator("table.watchlist tbody tr")).to_have_count(1)
    check_page(page, "watchlist")
    page.context.close()

    # the worker's plate step, as it runs after ingest: both passes raise an event
    assert len(_read_plates(live_server)) == 2

    page = new_page(browser, live_server)
    sign_in(page, "ivan")
    page.get_by_role("link", name="Номери").click()
    expect(page.locator("h1")).to_have_text("Пошук номерів")
    events = page.locator("table.plate-events tbody tr")
    expect(events).to_have_count(2)
    expect(page.locator("table.plate-events")).to_contain_text("орієнтування 12026-0777")

    # a witness's partial plate: a wildcard search finds both sightings, crops load
    page.locator("#plate").fill("AE12??KX")
    page.locator("#plate-purpose").fill(PURPOSE)
    page.get_by_role("button", name="Шукати номер").click()
    hits = page.locator(".plate-hit")
    expect(hits).to_have_count(2, timeout=60_000)
    expect(hits.first).to_contain_text("AE 1234 KX")
    expect(hits.first.locator(".badge")).to_have_text("за шаблоном")
    expect(hits.first).to_contain_text("впевненість")
    assert "plate=AE12" in page.url  # bookmarkable
    page.wait_for_load_state("networkidle")
    assert page.evaluate(
        "[...document.querySelectorAll('.plate-hit img')].every(i => i.naturalWidth > 0)")
    check_page(page, "plates")

    # one plate across cameras, in time order
    hits.first.locator(".journey-link").click()
    expect(page).to_have_url(re.compile(rf"#/plates/{PLATE}\?purpose="))
    expect(page.locator(".journey li")).to_have_count(2)
    expect(page.locator(".journey-path")).to_have_text("CAM-P01 → CAM-P02")
    assert [li.get_attribute("data-camera") for li in page.locator(".journey li").all()] == [
        "CAM-P01", "CAM-P02"]
    check_page(page, "plate-journey")

    # a query that is not a plate gets the server's sentence and no results
    page.goto("/#/plates")
    page.locator("#plate").fill("!!")
    page.locator("#plate-purpose").fill(PURPOSE)
    page.get_by_role("button", name="Шукати номер").click()
    expect(page.locator(".search-main [role=alert]:not(:empty)")).to_be_visible()
    expect(page.locator(".plate-hit")).to_have_count(0)
    page.context.close()


def test_redact_a_clip_review_approve_and_export(
        browser: Browser, live_server: LiveServer, plate_footage: Path, tmp_path: Path) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "ivan")
    client = _api(page, live_server)
    case = client.post("/api/cases", json={"number": "12026-0778", "title": "Викрадення",
                                           "legal_basis": "ухвала слідчого судді"})
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    start = PASSED_AT["CAM-P01"] + timedelta(seconds=1)
    added = client.post(f"/api/cases/{case_id}/clips", json={
        "camera_id": "CAM-P01", "start_utc": start.isoformat(),
        "end_utc": (start + timedelta(seconds=2)).isoformat()})
    assert added.status_code == 201, added.text

    page.goto(f"/#/cases/{case_id}")
    page.locator(".redact-link").first.click()
    expect(page).to_have_url(re.compile(rf"#/cases/{case_id}/redact/1$"))
    # exporting before any redaction is refused, and no bundle is offered
    page.locator("#export-disclosure").click()
    expect(page.locator("aside [role=alert]:not(:empty)")).to_be_visible()
    expect(page.locator("#download-disclosure")).to_have_count(0)

    page.locator("#redact-targets").select_option("faces,plates")
    page.locator("#propose").click()
    rows = page.locator("table.tracks tbody tr")
    expect(rows.first).to_be_visible(timeout=300_000)
    plate_row = page.locator("table.tracks tbody tr[data-track^=plate]").first
    expect(plate_row).to_contain_text("приховано")
    track_id = plate_row.get_attribute("data-track")

    # leaving a track visible needs a reason: refused, nothing recorded
    plate_row.get_by_role("button", name="Залишити видимим").click()
    expect(page.locator(".redaction-page [role=alert]:not(:empty)")).to_be_visible()
    expect(page.get_by_text("Рішень ще немає.")).to_be_visible()
    plate_row = page.locator(f"table.tracks tbody tr[data-track='{track_id}']")
    plate_row.locator("input.reason").fill("номер авто підозрюваного, копія для суду")
    plate_row.get_by_role("button", name="Залишити видимим").click()
    expect(plate_row).to_contain_text("видимий")
    expect(page.locator(".decisions li")).to_have_count(1)

    # the tracks are outlined over the preview at its second: the excluded one dashed
    proposed = client.get(f"/api/cases/{case_id}/redactions").json()[-1]
    plate_track = next(t for t in proposed["tracks"] if t["id"] == track_id)
    fps = Fraction(proposed["fps"])
    page.locator("#preview-at").fill(f"{float(plate_track['first_frame'] / fps) + 0.01:.2f}")
    page.locator("#refresh-preview").click()
    outline = page.locator(f"#track-overlay rect[data-track='{track_id}']")
    expect(outline).to_have_class(re.compile(r"\bexcluded\b"))
    page.locator("#show-tracks").uncheck()
    expect(page.locator("#track-overlay")).to_have_attribute("visibility", "hidden")
    page.locator("#show-tracks").check()
    page.locator(f"#track-overlay text[data-track='{track_id}']").click()
    expect(page.locator(f"#reason-{track_id}")).to_be_focused()

    # a box drawn on the preview fills the typed coordinates, then it is recorded
    preview = page.locator("#preview")
    box = preview.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4, steps=4)
    page.mouse.up()
    width = int(page.locator("#box-w").input_value())
    assert 0.15 * 448 < width < 0.25 * 448
    # first a box outside the frame: refused, still one decision
    page.locator("#box-x").fill("440")
    page.locator("#box-reason").fill("номер будинку")
    page.locator("#add-box").click()
    expect(page.locator("#add-box ~ [role=alert]:not(:empty)")).to_be_visible()
    expect(page.locator(".decisions li")).to_have_count(1)
    page.locator("#box-x").fill("40")
    page.locator("#add-box").click()
    expect(page.locator(".decisions li")).to_have_count(2)
    expect(page.locator(".decisions")).to_contain_text("рамка вручну")
    expect(page.locator(".decisions")).to_contain_text("40,")
    expect(page.locator(".decisions")).not_to_contain_text("undefined")
    expect(page.locator("#track-overlay rect.manual")).to_have_attribute("x", "40")
    page.locator("#preview-at").fill("1")
    page.locator("#refresh-preview").click()
    page.evaluate("window.scrollTo(0, 0)")
    check_page(page, "redaction")

    page.locator("#approve-redaction").click()
    expect(page.locator("#redaction-status")).to_have_text("затверджено")
    expect(page.locator("#add-box")).to_have_count(0)
    page.locator("#disclose-redact").select_option("faces,plates")
    page.locator("#export-disclosure").click()
    download = page.locator("#download-disclosure")
    expect(download).to_be_visible(timeout=300_000)
    with page.expect_download() as info:
        download.click()
    bundle = tmp_path / "disclosure.zip"
    info.value.save_as(bundle)
    assert zipfile.is_zipfile(bundle)
    page.context.close()

    state = build_state(Settings(home=live_server.home, environment="test",
                                 key_passphrase=PASSPHRASE))
    try:
        with Session(state.engine) as session:
            rows_ = session.exec(select(Redaction).where(Redaction.case_id == case_id)).all()
        assert [r.status for r in rows_] == ["approved"]
    finally:
        state.engine.dispose()


def _plates_read(server: LiveServer) -> None:
    """The plates of this module's footage read (by the first test, or here when run
    alone)."""
    state = build_state(Settings(home=server.home, environment="test",
                                 key_passphrase=PASSPHRASE))
    try:
        read_waiting_plates(state)
        with Session(state.engine) as session:
            assert {s.camera_id for s in session.exec(select(PlateSighting))
                    if s.plate == PLATE} == set(PASSED_AT)
    finally:
        state.engine.dispose()


def _search_plate(page: Page, plate: str, text: str) -> None:
    page.locator("#plate").fill(plate)
    page.locator("#plate-text").fill(text)
    page.locator("#plate-purpose").fill(PURPOSE)
    page.get_by_role("button", name="Шукати номер").click()


def test_plate_search_with_a_description(browser: Browser, live_server: LiveServer,
                                         plate_footage: Path) -> None:
    _plates_read(live_server)
    page = new_page(browser, live_server)
    sign_in(page, "ivan")
    sent: list[dict[str, object]] = []
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.url.endswith("/api/plates/search") else None)
    page.goto("/#/plates")
    expect(page.locator("label[for=plate-text]")).to_have_text("Опис (необов'язково)")

    # words with a plate: sent as text; this server has the tests' CLIP model, so they rank
    _search_plate(page, "AE12??KX", "червоне авто")
    hits = page.locator(".plate-hit")
    expect(hits).to_have_count(2, timeout=60_000)
    expect(page.locator(".text-note")).to_have_text(
        "Упорядковано за описом «червоне авто» (CLIP).")
    assert sent[-1]["text"] == "червоне авто" and sent[-1]["plate"] == "AE12??KX"
    assert "text=" in page.url  # bookmarkable with the description
    check_page(page, "plates-text")

    # a time of day in the description filters: the car passed at noon, none at night
    _search_plate(page, "AE12??KX", "червоне авто вночі")
    expect(page.locator(".search-main > .status")).to_contain_text("Знайдено: 0")
    expect(hits).to_have_count(0)
    expect(page.locator(".text-note").first).to_have_text("З опису: вночі.")
    assert sent[-1]["text"] == "червоне авто вночі"

    # where the API says the text was not applied (a data dir with no CLIP model), the
    # page says so: the real answer, with the server's no-model fields as it sends them
    def without_model(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        text = body["provenance"]["text"]
        body["provenance"].update(text_applied=False, clip_preset=None,
                                  text_not_applied=NO_MODEL_NOTE.format(text=text))
        route.fulfill(response=response, json=body)

    page.route("**/api/plates/search", without_model)
    _search_plate(page, "AE12??KX", "біле авто")
    expect(hits).to_have_count(2, timeout=60_000)
    expect(page.locator(".text-note")).to_have_text(
        "Модель CLIP не встановлено, тому опис «біле авто» не застосовано: номери "
        "впорядковано за збігом.")
    page.context.close()
