"""Hash-chained custody log (acquisition, clip, export, transfer, receipt, verification).

Chains are scoped: every case has its own chain (``case:<id>``) and every original has
one (``original:<id>``) that starts with its acquisition. Each entry stores the SHA-256
of the previous entry of the same chain (64 zeros for the first), so a bundle can carry
a case's complete chain plus the acquisition entries of its originals and a verifier can
check continuity offline. See docs/evidence-format.md.

Appending locks the chain's head row (``UPDATE ... SET last_seq = last_seq + 1`` takes a
row lock on PostgreSQL and the write lock on SQLite) before reading the previous hash, and
``(chain, seq)`` is unique, so concurrent writers can never fork a chain. The caller
commits, in the same transaction as the action the entry records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.custody_hash import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_bytes,
    compute_entry_hash,
    format_time,
)
from storage.errors import InvalidInputError
from storage.models.evidence import CustodyChainHead, CustodyEntry
from storage.types import utcnow

CUSTODY_ACTIONS = frozenset(
    {"acquisition", "clip", "export", "transfer", "receipt", "verification",
     "retention_deletion"}
)


def chain_key(*, case_id: int | None, original_id: int | None) -> str:
    """The chain an entry belongs to: its case's chain, else its original's chain."""
    if case_id is not None:
        return f"case:{case_id}"
    if original_id is not None:
        return f"original:{original_id}"
    raise InvalidInputError("A custody entry needs a case or an original.")


def entry_record(entry: CustodyEntry) -> dict[str, Any]:
    """The entry as written to custody.jsonl: the hashed fields plus ``entry_hash``."""
    return {
        "chain": entry.chain, "seq": entry.seq, "prev_hash": entry.prev_hash,
        "action": entry.action, "actor": entry.actor, "case_id": entry.case_id,
        "original_id": entry.original_id, "recorded_at": format_time(entry.recorded_at),
        "details": entry.details, "entry_hash": entry.entry_hash,
    }


def _lock_head(session: Session, chain: str) -> CustodyChainHead | None:
    """Take the chain head's row lock by bumping it; None when the chain is new."""
    bumped = session.execute(
        update(CustodyChainHead).where(col(CustodyChainHead.chain) == chain)
        .values(last_seq=CustodyChainHead.last_seq + 1)
        .execution_options(synchronize_session=False)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        return None
    head = session.exec(select(CustodyChainHead).where(CustodyChainHead.chain == chain)
                        .execution_options(populate_existing=True)).one()
    return head


def _start_chain(session: Session, chain: str) -> tuple[CustodyChainHead, int]:
    """Create a chain's head row and return it with seq 0.

    When a racing writer created it first, lock it instead and return the next seq.
    """
    try:
        with session.begin_nested():
            head = CustodyChainHead(chain=chain, last_seq=0, last_hash=GENESIS_HASH)
            session.add(head)
        return head, 0
    except IntegrityError:
        locked = _lock_head(session, chain)
        assert locked is not None
        return locked, locked.last_seq


def append_custody_entry(
    session: Session,
    *,
    action: str,
    actor: str,
    original_id: int | None = None,
    case_id: int | None = None,
    details: dict[str, Any],
    recorded_at: datetime | None = None,
) -> CustodyEntry:
    """Append one entry to its chain and flush; the caller commits with its action.

    Raises ``InvalidInputError`` for an unknown action, an empty actor, or an entry
    with neither a case nor an original.
    """
    if action not in CUSTODY_ACTIONS:
        raise InvalidInputError(
            f"'{action}' is not a custody action (expected one of "
            f"{', '.join(sorted(CUSTODY_ACTIONS))})."
        )
    if not actor.strip():
        raise InvalidInputError("A custody entry needs the name of who acted.")
    chain = chain_key(case_id=case_id, original_id=original_id)
    head = _lock_head(session, chain)
    if head is None:
        head, seq = _start_chain(session, chain)
    else:
        seq = head.last_seq  # already bumped by _lock_head
    when = (recorded_at or utcnow()).astimezone(UTC)
    clean_details = json.loads(json.dumps(details, ensure_ascii=False))
    fields: dict[str, Any] = {
        "chain": chain, "seq": seq, "prev_hash": head.last_hash, "action": action,
        "actor": actor, "case_id": case_id, "original_id": original_id,
        "recorded_at": format_time(when), "details": clean_details,
    }
    entry_hash = compute_entry_hash(fields)
    entry = CustodyEntry(
        chain=chain, seq=seq, prev_hash=head.last_hash, entry_hash=entry_hash,
        action=action, actor=actor, case_id=case_id, original_id=original_id,
        recorded_at=when, details=clean_details,
    )
    session.add(entry)
    head.last_seq = seq
    head.last_hash = entry_hash
    session.add(head)
    session.flush()
    return entry


def chain_entries(session: Session, chain: str) -> list[CustodyEntry]:
    """Every entry of one chain, oldest first."""
    return list(session.exec(select(CustodyEntry).where(CustodyEntry.chain == chain)
                             .order_by(col(CustodyEntry.seq))).all())


def acquisition_entry(session: Session, original_id: int) -> CustodyEntry | None:
    """The acquisition entry of an original (the first of its chain), if recorded."""
    return session.exec(
        select(CustodyEntry).where(CustodyEntry.chain == f"original:{original_id}",
                                   CustodyEntry.action == "acquisition")
        .order_by(col(CustodyEntry.seq))
    ).first()


__all__ = [
    "CUSTODY_ACTIONS",
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "acquisition_entry",
    "append_custody_entry",
    "canonical_bytes",
    "chain_entries",
    "chain_key",
    "compute_entry_hash",
    "entry_record",
    "format_time",
]
