"""Content-addressed, write-once file store keyed by SHA-256.

A blob is streamed into a temp file on the same filesystem while it is hashed,
fsynced, made read-only for its owner (0400), then hard-linked into place
(``storage.atomic.pending_file`` with ``overwrite=False``). ``os.link`` fails when the
target exists, so a blob can never be overwritten, even by a racing writer.

There is no general delete. The one way a blob leaves the store is ``expire``, which the
retention sweep (``indexer.retention``) calls with the rule that expired it, after the
rows that pointed at the blob are gone (or marked ``expiring``).
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from storage.atomic import PendingFile, fsync_dir, pending_file, sync_filesystem
from storage.errors import ConflictError, InvalidInputError, NotFoundError, StorageError

log = logging.getLogger("oko.blobstore")
CHUNK_BYTES = 1024 * 1024
BLOB_MODE = stat.S_IRUSR  # 0400: read-only, and only for the account Oko runs as


class BlobExistsError(ConflictError):
    """A blob with this SHA-256 is already stored; it is never overwritten."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"Blob {sha256} is already stored and cannot be overwritten.")
        self.sha256 = sha256


class DamagedBlobError(StorageError):
    """A stored blob's bytes no longer hash to its name: the disk damaged it."""

    http_status = 500

    def __init__(self, sha256: str) -> None:
        super().__init__(f"The stored copy of {sha256} no longer matches its SHA-256; it is "
                         "damaged and was not used (restore it from backup).")
        self.sha256 = sha256


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    path: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_os_error(exc: OSError, action: str) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"The disk is full while {action}; nothing was stored.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"Permission denied while {action}; nothing was stored.")
    return StorageError(f"Storage failed while {action} ({exc.strerror}); nothing was stored.")


class BlobStore:
    """Write-once store. ``root`` holds blobs, ``tmp_dir`` must share its filesystem."""

    def __init__(self, root: Path, tmp_dir: Path | None = None) -> None:
        self.root = root
        self.tmp_dir = tmp_dir or root / ".tmp"

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"'{sha256}' is not a SHA-256 hex digest.")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFoundError(f"Blob {sha256} is not in the store.")
        return path.open("rb")

    def put_stream(self, source: BinaryIO) -> StoredBlob:
        """Store the bytes of ``source``, hashing them on the way in.

        Raises ``BlobExistsError`` when the content is already stored (the temp copy is
        discarded), and ``StorageError`` on disk-full or permission errors, leaving nothing.
        """
        digest = hashlib.sha256()
        size = 0
        action = "creating a temp file for the blob"
        try:
            with pending_file(self.tmp_dir, prefix="blob-") as pending:
                action = "writing the blob"
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    pending.handle.write(chunk)
                return self._commit(pending, digest.hexdigest(), size)
        except OSError as exc:
            raise _describe_os_error(exc, action) from exc

    def put_file(self, path: Path) -> StoredBlob:
        with path.open("rb") as source:
            return self.put_stream(source)

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream(io.BytesIO(data))

    def put_derived_file(self, path: Path) -> StoredBlob:
        """Store a derived file, or reuse the stored copy of the same content.

        A derived file made again from the same source is the same derivation, so the
        stored copy serves; it is re-hashed first, because reusing it unchecked would put
        damaged bytes into a bundle under the hash of the fresh ones.
        """
        try:
            return self.put_file(path)
        except BlobExistsError as exists:
            self.require_intact(exists.sha256)
            return StoredBlob(sha256=exists.sha256, size_bytes=path.stat().st_size,
                              path=self.path_for(exists.sha256))

    def put_derived_bytes(self, data: bytes) -> StoredBlob:
        try:
            return self.put_bytes(data)
        except BlobExistsError as exists:
            self.require_intact(exists.sha256)
            return StoredBlob(sha256=exists.sha256, size_bytes=len(data),
                              path=self.path_for(exists.sha256))

    def require_intact(self, sha256: str) -> None:
        """Raise ``DamagedBlobError`` when the stored blob no longer hashes to its name."""
        try:
            intact = self.verify(sha256)
        except OSError as exc:
            raise _describe_os_error(exc, "re-reading a stored blob") from exc
        if not intact:
            log.error("stored blob %s no longer matches its hash", sha256)
            raise DamagedBlobError(sha256)

    def _commit(self, pending: PendingFile, sha256: str, size: int) -> StoredBlob:
        final = self.path_for(sha256)
        if final.exists():
            raise BlobExistsError(sha256)
        try:
            pending.commit(final, overwrite=False, mode=BLOB_MODE)
        except FileExistsError as exc:
            raise BlobExistsError(sha256) from exc
        return StoredBlob(sha256=sha256, size_bytes=size, path=final)

    def expire(self, sha256: str, *, reason: str) -> bool:
        """Remove one blob because a retention rule expired it; the only deletion path.

        ``reason`` names the rule (e.g. ``"retention 30 days"``) and is logged. Returns
        False when the blob was already gone (a sweep finishing an earlier one's work).
        Raises ``InvalidInputError`` without a reason and ``StorageError`` when the file
        cannot be removed (it is left whole).
        """
        if not reason.strip():
            raise InvalidInputError("A blob is only expired with the rule that expired it.")
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"Blob {sha256} could not be expired ({exc.strerror}); "
                               "it is still stored.") from exc
        fsync_dir(path.parent)
        log.info("expired blob %s (%s)", sha256, reason)
        return True

    def expire_many(self, sha256s: Iterable[str], *, reason: str) -> int:
        """``expire`` for many blobs: every file is unlinked first, then the filesystem
        is flushed once (``syncfs``; elsewhere each directory is fsynced once), rather
        than one directory fsync per blob.
        Returns how many were removed; raises as ``expire`` does (those not yet reached
        are left whole, those removed stay removed)."""
        if not reason.strip():
            raise InvalidInputError("A blob is only expired with the rule that expired it.")
        removed: list[Path] = []
        try:
            for sha256 in dict.fromkeys(sha256s):
                path = self.path_for(sha256)
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StorageError(f"Blob {sha256} could not be expired ({exc.strerror}); "
                                       "it is still stored.") from exc
                removed.append(path)
                log.info("expired blob %s (%s)", sha256, reason)
        finally:
            if removed and not sync_filesystem(self.root):  # one flush for all of them
                for directory in dict.fromkeys(p.parent for p in removed):
                    fsync_dir(directory)
        return len(removed)

    def iter_hashes(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if path.is_file() and len(path.name) == 64:
                yield path.name

    def verify(self, sha256: str) -> bool:
        """Recompute the hash of a stored blob; False when it no longer matches."""
        return sha256_file(self.path_for(sha256)) == sha256

    def copy_out(self, sha256: str, destination: Path) -> None:
        with self.open(sha256) as src, destination.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)
