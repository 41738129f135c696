"""The auditor's PDF report of audit-log entries (reportlab, DejaVu fonts for Cyrillic)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from evidence.fonts import DEJAVU_SANS, font_path
from storage.models.access import AuditEvent

_FONT = "DejaVuSans"
_DETAILS_MAX_CHARS = 400


def _register_font() -> None:
    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, str(font_path(DEJAVU_SANS))))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def render_audit_pdf(*, events: Sequence[AuditEvent], title: str, start: datetime | None,
                     end: datetime | None, verification_summary: str) -> bytes:
    """A landscape table of entries, headed by the range and the chain verification result."""
    _register_font()
    body = ParagraphStyle("body", fontName=_FONT, fontSize=7, leading=9)
    heading = ParagraphStyle("heading", fontName=_FONT, fontSize=14, leading=18)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=title,
                            leftMargin=10 * mm, rightMargin=10 * mm)
    story = [
        Paragraph(escape(title), heading),
        Paragraph(escape(f"Entries from {_when(start)} to {_when(end)}: {len(events)}"), body),
        Paragraph(escape(verification_summary), body),
        Spacer(1, 4 * mm),
    ]
    rows = [[Paragraph(h, body) for h in
             ("#", "Time (UTC)", "Actor", "Agency", "IP", "Action", "Details", "Entry hash")]]
    for event in events:
        details = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
        if len(details) > _DETAILS_MAX_CHARS:
            details = details[:_DETAILS_MAX_CHARS] + "…"
        rows.append([Paragraph(escape(str(cell)), body) for cell in (
            event.seq, _when(event.occurred_at), event.actor, event.agency, event.ip,
            event.action, details, event.entry_hash[:16] + "…")])
    table = Table(rows, repeatRows=1, colWidths=[
        12 * mm, 30 * mm, 28 * mm, 22 * mm, 22 * mm, 28 * mm, 104 * mm, 30 * mm])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story.append(table)
    doc.build(story)
    return buffer.getvalue()
