"""A redacted disclosure bundle of a case: signed BagIt like any export, no unredacted media.

``export_disclosure`` takes each clip's approved redaction and:

1. checks, before anything is written, that every clip of the case has one, that it
   masks what was asked (``redact``) and that the detectors' model files are the ones
   it was proposed with (``check_models``);
2. cuts the clip from its original as the export does (stream copy), checks it is the
   clip the detectors ran on, masks its final boxes on every frame and re-encodes it
   (H.264, frame rate and size kept); the still is the redacted clip's first frame;
3. writes ``data/clips/*-redacted.mp4``, ``data/stills/*-redacted.jpg``,
   ``data/redaction/clip-NNN-boxes.json`` (the boxes masked on every frame) and
   ``data/redaction/clip-NNN-provenance.json`` (source clip hash, detectors and model
   hashes, parameters, review decisions), the custody log (the originals' acquisition
   entries, the case chain and this export's own entry, ``kind: redacted``), the
   CASE/UCO provenance (the original by hash only) and the stamped PDF;
4. signs and zips it next to ``out_path`` (``evidence.bundle``), appends the planned
   custody entry, lets the caller commit and only then gives the zip its name, as
   ``evidence.exports`` does. The bundle verifies with ``oko verify`` / ``oko-verify``.

The original, the stream-copy clip and its still never enter the bag.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from evidence.bundle import (
    REPORT_PATH,
    TRUSTED_TIME_FIELD,
    evidence_digest,
    finish_bag,
    hash_payload,
    zip_bag,
)
from evidence.cases import case_clips
from evidence.clips import ffmpeg_version
from evidence.exports import (
    OKO_VERSION,
    chain_head,
    cut_case_clip,
    move_into_place,
    part_path,
    plan_export_entry,
    safe_name,
    verify_instructions,
)
from evidence.keys import Signer
from evidence.pdf_signing import sign_bundle_report
from evidence.provenance import build_provenance, write_jsonl
from evidence.redaction.detect import check_models
from evidence.redaction.pipeline import first_frame_jpeg, render_clip
from evidence.redaction.report import (
    DisclosureReportData,
    RedactedClipReport,
    build_disclosure_report,
)
from evidence.redaction.review import DecisionView, ManualBox, final_boxes
from evidence.redaction.tracking import Box, Track
from evidence.redaction.video import VideoFacts, render_parameters
from evidence.report_text import DEFAULT_LANGUAGE, check_language
from evidence.timestamp import TimestampAuthority, TrustedTime
from storage.atomic import owner_tag
from storage.blobstore import BlobStore, sha256_file
from storage.custody import append_custody_entry, chain_entries, entry_record, format_time
from storage.errors import ConflictError, InvalidInputError
from storage.models.evidence import Case, CaseClip
from storage.models.redaction import Redaction, RedactionDecision

KIND_OF = {"faces": "face", "plates": "plate"}
_CHAIN_MOVED = ("The custody chain of case {number} changed while its disclosure bundle "
                "was being written; run the export again.")


@dataclass(frozen=True)
class DisclosureResult:
    bundle_path: Path
    bundle_sha256: str
    tag_manifest_sha256: str
    evidence_digest: str
    size_bytes: int
    clips: list[dict[str, Any]]


def decision_views(decisions: list[RedactionDecision]) -> list[DecisionView]:
    views: list[DecisionView] = []
    for d in decisions:
        manual = None
        if d.kind == "manual_box" and d.box:
            manual = ManualBox(box=Box(*(int(v) for v in d.box["box"])),
                               start_frame=int(d.box["start_frame"]),
                               end_frame=int(d.box["end_frame"]))
        views.append(DecisionView(kind=d.kind, track_id=d.track_id, manual=manual))
    return views


def decision_record(d: RedactionDecision) -> dict[str, Any]:
    return {"kind": d.kind, "track_id": d.track_id, "box": d.box, "reason": d.reason,
            "actor": d.actor, "decided_at": format_time(d.decided_at)}


def facts_of(redaction: Redaction) -> VideoFacts:
    return VideoFacts(width=redaction.width, height=redaction.height,
                      fps=Fraction(redaction.fps), frame_count=redaction.frame_count,
                      has_audio=False)


def masked_boxes(redaction: Redaction, decisions: list[RedactionDecision], *,
                 redact: list[str]) -> tuple[list[list[Box]], dict[str, Any]]:
    """The boxes masked on every frame for the kinds in ``redact``, and the summary."""
    kinds = {KIND_OF[r] for r in redact}
    tracks = [Track.from_dict(t) for t in redaction.tracks]
    boxes, summary = final_boxes([t for t in tracks if t.kind in kinds],
                                 decision_views(decisions), frame_count=redaction.frame_count)
    summary["faces_found"] = sum(t.kind == "face" for t in tracks)
    summary["plates_found"] = sum(t.kind == "plate" for t in tracks)
    summary["redact"] = list(redact)
    return boxes, summary


def decisions_of(session: Session, redaction_id: int | None) -> list[RedactionDecision]:
    return list(session.exec(select(RedactionDecision)
                             .where(RedactionDecision.redaction_id == redaction_id)
                             .order_by(col(RedactionDecision.id))).all())


def approved_redactions(session: Session, *, case: Case, redact: list[str]
                        ) -> list[tuple[CaseClip, Redaction]]:
    """Each clip of the case with its newest approved redaction. Raises
    ``InvalidInputError`` for a case without clips, ``ConflictError`` for a clip
    without an approved redaction or one that did not look for what ``redact`` asks."""
    clips = case_clips(session, case=case)
    if not clips:
        raise InvalidInputError(f"Case {case.number} has no clips to export.")
    result: list[tuple[CaseClip, Redaction]] = []
    for number, clip in enumerate(clips, start=1):
        redaction = session.exec(select(Redaction).where(
            Redaction.clip_id == clip.id, Redaction.status == "approved")
            .order_by(col(Redaction.id).desc())).first()
        if redaction is None:
            raise ConflictError(
                f"Clip {number} of case {case.number} has no approved redaction; propose "
                f"and approve one (oko redact propose {case.number} --clip {number}) "
                "before a disclosure export.")
        missing = [r for r in redact if r not in redaction.targets.split(",")]
        if missing:
            raise ConflictError(
                f"Redaction {redaction.id} of clip {number} did not look for "
                f"{', '.join(missing)}; propose it again with those targets.")
        result.append((clip, redaction))
    return result


def export_disclosure(session: Session, *, case: Case, redact: list[str], exporter: str,
                      signer: Signer, originals: BlobStore, derived: BlobStore,
                      tmp_dir: Path, out_path: Path, organisation: str,
                      model_paths: dict[str, Path] | None = None,
                      commit: Callable[[DisclosureResult], None] | None = None,
                      lang: str = DEFAULT_LANGUAGE,
                      timestamp_authority: TimestampAuthority | None = None,
                      no_timestamp: bool = False) -> DisclosureResult:
    """Build, sign and zip the case's redacted disclosure bundle at ``out_path``.

    A trusted timestamp works as in ``evidence.exports.export_case``: with
    ``timestamp_authority`` (and not ``no_timestamp``) ``timestamp.tsr`` and the PDF
    signature's token come from the TSA, and a TSA that fails fails the export.

    Raises what ``approved_redactions`` and ``check_models`` raise before writing,
    ``NotFoundError`` for missing footage and ``ConflictError`` when a clip is no longer
    the one the detectors saw or the custody chain moved; then nothing is left behind
    and ``out_path`` is untouched.
    """
    check_language(lang)  # the report's language (uk, en), before anything is written
    trusted = TrustedTime(authority=timestamp_authority,
                          declined_by=exporter if no_timestamp else None)
    pairs = approved_redactions(session, case=case, redact=redact)
    for _clip, redaction in pairs:
        check_models(redaction.detectors, paths=model_paths)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    top_dir = f"oko-{safe_name(case.number)}-redacted"
    staged = part_path(out_path)
    committed = False
    try:
        with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=f"disclose-{owner_tag()}-") \
                as work:
            bag = Path(work) / top_dir
            for sub in ("clips", "stills", "redaction"):
                (bag / "data" / sub).mkdir(parents=True)
            made = [_redact_clip(session, bag, Path(work), number, clip, redaction,
                                 redact=redact, originals=originals, derived=derived)
                    for number, (clip, redaction) in enumerate(pairs, start=1)]
            details = {"kind": "redacted", "case_number": case.number, "redact": redact,
                       "signer_fingerprint": signer.fingerprint_sha256,
                       "clips": [m["entry"] for m in made], "trusted_time": trusted.field}
            planned = plan_export_entry(session, case=case, exporter=exporter,
                                         details=details)
            written = _write(session, bag, staged, case=case, planned_record=planned.record,
                             made=made, redact=redact, exporter=exporter, signer=signer,
                             organisation=organisation, top_dir=top_dir, lang=lang,
                             trusted=trusted)
            if chain_head(session, planned.chain) != planned.previous:
                raise ConflictError(_CHAIN_MOVED.format(number=case.number))
            entry = append_custody_entry(session, action="export", actor=exporter,
                                         case_id=case.id, details=details,
                                         recorded_at=planned.recorded_at)
            if entry.entry_hash != planned.entry_hash:
                raise ConflictError(_CHAIN_MOVED.format(number=case.number))
            result = DisclosureResult(
                bundle_path=out_path, bundle_sha256=written[0],
                tag_manifest_sha256=written[1], evidence_digest=written[2],
                size_bytes=staged.stat().st_size, clips=[m["summary"] for m in made])
            (commit or (lambda _result: session.commit()))(result)
            committed = True
    finally:
        if not committed:
            staged.unlink(missing_ok=True)
    move_into_place(staged, out_path, case_number=case.number)
    return result


def _redact_clip(session: Session, bag: Path, work: Path, number: int, clip: CaseClip,
                 redaction: Redaction, *, redact: list[str], originals: BlobStore,
                 derived: BlobStore) -> dict[str, Any]:
    made = cut_case_clip(session, clip, originals=originals, derived=derived, tmp_dir=work)
    original, camera, cut = made.original, made.camera, made.cut
    if cut.sha256 != redaction.source_clip_sha256:
        raise ConflictError(f"Clip {number} is no longer the clip redaction {redaction.id} "
                            "was proposed on; propose it again.")
    decisions = decisions_of(session, redaction.id)
    boxes, summary = masked_boxes(redaction, decisions, redact=redact)
    stem = f"clip-{number:03d}-{safe_name(camera.id)}-redacted"
    clip_rel, still_rel = f"data/clips/{stem}.mp4", f"data/stills/{stem}.jpg"
    render_clip(derived.path_for(cut.sha256), bag / clip_rel, facts=facts_of(redaction),
                boxes=boxes, style=redaction.style, mute_audio=redaction.mute_audio)
    (bag / still_rel).write_bytes(first_frame_jpeg(bag / clip_rel))
    clip_sha, still_sha = sha256_file(bag / clip_rel), sha256_file(bag / still_rel)
    boxes_rel = f"data/redaction/clip-{number:03d}-boxes.json"
    (bag / boxes_rel).write_text(json.dumps({
        "clip": clip_rel, "width": redaction.width, "height": redaction.height,
        "fps": redaction.fps, "box_format": "[x, y, width, height] in pixels",
        "frames": [[b.as_list() for b in frame] for frame in boxes]}, separators=(",", ":"))
        + "\n", encoding="utf-8")
    acquisition = next((e for e in chain_entries(session, f"original:{original.id}")
                        if e.action == "acquisition"), None)
    record: dict[str, Any] = {
        "clip": clip_rel, "clip_sha256": clip_sha, "still": still_rel,
        "still_sha256": still_sha, "boxes": boxes_rel, "redaction_id": redaction.id,
        "source_clip_sha256": cut.sha256, "original_sha256": original.sha256,
        "acquisition_entry_hash": acquisition.entry_hash if acquisition else None,
        "detectors": redaction.detectors, "parameters": {
            **redaction.parameters, "style": redaction.style,
            "mute_audio": redaction.mute_audio, "redact": redact,
            "encoder": "libx264 (PyAV), ffmpeg " + ffmpeg_version(),
            "render": render_parameters()},
        "proposed_by": redaction.created_by, "proposed_at": format_time(redaction.created_at),
        "approved_by": redaction.approved_by,
        "approved_at": format_time(redaction.approved_at) if redaction.approved_at else None,
        "decisions": [decision_record(d) for d in decisions], "summary": summary,
    }
    provenance_rel = f"data/redaction/clip-{number:03d}-provenance.json"
    (bag / provenance_rel).write_text(json.dumps(record, indent=1, sort_keys=True,
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    span = original.recording_start_utc
    report = RedactedClipReport(
        number=number, camera=f"{camera.id} — {camera.name}",
        original_filename=original.filename, original_sha256=original.sha256,
        acquisition_entry_hash=record["acquisition_entry_hash"],
        source_clip_sha256=cut.sha256, clip_path=clip_rel, clip_sha256=clip_sha,
        still_path=bag / still_rel,
        start_utc=(span + timedelta(seconds=cut.actual_start_s)).astimezone(UTC),
        end_utc=(span + timedelta(seconds=cut.actual_end_s)).astimezone(UTC),
        timezone=camera.timezone, style=redaction.style, mute_audio=redaction.mute_audio,
        summary=summary, detectors=redaction.detectors, decisions=record["decisions"])
    return {"original": original, "report": report, "record": record,
            "summary": {"clip_id": clip.id, "redaction_id": redaction.id, **summary},
            "entry": {"clip_id": clip.id, "redaction_id": redaction.id, "path": clip_rel,
                      "sha256": clip_sha, "still_path": still_rel, "still_sha256": still_sha,
                      "source_clip_sha256": cut.sha256, "original_sha256": original.sha256}}


def _write(session: Session, bag: Path, staged: Path, *, case: Case,
           planned_record: dict[str, Any], made: list[dict[str, Any]], redact: list[str],
           exporter: str, signer: Signer, organisation: str,
           top_dir: str, lang: str = DEFAULT_LANGUAGE,
           trusted: TrustedTime | None = None) -> tuple[str, str, str]:
    trusted = trusted or TrustedTime()
    custody: list[dict[str, Any]] = []
    for original_id in sorted({m["original"].id for m in made}):
        custody += [entry_record(e) for e in chain_entries(session, f"original:{original_id}")]
    custody += [entry_record(e) for e in chain_entries(session, f"case:{case.id}")
                if e.seq < planned_record["seq"]]
    custody.append(planned_record)
    write_jsonl(bag / "data" / "custody.jsonl", custody)
    originals = {m["original"].sha256: {"original": m["original"], "included": False,
                                        "path": "not included: redacted copy"} for m in made}
    build_provenance(bag / "data" / "provenance.jsonld", case=case, custody=custody,
                     originals=list(originals.values()), clips=[{
                         "clip_id": m["entry"]["clip_id"], "path": m["record"]["clip"],
                         "sha256": m["record"]["clip_sha256"],
                         "still_path": m["record"]["still"],
                         "still_sha256": m["record"]["still_sha256"],
                         "original_sha256": m["record"]["original_sha256"],
                         "tool": "oko redaction", "tool_version": OKO_VERSION,
                         "command": m["record"]["parameters"]["encoder"],
                         "still_tool": "pyav+pillow", "still_tool_version": OKO_VERSION,
                         "still_parameters": {"frame": 0, "of": m["record"]["clip"]},
                         "requested_start_utc": format_time(m["report"].start_utc),
                         "requested_end_utc": format_time(m["report"].end_utc),
                         "actual_start_utc": format_time(m["report"].start_utc),
                         "actual_end_utc": format_time(m["report"].end_utc),
                         "provenance": {"redaction": m["record"]["boxes"]}} for m in made])
    _mark_redacted(bag / "data" / "provenance.jsonld")
    digest = evidence_digest(hash_payload(bag, exclude=frozenset({REPORT_PATH})))
    when = datetime_of(planned_record)
    tsa = trusted.requested
    verify = verify_instructions(fingerprint=signer.fingerprint_sha256, top_dir=top_dir,
                                 root_fingerprint=signer.root_fingerprint_sha256,
                                 tsa_url=tsa.url if tsa is not None else None)
    build_disclosure_report(DisclosureReportData(
        case_number=case.number, case_title=case.title, agency=case.agency,
        organisation=organisation, exporter=exporter, export_time_utc=when,
        timezone=made[0]["report"].timezone, redact=redact,
        signer_fingerprint=signer.fingerprint_sha256, evidence_digest=digest,
        clips=[m["report"] for m in made], verify_text=verify, lang=lang), bag / REPORT_PATH)
    # PAdES like the full export's, before hashing; its report draws no signature block
    sign_bundle_report(bag / REPORT_PATH, signer=signer, timestamping=tsa, visible=False)
    tag_sha = finish_bag(bag, bag_info=[
        ("Source-Organization", organisation), ("Contact-Name", exporter),
        ("External-Identifier", case.number),
        ("External-Description", f"{case.title} (redacted disclosure copy)"),
        ("Bagging-Date", f"{when:%Y-%m-%d}"), ("Bag-Software-Agent", f"Oko {OKO_VERSION}"),
        ("Oko-Case-Number", case.number), ("Oko-Agency", case.agency),
        ("Oko-Exporter", exporter), ("Oko-Export-Time-UTC", format_time(when)),
        ("Oko-Version", OKO_VERSION), ("Oko-Disclosure", "redacted: " + ",".join(redact)),
        ("Oko-Signer-Fingerprint-SHA256", signer.fingerprint_sha256),
        ("Oko-Evidence-Digest", digest), (TRUSTED_TIME_FIELD, trusted.field)],
        verify_text=verify, signer=signer, timestamp_authority=tsa)
    return zip_bag(bag, staged, top_dir=top_dir), tag_sha, digest


def datetime_of(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["recorded_at"]).replace("Z", "+00:00"))


def _mark_redacted(path: Path) -> None:
    """Name the derivations for what they are: masked and re-encoded, not stream copy."""
    document = json.loads(path.read_text(encoding="utf-8"))
    for node in document["@graph"]:
        name = node.get("uco-core:name", "")
        if name == "derivation: clip (stream copy)":
            node["uco-core:name"] = "derivation: redacted clip (masked, re-encoded H.264)"
        elif name == "derivation: still frame":
            node["uco-core:name"] = "derivation: redacted still (first redacted frame)"
    path.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


__all__ = [
    "DisclosureResult",
    "approved_redactions",
    "datetime_of",
    "decision_record",
    "decision_views",
    "decisions_of",
    "export_disclosure",
    "facts_of",
    "masked_boxes",
]
