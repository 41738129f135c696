"""Opening an untrusted bundle (zip or directory) safely, before any check runs.

Nothing inside a bundle is trusted. Before anything is written:

1. entry names are checked: no absolute paths, ``..``, backslashes, drive letters, NUL,
   empty or non-canonical names (``a//b``, ``./a``), no duplicates, and no name that is
   both a file and a folder;
2. symlinks and special files are refused;
3. entries may not overlap (their compressed sizes add up to at most the file's size);
4. the declared sizes must fit the limits below.

While extracting, every chunk is counted against three limits, so an entry that lies
about its size stops there too:

- per entry: at most ``max_entry_ratio`` × its compressed size + ``entry_allowance_bytes``;
- in total: at most ``expansion_ratio`` × the zip file's size + ``expansion_allowance_bytes``
  (the limit is relative to the upload, so a 10 MB zip can never fill a disk);
- in total: at most ``max_total_bytes``, the scratch space's cap.

Extraction happens only inside a fresh ``verify-*`` folder of the scratch dir, removed
afterwards whatever happens.
"""

from __future__ import annotations

import lzma
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from oko_verify.errors import UnusableBundleError
from oko_verify.text import shown

MIB = 1024 * 1024


@dataclass(frozen=True)
class BundleLimits:
    """How far an untrusted zip may expand; see the module doc."""

    max_entries: int = 10_000
    max_total_bytes: int = 64 * 1024**3
    expansion_ratio: float = 20.0
    expansion_allowance_bytes: int = 16 * MIB
    max_entry_ratio: float = 200.0
    entry_allowance_bytes: int = 64 * 1024

    def total_allowed(self, compressed_size: int) -> int:
        """Bytes a zip of ``compressed_size`` bytes may expand to, all entries together."""
        relative = int(self.expansion_ratio * compressed_size) + self.expansion_allowance_bytes
        return min(relative, self.max_total_bytes)

    def entry_allowed(self, compress_size: int) -> int:
        """Bytes one entry of ``compress_size`` compressed bytes may expand to."""
        return int(self.max_entry_ratio * compress_size) + self.entry_allowance_bytes


@dataclass
class ExtractionStats:
    """What an extraction wrote to the scratch dir (for tests and benchmarks)."""

    bytes_written: int = 0
    files_written: int = 0


def _check_member_name(name: str) -> PurePosixPath:
    if "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        raise UnusableBundleError(f"The bundle holds an unsafe path '{shown(name)}'.")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UnusableBundleError(
            f"The bundle holds a path '{shown(name)}' that escapes the bag.")
    if not path.parts or path.as_posix() != name.removesuffix("/"):  # "a//b", "./a", ""
        raise UnusableBundleError(f"The bundle holds an unsafe path '{shown(name)}'.")
    return path


