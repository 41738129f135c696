"""Opening an untrusted bundle (zip or directory) safely, before any check runs.

Nothing inside a bundle is trusted: entry names are checked before extraction (no
absolute paths, no ``..``, no backslashes or drive letters, no duplicates), symlinks
and special files are refused, and sizes are counted while extracting, so an entry that
lies about its size or a zip bomb stops at the limit. Extraction happens only inside a
fresh temp dir that is removed afterwards.
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storage.errors import InvalidInputError


class UnusableBundleError(InvalidInputError):
    """The input is not a bundle that can be checked at all (exit code 2)."""

    exit_code = 2
    http_status = 422


@dataclass(frozen=True)
class BundleLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 64 * 1024**3
    max_entry_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024  # tiny entries may compress well; ignore them


def _check_member_name(name: str) -> PurePosixPath:
    if "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        raise UnusableBundleError(f"The bundle holds an unsafe path '{name}'.")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UnusableBundleError(f"The bundle holds a path '{name}' that escapes the bag.")
    return path


def _extract_zip(source: Path, target: Path, limits: BundleLimits) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnusableBundleError(f"{source.name} is not a readable zip file.") from exc
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_entries:
            raise UnusableBundleError(
                f"The bundle has {len(members)} entries, more than the {limits.max_entries}"
                " allowed."
            )
        seen: set[str] = set()
        declared = 0
        for info in members:
            path = _check_member_name(info.filename)
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode and stat.S_IFMT(mode) not in (
                    0, stat.S_IFREG, stat.S_IFDIR):
                raise UnusableBundleError(
                    f"The bundle holds '{info.filename}', a symlink or special file; refused."
                )
            key = path.as_posix().rstrip("/")
            if key in seen:
                raise UnusableBundleError(f"The bundle holds '{info.filename}' twice.")
            seen.add(key)
            declared += info.file_size
            if info.file_size > limits.ratio_floor_bytes and (
                    info.file_size > limits.max_entry_ratio * max(info.compress_size, 1)):
                raise UnusableBundleError(
                    f"'{info.filename}' expands {info.file_size / max(info.compress_size, 1):.0f}"
                    " times; refusing a likely zip bomb."
                )
        if declared > limits.max_total_bytes:
            raise UnusableBundleError("The bundle expands beyond the allowed total size.")
        written = 0
        for info in members:
            destination = target.joinpath(*PurePosixPath(info.filename).parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, destination.open("xb") as dst:
                    for chunk in iter(lambda s=src: s.read(1024 * 1024), b""):  # type: ignore[misc]
                        written += len(chunk)
                        if written > limits.max_total_bytes:
                            raise UnusableBundleError(
                                "The bundle expands beyond the allowed total size."
                            )
                        dst.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise UnusableBundleError(
                    f"'{info.filename}' cannot be extracted ({exc})."
                ) from exc


def _refuse_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            entry = Path(dirpath) / name
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnusableBundleError(
                    f"The bundle holds '{entry.relative_to(root)}', a symlink or special file;"
                    " refused."
                )


def _bag_root(top: Path) -> Path:
    if (top / "bagit.txt").is_file():
        return top
    children = [c for c in top.iterdir()]
    if len(children) == 1 and children[0].is_dir() and (children[0] / "bagit.txt").is_file():
        return children[0]
    raise UnusableBundleError("No bagit.txt at the top of the bundle; this is not a BagIt bag.")


@contextmanager
def open_bundle(path: Path, *, limits: BundleLimits | None = None,
                work_dir: Path | None = None) -> Iterator[Path]:
    """Yield the bag root of a zip (extracted to a temp dir) or of a directory.

    Raises ``UnusableBundleError`` for anything that cannot safely be checked.
    """
    limits = limits or BundleLimits()
    if path.is_symlink():
        raise UnusableBundleError(f"{path} is a symlink; pass the bundle itself.")
    if path.is_dir():
        _refuse_links(path)
        yield _bag_root(path)
        return
    if not path.is_file():
        raise UnusableBundleError(f"{path} does not exist.")
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="verify-") as work:
        target = Path(work)
        _extract_zip(path, target, limits)
        _refuse_links(target)
        yield _bag_root(target)


__all__ = ["BundleLimits", "UnusableBundleError", "open_bundle"]
