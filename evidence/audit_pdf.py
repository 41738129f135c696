"""The auditor's PDF report of audit-log entries (reportlab, DejaVu fonts for Cyrillic).

Ukrainian by default, English on request: every word comes from the report catalogs
(``evidence/report_catalogs``, keys ``audit_pdf.*``). Action codes and details stay as
recorded, since an auditor matches them against the JSON Lines export.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from evidence.audit import AuditVerification
from evidence.fonts import DEJAVU_SANS, font_path
from evidence.report_text import ReportText
from storage.models.access import AuditEvent

_FONT = "DejaVuSans"
_DETAILS_MAX_CHARS = 400


def _register_font() -> None:
    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, str(font_path(DEJAVU_SANS))))


_COLUMNS = ("seq", "time", "actor", "agency", "ip", "action", "details", "hash")


def _when(text: ReportText, moment: datetime | None) -> str:
    return text.date_time(moment.astimezone(UTC)) if moment else text.t("audit_pdf.open_end")


def verification_sentence(text: ReportText, verification: AuditVerification) -> str:
    """The chain's verification result in the report's language."""
    if not verification.ok:
        first = verification.first_broken_seq
        if first is not None:
            return text.t("audit_pdf.broken_entry", seq=first)
        return text.t("audit_pdf.broken", reason=verification.problems[0].reason)
    sentence = text.t("audit_pdf.intact", entries=verification.entries,
                      checkpoints=verification.checkpoints)
    latest = max(verification.trusted_times, default=None)
    if latest is not None:
        sentence += " " + text.t(
            "audit_pdf.intact_tsa", count=len(verification.trusted_times), seq=latest,
            time=text.date_time(verification.trusted_times[latest].astimezone(UTC)))
    return sentence


def render_audit_pdf(*, events: Sequence[AuditEvent], organisation: str,
                     start: datetime | None, end: datetime | None,
                     verification: AuditVerification, text: ReportText) -> bytes:
    """A landscape table of entries, headed by the range and the chain verification result."""
    _register_font()
    title = text.t("audit_pdf.title", organisation=organisation)
    body = ParagraphStyle("body", fontName=_FONT, fontSize=7, leading=9)
    heading = ParagraphStyle("heading", fontName=_FONT, fontSize=14, leading=18)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=title,
                            leftMargin=10 * mm, rightMargin=10 * mm)
    story = [
        Paragraph(escape(title), heading),
        Paragraph(escape(text.t("audit_pdf.range", start=_when(text, start),
                                end=_when(text, end), count=len(events))), body),
        Paragraph(escape(verification_sentence(text, verification)), body),
        Spacer(1, 4 * mm),
    ]
    rows = [[Paragraph(escape(text.t(f"audit_pdf.col.{column}")), body) for column in _COLUMNS]]
    for event in events:
        details = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
        if len(details) > _DETAILS_MAX_CHARS:
            details = details[:_DETAILS_MAX_CHARS] + "…"
        rows.append([Paragraph(escape(str(cell)), body) for cell in (
            event.seq, _when(text, event.occurred_at), event.actor, event.agency, event.ip,
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
