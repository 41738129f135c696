"""Cases, their clips and shares, the evidence lock, and custody transfer and receipt.

Functions flush but never commit: the caller commits together with its audit entry.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.custody import acquisition_entry, append_custody_entry
from storage.errors import ConflictError, InvalidInputError, NotFoundError
from storage.models.access import User
from storage.models.evidence import Case, CaseClip, CaseShare, CustodyEntry
from storage.models.media import Camera, Original
from storage.permissions import Permission, role_may

CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROVENANCE_KEYS = ("query", "model", "weights_sha256", "score")
ADDED_BY_HAND = "added by hand"


class EvidenceLockedError(ConflictError):
    """An original is part of a case and may not be deleted."""


def create_case(session: Session, *, number: str, title: str, legal_basis: str,
                investigator: User) -> Case:
    """A new open case owned by ``investigator``.

    Raises ``InvalidInputError`` for a malformed number or empty title/legal basis and
    ``ConflictError`` when the number is taken.
    """
    if not CASE_NUMBER.match(number):
        raise InvalidInputError(
            f"Case number '{number}' must be 1-64 letters, digits, '.', '_' or '-'."
        )
    if not title.strip() or not legal_basis.strip():
        raise InvalidInputError("A case needs a title and a legal basis.")
    if get_case_by_number(session, number) is not None:
        raise ConflictError(f"Case {number} already exists.")
    assert investigator.id is not None
    case = Case(number=number, title=title.strip(), legal_basis=legal_basis.strip(),
                investigator_id=investigator.id, agency=investigator.agency)
    session.add(case)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent creator won the race
        raise ConflictError(f"Case {number} already exists.") from exc
    return case


def get_case_by_number(session: Session, number: str) -> Case | None:
    return session.exec(select(Case).where(Case.number == number)).first()


def get_case_or_raise(session: Session, number: str) -> Case:
    case = get_case_by_number(session, number)
    if case is None:
        raise NotFoundError(f"Case {number} does not exist.")
    return case


def visible_case_ids(session: Session, *, user: User) -> set[int]:
    """The one access rule for cases.

    A role that reads cases sees those shared with the user; one that also manages
    cases (investigators, supervisors) sees the user's own as well; other roles none.
    """
    if user.id is None or not role_may(user.role, Permission.READ_CASES):
        return set()
    shared = set(session.exec(select(CaseShare.case_id)
                              .where(CaseShare.user_id == user.id)).all())
    if not role_may(user.role, Permission.MANAGE_CASES):
        return shared
    owned = set(session.exec(select(Case.id).where(Case.investigator_id == user.id)).all())
    return {i for i in owned if i is not None} | shared


def cases_visible_to(session: Session, *, user: User) -> list[Case]:
    ids = visible_case_ids(session, user=user)
    if not ids:
        return []
    return list(session.exec(select(Case).where(col(Case.id).in_(ids))
                             .order_by(col(Case.created_at))).all())


def share_case(session: Session, *, case: Case, user: User) -> CaseShare:
    """Let ``user`` (e.g. a prosecutor) see the case; sharing twice is a no-op.

    Who may share with whom is the application layer's rule
    (``search_api.usecases.cases.share_case``); this only records the share.
    """
    existing = session.exec(select(CaseShare).where(CaseShare.case_id == case.id,
                                                    CaseShare.user_id == user.id)).first()
    if existing is not None:
        return existing
    assert case.id is not None and user.id is not None
    share = CaseShare(case_id=case.id, user_id=user.id)
    session.add(share)
    session.flush()
    return share


def case_camera_ids(session: Session, *, case: Case) -> set[str]:
    """The cameras whose footage is in the case (through any of its clips)."""
    return set(session.exec(select(CaseClip.camera_id).where(CaseClip.case_id == case.id)
                            .distinct()).all())


def clip_origin(provenance: dict[str, Any]) -> str:
    """How a clip came into its case, in words: ``added by hand`` or the search it came from."""
    if not provenance:
        return ADDED_BY_HAND
    search = provenance.get("search_id")
    where = f"search {search}" if search is not None else "a search"
    frame = provenance.get("frame_id")
    return f"from {where}" + (f", frame {frame}" if frame is not None else "")


def shared_user_ids(session: Session, *, case: Case) -> list[int]:
    return list(session.exec(select(CaseShare.user_id).where(CaseShare.case_id == case.id)
                             .order_by(col(CaseShare.user_id))).all())


def case_clips(session: Session, *, case: Case) -> list[CaseClip]:
    return list(session.exec(select(CaseClip).where(CaseClip.case_id == case.id)
                             .order_by(col(CaseClip.id))).all())


def original_covering(session: Session, *, camera_id: str, start_utc: datetime,
                      end_utc: datetime) -> Original:
    """The ready original of ``camera_id`` that holds the whole span.

    Raises ``NotFoundError`` when no original holds its start and ``InvalidInputError``
    when the span runs past that original's end.
    """
    candidates = session.exec(
        select(Original).where(Original.camera_id == camera_id, Original.status == "ready",
                               Original.recording_start_utc <= start_utc)
        .order_by(col(Original.recording_start_utc).desc())
    ).all()
    for original in candidates:
        end_of_original = original.recording_start_utc + timedelta(seconds=original.duration_s)
        if start_utc < end_of_original:
            if end_utc > end_of_original + timedelta(milliseconds=1):
                raise InvalidInputError(
                    f"The clip runs past the end of {original.filename} "
                    f"({end_of_original.isoformat()}); split it into two clips."
                )
            return original
    raise NotFoundError(f"No footage from camera {camera_id} covers {start_utc.isoformat()}.")


def _lock_ready(session: Session, original: Original) -> Original:
    """The original's row, locked until the caller commits (``SELECT ... FOR UPDATE`` on
    PostgreSQL, the lock the retention sweep takes before marking it; SQLite serialises
    writers) and read afresh: a sweep that marked it meanwhile has made it ``expiring``.

    Raises ``FootageExpiringError`` then.
    """
    row = session.exec(select(Original).where(Original.id == original.id).with_for_update()
                       .execution_options(populate_existing=True)).one()
    if row.status != "ready":
        raise FootageExpiringError(
            f"The footage of {row.filename} is being deleted by its retention period and "
            "can no longer be added to a case.")
    return row


class FootageExpiringError(ConflictError):
    """The original was marked for retention deletion while the clip was being added."""


def add_clip(session: Session, *, case: Case, camera_id: str, start_utc: datetime,
             end_utc: datetime, note: str, actor: str, added_by_id: int | None,
             provenance: dict[str, Any] | None = None) -> CaseClip:
    """Add a clip (hand-typed, or from a search moment with its provenance) and log it.

    ``provenance`` is trusted as given: the application layer builds it from its own
    record of the search (``search_api.usecases.cases``), never from what a client sent.
    Raises ``InvalidInputError`` for an empty or naive span or a provenance without its
    query/model/weights/score, ``NotFoundError`` for an unknown camera or footage gap, and
    ``FootageExpiringError`` when a retention sweep marks the original meanwhile. The
    original's row stays locked until the caller commits, so a sweep sees the clip.
    """
    if start_utc.tzinfo is None or end_utc.tzinfo is None:
        raise InvalidInputError("Clip times need a time zone (e.g. 2026-11-24T10:00:00Z).")
    if end_utc <= start_utc:
        raise InvalidInputError("A clip must end after it starts.")
    if session.get(Camera, camera_id) is None:
        raise NotFoundError(f"Camera '{camera_id}' does not exist.")
    if provenance is not None:
        missing = [k for k in PROVENANCE_KEYS if k not in provenance]
        if missing:
            raise InvalidInputError(
                f"The search provenance lacks {', '.join(missing)}."
            )
    original = _lock_ready(session, original_covering(
        session, camera_id=camera_id, start_utc=start_utc, end_utc=end_utc))
    assert case.id is not None and original.id is not None
    clip = CaseClip(case_id=case.id, camera_id=camera_id, original_id=original.id,
                    start_utc=start_utc, end_utc=end_utc, note=note,
                    source="search" if provenance else "manual",
                    provenance=dict(provenance or {}), added_by_id=added_by_id)
    session.add(clip)
    session.flush()
    acquisition = acquisition_entry(session, original.id)
    append_custody_entry(
        session, action="clip", actor=actor, case_id=case.id, original_id=original.id,
        details={
            "case_number": case.number, "clip_id": clip.id, "camera_id": camera_id,
            "original_sha256": original.sha256,
            "acquisition_entry_hash": acquisition.entry_hash if acquisition else None,
            "start_utc": start_utc.isoformat(), "end_utc": end_utc.isoformat(),
            "note": note, "source": clip.source, "origin": clip_origin(clip.provenance),
            "provenance": clip.provenance,
        },
    )
    return clip


def locked_original_ids(session: Session) -> set[int]:
    """Originals referenced by any case clip; retention and cleanup must skip them."""
    return set(session.exec(select(CaseClip.original_id).distinct()).all())


def ensure_original_deletable(session: Session, *, original_id: int) -> None:
    """Raises ``EvidenceLockedError`` naming the cases when the original is locked."""
    numbers = session.exec(
        select(Case.number).join(CaseClip, col(CaseClip.case_id) == col(Case.id))
        .where(CaseClip.original_id == original_id).distinct()
    ).all()
    if numbers:
        raise EvidenceLockedError(
            f"Original {original_id} is under evidence lock (case {', '.join(sorted(numbers))})"
            " and cannot be deleted."
        )


def transfer_case(session: Session, *, case: Case, actor: str, recipient: str,
                  bundle_sha256: str, note: str = "") -> CustodyEntry:
    """Record handing a bundle (by its file SHA-256) to a named recipient."""
    if not recipient.strip():
        raise InvalidInputError("A transfer needs the recipient's name.")
    _require_sha256(bundle_sha256)
    return append_custody_entry(
        session, action="transfer", actor=actor, case_id=case.id,
        details={"case_number": case.number, "recipient": recipient.strip(),
                 "bundle_sha256": bundle_sha256, "note": note},
    )


def receive_case(session: Session, *, case: Case, actor: str, bundle_sha256: str,
                 tag_manifest_sha256: str, verification_ok: bool) -> CustodyEntry:
    """Record the recipient's receipt of a bundle and whether it verified."""
    _require_sha256(bundle_sha256)
    return append_custody_entry(
        session, action="receipt", actor=actor, case_id=case.id,
        details={"case_number": case.number, "bundle_sha256": bundle_sha256,
                 "tag_manifest_sha256": tag_manifest_sha256,
                 "verification_ok": verification_ok},
    )


def record_verification(session: Session, *, case: Case, actor: str, bundle_sha256: str,
                        ok: bool, failed_checks: list[str]) -> CustodyEntry:
    return append_custody_entry(
        session, action="verification", actor=actor, case_id=case.id,
        details={"case_number": case.number, "bundle_sha256": bundle_sha256, "ok": ok,
                 "failed_checks": failed_checks},
    )


def _require_sha256(value: str) -> None:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInputError(f"'{value}' is not a lowercase SHA-256 hex digest.")


__all__ = [
    "ADDED_BY_HAND",
    "EvidenceLockedError",
    "FootageExpiringError",
    "add_clip",
    "case_camera_ids",
    "case_clips",
    "cases_visible_to",
    "clip_origin",
    "create_case",
    "ensure_original_deletable",
    "get_case_by_number",
    "get_case_or_raise",
    "locked_original_ids",
    "original_covering",
    "receive_case",
    "record_verification",
    "share_case",
    "shared_user_ids",
    "transfer_case",
    "visible_case_ids",
]
