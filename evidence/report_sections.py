"""The evidence report's sections, in reading order: overview, clips, how they were
obtained, custody, verification. Every word comes from the report's catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, PageBreak, Preformatted, Spacer

from evidence.report_base import (
    CONTENT_WIDTH,
    ClipReport,
    ReportData,
    ReportStyles,
    grid_table,
    key_value_table,
    para,
)
from evidence.report_text import ReportText

OS_ACCOUNT_PREFIX = "cli:"
_SYSTEM_ACTORS = {"system": "actor.system", "recorder": "actor.recorder",
                  "watch": "actor.watch"}


def actor_text(actor: str, data: ReportData, words: ReportText) -> str:
    """A custody actor as a person: full name, role and agency for a named user;
    an operating-system account (``cli:NAME``) is said to be one, so nothing is hidden."""
    person = data.people.get(actor)
    if person is not None:
        name = person.full_name or actor
        return ", ".join(part for part in (name, words.role(person.role), person.agency)
                         if part)
    if actor.startswith(OS_ACCOUNT_PREFIX):
        return words.t("actor.os_account", account=actor.removeprefix(OS_ACCOUNT_PREFIX))
    if actor in _SYSTEM_ACTORS:
        return words.t(_SYSTEM_ACTORS[actor])
    return words.t("actor.unknown", username=actor)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def overview_section(data: ReportData, words: ReportText, s: ReportStyles) -> list[Any]:
    """Page 1 above the signature block: the case, the clips at a glance, the statement."""
    rows = [
        (words.t("case.number"), data.case_number), (words.t("case.title"), data.case_title),
        (words.t("case.legal_basis"), data.legal_basis),
        (words.t("case.investigator"), data.investigator),
        (words.t("case.agency"), data.agency),
        (words.t("case.organisation"), data.organisation),
        (words.t("case.exported_by"), actor_text(data.exporter, data, words)),
        (words.t("case.export_time"), words.when(data.export_time_utc, data.timezone)),
    ]
    if data.trusted_time_note:
        rows.append((words.t("case.trusted_time"), data.trusted_time_note))
    rows += [(words.t("case.signer"), data.signer_subject),
             (words.t("case.signer_fingerprint"), data.signer_fingerprint)]
    story: list[Any] = [
        para(words.t("title.heading", case=data.case_number), s.h1),
        key_value_table(rows, s, frozenset({words.t("case.signer_fingerprint")})),
        Spacer(1, 3 * mm), para(words.t("lead.statement"), s.lead),
        para(words.t("overview.clips_heading"), s.h2),
        grid_table([words.t("overview.col_number"), words.t("overview.col_camera"),
                    words.t("overview.col_time")],
                   [[str(c.number), f"{c.camera_name} ({c.camera_id}); {c.camera_location}",
                     words.when(c.actual_start_utc, c.timezone)] for c in data.clips],
                   [12 * mm, CONTENT_WIDTH - 82 * mm, 70 * mm], s),
        Spacer(1, 3 * mm), para(words.t("overview.contents"), s.small),
    ]
    return story


def _gaps_text(gaps: list[dict[str, Any]], tz: str, words: ReportText) -> str:
    if not gaps:
        return words.t("clip.gaps_none")
    lines = []
    for gap in gaps:
        start = words.when(datetime.fromisoformat(gap["start_utc"]), tz)
        end = (words.when(datetime.fromisoformat(gap["end_utc"]), tz) if gap["end_utc"]
               else words.t("clip.gap_open"))
        lines.append(words.t("clip.gap_line", start=start, end=end,
                             reason=_gap_reason_text(gap, words)))
    return "; ".join(lines)


def _gap_reason_text(gap: dict[str, Any], words: ReportText) -> str:
    """The gap's reason code in the report's language; a reason stored as free text (from
    before codes) as it is."""
    key = f"clip.gap_reason.{gap.get('reason_code')}"
    if gap.get("reason_code") and words.has(key):
        return words.t(key, detail=str(gap.get("reason_detail", "")))
    return str(gap["reason"])


def _obtained_text(clip: ClipReport, data: ReportData, words: ReportText) -> str:
    who = actor_text(clip.added_by, data, words) if clip.added_by else words.t("common.unknown")
    when = (words.when(clip.added_at_utc, clip.timezone) if clip.added_at_utc
            else words.t("common.unknown"))
    if clip.provenance:
        return words.t("clip.obtained_search", query=str(clip.provenance.get("query", "")),
                       who=who, when=when)
    return words.t("clip.obtained_by_hand", who=who, when=when)


def _viewing_copy_row(clip: ClipReport, words: ReportText) -> list[tuple[str, str]]:
    if clip.viewing_copy_name:
        value = clip.viewing_copy_name + (f": {clip.viewing_copy_note}"
                                          if clip.viewing_copy_note else "")
        return [(words.t("clip.viewing_copy"), value)]
    if clip.codec == "h264":
        return [(words.t("clip.viewing_copy"), words.t("clip.viewing_copy_none"))]
    return []


def clip_section(clip: ClipReport, data: ReportData, words: ReportText,
                 s: ReportStyles) -> list[Any]:
    """One page per clip: the still first, then what, where, when and how obtained."""
    tz = clip.timezone
    duration = (clip.actual_end_utc - clip.actual_start_utc).total_seconds()
    image = Image(str(clip.still_path))
    scale = min(1.0 * CONTENT_WIDTH / image.imageWidth, (95 * mm) / image.imageHeight)
    image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
    hashes = frozenset({words.t("clip.original_sha256"), words.t("clip.clip_sha256")})
    rows = [
        (words.t("clip.camera"), f"{clip.camera_name} ({clip.camera_id})"),
        (words.t("clip.location"), clip.camera_location),
        (words.t("clip.start"), words.when(clip.actual_start_utc, tz)),
        (words.t("clip.end"), words.when(clip.actual_end_utc, tz)),
        (words.t("clip.duration"), words.t("clip.duration_value", seconds=f"{duration:.3f}")),
        (words.t("clip.requested"), f"{words.when(clip.requested_start_utc, tz)} — "
                                    f"{words.when(clip.requested_end_utc, tz)}"),
        (words.t("clip.obtained"), _obtained_text(clip, data, words)),
        (words.t("clip.note"), clip.note or words.t("common.none")),
        (words.t("clip.gaps"), _gaps_text(clip.recording_gaps, tz, words)),
        (words.t("clip.how_made"), words.t("clip.how_made_value")),
        (words.t("clip.codec"), f"{clip.codec}, {clip.width}×{clip.height}"),
        *_viewing_copy_row(clip, words),
        (words.t("clip.clip_file"), clip.clip_path),
        (words.t("clip.clip_sha256"), clip.clip_sha256),
        (words.t("clip.original_file"), clip.original_filename),
        (words.t("clip.original_sha256"), clip.original_sha256),
    ]
    return [PageBreak(),
            para(words.t("clip.heading", number=clip.number, camera=clip.camera_name), s.h2),
            image, para(words.t("clip.still_caption", number=clip.number), s.small),
            Spacer(1, 3 * mm), key_value_table(rows, s, hashes)]


_SEARCH_RECORD = (("provenance.frame", "frame_id"), ("provenance.k", "k"),
                  ("provenance.audit_entry", "search_id"),
                  ("provenance.audit_entry_sha256", "search_entry_hash"))
"""What the server copied from the audited search, shown when the clip carries it."""


def provenance_section(data: ReportData, words: ReportText, s: ReportStyles) -> list[Any]:
    story: list[Any] = [PageBreak(), para(words.t("provenance.heading"), s.h2),
                        para(words.t("lead.statement"), s.lead)]
    searched = [c for c in data.clips if c.provenance]
    if not searched:
        story.append(para(words.t("provenance.none"), s.body))
    mono = frozenset({words.t("provenance.weights_sha256"),
                      words.t("provenance.audit_entry_sha256")})
    for clip in searched:
        p = clip.provenance
        rows = [(words.t("provenance.query"), str(p.get("query", ""))),
                (words.t("provenance.model"), str(p.get("model", ""))),
                (words.t("provenance.weights_sha256"), str(p.get("weights_sha256", ""))),
                (words.t("provenance.score"), str(p.get("score", "")))]
        if p.get("searched_by"):
            rows.append((words.t("provenance.searched_by"),
                         actor_text(str(p["searched_by"]), data, words)))
        for label, key in (("provenance.searched_at", "searched_at"),
                           ("provenance.frame_time", "frame_utc")):
            if p.get(key):
                rows.append((words.t(label), words.when(_parse_time(str(p[key])),
                                                        clip.timezone)))
        rows += [(words.t(label), str(p[key])) for label, key in _SEARCH_RECORD
                 if p.get(key) is not None]
        story += [KeepTogether([
            para(words.t("clip.heading", number=clip.number, camera=clip.camera_name), s.body),
            key_value_table(rows, s, mono)]), Spacer(1, 3 * mm)]
    return story


def _action_text(entry: dict[str, Any], words: ReportText) -> str:
    action = str(entry["action"])
    label = words.t(f"action.{action}") if words.has(f"action.{action}") else action
    details = entry.get("details") or {}
    if details.get("recipient"):
        label += f": {details['recipient']}"
    chain, _, number = str(entry["chain"]).partition(":")
    chain_label = words.t(f"chain.{chain}") if words.has(f"chain.{chain}") else chain
    return f"{label} ({chain_label} {number})"


def custody_section(data: ReportData, words: ReportText, s: ReportStyles) -> list[Any]:
    """The chain of custody as one table: when, what, who (a person), the entry's hash."""
    rows = [[str(number),
             words.when(_parse_time(str(entry["recorded_at"])), data.timezone),
             _action_text(entry, words), actor_text(str(entry["actor"]), data, words),
             f"{str(entry['entry_hash'])[:12]}…"]
            for number, entry in enumerate(data.custody, start=1)]
    return [PageBreak(), para(words.t("custody.heading"), s.h2),
            para(words.t("custody.intro"), s.small), Spacer(1, 2 * mm),
            grid_table([words.t("custody.col_number"), words.t("custody.col_when"),
                        words.t("custody.col_action"), words.t("custody.col_who"),
                        words.t("custody.col_hash")], rows,
                       [9 * mm, 42 * mm, 44 * mm, CONTENT_WIDTH - 125 * mm, 30 * mm], s,
                       mono_columns=frozenset({4}))]


def verify_section(data: ReportData, words: ReportText, s: ReportStyles) -> list[Any]:
    steps = [para(f"{n}. {words.t(f'verify.step{n}')}", s.step) for n in range(1, 7)]
    return [PageBreak(), para(words.t("verify.heading"), s.h2), *steps, Spacer(1, 4 * mm),
            para(words.t("verify.full_text"), s.small), Spacer(1, 1 * mm),
            Preformatted(data.verify_text, s.mono)]


__all__ = ["actor_text", "clip_section", "custody_section", "overview_section",
           "provenance_section", "verify_section"]
