"""The evidence report's building blocks: what it is told (``ReportData``), its fonts,
styles, tables, page geometry (``SIGNATURE_BOX``) and "page N of M" footer.

``evidence.report`` builds the report from these with ``evidence.report_sections``;
the disclosure report (``evidence.redaction.report``) reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import registerFontFamily
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, Table, TableStyle

from evidence.fonts import DEJAVU_SANS, DEJAVU_SANS_BOLD, DEJAVU_SANS_MONO, font_path
from evidence.report_text import DEFAULT_LANGUAGE, ReportText, report_text

FONT, FONT_BOLD, FONT_MONO = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"
SIGNATURE_FIELD_NAME = "OkoEvidenceSignature"
"""The PDF signature field (PAdES) whose widget sits on ``SIGNATURE_BOX``."""
SIGNATURE_BOX: tuple[float, float, float, float] = (51.0, 68.0, 544.0, 188.0)
"""Page 1's signature block (x1, y1, x2, y2) in PDF points, origin bottom-left: the report
draws organisation, signer fingerprint, signing time and a QR code of the evidence digest
inside it, and keeps the page's text above it; the signature field's widget covers it."""
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 18 * mm, 16 * mm, 22 * mm
CONTENT_WIDTH = A4[0] - 2 * MARGIN_X


@dataclass(frozen=True)
class ReportPerson:
    """A named Oko user as the custody table shows them."""

    full_name: str
    role: str
    agency: str


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
    added_by: str = ""  # the custody actor who added the clip to the case
    added_at_utc: datetime | None = None


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
    lang: str = DEFAULT_LANGUAGE
    people: dict[str, ReportPerson] = field(default_factory=dict)
    """Custody actors (usernames) who are named Oko users."""


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
    """The Ukrainian report's date: ``24.11.2026 12:00:00 EET (UTC+02:00), 10:00:00 UTC``."""
    return report_text(DEFAULT_LANGUAGE).when(value, timezone)


class ReportStyles:
    def __init__(self) -> None:
        self.body = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5)
        self.h1 = ParagraphStyle("h1", fontName=FONT_BOLD, fontSize=17, leading=22,
                                 spaceAfter=8)
        self.h2 = ParagraphStyle("h2", fontName=FONT_BOLD, fontSize=12.5, leading=16,
                                 spaceBefore=6, spaceAfter=6)
        self.mono = ParagraphStyle("mono", fontName=FONT_MONO, fontSize=7.2, leading=9.5)
        self.small = ParagraphStyle("small", fontName=FONT, fontSize=8, leading=10)
        self.step = ParagraphStyle("step", fontName=FONT, fontSize=9.5, leading=12.5,
                                   leftIndent=10, firstLineIndent=-10, spaceAfter=3)
        self.cell = ParagraphStyle("cell", fontName=FONT, fontSize=7.8, leading=9.6)
        self.head = ParagraphStyle("head", fontName=FONT_BOLD, fontSize=7.8, leading=9.6)
        self.lead = ParagraphStyle("lead", fontName=FONT_BOLD, fontSize=9.5, leading=12.5,
                                   borderColor=colors.Color(0.55, 0.4, 0), borderWidth=0.6,
                                   borderPadding=5, backColor=colors.Color(1, 0.97, 0.85),
                                   spaceBefore=4, spaceAfter=8)


def para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def key_value_table(rows: list[tuple[str, str]], s: ReportStyles,
                    mono_keys: frozenset[str]) -> Table:
    data = [[para(k, s.small), para(v, s.mono if k in mono_keys else s.body)] for k, v in rows]
    table = Table(data, colWidths=[46 * mm, CONTENT_WIDTH - 46 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
    ]))
    return table


def grid_table(header: list[str], rows: list[list[str]], widths: list[float],
               s: ReportStyles, *, mono_columns: frozenset[int] = frozenset()) -> Table:
    """A table with a shaded header row repeated on every page it spans."""
    data = [[para(h, s.head) for h in header]]
    data += [[para(v, s.mono if i in mono_columns else s.cell) for i, v in enumerate(row)]
             for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.Color(0.97, 0.97, 0.97)]),
    ]))
    return table


def footer_canvas(case_number: str, digest: str,
                  text: ReportText | None = None) -> type[Canvas]:
    words = text or report_text(DEFAULT_LANGUAGE)

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
                self.drawString(MARGIN_X, 12 * mm, words.t(
                    "footer.page", case=case_number, number=number, total=total))
                self.setFont(FONT_MONO, 6.3)
                self.drawString(MARGIN_X, 8 * mm, words.t("footer.digest", digest=digest))
                super().showPage()
            super().save()

    return FooterCanvas


__all__ = [
    "CONTENT_WIDTH",
    "FONT",
    "FONT_BOLD",
    "FONT_MONO",
    "MARGIN_BOTTOM",
    "MARGIN_TOP",
    "MARGIN_X",
    "SIGNATURE_BOX",
    "SIGNATURE_FIELD_NAME",
    "ClipReport",
    "ReportData",
    "ReportPerson",
    "ReportStyles",
    "both_times",
    "footer_canvas",
    "grid_table",
    "key_value_table",
    "para",
    "register_fonts",
]
