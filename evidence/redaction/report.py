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
from reportlab.platypus import Image, PageBreak, SimpleDocTemplate, Spacer

from evidence.report import (
    FONT_BOLD,
    ReportStyles,
    both_times,
    footer_canvas,
    key_value_table,
    para,
    register_fonts,
)

STAMP = "ЗНЕОСОБЛЕНА КОПІЯ"
STAMP_LINE = f"{STAMP} — redacted copy: faces and plates of bystanders are masked"


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


def _stamped_canvas(case_number: str, digest: str) -> type[Canvas]:
    base = footer_canvas(case_number, digest)

    class StampedCanvas(base):  # type: ignore[valid-type,misc]  # a class made at run time
        def showPage(self) -> None:
            self.saveState()
            self.setFillColor(colors.Color(0.75, 0, 0))
            self.setFont(FONT_BOLD, 11)
            self.drawString(18 * mm, A4[1] - 10 * mm, STAMP_LINE)
            self.restoreState()
            super().showPage()

    return StampedCanvas


def _masked_text(clip: RedactedClipReport) -> str:
    s = clip.summary
    faces = ("no faces were found" if not s.get("faces_found") and "faces" in s.get(
        "redact", []) else f"{s.get('faces_masked', 0)} face track(s) masked")
    return (f"{faces}; {s.get('plates_masked', 0)} plate track(s) masked; "
            f"{s.get('manual_boxes', 0)} manual box(es); "
            f"{len(s.get('excluded_tracks', []))} track(s) left visible by decision")


def build_disclosure_report(data: DisclosureReportData, out_path: Path) -> None:
    register_fonts()
    s = ReportStyles()
    story: list[Any] = [para(f"{STAMP}: case {data.case_number}", s.h1),
                        para(data.case_title, s.h2), key_value_table([
                            ("Case number", data.case_number), ("Agency", data.agency),
                            ("Organisation", data.organisation),
                            ("Exported by", data.exporter),
                            ("Export time", both_times(data.export_time_utc, data.timezone)),
                            ("Masked", ", ".join(data.redact)),
                            ("Clips", str(len(data.clips))),
                            ("Signer certificate SHA-256", data.signer_fingerprint),
                            ("Evidence digest", data.evidence_digest),
                        ], s, frozenset({"Signer certificate SHA-256", "Evidence digest"})),
                        Spacer(1, 4 * mm),
                        para("This bundle is a redacted disclosure copy. It holds no "
                           "unredacted footage: the originals, clips and stills stay with "
                           "the exporting organisation; the original's hash and its "
                           "acquisition entry identify them.", s.body)]
    for clip in data.clips:
        story += [PageBreak(), *_clip_section(clip, s)]
    story += [PageBreak(), para("Verification instructions", s.h2),
              para(data.verify_text, s.mono)]
    doc = SimpleDocTemplate(str(out_path), pagesize=A4, leftMargin=18 * mm,
                            rightMargin=18 * mm, topMargin=18 * mm, bottomMargin=22 * mm,
                            title=f"{STAMP} {data.case_number}", author=data.exporter)
    doc.build(story, canvasmaker=_stamped_canvas(data.case_number, data.evidence_digest))


def _clip_section(clip: RedactedClipReport, s: ReportStyles) -> list[Any]:
    rows = [("Camera", clip.camera), ("Original file", clip.original_filename),
            ("Original SHA-256 (acquisition)", clip.original_sha256),
            ("Acquisition entry SHA-256", clip.acquisition_entry_hash or "—"),
            ("Source clip SHA-256 (not included)", clip.source_clip_sha256),
            ("Redacted clip", clip.clip_path), ("Redacted clip SHA-256", clip.clip_sha256),
            ("Start", both_times(clip.start_utc, clip.timezone)),
            ("End", both_times(clip.end_utc, clip.timezone)),
            ("What is masked", _masked_text(clip)),
            ("Style", f"{clip.style}; audio {'muted' if clip.mute_audio else 'kept'}"),
            ("How made", "decoded, masked on every frame, re-encoded H.264 (frame rate and "
                         "resolution kept)")]
    rows += [(f"Detector ({d['kind']})", f"{d['name']}; {d['model_file']} SHA-256 "
                                         f"{d['model_sha256']}") for d in clip.detectors]
    story: list[Any] = [para(f"Clip {clip.number} (redacted)", s.h2),
                        key_value_table(rows, s, frozenset({
                            "Original SHA-256 (acquisition)", "Acquisition entry SHA-256",
                            "Source clip SHA-256 (not included)",
                            "Redacted clip SHA-256"})), Spacer(1, 3 * mm)]
    if clip.decisions:
        story.append(para("Review decisions", s.body))
        story.append(key_value_table([(f"{d['kind']} {d.get('track_id') or ''}".strip(),
                              f"{d['actor']} at {d['decided_at']}: {d['reason'] or '—'}")
                             for d in clip.decisions], s, frozenset()))
        story.append(Spacer(1, 3 * mm))
    image = Image(str(clip.still_path))
    scale = min(1.0, (120 * mm) / image.imageWidth)
    image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
    story += [image, para(f"Redacted still: the first frame of redacted clip {clip.number}.",
                        s.small)]
    return story


__all__ = ["STAMP", "DisclosureReportData", "RedactedClipReport", "build_disclosure_report"]
