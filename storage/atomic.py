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

Temp files a crash leaves behind are swept by ``sweep_stale_temp``. A writer that puts
``owner_tag()`` (``owner-HOST-PID-START``) in a temp name lets the sweep tell its
leftovers from live work exactly: they go once that process is gone, never while it
runs. Names without a tag (or another host's) go only after ``max_age`` untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import psutil

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


def sync_filesystem(path: Path) -> bool:
    """Flush the whole filesystem holding ``path`` (Linux ``syncfs``): every unlink made
    so far is durable after it. False where ``syncfs`` is not available or failed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    if libc is None or not hasattr(libc, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(libc.syncfs(fd)) == 0
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


OWNER_PREFIX = "owner-"
_OWNER_TAG = re.compile(r"owner-([A-Za-z0-9_]+)-(\d+)-(\d+)")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())


def process_alive(pid: int, started: int) -> bool:
    """True when process ``pid`` runs (not a zombie) and started at ``started`` (whole
    seconds since the epoch), which rules out a recycled pid."""
    try:
        process = psutil.Process(pid)
        return (int(process.create_time()) == started
                and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def owner_tag() -> str:
    """``owner-HOST-PID-START`` naming this process, for temp names a sweep may judge."""
    process = psutil.Process(os.getpid())
    return f"{OWNER_PREFIX}{_host()}-{process.pid}-{int(process.create_time())}"


def owner_alive(name: str) -> bool | None:
    """Whether the process named by the owner tag in ``name`` still runs: None when the
    name has no tag or names another host (only a process here can be checked)."""
    match = _OWNER_TAG.search(name)
    if match is None or match[1] != _host():
        return None
    return process_alive(int(match[2]), int(match[3]))


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and, for a directory, of anything in it
    (links are not followed)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def sweep_stale_temp(directory: Path, patterns: Sequence[str], *, max_age_s: float,
                     keep: Collection[Path] = (), now: float | None = None) -> list[Path]:
    """Delete what a crashed writer left in ``directory``; returns the removed paths.

    An entry matching one of the glob ``patterns`` goes when the process its owner tag
    names is gone, and is kept while it runs, however old. An entry without a tag (or
    with another host's) goes once nothing in it changed for ``max_age_s`` seconds.
    Paths in ``keep`` stay; links are removed, never followed. A missing directory is
    empty.
    """
    if not directory.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[Path] = []
    candidates = {path for pattern in patterns for path in directory.glob(pattern)}
    for path in sorted(candidates):
        if path in keep:
            continue
        try:
            alive = owner_alive(path.name)
            if alive is None:
                alive = now - _newest_mtime(path) < max_age_s
            if alive:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue  # gone meanwhile (its writer finished, another sweep), or not ours
        removed.append(path)
    return removed


__all__ = ["OWNER_PREFIX", "PRIVATE_DIR_MODE", "TEMP_SUFFIX", "PendingFile", "atomic_write",
           "fsync_dir", "make_private_dirs", "owner_alive", "owner_tag", "pending_file",
           "process_alive", "sweep_stale_temp", "write_atomically"]
