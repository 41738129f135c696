"""The API's export request takes the report's language: uk by default, en on request,
anything else refused with 422 and one sentence, nothing written."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_api.state import AppState
from search_api.tasks.evidence import export_case_task
from tests.search_api.case_world import CLIP_1, CaseWorld, build_case_world


@pytest.fixture
def world(state: AppState, tmp_path: Path) -> Iterator[CaseWorld]:
    built = build_case_world(state, tmp_path)
    yield built
    built.client.close()


def _report_text(world: CaseWorld, case_id: int, export_id: int, tmp_path: Path) -> str:
    export_case_task(export_id)
    download = world.as_("owner").get(f"/api/cases/{case_id}/exports/{export_id}/download")
    assert download.status_code == 200, download.text
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        [name] = [n for n in archive.namelist() if n.endswith("data/report.pdf")]
        pdf = tmp_path / f"report-{export_id}.pdf"
        pdf.write_bytes(archive.read(name))
    return subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_export_language_default_english_and_refused(world: CaseWorld,
                                                     tmp_path: Path) -> None:
    case_id = world.new_case("KV-1", CLIP_1)
    owner = world.as_("owner")
    before = world.snapshot()
    refused = owner.post(f"/api/cases/{case_id}/exports", json={"lang": "de"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "unsupported_language"
    assert refused.json()["detail"] == ("The report language 'de' is not available: choose "
                                        "uk (Ukrainian) or en (English).")
    after = world.snapshot()
    assert (after.exports, after.custody, after.audit["export"]) == (
        before.exports, before.custody, before.audit["export"])

    default = owner.post(f"/api/cases/{case_id}/exports")
    assert default.status_code == 202 and default.json()["lang"] == "uk"
    english = owner.post(f"/api/cases/{case_id}/exports", json={"lang": "en"})
    assert english.status_code == 202 and english.json()["lang"] == "en"
    uk_text = _report_text(world, case_id, default.json()["id"], tmp_path)
    en_text = _report_text(world, case_id, english.json()["id"], tmp_path)
    assert "Звіт про докази" in uk_text and "Ланцюг зберігання" in uk_text
    assert "Evidence report" in en_text and "Chain of custody" in en_text
