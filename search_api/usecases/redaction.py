"""Use cases: propose, review, preview, approve a clip's redaction; export a disclosure copy.

One function per action, called by the API routes and the CLI alike:

1. ``propose_redaction``: detectors on every frame of case clip N, tracks stored as a
   ``proposed`` redaction (the actor must be allowed to export the case).
2. ``exclude_track`` / ``include_track`` (a reason is required), ``add_manual_box``
   (inside the frame, over a time range): each a recorded decision, who/when/why.
3. ``preview_redaction``: one frame of the clip masked as the export would mask it.
4. ``approve_redaction``: a person signs it off; it takes no more decisions.
5. ``export_disclosure``: the signed, redacted disclosure bundle of the whole case.

Every action requires ``Permission.EXPORT`` on a visible case whose cameras the actor's
agency may search, and writes an ``export`` audit entry naming the change. A refused
or invalid action writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, select

from evidence.cases import case_clips
from evidence.clips import cut_clip
from evidence.disclosure import (
    approved_redactions,
    decision_record,
    decisions_of,
    facts_of,
    masked_boxes,
)
from evidence.disclosure import (
    export_disclosure as build_disclosure,
)
from evidence.redaction import jobs as redaction_jobs
from evidence.redaction import pipeline
from evidence.redaction.detect import Detector
from evidence.redaction.render import STYLES
from evidence.redaction.review import (
    TARGETS,
    check_manual_box,
    check_track,
    parse_targets,
    require_reason,
)
from evidence.redaction.tracking import HOLD_FRAMES, LEAD_FRAMES, MAX_GAP, PAD, Track
from evidence.report_text import check_language
from evidence.timestamp import authority_from
from search_api.audit import AuditAction
from search_api.usecases.cases import get_visible_case, require_case_footage_visible
from search_api.usecases.context import UseCaseContext
from search_api.usecases.exports import ExportJobPublic, request_export
from storage.db import session_scope
from storage.errors import ConflictError, InvalidInputError, NotFoundError, OkoError
from storage.models.evidence import Case, CaseClip
from storage.models.media import Original
from storage.models.redaction import Redaction, RedactionDecision
from storage.permissions import Permission
from storage.types import utcnow


class TrackPublic(BaseModel):
    id: str
    kind: str
    first_frame: int
    last_frame: int
    detected_frames: int
    excluded: bool
    boxes: list[list[Any]]


class DecisionPublic(BaseModel):
    kind: str
    track_id: str | None
    box: dict[str, Any] | None
    reason: str
    actor: str
    decided_at: str


class RedactionPublic(BaseModel):
    id: int
    case_id: int
    clip_id: int
    status: str
    progress_frames: int
    message: str
    targets: list[str]
    style: str
    mute_audio: bool
    width: int
    height: int
    fps: str
    frame_count: int
    source_clip_sha256: str
    detectors: list[dict[str, Any]]
    tracks: list[TrackPublic]
    decisions: list[DecisionPublic]
    summary: dict[str, Any]
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None


class DisclosurePublic(BaseModel):
    bundle_path: str
    bundle_sha256: str
    tag_manifest_sha256: str
    evidence_digest: str
    size_bytes: int
    redact: list[str]
    clips: list[dict[str, Any]]


def _public(ctx: UseCaseContext, redaction: Redaction) -> RedactionPublic:
    decisions = decisions_of(ctx.session, redaction.id)
    _boxes, summary = masked_boxes(redaction, decisions,
                                   redact=redaction.targets.split(","))
    excluded = set(summary["excluded_tracks"])
    tracks = [Track.from_dict(t) for t in redaction.tracks]
    assert redaction.id is not None
    return RedactionPublic(
        id=redaction.id, case_id=redaction.case_id, clip_id=redaction.clip_id,
        status=redaction.status, progress_frames=redaction.progress_frames,
        message=redaction.message, targets=redaction.targets.split(","), style=redaction.style,
        mute_audio=redaction.mute_audio, width=redaction.width, height=redaction.height,
        fps=redaction.fps, frame_count=redaction.frame_count,
        source_clip_sha256=redaction.source_clip_sha256, detectors=redaction.detectors,
        tracks=[TrackPublic(id=t.id, kind=t.kind, first_frame=t.first_frame,
                            last_frame=t.last_frame,
                            detected_frames=sum(s == "detected" for _b, s in t.boxes.values()),
                            excluded=t.id in excluded, boxes=t.as_dict()["boxes"])
                for t in tracks],
        decisions=[DecisionPublic(**decision_record(d)) for d in decisions], summary=summary,
        created_by=redaction.created_by, created_at=redaction.created_at,
        approved_by=redaction.approved_by, approved_at=redaction.approved_at)


def _exportable_case(ctx: UseCaseContext, case_id: int, action: str) -> Case:
    ctx.require(Permission.EXPORT)
    case = get_visible_case(ctx, case_id)
    require_case_footage_visible(ctx, case=case, user=ctx.user, action=action)
    return case


def _redaction_of(ctx: UseCaseContext, case: Case, redaction_id: int) -> Redaction:
    redaction = ctx.session.get(Redaction, redaction_id)
    if redaction is None or redaction.case_id != case.id:
        raise NotFoundError(f"Case {case.number} has no redaction {redaction_id}.")
    return redaction


def _open_redaction(ctx: UseCaseContext, case_id: int, redaction_id: int) -> Redaction:
    case = _exportable_case(ctx, case_id, "Reviewing a redaction of")
    redaction = _redaction_of(ctx, case, redaction_id)
    if redaction.status in (*redaction_jobs.DETECTING, redaction_jobs.FAILED):
        raise ConflictError(f"Redaction {redaction_id} is {redaction.status}: it takes "
                            "decisions once its detection has finished.")
    if redaction.status != "proposed":
        raise ConflictError(f"Redaction {redaction_id} is approved; it takes no more "
                            "decisions (propose a new one to change it).")
    return redaction


def _clip_number(ctx: UseCaseContext, case: Case, number: int) -> CaseClip:
    clips = case_clips(ctx.session, case=case)
    if not 1 <= number <= len(clips):
        raise NotFoundError(f"Case {case.number} has no clip {number} (it has "
                            f"{len(clips)}).")
    return clips[number - 1]


def _source_clip(ctx: UseCaseContext, clip: CaseClip) -> tuple[Path, str]:
    """The stream-copy clip the detectors see (the export cuts the same bytes)."""
    original = ctx.session.get(Original, clip.original_id)
    if original is None or not ctx.state.originals.path_for(original.sha256).is_file():
        raise NotFoundError(f"The original footage of clip {clip.id} is missing.")
    start_s = (clip.start_utc - original.recording_start_utc).total_seconds()
    end_s = (clip.end_utc - original.recording_start_utc).total_seconds()
    cut = cut_clip(original_path=ctx.state.originals.path_for(original.sha256),
                   start_s=start_s, end_s=end_s, derived=ctx.state.derived,
                   tmp_dir=ctx.settings.tmp_dir)
    return ctx.state.derived.path_for(cut.sha256), cut.sha256


def propose_redaction(ctx: UseCaseContext, *, case_id: int, clip_number: int,
                      targets: str | list[str] = "faces,plates", style: str = "blur",
                      mute_audio: bool = False, model_paths: dict[str, Path] | None = None,
                      run_in_worker: bool = True) -> RedactionPublic:
    """Queue detection on every frame of clip ``clip_number``; the worker stores the
    proposed tracks (``run_in_worker=False``: detect here, now, as the CLI does).

    Raises ``PermissionDeniedError`` for a role that may not export (and
    ``FootageNotVisibleError`` for an agency that may not search a camera of the case),
    ``NotFoundError`` for an invisible case or missing clip, ``InvalidInputError`` for
    unknown targets or style, ``RedactionModelError`` for a missing model file (and, run
    here, a corrupt one). Nothing is written then. In the worker a corrupt model or an
    undecodable clip fails the job with its sentence on the row.
    """
    case = _exportable_case(ctx, case_id, "Redacting")
    chosen = parse_targets(targets)
    if style not in STYLES:
        raise InvalidInputError(f"The redaction style {style!r} is not one of "
                                f"{', '.join(STYLES)}.")
    clip = _clip_number(ctx, case, clip_number)
    paths = model_paths or {}
    detectors = None
    if run_in_worker:  # missing files refused now; the worker loads them
        pipeline.check_model_files(chosen, face_model=paths.get("face"),
                                   plate_model=paths.get("plate"))
    else:
        detectors = pipeline.build_detectors(chosen, face_model=paths.get("face"),
                                             plate_model=paths.get("plate"))
    _source, source_sha = _source_clip(ctx, clip)
    redaction = Redaction(
        case_id=case.id or 0, clip_id=clip.id or 0, targets=",".join(chosen), style=style,
        mute_audio=mute_audio, source_clip_sha256=source_sha, width=0, height=0, fps="0",
        frame_count=0, status=redaction_jobs.QUEUED, created_by=ctx.actor.name,
        updated_at=utcnow())
    ctx.session.add(redaction)
    ctx.session.flush()
    ctx.audit(AuditAction.EXPORT, change="redaction_request", case_id=case.id,
              clip_id=clip.id, redaction_id=redaction.id, targets=chosen)
    ctx.commit()
    assert redaction.id is not None
    if run_in_worker:
        ctx.state.jobs().enqueue_redaction(redaction.id)
        return _public(ctx, redaction)
    try:
        run_redaction(ctx, redaction_id=redaction.id, model_paths=model_paths,
                      detectors=detectors)
    except Exception as exc:
        ctx.session.rollback()
        with session_scope(ctx.state.engine) as session:
            redaction_jobs.fail_redaction_job(session, job_id=redaction.id,
                                              message=_sentence(exc))
        raise
    return _public(ctx, redaction)


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, OkoError):
        return exc.message
    return f"The detection stopped on an unexpected {type(exc).__name__}."


def run_redaction(ctx: UseCaseContext, *, redaction_id: int,
                  model_paths: dict[str, Path] | None = None,
                  detectors: list[Detector] | None = None) -> bool:
    """Claim and run a queued detection; the row becomes ``proposed`` with its tracks
    (committed). Returns False, doing nothing, for a redaction that is not queued (run
    by another process, or finished). Raises ``RedactionModelError`` or
    ``InvalidInputError``; the caller then marks it failed (``fail_redaction_job``)."""
    if not redaction_jobs.claim_redaction_job(ctx.state.engine, redaction_id=redaction_id):
        return False
    redaction = ctx.session.get(Redaction, redaction_id, populate_existing=True)
    assert redaction is not None
    chosen = redaction.targets.split(",")
    paths = model_paths or {}
    if detectors is None:
        detectors = pipeline.build_detectors(chosen, face_model=paths.get("face"),
                                             plate_model=paths.get("plate"))
    source = ctx.state.derived.path_for(redaction.source_clip_sha256)
    if not source.is_file():  # the derived store lost it: cut the same bytes again
        clip = ctx.session.get(CaseClip, redaction.clip_id)
        assert clip is not None
        source, _sha = _source_clip(ctx, clip)
    proposal = pipeline.propose(source, detectors=detectors, progress=redaction_jobs
                                .progress_writer(ctx.state.engine, redaction_id))
    ctx.session.refresh(redaction)
    facts = proposal.facts
    redaction.width, redaction.height, redaction.fps = facts.width, facts.height, str(facts.fps)
    redaction.frame_count, redaction.progress_frames = facts.frame_count, facts.frame_count
    redaction.detectors = [d.info.as_dict() for d in detectors]
    redaction.parameters = {
        "every_frame": True, "detections": proposal.detections_per_kind,
        "plates_every_frames": pipeline.PLATE_EVERY, "detection": proposal.detection,
        "interrupted_attempts": (redaction.parameters or {}).get("interrupted", []),
        "tracking": {"link": "IoU >= 0.3, else nearest centre within a box diagonal",
                     "max_gap_frames": MAX_GAP, "hold_frames": HOLD_FRAMES,
                     "lead_frames": LEAD_FRAMES, "plate_hold_and_lead_frames":
                         max(HOLD_FRAMES, pipeline.PLATE_EVERY - 1), "pad": PAD}}
    redaction.tracks = [t.as_dict() for t in proposal.tracks]
    redaction.status, redaction.updated_at = redaction_jobs.PROPOSED, utcnow()
    ctx.session.add(redaction)
    ctx.audit(AuditAction.EXPORT, change="redaction_propose", case_id=redaction.case_id,
              clip_id=redaction.clip_id, redaction_id=redaction.id, targets=chosen,
              tracks=len(proposal.tracks))
    ctx.commit()
    return True


def read_redaction(ctx: UseCaseContext, *, case_id: int, redaction_id: int) -> RedactionPublic:
    case = _exportable_case(ctx, case_id, "Reviewing a redaction of")
    return _public(ctx, _redaction_of(ctx, case, redaction_id))


def list_redactions(ctx: UseCaseContext, *, case_id: int) -> list[RedactionPublic]:
    case = _exportable_case(ctx, case_id, "Reviewing a redaction of")
    rows = ctx.session.exec(select(Redaction).where(Redaction.case_id == case.id)
                            .order_by(col(Redaction.id))).all()
    return [_public(ctx, r) for r in rows]


def _decide(ctx: UseCaseContext, redaction: Redaction, decision: RedactionDecision
            ) -> RedactionPublic:
    ctx.session.add(decision)
    ctx.audit(AuditAction.EXPORT, change=f"redaction_{decision.kind}",
              case_id=redaction.case_id, redaction_id=redaction.id,
              track_id=decision.track_id, reason=decision.reason)
    ctx.commit()
    return _public(ctx, redaction)


def exclude_track(ctx: UseCaseContext, *, case_id: int, redaction_id: int, track_id: str,
                  reason: str, include: bool = False) -> RedactionPublic:
    """Leave a track unmasked (``include``: mask it again), with a reason on the record.

    Raises ``InvalidInputError`` without a reason or for an unknown track and
    ``ConflictError`` on an approved redaction; nothing is written then.
    """
    redaction = _open_redaction(ctx, case_id, redaction_id)
    what = "Including a track again" if include else "Excluding a track"
    cleaned = require_reason(reason, what)
    check_track(track_id, [Track.from_dict(t) for t in redaction.tracks])
    return _decide(ctx, redaction, RedactionDecision(
        redaction_id=redaction_id, kind="include_track" if include else "exclude_track",
        track_id=track_id, reason=cleaned, actor=ctx.actor.name, decided_at=utcnow()))


def add_manual_box(ctx: UseCaseContext, *, case_id: int, redaction_id: int, x: int, y: int,
                   w: int, h: int, start_s: float, end_s: float,
                   reason: str = "") -> RedactionPublic:
    """Mask a box over ``[start_s, end_s]`` seconds of the clip (a tattoo, a house number).

    Raises ``InvalidInputError`` for a box outside the frame or a time range outside
    the clip, ``ConflictError`` on an approved redaction; nothing is written then.
    """
    redaction = _open_redaction(ctx, case_id, redaction_id)
    manual = check_manual_box(x=x, y=y, w=w, h=h, start_s=start_s, end_s=end_s,
                              facts=facts_of(redaction))
    return _decide(ctx, redaction, RedactionDecision(
        redaction_id=redaction_id, kind="manual_box", box=manual.as_dict(),
        reason=" ".join(reason.split()), actor=ctx.actor.name, decided_at=utcnow()))


def approve_redaction(ctx: UseCaseContext, *, case_id: int,
                      redaction_id: int) -> RedactionPublic:
    """A person signs the redaction off; it then takes no more decisions."""
    redaction = _open_redaction(ctx, case_id, redaction_id)
    redaction.status, redaction.approved_by = "approved", ctx.actor.name
    redaction.approved_at = utcnow()
    ctx.session.add(redaction)
    return _decide(ctx, redaction, RedactionDecision(
        redaction_id=redaction_id, kind="approve", reason="approved for disclosure",
        actor=ctx.actor.name, decided_at=redaction.approved_at))


def preview_redaction(ctx: UseCaseContext, *, case_id: int, redaction_id: int,
                      at_s: float = 0.0) -> bytes:
    """The frame at ``at_s`` seconds into the clip, masked as the export masks it (JPEG)."""
    case = _exportable_case(ctx, case_id, "Previewing a redaction of")
    redaction = _redaction_of(ctx, case, redaction_id)
    if redaction.status in (*redaction_jobs.DETECTING, redaction_jobs.FAILED):
        raise ConflictError(f"Redaction {redaction_id} is {redaction.status}: there is "
                            "nothing to preview until its detection has finished.")
    facts = facts_of(redaction)
    if not 0 <= at_s < facts.duration_s:
        raise InvalidInputError(f"The clip is {facts.duration_s:.2f} s long; no frame at "
                                f"{at_s} s.")
    clip = ctx.session.get(CaseClip, redaction.clip_id)
    assert clip is not None
    source, _sha = _source_clip(ctx, clip)
    boxes, _summary = masked_boxes(redaction, decisions_of(ctx.session, redaction.id),
                                   redact=redaction.targets.split(","))
    image = pipeline.preview_jpeg(source, frame_index=min(facts.frame_count - 1,
                                                          int(at_s * facts.fps)),
                                  boxes=boxes, style=redaction.style)
    ctx.audit(AuditAction.VIEW_VIDEO, change="redaction_preview", case_id=case.id,
              redaction_id=redaction_id, at_s=at_s)
    ctx.commit()
    return image


class DisclosureNeedsApprovalError(ConflictError):
    """Exports need a supervisor's approval, so a disclosure cannot be written directly."""

    code = "disclosure_needs_approval"


