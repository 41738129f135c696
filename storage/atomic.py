"""Files that appear complete or not at all: temp file → fsync → rename or link → fsync dir.

``atomic_write`` covers the usual case, a file whose name is known before it is written.
``pending_file`` is the two-step form for writers that learn the name from the content
(the blob store hashes while it writes) or check the file before keeping it (the model
store): write to ``pending.handle``, then ``pending.commit(destination, ...)``.

``overwrite=True`` replaces an existing destination in one step (``os.replace``), so a
reader sees the old file or the new one. ``overwrite=False`` hard-links instead, which
fails with ``FileExistsError`` when the destination exists, even against a racing
writer: nothing is ever written over. In every case the temp file is gone afterwards,
and an error leaves the destination as it was. Errors are ``OSError``; callers turn
them into their own ``OkoError``.

Files appear with mode 0600 unless ``mode`` says otherwise, and every directory these
functions create is 0700, whatever the process's umask; existing directories are left
as they are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".part"
PRIVATE_DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each mode 0700 whatever the umask.

    Directories that already exist keep their mode (one may be the user's own folder).
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # another process made it first: its mode is its own
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is reduced by the umask


def fsync_dir(path: Path) -> None:
    """Make a rename, link or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingFile:
    """A temp file being written; ``commit`` moves it to its destination."""

    def __init__(self, *, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self.handle = handle
        self._moved = False

    def sync(self) -> None:
        """Flush and fsync what was written, e.g. before another reader opens ``path``."""
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def commit(self, destination: Path, *, overwrite: bool, mode: int | None = None) -> None:
        """Make the written bytes durable, then put them at ``destination``.

        ``mode`` is applied first, so the file never appears with other permissions.
        Raises ``FileExistsError`` when ``overwrite`` is false and ``destination`` exists.
        """
        if self._moved:
            raise RuntimeError(f"{self.path} was already committed")
        self.sync()
        self.handle.close()
        if mode is not None:
            os.chmod(self.path, mode)
        make_private_dirs(destination.parent)
        if overwrite:
            os.replace(self.path, destination)
            self._moved = True
        else:
            os.link(self.path, destination)
        fsync_dir(destination.parent)

    def discard(self) -> None:
        self.handle.close()
        if not self._moved:
            self.path.unlink(missing_ok=True)


@contextmanager
def pending_file(directory: Path, *, prefix: str,
                 suffix: str = TEMP_SUFFIX) -> Iterator[PendingFile]:
    """A new temp file (mode 0600) in ``directory``, removed on leaving unless committed.

    ``directory`` must be on the destination's filesystem (rename and link do not cross
    filesystems); it is created if missing.
    """
    make_private_dirs(directory)
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    pending = PendingFile(path=Path(name), handle=os.fdopen(fd, "wb"))
    try:
        yield pending
    finally:
        pending.discard()


@contextmanager
def atomic_write(destination: Path, *, overwrite: bool = True, mode: int | None = None,
                 temp_suffix: str = TEMP_SUFFIX) -> Iterator[BinaryIO]:
    """A handle whose bytes appear at ``destination`` when the block ends without error.

    The temp file is a hidden sibling (``.NAME.XXXX`` + ``temp_suffix``). Raises
    ``FileExistsError`` when ``overwrite`` is false and ``destination`` exists.
    """
    with pending_file(destination.parent, prefix=f".{destination.name}.",
                      suffix=temp_suffix) as pending:
        yield pending.handle
        pending.commit(destination, overwrite=overwrite, mode=mode)


def write_atomically(destination: Path, data: bytes, *, overwrite: bool = True,
                     mode: int | None = None, temp_suffix: str = TEMP_SUFFIX) -> None:
    """``data`` at ``destination``, complete or not at all (see ``atomic_write``)."""
    with atomic_write(destination, overwrite=overwrite, mode=mode,
                      temp_suffix=temp_suffix) as handle:
        handle.write(data)


__all__ = ["PRIVATE_DIR_MODE", "TEMP_SUFFIX", "PendingFile", "atomic_write", "fsync_dir",
           "make_private_dirs", "pending_file", "write_atomically"]
