"""The disclosure bundle's PDF: every page stamped ЗНЕОСОБЛЕНА КОПІЯ (redacted copy).

Built with the evidence report's fonts, styles and "page N of M" footer with the
evidence digest (``evidence.report``); it lists, per clip, what was masked (tracks by
kind, manual boxes with their reasons, excluded tracks with theirs), the detectors and
their model hashes, and the original's acquisition hash. It shows only redacted stills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, PageBreak, Preformatted, SimpleDocTemplate, Spacer

from evidence.report_base import (
    FONT_BOLD,
    ReportStyles,
    footer_canvas,
    key_value_table,
    para,
    register_fonts,
)
from evidence.report_text import DEFAULT_LANGUAGE, ReportText, report_text

STAMP = "ЗНЕОСОБЛЕНА КОПІЯ"


@dataclass(frozen=True)
class RedactedClipReport:
    number: int
    camera: str
    original_filename: str
    original_sha256: str
    acquisition_entry_hash: str | None
    source_clip_sha256: str
    clip_path: str
    clip_sha256: str
    still_path: Path
    start_utc: datetime
    end_utc: datetime
    timezone: str
    style: str
    mute_audio: bool
    summary: dict[str, Any]
    detectors: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DisclosureReportData:
    case_number: str
    case_title: str
    agency: str
    organisation: str
    exporter: str
    export_time_utc: datetime
    timezone: str
    redact: list[str]
    signer_fingerprint: str
    evidence_digest: str
    clips: list[RedactedClipReport]
    verify_text: str
    lang: str = DEFAULT_LANGUAGE


def _stamped_canvas(case_number: str, digest: str, words: ReportText) -> type[Canvas]:
    base = footer_canvas(case_number, digest, words)
    stamp_line = words.t("disclosure.stamp_line")

    class StampedCanvas(base):  # type: ignore[valid-type,misc]  # a class made at run time
        def showPage(self) -> None:
            self.saveState()
            self.setFillColor(colors.Color(0.75, 0, 0))
            self.setFont(FONT_BOLD, 11)
            self.drawString(18 * mm, A4[1] - 10 * mm, stamp_line)
            self.restoreState()
            super().showPage()

    return StampedCanvas


def _masked_text(clip: RedactedClipReport, words: ReportText) -> str:
    s = clip.summary
    faces = (words.t("disclosure.faces_none") if not s.get("faces_found") and "faces" in
             s.get("redact", []) else words.t("disclosure.faces_masked",
                                               n=s.get("faces_masked", 0)))
    return "; ".join((faces, words.t("disclosure.plates_masked", n=s.get("plates_masked", 0)),
                      words.t("disclosure.manual_boxes", n=s.get("manual_boxes", 0)),
                      words.t("disclosure.excluded", n=len(s.get("excluded_tracks", [])))))


def build_disclosure_report(data: DisclosureReportData, out_path: Path) -> None:
    """Write the disclosure PDF in ``data.lang`` (Ukrainian by default)."""
    words = report_text(data.lang)
    register_fonts()
    s = ReportStyles()
    fingerprint, digest = words.t("case.signer_fingerprint"), words.t("case.evidence_digest")
    story: list[Any] = [
        para(words.t("disclosure.title", case=data.case_number), s.h1),
        para(data.case_title, s.h2), key_value_table([
            (words.t("case.number"), data.case_number), (words.t("case.agency"), data.agency),
            (words.t("case.organisation"), data.organisation),
            (words.t("case.exported_by"), data.exporter),
            (words.t("case.export_time"), words.when(data.export_time_utc, data.timezone)),
            (words.t("disclosure.masked_kinds"), ", ".join(data.redact)),
            (words.t("case.clips"), str(len(data.clips))),
            (fingerprint, data.signer_fingerprint), (digest, data.evidence_digest),
        ], s, frozenset({fingerprint, digest})),
        Spacer(1, 4 * mm), para(words.t("disclosure.intro"), s.body)]
    for clip in data.clips:
        story += [PageBreak(), *_clip_section(clip, s, words)]
    story += [PageBreak(), para(words.t("verify.heading"), s.h2),
              Preformatted(data.verify_text, s.mono)]
    doc = SimpleDocTemplate(str(out_path), pagesize=A4, leftMargin=18 * mm,
                            rightMargin=18 * mm, topMargin=18 * mm, bottomMargin=22 * mm,
                            title=f"{STAMP} {data.case_number}", author=data.exporter,
                            lang=data.lang)
    doc.build(story, canvasmaker=_stamped_canvas(data.case_number, data.evidence_digest,
                                                 words))


def _clip_section(clip: RedactedClipReport, s: ReportStyles, words: ReportText) -> list[Any]:
    hashes = {key: words.t(f"disclosure.{key}") for key in (
        "acquisition_entry", "source_clip_sha256", "redacted_clip_sha256")}
    original = words.t("clip.original_sha256")
    audio = words.t("disclosure.audio_muted" if clip.mute_audio else "disclosure.audio_kept")
    rows = [(words.t("clip.camera"), clip.camera),
            (words.t("clip.original_file"), clip.original_filename),
            (original, clip.original_sha256),
            (hashes["acquisition_entry"], clip.acquisition_entry_hash or "—"),
            (hashes["source_clip_sha256"], clip.source_clip_sha256),
            (words.t("disclosure.redacted_clip"), clip.clip_path),
            (hashes["redacted_clip_sha256"], clip.clip_sha256),
            (words.t("disclosure.start"), words.when(clip.start_utc, clip.timezone)),
            (words.t("disclosure.end"), words.when(clip.end_utc, clip.timezone)),
            (words.t("disclosure.masked"), _masked_text(clip, words)),
            (words.t("disclosure.style"),
             f"{clip.style}; {words.t('disclosure.audio', state=audio)}"),
            (words.t("clip.how_made"), words.t("disclosure.how_made"))]
    rows += [(words.t("disclosure.detector", kind=d["kind"]),
              words.t("disclosure.detector_value", name=d["name"], model_file=d["model_file"],
                      model_sha256=d["model_sha256"])) for d in clip.detectors]
    story: list[Any] = [para(words.t("disclosure.clip_heading", number=clip.number), s.h2),
                        key_value_table(rows, s, frozenset({original, *hashes.values()})),
                        Spacer(1, 3 * mm)]
    if clip.decisions:
        story.append(para(words.t("disclosure.decisions"), s.body))
        story.append(key_value_table([(f"{d['kind']} {d.get('track_id') or ''}".strip(),
                                       words.t("disclosure.decision_line", who=d["actor"],
                                               when=words.when(datetime.fromisoformat(
                                                   str(d["decided_at"]).replace(
                                                       "Z", "+00:00")), clip.timezone),
                                               reason=d["reason"] or "—"))
                                      for d in clip.decisions], s, frozenset()))
        story.append(Spacer(1, 3 * mm))
    image = Image(str(clip.still_path))
    scale = min(1.0, (120 * mm) / image.imageWidth)
    image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
    story += [image, para(words.t("disclosure.still_caption", number=clip.number), s.small)]
    return story


__all__ = ["STAMP", "DisclosureReportData", "RedactedClipReport", "build_disclosure_report"]
