"""Exclusive claims on cameras for one kind of analysis, released by a crash too.

Two workers woken by the same new files would otherwise embed (or read plates in) the
same frames at once: twice the work, and one of them failing on the other's rows. A
worker claims a camera before it takes that camera's pending frames and skips a camera
another worker holds.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection
  the claims keep open; a process that dies closes it, which releases its claims.
- SQLite (one host): an exclusive ``flock`` on a file beside the database; the kernel
  releases it when the process dies.
- An in-memory SQLite database (tests): claims within this process only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, text

from storage.atomic import make_private_dirs

_LOCAL_HELD: set[str] = set()
_LOCAL_LOCK = threading.Lock()


def _key(kind: str, camera_id: str) -> bytes:
    return hashlib.sha256(f"{kind}\0{camera_id}".encode()).digest()


class CameraClaims:
    """The cameras this worker holds for ``kind`` (e.g. ``embed:<weights sha>``).

    Use as a context manager; leaving it releases every claim still held.
    """

    def __init__(self, engine: Engine, kind: str) -> None:
        self.engine = engine
        self.kind = kind
        self._connection: Connection | None = None
        self._held: dict[str, int | str] = {}  # camera -> advisory key, fd or local name
        database = engine.url.database
        self._dialect = engine.dialect.name
        self._lock_dir = (Path(database).parent / "claims"
                          if self._dialect == "sqlite" and database not in (None, "", ":memory:")
                          else None)

    def __enter__(self) -> CameraClaims:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release_all()

    def held(self, camera_id: str) -> bool:
        return camera_id in self._held

    def try_claim(self, camera_id: str) -> bool:
        """Claim ``camera_id`` unless another worker holds it; True when this one does."""
        if camera_id in self._held:
            return True
        key = _key(self.kind, camera_id)
        if self._dialect == "postgresql":
            advisory = int.from_bytes(key[:8], "big", signed=True)
            if self._connection is None:
                self._connection = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            got = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": advisory}).scalar()
            if not got:
                return False
            self._held[camera_id] = advisory
        elif self._lock_dir is not None:
            make_private_dirs(self._lock_dir)
            fd = os.open(self._lock_dir / f"{key.hex()[:32]}.lock", os.O_RDWR | os.O_CREAT,
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._held[camera_id] = fd
        else:
            name = key.hex()
            with _LOCAL_LOCK:
                if name in _LOCAL_HELD:
                    return False
                _LOCAL_HELD.add(name)
            self._held[camera_id] = name
        return True

    def release(self, camera_id: str) -> None:
        token = self._held.pop(camera_id, None)
        if token is None:
            return
        if self._dialect == "postgresql":
            assert self._connection is not None
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": token})
        elif isinstance(token, int):
            os.close(token)  # closing the file releases its flock
        else:
            with _LOCAL_LOCK:
                _LOCAL_HELD.discard(token)

    def release_all(self) -> None:
        for camera_id in list(self._held):
            self.release(camera_id)
        if self._connection is not None:
            self._connection.close()
            self._connection = None


__all__ = ["CameraClaims"]
