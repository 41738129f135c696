"""Hostile bundles are refused as unusable input before anything is trusted."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from evidence.unpack import BundleLimits, UnusableBundleError
from evidence.verify import verify_bundle


def _zip(path: Path, entries: dict[str, bytes], *, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compress)
    return path


def _leftovers(work: Path) -> list[Path]:
    return list(work.rglob("*")) if work.exists() else []


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "bag/../../evil.txt",
                                  "bag\\..\\evil.txt", "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    bundle = _zip(tmp_path / "slip.zip", {"bag/bagit.txt": b"BagIt-Version: 1.0\n",
                                          name: b"owned"})
    work = tmp_path / "work"
    with pytest.raises(UnusableBundleError, match=r"unsafe path|escapes the bag"):
        verify_bundle(bundle, scratch_dir=work)
    assert not (tmp_path / "evil.txt").exists()
    assert _leftovers(work) == []


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "link.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("bag/bagit.txt", b"BagIt-Version: 1.0\n")
        link = zipfile.ZipInfo("bag/data/passwd")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UnusableBundleError, match="symlink or special file; refused"):
        verify_bundle(bundle, scratch_dir=tmp_path / "work")
    assert _leftovers(tmp_path / "work") == []


def test_symlink_in_directory_bundle_is_refused(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    (bag / "data").mkdir(parents=True)
    (bag / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\n")
    os.symlink("/etc/passwd", bag / "data" / "passwd")
    with pytest.raises(UnusableBundleError, match="symlink or special file; refused"):
        verify_bundle(bag)


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    bundle = _zip(tmp_path / "bomb.zip", {"bag/bagit.txt": b"BagIt-Version: 1.0\n",
                                          "bag/data/zeros.bin": bytes(20 * 1024 * 1024)},
                  compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(UnusableBundleError, match="likely zip bomb"):
        verify_bundle(bundle, scratch_dir=tmp_path / "work")
    assert _leftovers(tmp_path / "work") == []


def test_absurd_total_size_is_refused(tmp_path: Path) -> None:
    bundle = _zip(tmp_path / "big.zip", {"bag/bagit.txt": b"BagIt-Version: 1.0\n",
                                         "bag/data/a.bin": os.urandom(4096)})
    with pytest.raises(UnusableBundleError, match="beyond the allowed total size"):
        verify_bundle(bundle, limits=BundleLimits(max_total_bytes=1024))


def test_not_a_zip_and_not_a_bag(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(UnusableBundleError, match="not a readable zip file"):
        verify_bundle(junk)
    plain = _zip(tmp_path / "plain.zip", {"readme.txt": b"hi"})
    with pytest.raises(UnusableBundleError, match="not a BagIt bag"):
        verify_bundle(plain)
    with pytest.raises(UnusableBundleError, match="does not exist"):
        verify_bundle(tmp_path / "missing.zip")


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "dup.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("bag/bagit.txt", b"one")
        archive.writestr("bag/bagit.txt", b"two")
    with pytest.raises(UnusableBundleError, match="twice"):
        verify_bundle(bundle)


def test_the_verifiers_errors_are_oko_errors_here(tmp_path: Path) -> None:
    """evidence.verify gives oko_verify's errors Oko's hierarchy: the CLI prints one
    sentence with exit 2, the API answers 422."""
    import oko_verify

    from evidence.verify import PinnedFingerprint, TrustAnchorError, load_trusted_certificate
    from storage.errors import InvalidInputError

    with pytest.raises(UnusableBundleError) as unusable:
        verify_bundle(tmp_path / "missing.zip")
    assert isinstance(unusable.value, InvalidInputError)
    assert isinstance(unusable.value, oko_verify.UnusableBundleError)
    assert (unusable.value.exit_code, unusable.value.http_status) == (2, 422)
    with pytest.raises(InvalidInputError, match="is not a SHA-256 certificate fingerprint"):
        PinnedFingerprint("nope")
    with pytest.raises(TrustAnchorError, match="is not a readable PEM certificate"):
        load_trusted_certificate(tmp_path / "missing.pem")
