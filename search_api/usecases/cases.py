"""Use cases: open a case, list and read the cases an actor may see, add a clip, share.

A case the actor may not see answers exactly like a missing one (``NotFoundError``), so
case ids and numbers never leak. The local operator sees every case. Each action that
changes a case writes one ``case_change`` audit entry, with the case id, in its
transaction; listing cases and reading one write a ``case_read`` entry (``what="list",
count`` or ``what="detail", case_id, number``) in the read's transaction. The
``*Public`` models are what the API returns and ``oko case ... --json`` prints.

A clip from a search names the search's audit entry and a returned moment's frame; its
provenance (query, model, weights, score, k, time) is copied from that entry, never taken
from the client (``search_provenance``). Sharing follows two rules: only the case's
investigator or a supervisor of its agency shares, and only with prosecutors or with
investigators and supervisors whose agency may search every camera in the case; an
unknown username gets the very answer a forbidden one gets. Exports re-check the
cameras (``require_case_footage_visible``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from evidence import cases as domain
from search_api.accounts import get_user_or_raise
from search_api.audit import AuditAction
from search_api.policy import has_permission, visible_camera_ids
from search_api.usecases.context import UseCaseContext
from storage.custody import chain_entries
from storage.custody_hash import format_time
from storage.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from storage.models.access import AuditEvent, User
from storage.models.evidence import Case, CaseClip, CustodyEntry
from storage.models.media import Frame
from storage.permissions import Permission

CLIENT_PROVENANCE_KEYS = frozenset({"search_provenance", "provenance", "query", "model",
                                    "weights_sha256", "score"})
CLIENT_PROVENANCE_REFUSED = (
    "A clip's search provenance is copied from the audited search, never sent: name the "
    "search (search_id) and the moment's frame (frame_id) instead.")


class ClientProvenanceError(InvalidInputError):
    """A client sent search provenance of its own (the server copies it from the audit)."""

    code = "client_provenance_refused"


class SearchNotFoundError(NotFoundError):
    """The named audit entry is missing, is no search, or is another actor's search."""

    code = "search_not_found"


class ShareRefusedError(PermissionDeniedError):
    """The sharer or the recipient is outside the sharing rules (one answer for both
    an unknown and a forbidden recipient)."""

    code = "share_refused"


class FootageNotVisibleError(PermissionDeniedError):
    """The case holds footage of a camera the user's agency may not search."""

    code = "case_footage_not_visible"


class CasePublic(BaseModel):
    id: int
    number: str
    title: str
    legal_basis: str
    investigator_id: int
    agency: str
    status: str
    created_at: datetime
    shared_with: list[int]


class ClipPublic(BaseModel):
    id: int
    camera_id: str
    original_id: int
    start_utc: datetime
    end_utc: datetime
    note: str
    source: str = Field(description="manual (added by hand) or search")
    origin: str = Field(description="'added by hand', or the search and frame it came from")
    provenance: dict[str, Any] = Field(description=(
        "For a clip from a search, copied from the search's audit entry: search_id, "
        "searched_at, searched_by, query, model, weights_sha256, k, frame_id, score"))

    @classmethod
    def from_clip(cls, clip: CaseClip) -> ClipPublic:
        return cls.model_validate({**clip.model_dump(),
                                   "origin": domain.clip_origin(clip.provenance)})


class CustodyPublic(BaseModel):
    seq: int
    action: str
    actor: str
    recorded_at: datetime
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str

    @classmethod
    def from_entry(cls, entry: CustodyEntry) -> CustodyPublic:
        return cls.model_validate(entry, from_attributes=True)


class CaseDetailPublic(CasePublic):
    clips: list[ClipPublic]
    custody: list[CustodyPublic] = Field(description="The case's custody chain, oldest first")


@dataclass(frozen=True)
class SharedCase:
    """The case after sharing, and the canonical username it was shared with."""

    case: CasePublic
    username: str


def can_see_case(ctx: UseCaseContext, case: Case | None) -> bool:
    """The one access rule for cases, with the operator (who sees every case) added."""
    if case is None:
        return False
    if ctx.user is None:  # the local operator runs with the data dir's own rights
        return True
    return case.id in domain.visible_case_ids(ctx.session, user=ctx.user)


