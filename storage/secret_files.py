"""Installation secrets kept as files in the data dir (never in the database)."""

from __future__ import annotations

import secrets
from pathlib import Path

from storage.atomic import atomic_write
from storage.errors import ConfigurationError, StorageError


def load_or_create_secret(path: Path, *, num_bytes: int = 32) -> bytes:
    """The random secret stored at ``path``, created with mode 0600 on first use.

    A new secret is written completely before it is linked into place, and linking
    refuses an existing file, so two processes starting at once end up with the same
    secret and neither ever reads a half-written one (``atomic_write`` fsyncs the file and
    its folder). Raises ``StorageError`` when the file cannot be read or created, and
    ``ConfigurationError`` when it is empty: an empty key would sign with no secret at
    all, and making a new one silently would orphan what the old one signed.
    """
    try:
        if not path.exists():
            try:
                with atomic_write(path, overwrite=False, mode=0o600) as handle:
                    handle.write(secrets.token_hex(num_bytes).encode())
            except FileExistsError:
                pass  # another process got there first: use its secret
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StorageError(f"Cannot read or create the secret file {path}: {exc}.") from exc
    if not secret:
        raise ConfigurationError(f"The secret file {path} is empty; restore it from a "
                                 "backup of the keys folder.")
    return secret
