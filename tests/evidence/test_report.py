"""The court report: catalogs, Ukrainian by default, English on request, people in custody,
and every page rendered to PNG (``pdftoppm``) and read back (``pdftotext``)."""

from __future__ import annotations

import json
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from evidence.report import ReportData, ReportPerson
from evidence.report_sections import actor_text
from evidence.report_text import (
    CATALOG_DIR,
    LANGUAGES,
    UnsupportedLanguageError,
    placeholders,
    report_text,
)
from storage.models.evidence import CustodyEntry
from tests.evidence.conftest import EvidenceWorld

BAG = "oko-KV-2026-001"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _report_pdf(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extract(f"{BAG}/data/report.pdf", into)
    return into / BAG / "data" / "report.pdf"


def _text(pdf: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                         capture_output=True, text=True).stdout
    return out.split("\f")[:-1]  # one chunk per page; the last is empty


def _flat(text: str) -> str:
    return " ".join(text.split())


def _export(world: EvidenceWorld, out: Path, *, lang: str) -> Path:
    return world.export(out, lang=lang).bundle_path


def test_catalogs_have_the_same_keys_placeholders_and_no_empty_text() -> None:
    catalogs = {lang: json.loads((CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))
                for lang in LANGUAGES}
    uk, en = catalogs["uk"], catalogs["en"]
    assert sorted(uk) == sorted(en) and len(uk) > 50
    for lang, messages in catalogs.items():
        empty = [key for key, text in messages.items() if not text.strip()]
        assert empty == [], (lang, empty)
    differing = [k for k in uk if placeholders(uk[k]) != placeholders(en[k])]
    assert differing == []
    assert "слідчі орієнтири, а не ідентифікація особи" in uk["lead.statement"]
    assert "investigative leads, not identifications" in en["lead.statement"]


def test_dates_are_written_the_ukrainian_way_with_utc_beside() -> None:
    moment = datetime(2026, 1, 25, 19, 0, 5, tzinfo=UTC)
    assert report_text("uk").when(moment, "Europe/Kyiv") == (
        "25.01.2026 21:00:05 EET (UTC+02:00), 19:00:05 UTC")
    assert report_text("en").when(moment, "Europe/Kyiv") == (
        "25 Jan 2026 21:00:05 EET (UTC+02:00), 19:00:05 UTC")
    late = datetime(2026, 7, 24, 22, 30, 0, 250000, tzinfo=UTC)  # the next day in Kyiv
    assert report_text("uk").when(late, "Europe/Kyiv") == (
        "25.07.2026 01:30:00 EEST (UTC+03:00), 24.07.2026 22:30:00.250 UTC")


def test_custody_actors_are_people_and_os_accounts_say_so() -> None:
    data = ReportData(
        case_number="K", case_title="t", legal_basis="b", investigator="i", agency="a",
        organisation="o", exporter="o.koval", export_time_utc=datetime.now(UTC),
        timezone="Europe/Kyiv", signer_fingerprint="", signer_subject="",
        evidence_digest="", clips=[], custody=[], verify_text="",
        people={"o.koval": ReportPerson(full_name="Олена Коваль", role="investigator",
                                        agency="Національна поліція")})
    uk, en = report_text("uk"), report_text("en")
    assert actor_text("o.koval", data, uk) == "Олена Коваль, слідчий, Національна поліція"
    assert actor_text("o.koval", data, en) == "Олена Коваль, investigator, Національна поліція"
    assert actor_text("cli:root", data, uk) == (
        "обліковий запис операційної системи «root» (не іменований користувач)")
    assert actor_text("cli:root", data, en) == (
        'operating-system account "root" (not a named user)')
    assert "автоматично" in actor_text("recorder", data, uk)
    assert "«gone»" in actor_text("gone", data, uk)


def test_report_is_ukrainian_by_default_and_its_pages_render(
        bundle_zip: Path, shared_world: EvidenceWorld, tmp_path: Path) -> None:
    pdf = _report_pdf(bundle_zip, tmp_path)
    pages = _text(pdf)
    text = _flat("\n".join(pages))
    assert "Звіт про докази — справа KV-2026-001" in _flat(pages[0])
    for label in ("Правова підстава", "Кліпи у пакеті", "Ланцюг зберігання",
                  "Як отримано кліпи", "Як перевірити пакет", "Електронний підпис звіту",
                  "слідчі орієнтири, а не ідентифікація особи"):
        assert label in text, label
    # 2026-11-24T10:00:01Z, the first clip's keyframe start, in Kyiv time with UTC beside
    assert "24.11.2026 12:00:01 EET (UTC+02:00), 10:00:01 UTC" in text
    assert "Олена Коваль, слідчий, police" in text  # who added the clips, who exported
    assert "«person with a red bicycle»" in text
    assert "Evidence report" not in text and "Chain of custody" not in text
    for number, page in enumerate(pages, start=1):
        assert f"сторінка {number} з {len(pages)}" in page
    report_signer = shared_world.signer.report  # the visible signature block on page 1
    assert report_signer is not None
    fingerprint = report_signer.fingerprint_sha256
    assert fingerprint[:32] in pages[0] and fingerprint[32:] in pages[0]
    assert "QR-код: цифровий відбиток доказів" in pages[0]

    assert len(render_pages(pdf, tmp_path / "pages")) == len(pages) >= 5


def render_pages(pdf: Path, into: Path) -> list[Path]:
    """Every page as a PNG (``pdftoppm``, 70 dpi), each checked to be a page with ink on it."""
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "70", str(pdf), str(into / "page")], check=True)
    images = sorted(into.glob("page-*.png"))
    for path in images:
        with Image.open(path) as image:
            grey = image.convert("L")
            dark = sum(grey.histogram()[:128])
            assert image.width < image.height and dark > 0.01 * image.width * image.height
    return images


def save_sample_pages(images: list[Path]) -> None:
    """The README's sample report: ``docs/screenshots/report-page-N.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("report-page-*.png"):
        old.unlink()
    for number, path in enumerate(images, start=1):
        path.replace(SCREENSHOTS / f"report-page-{number}.png")


def test_english_on_request(world: EvidenceWorld, tmp_path: Path) -> None:
    pages = _text(_report_pdf(_export(world, tmp_path / "en.zip", lang="en"), tmp_path))
    text = _flat("\n".join(pages))
    assert "Evidence report — case KV-2026-001" in text
    assert "investigative leads, not identifications" in text
    assert "24 Nov 2026 12:00:01 EET (UTC+02:00), 10:00:01 UTC" in text
    assert "Олена Коваль, investigator, police" in text and "Chain of custody" in text
    assert "Ланцюг зберігання" not in text and "сторінка" not in text
    assert f"page 1 of {len(pages)}" in pages[0]


def test_unknown_language_is_refused_before_anything_is_written(world: EvidenceWorld,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out" / "de.zip"
    out.parent.mkdir()
    with world.session() as session:
        before = len(session.exec(select(CustodyEntry)).all())
    with pytest.raises(UnsupportedLanguageError,
                       match=r"The report language 'de' is not available: choose uk "
                             r"\(Ukrainian\) or en \(English\)\."):
        _export(world, out, lang="de")
    with world.session() as session:
        assert len(session.exec(select(CustodyEntry)).all()) == before
    assert list(out.parent.iterdir()) == []  # no bundle, no .part
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []
