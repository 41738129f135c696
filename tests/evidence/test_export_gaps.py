"""Recording gaps within ten minutes of a clip go into the bundle: the export entry's
clip facts (so the signature covers them) and the PDF, so a court sees what was not
recorded as well as what was (issue 15)."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pypdf

from storage.gaps import GapReason, close_gap, gap_reason, open_gap
from tests.evidence.conftest import RECORDING_START, EvidenceWorld


def _export_entry_clips(bundle: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(bundle) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data/custody.jsonl"))
        records = [json.loads(line) for line in archive.read(name).decode().splitlines()]
    return [r for r in records if r["action"] == "export"][-1]["details"]["clips"]


def _pdf_text(bundle: Path) -> str:
    with zipfile.ZipFile(bundle) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data/report.pdf"))
        with archive.open(name) as handle:
            return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(handle).pages)
                            .split())


def test_gaps_near_a_clip_are_stated_and_far_ones_are_not(world: EvidenceWorld,
                                                         tmp_path: Path) -> None:
    with world.session() as session:
        open_gap(session, camera_id="cam-1", start=RECORDING_START - timedelta(minutes=4),
                 reason="The stream did not answer.")  # stored before codes: free text
        close_gap(session, camera_id="cam-1", end=RECORDING_START - timedelta(minutes=3))
        open_gap(session, camera_id="cam-1", start=RECORDING_START - timedelta(hours=2),
                 reason="far away")
        close_gap(session, camera_id="cam-1", end=RECORDING_START - timedelta(hours=1))
        session.commit()
    bundle = world.export(tmp_path / "gaps.zip").bundle_path
    clips = _export_entry_clips(bundle)
    assert [len(c["recording_gaps"]) for c in clips] == [1, 1]  # type: ignore[arg-type]
    gap = clips[0]["recording_gaps"][0]  # type: ignore[index]
    assert gap["reason"] == "The stream did not answer." and gap["seconds"] == 60
    text = _pdf_text(bundle)
    assert "не записано з" in text and "The stream did not answer." in text
    assert "far away" not in text


def _coded_gap(world: EvidenceWorld) -> None:
    with world.session() as session:
        open_gap(session, camera_id="cam-1", start=RECORDING_START - timedelta(minutes=6),
                 reason=gap_reason(GapReason.STREAM_TIMEOUT, "10"))
        close_gap(session, camera_id="cam-1", end=RECORDING_START - timedelta(minutes=5))
        session.commit()


def test_a_gap_reason_code_is_stated_in_the_reports_language(world: EvidenceWorld,
                                                             tmp_path: Path) -> None:
    _coded_gap(world)
    uk = world.export(tmp_path / "uk.zip").bundle_path
    gap = _export_entry_clips(uk)[0]["recording_gaps"][0]  # type: ignore[index]
    assert (gap["reason_code"], gap["reason_detail"], gap["reason"]) == (
        "stream_timeout", "10", "The stream did not answer within 10 s.")
    text = _pdf_text(uk)
    assert "потік не відповів протягом 10 с" in text
    assert "stream_timeout" not in text and "did not answer" not in text
    en = _pdf_text(world.export(tmp_path / "en.zip", lang="en").bundle_path)
    assert "the stream did not answer within 10 s" in en and "stream_timeout" not in en


def test_a_clip_without_gaps_says_none_were_recorded(world: EvidenceWorld,
                                                    tmp_path: Path) -> None:
    bundle = world.export(tmp_path / "no-gaps.zip").bundle_path
    assert all(c["recording_gaps"] == [] for c in _export_entry_clips(bundle))
    assert "не зафіксовано (пропуски фіксуються для камер" in _pdf_text(bundle)
