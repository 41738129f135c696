"""The bundle's PDF report (reportlab), with DejaVu Sans embedded so Ukrainian renders.

Every page footer carries "page N of M" and the evidence digest: the SHA-256 of the
payload manifest without the report's own line (see ``evidence.bundle.evidence_digest``).
The tag manifest's hash cannot be printed in a PDF that the tag manifest covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import registerFontFamily
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from evidence.fonts import DEJAVU_SANS, DEJAVU_SANS_BOLD, DEJAVU_SANS_MONO, font_path

FONT, FONT_BOLD, FONT_MONO = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"
SIGNATURE_FIELD_NAME = "OkoEvidenceSignature"
"""The PDF signature field (PAdES) whose widget sits on ``SIGNATURE_BOX``."""
SIGNATURE_BOX: tuple[float, float, float, float] = (51.0, 68.0, 544.0, 188.0)
"""Page 1's signature block (x1, y1, x2, y2) in PDF points, origin bottom-left: the report
draws organisation, signer fingerprint, signing time and a QR code of the evidence digest
inside it, and keeps the page's text above it; the signature field's widget covers it."""
LEAD_STATEMENT = ("An automated match is an investigative lead, not an identification. "
                  "A person must review the footage before any conclusion is drawn.")


@dataclass(frozen=True)
class ClipReport:
    """What the report says about one clip."""

    number: int
    camera_id: str
    camera_name: str
    camera_location: str
    timezone: str
    original_filename: str
    original_sha256: str
    clip_path: str
    clip_sha256: str
    still_path: Path
    requested_start_utc: datetime
    requested_end_utc: datetime
    actual_start_utc: datetime
    actual_end_utc: datetime
    codec: str
    width: int
    height: int
    note: str
    provenance: dict[str, Any] = field(default_factory=dict)
    recording_gaps: list[dict[str, Any]] = field(default_factory=list)
    viewing_copy_name: str | None = None
    viewing_copy_note: str = ""


@dataclass(frozen=True)
class ReportData:
    case_number: str
    case_title: str
    legal_basis: str
    investigator: str
    agency: str
    organisation: str
    exporter: str
    export_time_utc: datetime
    timezone: str
    signer_fingerprint: str
    signer_subject: str
    evidence_digest: str
    clips: list[ClipReport]
    custody: list[dict[str, Any]]
    verify_text: str
    trusted_time_note: str = ""
    report_signer_fingerprint: str = ""


def register_fonts() -> None:
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in ((FONT, DEJAVU_SANS), (FONT_BOLD, DEJAVU_SANS_BOLD),
                           (FONT_MONO, DEJAVU_SANS_MONO)):
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(font_path(filename))))
    # Paragraphs map a font name to its family; declare both faces explicitly.
    registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
    registerFontFamily(FONT_MONO, normal=FONT_MONO, bold=FONT_MONO, italic=FONT_MONO,
                       boldItalic=FONT_MONO)


def both_times(value: datetime, timezone: str) -> str:
    """``2026-11-24 10:00:00 UTC / 12:00:00 EET (UTC+02:00)``."""
    local = value.astimezone(ZoneInfo(timezone))
    offset = local.strftime("%z")
    return (f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC / "
            + f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} (UTC{offset[:3]}:{offset[3:]})")


class ReportStyles:
    def __init__(self) -> None:
        self.body = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5)
        self.h1 = ParagraphStyle("h1", fontName=FONT_BOLD, fontSize=17, leading=22,
                                 spaceAfter=8)
        self.h2 = ParagraphStyle("h2", fontName=FONT_BOLD, fontSize=12.5, leading=16,
                                 spaceBefore=6, spaceAfter=6)
        self.mono = ParagraphStyle("mono", fontName=FONT_MONO, fontSize=7.2, leading=9.5)
        self.small = ParagraphStyle("small", fontName=FONT, fontSize=8, leading=10)


def para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def key_value_table(rows: list[tuple[str, str]], s: ReportStyles,
                    mono_keys: frozenset[str]) -> Table:
    data = [[para(k, s.small), para(v, s.mono if k in mono_keys else s.body)] for k, v in rows]
    table = Table(data, colWidths=[42 * mm, 128 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
    ]))
    return table


def footer_canvas(case_number: str, digest: str) -> type[Canvas]:
    class FooterCanvas(Canvas):
        """Defers pages so the footer can say "page N of M"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]  # private; absent from its stub

        def save(self) -> None:
            total = len(self._pages)
            for number, page in enumerate(self._pages, start=1):
                self.__dict__.update(page)
                self.setFont(FONT, 7)
                self.drawString(18 * mm, 12 * mm,
                                f"Case {case_number} — page {number} of {total}")
                self.setFont(FONT_MONO, 6.3)
                self.drawString(18 * mm, 8 * mm, f"Evidence digest (SHA-256): {digest}")
                super().showPage()
            super().save()

    return FooterCanvas


