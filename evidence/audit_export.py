"""The auditor's export of audit-log entries: JSON Lines, or the PDF report."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from evidence.audit import (
    AuditVerification,
    audit_events_between,
    event_to_json,
    write_export_file,
)
from evidence.report_text import report_text
from storage.errors import InvalidInputError


def export_audit(
    session: Session, *, start: datetime | None, end: datetime | None, out: Path,
    verification: AuditVerification, organisation: str = "Oko", lang: str = "uk",
) -> int:
    """Write the entries in [start, end) to ``out`` (.jsonl or .pdf); returns the count.

    The PDF is in ``lang`` (Ukrainian by default); an unknown one raises
    ``UnsupportedLanguageError`` before anything is written.
    """
    suffix = out.suffix.lower()
    if suffix not in {".jsonl", ".pdf"}:
        raise InvalidInputError(f"Audit exports are .pdf or .jsonl files, not '{out.name}'.")
    if start is not None and end is not None and end <= start:
        raise InvalidInputError("The export's --to time must be after its --from time.")
    text = report_text(lang)
    events = audit_events_between(session, start=start, end=end)
    if suffix == ".jsonl":
        lines = (json.dumps(event_to_json(e), ensure_ascii=False) for e in events)
        write_export_file(out, ("\n".join(lines) + ("\n" if events else "")).encode())
    else:
        from evidence.audit_pdf import render_audit_pdf  # reportlab loads for PDFs only

        write_export_file(out, render_audit_pdf(
            events=events, organisation=organisation, start=start, end=end,
            verification=verification, text=text))
    return len(events)


__all__ = ["export_audit"]