def get_visible_case(ctx: UseCaseContext, case_id: int) -> Case:
    """The case, if the actor may see it; raises ``NotFoundError`` like a missing case."""
    case = ctx.session.get(Case, case_id)
    if not can_see_case(ctx, case):
        raise NotFoundError(f"Case {case_id} does not exist.")
    assert case is not None
    return case


def get_visible_case_by_number(ctx: UseCaseContext, number: str) -> Case:
    """Like ``get_visible_case``, by case number (what the CLI names cases by)."""
    case = domain.get_case_by_number(ctx.session, number)
    if not can_see_case(ctx, case):
        raise NotFoundError(f"Case {number} does not exist.")
    assert case is not None
    return case


def case_public(session: Session, case: Case) -> CasePublic:
    return CasePublic(**case.model_dump(), shared_with=domain.shared_user_ids(session, case=case))


def _investigator(ctx: UseCaseContext, username: str | None) -> User:
    """A user opens cases as their own investigator; the operator names one."""
    if ctx.user is None:
        if not username:
            raise InvalidInputError("A case opened by the local operator needs its "
                                    "investigator's username.")
        return get_user_or_raise(ctx.session, username=username)
    if username and username.strip().lower() != ctx.user.username:
        raise PermissionDeniedError("A user opens cases as their own investigator only.")
    return ctx.user


def create_case(ctx: UseCaseContext, *, number: str, title: str, legal_basis: str,
                investigator: str | None = None) -> CasePublic:
    """Open a case owned by the acting user (the operator names its ``investigator``).

    Raises ``PermissionDeniedError`` for a role that may not manage cases or a user
    naming someone else, ``NotFoundError`` for an unknown investigator,
    ``InvalidInputError`` for a malformed number or an empty title or legal basis, and
    ``ConflictError`` when the number is taken.
    """
    ctx.require(Permission.MANAGE_CASES)
    case = domain.create_case(ctx.session, number=number, title=title, legal_basis=legal_basis,
                              investigator=_investigator(ctx, investigator))
    ctx.audit(AuditAction.CASE_CHANGE, change="create", case_id=case.id, number=case.number)
    ctx.commit()
    return case_public(ctx.session, case)


def list_cases(ctx: UseCaseContext) -> list[CasePublic]:
    """The cases the actor may see, oldest first (the operator: every case).

    Raises ``PermissionDeniedError`` for a role that may not read cases.
    """
    ctx.require(Permission.READ_CASES)
    if ctx.user is None:
        cases = list(ctx.session.exec(select(Case).order_by(col(Case.created_at))).all())
    else:
        cases = domain.cases_visible_to(ctx.session, user=ctx.user)
    listed = [case_public(ctx.session, c) for c in cases]
    ctx.audit(AuditAction.CASE_READ, what="list", count=len(listed))
    ctx.commit()
    return listed


def case_detail(session: Session, case: Case) -> CaseDetailPublic:
    clips = [ClipPublic.from_clip(c) for c in domain.case_clips(session, case=case)]
    custody = [CustodyPublic.from_entry(e) for e in chain_entries(session, f"case:{case.id}")]
    return CaseDetailPublic(**case_public(session, case).model_dump(), clips=clips,
                            custody=custody)


def read_case(ctx: UseCaseContext, *, case_id: int) -> CaseDetailPublic:
    """A case with its clips and custody chain.

    Raises ``NotFoundError`` for a missing case and for one the actor may not see (a
    role that reads no cases sees none).
    """
    case = get_visible_case(ctx, case_id)
    detail = case_detail(ctx.session, case)
    ctx.audit(AuditAction.CASE_READ, what="detail", case_id=case.id, number=case.number)
    ctx.commit()
    return detail


def _search_entry(ctx: UseCaseContext, search_id: int) -> AuditEvent:
    """The actor's own search entry; anything else answers as if it did not exist."""
    entry = ctx.session.get(AuditEvent, search_id)
    if entry is None or entry.action != AuditAction.SEARCH.value \
            or entry.actor != ctx.actor.name:
        raise SearchNotFoundError(f"Search {search_id} is not a search of yours.")
    return entry