def build_report(data: ReportData, out_path: Path) -> None:
    """Write the PDF report to ``out_path``."""
    register_fonts()
    s = ReportStyles()
    story: list[Any] = [para(f"Evidence report — case {data.case_number}", s.h1),
                        para(data.case_title, s.h2)]
    story.append(key_value_table([
        ("Case number", data.case_number), ("Title", data.case_title),
        ("Legal basis", data.legal_basis), ("Investigator", data.investigator),
        ("Agency", data.agency), ("Organisation", data.organisation),
        ("Exported by", data.exporter),
        ("Export time", both_times(data.export_time_utc, data.timezone)),
        ("Clips", str(len(data.clips))),
        ("Signer", data.signer_subject),
        ("Signer certificate SHA-256 fingerprint", data.signer_fingerprint),
        ("Evidence digest", data.evidence_digest),
    ], s, frozenset({"Signer certificate SHA-256 fingerprint", "Evidence digest"})))
    story.append(Spacer(1, 6 * mm))
    story.append(para("The evidence digest in every footer is the SHA-256 of manifest-sha256.txt"
                    " without the line for data/report.pdf; a report cannot contain its own"
                    " hash. The signature in signature.sig covers tagmanifest-sha256.txt,"
                    " which covers manifest-sha256.txt and so this report.", s.small))
    for clip in data.clips:
        story += [PageBreak(), *_clip_section(clip, s)]
    story += [PageBreak(), *_provenance_section(data, s), PageBreak(),
              *_custody_section(data, s), PageBreak(),
              para("Verification instructions", s.h2), para(data.verify_text, s.mono)]
    doc = SimpleDocTemplate(str(out_path), pagesize=A4, leftMargin=18 * mm,
                            rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=22 * mm,
                            title=f"Evidence report {data.case_number}", author=data.exporter)
    doc.build(story, canvasmaker=footer_canvas(data.case_number, data.evidence_digest))


def _gaps_text(gaps: list[dict[str, Any]], tz: str) -> str:
    if not gaps:
        return ("none recorded (gaps are recorded for cameras Oko records from their"
                " stream)")
    lines = []
    for gap in gaps:
        start = both_times(datetime.fromisoformat(gap["start_utc"]), tz)
        end = (both_times(datetime.fromisoformat(gap["end_utc"]), tz) if gap["end_utc"]
               else "still open")
        lines.append(f"not recorded from {start} to {end}: {gap['reason']}")
    return "; ".join(lines)


