"""Installation secrets kept as files in the data dir (never in the database)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from storage.errors import StorageError


def load_or_create_secret(path: Path, *, num_bytes: int = 32) -> bytes:
    """The random secret stored at ``path``, created with mode 0600 on first use.

    Creation uses O_EXCL, so two processes starting at once end up with the same secret.
    Raises ``StorageError`` when the file cannot be read or created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(num_bytes))
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StorageError(f"Cannot read or create the secret file {path}: {exc}.") from exc
