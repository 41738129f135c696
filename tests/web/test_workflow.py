"""The investigator -> prosecutor -> auditor path in Chromium against a live ``oko serve``.

Every page is checked with axe-core (no serious or critical violations) and saved to
docs/screenshots/ at 1366x768. The steps share one server and follow each other, as a
case does: search, moment, case, export, download, share and transfer, receipt,
verification (and a tampered bundle failing), then the auditor's view of it all.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect
from pypdf import PdfReader

from tests.web.conftest import CAMERA, PASSWORD, LiveServer, new_page
from tests.web.helpers import check_page, sign_in, wait_until

CASE_NUMBER = "12026-0125"


def _tamper(bundle: Path, out: Path) -> Path:
    """The same bundle with one byte of one clip flipped."""
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(out, "w") as target:
        flipped = False
        for item in source.infolist():
            data = source.read(item)
            if not flipped and "/data/" in f"/{item.filename}" and len(data) > 100:
                data = data[:50] + bytes([data[50] ^ 0xFF]) + data[51:]
                flipped = True
            target.writestr(item, data)
    assert flipped
    return out


def test_investigator_prosecutor_auditor_path(browser: Browser, live_server: LiveServer,
                                              tmp_path: Path) -> None:
    page = new_page(browser, live_server)
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    expect(page.locator("h1")).to_have_text("Вхід")
    check_page(page, "signin")
    sign_in(page, "ivan")

    # a case to put the moment in
    page.goto("/#/cases")
    page.locator("input[name=number]").fill(CASE_NUMBER)
    page.locator("input[name=title]").fill("Наїзд на пішохода")
    page.locator("input[name=legal_basis]").fill("ухвала слідчого судді")
    page.get_by_role("button", name="Створити").click()
    expect(page).to_have_url(re.compile(r"#/cases/\d+$"))
    case_url = page.url

    # search: "вночі" becomes a night chip taken from the query's words
    page.goto("/#/search")
    page.locator("#q").fill("машина вночі")
    page.locator("#purpose").fill(f"справа {CASE_NUMBER}")
    page.get_by_role("button", name="Шукати").click()
    expect(page.locator(".chip", has_text="ніч (із запиту)")).to_be_visible(timeout=120_000)
    expect(page.locator(".result").first).to_be_visible()
    expect(page.locator(".provenance")).to_contain_text("test-tiny")
    check_page(page, "search")
    assert "text=" in page.url  # the search is bookmarkable

    # the purpose is remembered for the next search
    page.goto("/#/cases")
    page.goto("/#/search")
    expect(page.locator("#purpose")).to_have_value(f"справа {CASE_NUMBER}")
    page.go_back()
    page.go_back()
    expect(page.locator(".result").first).to_be_visible()

    # open the moment and play it from there
    page.locator(".result a").first.click()
    expect(page).to_have_url(re.compile(r"#/moment/\d+\?search=\d+"))
    expect(page.locator(".plan")).to_be_visible()
    expect(page.locator(".plan-cam.here")).to_have_count(1)
    page.locator("#play-moment").click()
    wait_until(page, "document.querySelector('#player').currentTime > 0")
    start = page.evaluate("document.querySelector('#player').currentTime")
    wait_until(page, f"document.querySelector('#player').currentTime > {start + 0.3}")
    page.evaluate("document.querySelector('#player').pause()")
    check_page(page, "moment")

    # add it to the case with a note; the clip names the search it came from (other
    # tests of this live server may have made cases too: choose this one)
    page.locator("#case-select").select_option(value=case_url.rsplit("/", 1)[-1])
    page.locator("#clip-note").fill("Автомобіль з'являється о 21:00")
    page.get_by_role("button", name="Додати фрагмент").click()
    expect(page.locator("form.card [role=status]")).to_contain_text("додано")
    page.goto(case_url)
    expect(page.locator("table")).to_contain_text(CAMERA)
    expect(page.locator("table")).to_contain_text("з пошуку")

    # export with live progress (the report in Ukrainian unless English is chosen), then
    # download the bundle
    expect(page.locator("#export-lang")).to_have_value("uk")
    page.locator("#start-export").click()
    download_link = page.get_by_role("link", name=re.compile("Завантажити"))
    expect(download_link).to_be_visible(timeout=120_000)
    with page.expect_download() as info:
        download_link.click()
    bundle = tmp_path / "bundle.zip"
    info.value.save_as(bundle)
    assert zipfile.is_zipfile(bundle)
    with zipfile.ZipFile(bundle) as bag:
        report_name = next(n for n in bag.namelist() if n.endswith("data/report.pdf"))
        report = PdfReader(io.BytesIO(bag.read(report_name)))
    assert "слідчі орієнтири" in report.pages[0].extract_text()

    # share with the prosecutor and record the transfer of that bundle
    page.locator("#share-user").fill("petro")
    page.get_by_role("button", name="Надати доступ").click()
    expect(page.get_by_text("Доступ надано: petro")).to_be_visible()
    page.locator("#transfer-recipient").fill("petro")
    page.get_by_role("button", name="Записати передачу").click()
    expect(page.get_by_text("Передачу записано: petro")).to_be_visible()
    expect(page.locator(".timeline-list")).to_contain_text("передача")
    check_page(page, "case")
    page.context.close()

    # the prosecutor: the inbox, download, confirm receipt by uploading the bundle
    page = new_page(browser, live_server)
    sign_in(page, "petro")
    expect(page).to_have_url(re.compile("#/inbox"))
    expect(page.locator(".inbox")).to_contain_text(CASE_NUMBER)
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("Завантажити")).first.click()
    received = tmp_path / "received.zip"
    info.value.save_as(received)
    assert received.read_bytes() == bundle.read_bytes()
    check_page(page, "inbox")
    page.locator("input[type=file]").first.set_input_files(str(received))
    page.get_by_role("button", name="Підтвердити отримання").click()
    expect(page.get_by_text("Отримання записано.")).to_be_visible()
    expect(page.locator(".verdict h2")).to_contain_text("ДІЙСНИЙ")

    # verify: the bundle passes, a tampered copy fails
    page.goto("/#/verify")
    page.locator("#bundle-file").set_input_files(str(received))
    page.get_by_role("button", name="Перевірити").click()
    expect(page.locator(".verdict h2")).to_contain_text("ДІЙСНИЙ")
    expect(page.locator(".verdict")).to_contain_text("WebCrypto")
    # this server has no TSA, so the bundle carries no trusted time, and says so
    expect(page.locator(".trusted-time")).to_have_text(
        "немає: пакет не має позначки часу RFC 3161")
    check_page(page, "verify")
    page.locator("#bundle-file").set_input_files(str(_tamper(received, tmp_path / "bad.zip")))
    page.get_by_role("button", name="Перевірити").click()
    expect(page.locator(".verdict h2")).to_contain_text("НЕДІЙСНИЙ")
    expect(page.locator(".check-group .bad").first).to_be_visible()
    check_page(page, "verify-tampered")
    page.context.close()

    # the auditor sees the entries of all of the above
    page = new_page(browser, live_server)
    sign_in(page, "anna")
    expect(page).to_have_url(re.compile("#/audit"))
    table = page.locator("table.audit")
    for action in ("пошук", "зміна справи", "експорт", "завантаження", "перевірка",
                   "перегляд відео"):
        expect(table).to_contain_text(action)
    page.locator("select[name=action]").select_option("download")
    page.get_by_role("button", name="Застосувати").click()
    expect(page).to_have_url(re.compile(r"action=download"))
    expect(table.locator("tbody tr")).to_have_count(2)  # the investigator's and the prosecutor's
    page.locator("#verify-chain").click()
    expect(page.get_by_text(re.compile("Ланцюг цілий"))).to_be_visible()
    check_page(page, "audit")
    # the PDF report comes in the language the app is shown in
    with page.expect_download() as info:
        page.locator("a[href*='format=pdf']").click()
    audit_pdf = tmp_path / "audit.pdf"
    info.value.save_as(audit_pdf)
    assert "журнал аудиту" in PdfReader(audit_pdf).pages[0].extract_text()
    page.context.close()


def test_language_switch_persists_and_sets_html_lang(browser: Browser,
                                                     live_server: LiveServer) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "ivan")
    page.locator("#lang").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("link", name="Search")).to_be_visible()
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#signout")).to_have_text("Sign out")
    page.locator("#theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    check_page(page, "search-en-light")
    page.locator("#lang").select_option("uk")
    expect(page.locator("#signout")).to_have_text("Вийти")
    page.context.close()


def test_a_role_that_is_not_allowed_is_refused_in_the_ui_and_by_the_api(
        browser: Browser, live_server: LiveServer) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "petro")
    expect(page.get_by_role("link", name="Аудит")).to_have_count(0)
    page.goto("/#/audit")
    expect(page.locator("h1")).to_have_text("Доступ заборонено")
    expect(page.get_by_role("alert")).to_contain_text("прокурор")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    answer = httpx.get(f"{live_server.url}/api/audit/events", cookies=cookies)
    assert answer.status_code == 403 and answer.json()["code"] == "permission_denied"
    page.goto("/#/search")
    expect(page.locator("h1")).to_have_text("Доступ заборонено")
    page.context.close()


def test_admin_sees_model_status_users_and_cameras(browser: Browser,
                                                   live_server: LiveServer) -> None:
    page = new_page(browser, live_server)
    sign_in(page, "admin")
    expect(page).to_have_url(re.compile("#/admin"))
    expect(page.locator("#model-h")).to_be_visible()
    expect(page.get_by_text("встановлено", exact=True)).to_be_visible()
    expect(page.locator("table").first).to_contain_text("petro")
    expect(page.locator("table").nth(1)).to_contain_text(CAMERA)
    check_page(page, "admin")
    page.context.close()


def test_a_wrong_password_shows_the_catalog_sentence(browser: Browser,
                                                     live_server: LiveServer) -> None:
    page = new_page(browser, live_server)
    page.goto("/#/signin")
    page.locator("input[name=username]").fill("ivan")
    page.locator("input[name=password]").fill(PASSWORD + "x")
    page.locator("input[name=password]").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Неправильне ім'я або пароль")
    page.context.close()