def request_disclosure(ctx: UseCaseContext, *, case_id: int, redact: str | list[str],
                       lang: str = "uk", run_in_worker: bool = True) -> ExportJobPublic:
    """Ask for the case's disclosure (redacted) bundle as an export job: the worker
    builds it (``run_in_worker=False``: the CLI runs it with ``exports.run_export``),
    after a supervisor's approval when ``exports_need_approval`` says so, like any export.

    Raises what ``export_disclosure`` raises before building (permissions, targets,
    language, ``ConflictError`` for a clip without an approved redaction); nothing is
    written then.
    """
    check_language(lang)
    case = _exportable_case(ctx, case_id, "Exporting")
    chosen = parse_targets(redact)
    ctx.custody_actor("Exporting a disclosure copy")
    approved_redactions(ctx.session, case=case, redact=chosen)
    return request_export(ctx, case_id=case_id, run_in_worker=run_in_worker, lang=lang,
                          redact=chosen)


def export_disclosure(ctx: UseCaseContext, *, case_id: int, redact: str | list[str],
                      out_path: Path | None = None,
                      model_paths: dict[str, Path] | None = None,
                      lang: str = "uk") -> DisclosurePublic:
    """The signed redacted disclosure bundle of the case (see ``evidence.disclosure``).

    Raises ``PermissionDeniedError``/``FootageNotVisibleError``/``NotFoundError`` as
    the other actions do, ``ConflictError`` for a clip without an approved redaction,
    ``RedactionModelError`` when a model file is missing or changed, and
    ``DisclosureNeedsApprovalError`` when exports need a supervisor's approval (then
    only ``request_disclosure`` may export); nothing is exported then. The custody
    entry and the audit entry commit together.
    """
    check_language(lang)  # UnsupportedLanguageError (exit 2, 422), nothing written
    case = _exportable_case(ctx, case_id, "Exporting")
    chosen = parse_targets(redact)
    exporter = ctx.custody_actor("Exporting a disclosure copy")
    if ctx.settings.exports_need_approval:
        raise DisclosureNeedsApprovalError(
            f"Exports need a supervisor's approval here, so the disclosure of case "
            f"{case.number} cannot be written directly: request it with oko case export "
            f"{case.number} --redact {','.join(chosen)} and have it approved.")
    settings = ctx.settings
    out = out_path or settings.exports_dir / (
        f"{case.number}-redacted-{utcnow():%Y%m%dT%H%M%SZ}.zip")
    if out.exists():
        raise ConflictError(f"{out} already exists; choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)

    def commit(_result: object) -> None:
        ctx.audit(AuditAction.EXPORT, change="disclosure", case_id=case.id, redact=chosen,
                  bundle=out.name)
        ctx.commit()

    result = build_disclosure(
        ctx.session, case=case, redact=chosen, exporter=exporter,
        signer=ctx.state.signer(), originals=ctx.state.originals, derived=ctx.state.derived,
        tmp_dir=settings.tmp_dir, out_path=out, organisation=settings.organisation,
        model_paths=model_paths, commit=commit, lang=lang,
        timestamp_authority=authority_from(settings.tsa_url, settings.tsa_ca_cert,
                                           timeout_seconds=settings.tsa_timeout_seconds))
    return DisclosurePublic(
        bundle_path=str(result.bundle_path), bundle_sha256=result.bundle_sha256,
        tag_manifest_sha256=result.tag_manifest_sha256,
        evidence_digest=result.evidence_digest, size_bytes=result.size_bytes,
        redact=chosen, clips=result.clips)


__all__ = ["TARGETS", "DecisionPublic", "DisclosureNeedsApprovalError", "DisclosurePublic",
           "RedactionPublic", "TrackPublic",
           "add_manual_box", "approve_redaction", "disclosure_file", "exclude_track",
           "export_disclosure", "list_redactions", "preview_redaction", "propose_redaction",
           "read_redaction", "request_disclosure", "run_redaction"]


def disclosure_file(ctx: UseCaseContext, *, case_id: int, name: str) -> Path:
    """A disclosure bundle of the case in the exports dir, handed out (a ``download``
    audit entry). Raises ``NotFoundError`` for any other name."""
    case = _exportable_case(ctx, case_id, "Downloading a disclosure of")
    folder = ctx.settings.exports_dir
    path = folder / name
    if (not name.startswith(f"{case.number}-redacted-") or not name.endswith(".zip")
            or "/" in name or path.parent != folder or not path.is_file()):
        raise NotFoundError(f"Case {case.number} has no disclosure bundle {name!r}.")
    ctx.audit(AuditAction.DOWNLOAD, case_id=case.id, disclosure=name)
    ctx.commit()
    return path