def _clip_section(clip: ClipReport, s: ReportStyles) -> list[Any]:
    tz = clip.timezone
    duration = (clip.actual_end_utc - clip.actual_start_utc).total_seconds()
    rows = [
        ("Camera", f"{clip.camera_id} — {clip.camera_name}"),
        ("Location", clip.camera_location),
        ("Original file", clip.original_filename),
        ("Original SHA-256 (acquisition)", clip.original_sha256),
        ("Clip file", clip.clip_path), ("Clip SHA-256", clip.clip_sha256),
        ("Requested start", both_times(clip.requested_start_utc, tz)),
        ("Requested end", both_times(clip.requested_end_utc, tz)),
        ("Clip start (keyframe)", both_times(clip.actual_start_utc, tz)),
        ("Clip end (keyframe)", both_times(clip.actual_end_utc, tz)),
        ("Duration", f"{duration:.3f} s"),
        ("Codec, resolution", f"{clip.codec}, {clip.width}x{clip.height}"),
        ("How made", "ffmpeg stream copy from the original (not re-encoded), widened to "
                     "keyframes"),
        ("Note", clip.note or "—"),
        ("Origin", "from a search (see Search provenance)" if clip.provenance
         else "added by hand"),
        ("Recording gaps (±10 min)", _gaps_text(clip.recording_gaps, tz)),
    ]
    story: list[Any] = [para(f"Clip {clip.number}", s.h2),
                        key_value_table(rows, s, frozenset({"Original SHA-256 (acquisition)",
                                                   "Clip SHA-256"})),
                        Spacer(1, 4 * mm)]
    image = Image(str(clip.still_path))
    scale = min(1.0, (120 * mm) / image.imageWidth)
    image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
    story += [image, para(f"Still frame at the requested start of clip {clip.number}.", s.small)]
    return story


_SEARCH_RECORD = (("Frame", "frame_id"), ("Frame time (UTC)", "frame_utc"),
                  ("Frames ranked (k)", "k"), ("Searched at (UTC)", "searched_at"),
                  ("Searched by", "searched_by"), ("Audit entry", "search_id"),
                  ("Audit entry SHA-256", "search_entry_hash"))
"""What the server copied from the audited search, shown when the clip carries it."""


def _provenance_section(data: ReportData, s: ReportStyles) -> list[Any]:
    story: list[Any] = [para("Search provenance", s.h2), para(LEAD_STATEMENT, s.body),
                        Spacer(1, 3 * mm)]
    searched = [c for c in data.clips if c.provenance]
    if not searched:
        story.append(para("No clip in this case came from an automated search.", s.body))
    for clip in searched:
        p = clip.provenance
        story += [para(f"Clip {clip.number}", s.body), key_value_table([
            ("Query", str(p.get("query", ""))), ("Model", str(p.get("model", ""))),
            ("Weights SHA-256", str(p.get("weights_sha256", ""))),
            ("Score", str(p.get("score", ""))),
            *[(label, str(p[key])) for label, key in _SEARCH_RECORD if p.get(key) is not None],
        ], s, frozenset({"Weights SHA-256", "Audit entry SHA-256"})), Spacer(1, 3 * mm)]
    return story


def _custody_section(data: ReportData, s: ReportStyles) -> list[Any]:
    story: list[Any] = [para("Chain of custody", s.h2)]
    for entry in data.custody:
        when = datetime.fromisoformat(entry["recorded_at"].replace("Z", "+00:00"))
        story.append(key_value_table([
            ("When", both_times(when, data.timezone)),
            ("Action", f"{entry['action']} ({entry['chain']} #{entry['seq']})"),
            ("Who", entry["actor"]),
            ("Entry SHA-256", entry["entry_hash"]),
            ("Previous SHA-256", entry["prev_hash"]),
        ], s, frozenset({"Entry SHA-256", "Previous SHA-256"})))
        story.append(Spacer(1, 2 * mm))
    return story


__all__ = [
    "FONT_BOLD",
    "LEAD_STATEMENT",
    "SIGNATURE_BOX",
    "SIGNATURE_FIELD_NAME",
    "ClipReport",
    "ReportData",
    "ReportStyles",
    "both_times",
    "build_report",
    "footer_canvas",
    "key_value_table",
    "para",
    "register_fonts",
]
