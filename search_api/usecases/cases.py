"""Use cases: open a case, list and read the cases an actor may see, add a clip, share.

A case the actor may not see answers exactly like a missing one (``NotFoundError``), so
case ids and numbers never leak. The local operator sees every case. Each action that
changes a case writes one ``case_change`` audit entry, with the case id, in its
transaction; listing cases and reading one write a ``case_read`` entry (``what="list",
count`` or ``what="detail", case_id, number``) in the read's transaction. The
``*Public`` models are what the API returns and ``oko case ... --json`` prints.
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
from search_api.usecases.context import UseCaseContext
from storage.custody import chain_entries
from storage.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from storage.models.access import User
from storage.models.evidence import Case, CustodyEntry
from storage.permissions import Permission


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
    source: str
    provenance: dict[str, Any]


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
    clips = [ClipPublic.model_validate(c, from_attributes=True)
             for c in domain.case_clips(session, case=case)]
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


def add_clip(ctx: UseCaseContext, *, case_id: int, camera_id: str, start_utc: datetime,
             end_utc: datetime, note: str = "",
             provenance: dict[str, Any] | None = None) -> ClipPublic:
    """Add a camera's time range (hand-typed, or a search moment with its provenance).

    The clip's original is then under evidence lock and the clip is in the custody chain.
    Raises ``PermissionDeniedError`` for a role that may not manage cases,
    ``NotFoundError`` for an invisible case or camera or a gap in the footage, and
    ``InvalidInputError`` for an empty or naive span or an incomplete provenance.
    """
    ctx.require(Permission.MANAGE_CASES)
    case = get_visible_case(ctx, case_id)
    ctx.visible_camera(camera_id)
    clip = domain.add_clip(ctx.session, case=case, camera_id=camera_id, start_utc=start_utc,
                           end_utc=end_utc, note=note, actor=ctx.actor.name,
                           added_by_id=ctx.user.id if ctx.user else None,
                           provenance=provenance)
    ctx.audit(AuditAction.CASE_CHANGE, change="add_clip", case_id=case.id, clip_id=clip.id,
              camera_id=camera_id, start_utc=start_utc, end_utc=end_utc)
    ctx.commit()
    return ClipPublic.model_validate(clip, from_attributes=True)


def share_case(ctx: UseCaseContext, *, case_id: int, username: str) -> SharedCase:
    """Let another user (e.g. a prosecutor) see the case; sharing twice is a no-op.

    Raises ``PermissionDeniedError`` for a role that may not manage cases and
    ``NotFoundError`` for an invisible case or an unknown username.
    """
    ctx.require(Permission.MANAGE_CASES)
    case = get_visible_case(ctx, case_id)
    target = get_user_or_raise(ctx.session, username=username)
    domain.share_case(ctx.session, case=case, user=target)
    ctx.audit(AuditAction.CASE_CHANGE, change="share", case_id=case.id,
              shared_with=target.username)
    ctx.commit()
    return SharedCase(case=case_public(ctx.session, case), username=target.username)


__all__ = [
    "CaseDetailPublic",
    "CasePublic",
    "ClipPublic",
    "CustodyPublic",
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
    "share_case",
]
