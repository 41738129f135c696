"""The bundle's PDF report (reportlab), with DejaVu Sans embedded so Ukrainian renders.

The report is Ukrainian unless English is asked for (``ReportData.lang``); every label
comes from ``evidence/report_catalogs`` (``evidence.report_text``). A prosecutor reads,
in order:

1. page 1: what the case is, the clips at a glance, what the report holds, the measured
   statement that search results are leads, and the visible signature block
   (``SIGNATURE_BOX``: organisation, report-signing certificate, signing time, a QR code
   of the evidence digest) under which ``evidence.pdf_signing`` puts the PAdES field;
2. one page per clip: its still, camera, place, time, and how it was obtained;
3. how the clips were obtained (the audited searches) and the chain of custody as a
   table naming people by full name, role and agency;
4. how to check the bundle, with the text of VERIFY.txt.

Every page footer carries "page N of M" and the evidence digest: the SHA-256 of the
payload manifest without the report's own line (see ``evidence.bundle.evidence_digest``).
The tag manifest's hash cannot be printed in a PDF that the tag manifest covers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, NextPageTemplate, PageTemplate

from evidence.report_base import (
    CONTENT_WIDTH,
    FONT,
    FONT_BOLD,
    FONT_MONO,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    MARGIN_X,
    SIGNATURE_BOX,
    SIGNATURE_FIELD_NAME,
    ClipReport,
    ReportData,
    ReportPerson,
    ReportStyles,
    both_times,
    footer_canvas,
    grid_table,
    key_value_table,
    para,
    register_fonts,
)
from evidence.report_sections import (
    clip_section,
    custody_section,
    overview_section,
    provenance_section,
    verify_section,
)
from evidence.report_text import ReportText, report_text

LEAD_STATEMENT = report_text("en").t("lead.statement")
"""The measured statement in English; the report prints it in its own language."""


def _draw_signature_block(canvas: Canvas, data: ReportData, words: ReportText) -> None:
    """Page 1's visible signature: the PAdES field's widget lies over this rectangle."""
    x1, y1, x2, y2 = SIGNATURE_BOX
    pad, qr_size = 6.0, y2 - y1 - 18.0
    canvas.saveState()
    canvas.setStrokeColor(colors.Color(0.1, 0.2, 0.45))
    canvas.setLineWidth(0.8)
    canvas.rect(x1, y1, x2 - x1, y2 - y1)
    qr = QrCodeWidget(data.evidence_digest, barLevel="M")
    left, bottom, right, top = qr.getBounds()
    drawing = Drawing(qr_size, qr_size, transform=[qr_size / (right - left), 0, 0,
                                                   qr_size / (top - bottom), 0, 0])
    drawing.add(qr)
    drawing.drawOn(canvas, x2 - pad - qr_size, y1 + 12.0)
    canvas.setFont(FONT, 6.2)
    canvas.drawRightString(x2 - pad, y1 + 5.0, words.t("signature.digest"))
    canvas.setFillColor(colors.Color(0.1, 0.2, 0.45))
    canvas.setFont(FONT_BOLD, 10)
    canvas.drawString(x1 + pad, y2 - pad - 9, words.t("signature.caption"))
    canvas.setFillColor(colors.black)
    fingerprint = data.report_signer_fingerprint or words.t("common.none")
    lines: list[tuple[str, str, str]] = [
        (words.t("signature.organisation"), data.organisation, FONT),
        (words.t("signature.fingerprint"), fingerprint[:32], FONT_MONO),
        ("", fingerprint[32:], FONT_MONO),
        (words.t("signature.time"), words.when(data.export_time_utc, data.timezone), FONT),
    ]
    y = y2 - pad - 27
    for label, value, font in lines:
        if label:
            canvas.setFont(FONT, 7)
            canvas.setFillColor(colors.Color(0.35, 0.35, 0.35))
            canvas.drawString(x1 + pad, y, label)
            y -= 10
        canvas.setFillColor(colors.black)
        canvas.setFont(font, 8.5)
        if value:
            canvas.drawString(x1 + pad, y, value)
            y -= 13
    canvas.restoreState()


def build_report(data: ReportData, out_path: Path) -> None:
    """Write the PDF report to ``out_path``; raises ``UnsupportedLanguageError`` for a
    language without a catalog before anything is written."""
    words = report_text(data.lang)
    register_fonts()
    s = ReportStyles()
    story: list[Any] = [NextPageTemplate("later"), *overview_section(data, words, s)]
    for clip in data.clips:
        story += clip_section(clip, data, words, s)
    story += provenance_section(data, words, s)
    story += custody_section(data, words, s)
    story += verify_section(data, words, s)
    doc = BaseDocTemplate(str(out_path), pagesize=A4, leftMargin=MARGIN_X,
                          rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                          bottomMargin=MARGIN_BOTTOM,
                          title=words.t("title.document", case=data.case_number),
                          author=data.organisation, lang=data.lang)
    first_bottom = SIGNATURE_BOX[3] + 4 * mm
    doc.addPageTemplates([
        PageTemplate(id="first", frames=[Frame(
            MARGIN_X, first_bottom, CONTENT_WIDTH, A4[1] - MARGIN_TOP - first_bottom,
            id="first")], onPage=lambda canvas, _doc: _draw_signature_block(
                canvas, data, words)),
        PageTemplate(id="later", frames=[Frame(
            MARGIN_X, MARGIN_BOTTOM, CONTENT_WIDTH, A4[1] - MARGIN_TOP - MARGIN_BOTTOM,
            id="later")]),
    ])
    doc.build(story, canvasmaker=footer_canvas(data.case_number, data.evidence_digest, words))


__all__ = [
    "CONTENT_WIDTH",
    "FONT_BOLD",
    "LEAD_STATEMENT",
    "SIGNATURE_BOX",
    "SIGNATURE_FIELD_NAME",
    "ClipReport",
    "ReportData",
    "ReportPerson",
    "ReportStyles",
    "both_times",
    "build_report",
    "footer_canvas",
    "grid_table",
    "key_value_table",
    "para",
    "register_fonts",
]