def _query_words(details: dict[str, Any]) -> str:
    """What was searched for, in words: the text, an image, a similar frame, or several."""
    filters = details.get("filters")
    parts = [str(details["text"])] if details.get("text") else []
    if details.get("image_sha256"):
        parts.append(f"an image (SHA-256 {details['image_sha256']})")
    if isinstance(filters, dict) and filters.get("similar_to_frame_id"):
        parts.append(f"frames like frame {filters['similar_to_frame_id']}")
    return " + ".join(parts)


def search_provenance(ctx: UseCaseContext, *, search_id: int, frame_id: int, camera_id: str,
                      start_utc: datetime, end_utc: datetime) -> dict[str, Any]:
    """A clip's provenance, copied from the actor's audited search ``search_id``.

    Raises ``SearchNotFoundError`` for a missing entry, one that is no search and another
    actor's search (one answer), and ``InvalidInputError`` for a frame that is not a
    returned moment's frame, of another camera, or outside the clip's span.
    """
    entry = _search_entry(ctx, search_id)
    details = entry.details
    moments = details.get("moments") if isinstance(details.get("moments"), list) else []
    moment = next((m for m in moments or [] if isinstance(m, dict)
                   and m.get("frame_id") == frame_id), None)
    if moment is None:
        raise InvalidInputError(f"Frame {frame_id} is not among the moments search "
                                f"{search_id} returned (name a moment's best_frame_id).")
    frame = ctx.session.get(Frame, frame_id)
    if frame is None or frame.camera_id != camera_id or moment.get("camera_id") != camera_id:
        raise InvalidInputError(f"Frame {frame_id} of search {search_id} is not from camera "
                                f"'{camera_id}'.")
    if not start_utc <= frame.captured_at_utc <= end_utc:
        raise InvalidInputError(
            f"The clip does not contain frame {frame_id} "
            f"({format_time(frame.captured_at_utc)}) of search {search_id}.")
    return {
        "search_id": entry.seq, "search_entry_hash": entry.entry_hash,
        "searched_at": format_time(entry.occurred_at), "searched_by": entry.actor,
        "purpose": details.get("purpose"), "query": _query_words(details),
        "text": details.get("text"), "image_sha256": details.get("image_sha256"),
        "model": details.get("model"), "weights_sha256": details.get("weights_sha256"),
        "k": details.get("k"), "frame_id": frame_id,
        "frame_utc": format_time(frame.captured_at_utc), "score": moment.get("score"),
    }


def add_clip(ctx: UseCaseContext, *, case_id: int, camera_id: str, start_utc: datetime,
             end_utc: datetime, note: str = "", search_id: int | None = None,
             frame_id: int | None = None) -> ClipPublic:
    """Add a camera's time range: hand-typed, or a search moment named by its audited
    search and frame, whose provenance the server copies from that search.

    The clip's original is then under evidence lock and the clip is in the custody chain.
    Raises ``PermissionDeniedError`` for a role that may not manage cases,
    ``NotFoundError`` for an invisible case or camera or a gap in the footage,
    ``SearchNotFoundError`` for a search that is not the actor's, and
    ``InvalidInputError`` for an empty or naive span, a search without its frame (or the
    reverse) and a frame the search did not return for this camera and span.
    """
    ctx.require(Permission.MANAGE_CASES)
    actor = ctx.custody_actor("Adding a clip to a case")
    case = get_visible_case(ctx, case_id)
    ctx.visible_camera(camera_id)
    provenance: dict[str, Any] | None = None
    if (search_id is None) != (frame_id is None):
        raise InvalidInputError("A clip from a search names both the search (search_id) "
                                "and the moment's frame (frame_id).")
    if search_id is not None and frame_id is not None:
        if start_utc.tzinfo is None or end_utc.tzinfo is None:  # compared with the frame
            raise InvalidInputError("Clip times need a time zone (e.g. 2026-11-24T10:00:00Z).")
        provenance = search_provenance(ctx, search_id=search_id, frame_id=frame_id,
                                       camera_id=camera_id, start_utc=start_utc,
                                       end_utc=end_utc)
    clip = domain.add_clip(ctx.session, case=case, camera_id=camera_id, start_utc=start_utc,
                           end_utc=end_utc, note=note, actor=actor,
                           added_by_id=ctx.user.id if ctx.user else None,
                           provenance=provenance)
    ctx.audit(AuditAction.CASE_CHANGE, change="add_clip", case_id=case.id, clip_id=clip.id,
              camera_id=camera_id, start_utc=start_utc, end_utc=end_utc,
              search_id=search_id, frame_id=frame_id)
    ctx.commit()
    return ClipPublic.from_clip(clip)