def _plan(archive: zipfile.ZipFile, source_size: int,
          limits: BundleLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Steps 1-4 of the module doc; the entries to extract, with their safe paths."""
    members = archive.infolist()
    if len(members) > limits.max_entries:
        raise UnusableBundleError(f"The bundle has {len(members)} entries, more than the "
                                  f"{limits.max_entries} allowed.")
    files: set[str] = set()
    folders: set[str] = set()
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    declared = compressed = 0
    for info in members:
        path = _check_member_name(info.filename)
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode and stat.S_IFMT(mode) not in (
                0, stat.S_IFREG, stat.S_IFDIR):
            raise UnusableBundleError(f"The bundle holds '{shown(info.filename)}', a symlink "
                                      "or special file; refused.")
        key = path.as_posix()
        if key in files:
            raise UnusableBundleError(f"The bundle holds '{shown(info.filename)}' twice.")
        parents = {p.as_posix() for p in path.parents if p.parts}
        clash = key if key in folders and not info.is_dir() else next(
            (p for p in sorted(parents) if p in files), None)
        if clash is not None:
            raise UnusableBundleError(f"The bundle holds '{shown(clash)}' both as a file and "
                                      "as a folder.")
        folders |= parents
        if info.is_dir():
            folders.add(key)
        else:
            files.add(key)
        declared += info.file_size
        compressed += info.compress_size
        if info.file_size > limits.entry_allowed(info.compress_size):
            raise UnusableBundleError(
                f"'{shown(info.filename)}' expands "
                f"{info.file_size / max(info.compress_size, 1):.0f} times; refusing a likely "
                "zip bomb.")
        planned.append((info, path))
    if compressed > source_size:
        raise UnusableBundleError("The bundle's entries overlap; refusing a likely zip bomb.")
    if declared > limits.total_allowed(source_size):
        raise UnusableBundleError("The bundle expands beyond the allowed total size.")
    return planned


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, *,
                budget: int, limits: BundleLimits, stats: ExtractionStats) -> None:
    entry_budget = limits.entry_allowed(info.compress_size)
    entry_written = 0
    with archive.open(info) as src, destination.open("xb") as dst:
        stats.files_written += 1
        while chunk := src.read(MIB):
            entry_written += len(chunk)
            if entry_written > entry_budget:
                raise UnusableBundleError(
                    f"'{shown(info.filename)}' expands more than "
                    f"{limits.max_entry_ratio:.0f} times; refusing a likely zip bomb.")
            if stats.bytes_written + len(chunk) > budget:
                raise UnusableBundleError("The bundle expands beyond the allowed total size.")
            dst.write(chunk)
            stats.bytes_written += len(chunk)


def _extract_zip(source: Path, target: Path, limits: BundleLimits,
                 stats: ExtractionStats) -> None:
    try:
        archive = zipfile.ZipFile(source)
        source_size = source.stat().st_size
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, struct.error) as exc:
        raise UnusableBundleError(f"{shown(source.name)} is not a readable zip file.") from exc
    with archive:
        planned = _plan(archive, source_size, limits)
        budget = limits.total_allowed(source_size)
        for info, path in planned:
            destination = target.joinpath(*path.parts)
            try:
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                _copy_entry(archive, info, destination, budget=budget, limits=limits,
                            stats=stats)
            except UnusableBundleError:
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                    NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError,
                    struct.error) as exc:
                # RuntimeError: an encrypted entry; NotImplementedError: unknown compression;
                # zlib.error, LZMAError: corrupt compressed data
                raise UnusableBundleError(
                    f"'{shown(info.filename)}' cannot be extracted "
                    f"({shown(type(exc).__name__ + ': ' + str(exc), 120)}).") from exc


def _refuse_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            entry = Path(dirpath) / name
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnusableBundleError(
                    f"The bundle holds '{shown(str(entry.relative_to(root)))}', a symlink or "
                    "special file; refused.")


def _bag_root(top: Path) -> Path:
    if (top / "bagit.txt").is_file():
        return top
    children = list(top.iterdir())
    if len(children) == 1 and children[0].is_dir() and (children[0] / "bagit.txt").is_file():
        return children[0]
    raise UnusableBundleError("No bagit.txt at the top of the bundle; this is not a BagIt bag.")


@contextmanager
def open_bundle(path: Path, *, limits: BundleLimits | None = None,
                scratch_dir: Path | None = None,
                stats: ExtractionStats | None = None) -> Iterator[Path]:
    """Yield the bag root of a zip (extracted into ``scratch_dir``) or of a directory.

    ``scratch_dir`` defaults to the system's temp dir; it may sit on another filesystem
    than the evidence. Raises ``UnusableBundleError`` for anything that cannot safely be
    checked.
    """
    limits = limits or BundleLimits()
    stats = stats if stats is not None else ExtractionStats()
    try:
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else (
            "file" if path.is_file() else None)
    except (OSError, ValueError) as exc:
        raise UnusableBundleError(f"{shown(str(path))} cannot be read.") from exc
    if kind == "link":
        raise UnusableBundleError(f"{shown(str(path))} is a symlink; pass the bundle itself.")
    if kind == "dir":
        _refuse_links(path)
        yield _bag_root(path)
        return
    if kind is None:
        raise UnusableBundleError(f"{shown(str(path))} does not exist.")
    try:
        if scratch_dir is not None:
            scratch_dir.mkdir(parents=True, exist_ok=True)
        work = tempfile.TemporaryDirectory(dir=scratch_dir, prefix="verify-")
    except OSError as exc:
        raise UnusableBundleError(
            f"The scratch dir {shown(str(scratch_dir))} cannot be used ({exc.strerror}).") \
            from exc
    with work:
        target = Path(work.name)
        _extract_zip(path, target, limits, stats)
        _refuse_links(target)
        yield _bag_root(target)


__all__ = ["BundleLimits", "ExtractionStats", "UnusableBundleError", "open_bundle"]
