"""How a custody entry is hashed: Oko's name for ``oko_verify.custody``.

The fields, their canonical bytes and the first prev_hash live in the standalone
verifier, so ``storage.custody``, which writes the chain, and the verifier, which checks
it offline, share one definition.
"""

from __future__ import annotations

from oko_verify.custody import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_bytes,
    compute_entry_hash,
    format_time,
)

__all__ = ["GENESIS_HASH", "HASHED_FIELDS", "canonical_bytes", "compute_entry_hash",
           "format_time"]
