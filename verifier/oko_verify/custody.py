"""How a custody entry is hashed: the fields, their canonical bytes, the first prev_hash.

A leaf module shared by Oko's ``storage.custody``, which writes the chain (through the
re-export ``storage.custody_hash``), and this verifier, which checks it offline.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("chain", "seq", "prev_hash", "action", "actor", "case_id",
                 "original_id", "recorded_at", "details")


def format_time(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and a Z, the form that is hashed."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The exact bytes hashed for an entry: sorted-key compact UTF-8 JSON."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def compute_entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the ``HASHED_FIELDS`` of an entry.

    Raises ``KeyError`` for a missing field (and ``ValueError`` for a value JSON cannot
    encode, such as a lone surrogate).
    """
    return hashlib.sha256(canonical_bytes({k: fields[k] for k in HASHED_FIELDS})).hexdigest()


__all__ = ["GENESIS_HASH", "HASHED_FIELDS", "canonical_bytes", "compute_entry_hash",
           "format_time"]