def require_case_footage_visible(ctx: UseCaseContext, *, case: Case, user: User | None,
                                 action: str) -> None:
    """Raises ``FootageNotVisibleError`` when ``user``'s agency may not search a camera
    whose footage is in the case.

    Applies to roles that see footage by agency (investigators, supervisors); the
    operator (None) and prosecutors, who receive bundles by design, pass.
    """
    if user is None or not has_permission(user, Permission.VIEW_FOOTAGE):
        return
    hidden = domain.case_camera_ids(ctx.session, case=case) - visible_camera_ids(
        ctx.session, user)
    if hidden:
        raise FootageNotVisibleError(
            f"{action} case {case.number} is refused: it holds footage of camera "
            f"{', '.join(sorted(hidden))}, which the {user.agency} agency of {user.username} "
            "may not search.")


def _require_may_share(ctx: UseCaseContext, case: Case) -> None:
    user = ctx.user
    if user is None or user.id == case.investigator_id:
        return
    if has_permission(user, Permission.SHARE_AGENCY_CASES) and user.agency == case.agency:
        return
    raise ShareRefusedError(f"Only the investigator of case {case.number} or a supervisor "
                            f"of its agency ({case.agency}) may share it.")


def _may_receive(ctx: UseCaseContext, case: Case, user: User) -> bool:
    """Prosecutors; investigators and supervisors whose agency may search every camera."""
    if user.disabled or not has_permission(user, Permission.READ_CASES):
        return False
    if has_permission(user, Permission.VIEW_FOOTAGE):
        return domain.case_camera_ids(ctx.session, case=case) <= visible_camera_ids(
            ctx.session, user)
    return has_permission(user, Permission.RECEIVE_BUNDLE)


def _share_recipient(ctx: UseCaseContext, case: Case, username: str) -> User:
    """The recipient, or one refusal for an unknown and a forbidden one alike."""
    name = username.strip().lower()
    target = ctx.session.exec(select(User).where(User.username == name)).first()
    if target is None or not _may_receive(ctx, case, target):
        raise ShareRefusedError(
            f"Case {case.number} cannot be shared with '{name[:64]}': recipients are "
            "prosecutors, or investigators and supervisors of an agency allowed on every "
            "camera in the case.")
    return target


def share_case(ctx: UseCaseContext, *, case_id: int, username: str) -> SharedCase:
    """Let another user (a prosecutor, or a colleague whose agency may search every camera
    of the case) see the case; sharing twice is a no-op.

    Raises ``PermissionDeniedError`` for a role that may not manage cases,
    ``NotFoundError`` for an invisible case, and ``ShareRefusedError`` (403) when the
    actor is neither the case's investigator nor a supervisor of its agency, or the
    recipient is unknown, disabled or not allowed (the same sentence for each).
    """
    ctx.require(Permission.MANAGE_CASES)
    case = get_visible_case(ctx, case_id)
    _require_may_share(ctx, case)
    target = _share_recipient(ctx, case, username)
    domain.share_case(ctx.session, case=case, user=target)
    ctx.audit(AuditAction.CASE_CHANGE, change="share", case_id=case.id,
              shared_with=target.username)
    ctx.commit()
    return SharedCase(case=case_public(ctx.session, case), username=target.username)


__all__ = [
    "CLIENT_PROVENANCE_KEYS",
    "CLIENT_PROVENANCE_REFUSED",
    "CaseDetailPublic",
    "CasePublic",
    "ClientProvenanceError",
    "ClipPublic",
    "CustodyPublic",
    "FootageNotVisibleError",
    "SearchNotFoundError",
    "ShareRefusedError",
    "SharedCase",
    "add_clip",
    "can_see_case",
    "case_detail",
    "case_public",
    "create_case",
    "get_visible_case",
    "get_visible_case_by_number",
    "list_cases",
    "read_case",
    "require_case_footage_visible",
    "search_provenance",
    "share_case",
]
