"""Hostile bundles: each crash seen on the old verifier, the expansion bomb, and text
from the bundle that tries to reach a terminal. Each ends as INVALID or
UnusableBundleError, with nothing left in the scratch dir."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from oko_verify import (
    BundleLimits,
    ExtractionStats,
    TrustAnchors,
    UnusableBundleError,
    Verdict,
    VerificationReport,
    certificate_fingerprint,
    verify_bundle,
)
from oko_verify.text import shown
from oko_verify.unpack import _copy_entry

from tests.verifier.bags import finish, make_bag, tree_size, zip_dir
from tests.verifier.bombs import MIB, zeros_bomb
from tests.verifier.pki import Leaf, make_root


@pytest.fixture
def signer() -> Leaf:
    return make_root().issue()


def anchors_for(signer: Leaf) -> TrustAnchors:
    return TrustAnchors(fingerprints=(certificate_fingerprint(signer.chain[-1]),))


def failed(report: VerificationReport) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.failures]


def leftovers(scratch: Path) -> list[Path]:
    return list(scratch.rglob("*")) if scratch.exists() else []


def rewrite_custody(bag: Path, signer: Leaf, edit: Any) -> None:
    """Change custody.jsonl's entries with ``edit(records)``, then re-sign the bag, so
    only the custody check can catch it."""
    path = bag / "data" / "custody.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    edit(records)
    path.write_text("".join(json.dumps(r) + "\n" for r in records),
                    encoding="utf-8")
    finish(bag, signer)


def test_a_valid_bag_is_valid_first(tmp_path: Path, signer: Leaf) -> None:
    report = verify_bundle(make_bag(tmp_path, signer), anchors_for(signer))
    assert report.verdict is Verdict.VALID, failed(report)


@pytest.mark.parametrize("names", [["x/data", "x/data/a"], ["x/data/a", "x/data"],
                                   ["x/bagit.txt", "x/bagit.txt/y/z"]])
def test_an_entry_that_is_both_file_and_folder_is_refused(tmp_path: Path,
                                                          names: list[str]) -> None:
    bundle = tmp_path / "clash.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("x/bagit.txt" if "x/bagit.txt" not in names else "x/other", b"x")
        for name in names:
            archive.writestr(name, b"payload")
    scratch = tmp_path / "scratch"
    with pytest.raises(UnusableBundleError, match="both as a file and as a folder"):
        verify_bundle(bundle, scratch_dir=scratch)
    assert leftovers(scratch) == []


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda r: r[1].__setitem__("details", "a string"), "line 2: not a custody entry "
                                                        "(details is not a dict)"),
    (lambda r: r[2]["details"].__setitem__("clips", ["not an object", 3]),
     "clip 1 is not an object"),
    (lambda r: r[2]["details"].__setitem__("clips", "not a list"), "clips is not a list"),
    (lambda r: r[0].__setitem__("entry_hash", ["a", "list"]),
     "line 1: not a custody entry (entry_hash is not a str)"),
    (lambda r: r[1]["details"].__setitem__("acquisition_entry_hash", ["a", "list"]),
     "the original's acquisition entry is not in the bundle"),
    (lambda r: r[1].__setitem__("seq", True), "line 2: not a custody entry (seq is not a int)"),
    (lambda r: r[1].__setitem__("chain", {"a": 1}), "line 2: not a custody entry (chain is"),
    (lambda r: r[1]["details"].__setitem__("note", "\ud800"),
     "entry hash does not match its content"),
    (lambda r: r.append([1, 2]), "line 4: not a custody entry (not a JSON object)"),
])
def test_malformed_custody_is_invalid_not_a_crash(tmp_path: Path, signer: Leaf, edit: Any,
                                                  needle: str) -> None:
    bag = make_bag(tmp_path, signer)
    rewrite_custody(bag, signer, edit)
    report = verify_bundle(bag, anchors_for(signer))
    assert report.verdict is Verdict.INVALID
    assert any(needle in p for p in failed(report)), failed(report)
    assert {c.name for c in report.failures} <= {"custody chain"}


@pytest.mark.parametrize("document", [
    [], {"@graph": "nodes"}, {"@graph": ["a string"]},
    {"@graph": [{"@type": "uco-observable:File", "uco-core:hasFacet": "facet"}]},
    {"@graph": [{"@type": "uco-observable:File", "uco-core:hasFacet": [
        {"@type": "uco-observable:ContentDataFacet", "uco-observable:hash": []}]}]},
    {"@graph": [{"@type": "uco-observable:File", "uco-core:hasFacet": [
        {"@type": "uco-observable:ContentDataFacet", "uco-observable:hash": [7]}]}]},
])
def test_malformed_provenance_is_invalid_not_a_crash(tmp_path: Path, signer: Leaf,
                                                     document: Any) -> None:
    bag = make_bag(tmp_path, signer)
    (bag / "data" / "provenance.jsonld").write_text(json.dumps(document), encoding="utf-8")
    finish(bag, signer)
    report = verify_bundle(bag, anchors_for(signer))
    assert report.verdict is Verdict.INVALID
    assert failed(report) == ["provenance: data/provenance.jsonld: missing or not the "
                              "expected JSON-LD"]


def test_deeply_nested_json_is_invalid_not_a_recursion_error(tmp_path: Path,
                                                             signer: Leaf) -> None:
    bag = make_bag(tmp_path, signer)
    deep = "[" * 100_000 + "]" * 100_000
    (bag / "data" / "provenance.jsonld").write_text(deep, encoding="utf-8")
    with (bag / "data" / "custody.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(deep + "\n")
    finish(bag, signer)
    report = verify_bundle(bag, anchors_for(signer))
    assert report.verdict is Verdict.INVALID
    assert {c.name for c in report.failures} == {"custody chain", "provenance"}


def test_the_ten_megabyte_zeros_bomb_writes_nothing(tmp_path: Path) -> None:
    """9,000 entries of 1 MiB of zeros (about 10 MB): refused before a byte is written."""
    bomb = zeros_bomb(tmp_path / "bomb.zip")
    assert 9 * MIB < bomb.stat().st_size < 12 * MIB
    scratch, stats = tmp_path / "scratch", ExtractionStats()
    with pytest.raises(UnusableBundleError, match="likely zip bomb"):
        verify_bundle(bomb, scratch_dir=scratch, stats=stats)
    assert stats.bytes_written == 0 and leftovers(scratch) == []


def test_small_entries_cannot_add_up_past_the_relative_limit(tmp_path: Path) -> None:
    """Entries small enough for the per-entry allowance still count against the total:
    20 × the zip's size + 16 MiB."""
    bomb = zeros_bomb(tmp_path / "many.zip", entries=9000, entry_bytes=60 * 1024)
    limits = BundleLimits()
    allowed = limits.total_allowed(bomb.stat().st_size)
    assert allowed < 64 * MIB < 9000 * 60 * 1024
    with pytest.raises(UnusableBundleError, match="beyond the allowed total size"):
        verify_bundle(bomb, scratch_dir=tmp_path / "scratch")
    assert leftovers(tmp_path / "scratch") == []


def test_the_streaming_count_stops_an_entry_past_its_budget(tmp_path: Path) -> None:
    """Behind the declared sizes (which zipfile enforces), every chunk written counts."""
    bundle = tmp_path / "one.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/data/a.bin", bytes(3 * MIB))
    stats = ExtractionStats()
    with zipfile.ZipFile(bundle) as archive, pytest.raises(
            UnusableBundleError, match="beyond the allowed total size"):
        _copy_entry(archive, archive.infolist()[0], tmp_path / "a.bin", budget=2 * MIB,
                    limits=BundleLimits(max_entry_ratio=10_000), stats=stats)
    assert stats.bytes_written <= 2 * MIB
    with zipfile.ZipFile(bundle) as archive, pytest.raises(
            UnusableBundleError, match="expands more than 10 times"):
        _copy_entry(archive, archive.infolist()[0], tmp_path / "b.bin", budget=8 * MIB,
                    limits=BundleLimits(max_entry_ratio=10), stats=ExtractionStats())


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    """Entries sharing one compressed kernel (the overlapping-file bomb)."""
    bundle = tmp_path / "overlap.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/bagit.txt", b"BagIt-Version: 1.0\n")
        archive.writestr("bag/data/a.bin", os.urandom(100_000))
    data = bytearray(bundle.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the last central entry, a.bin
    entry = bytes(data[central:data.index(b"PK\x05\x06")])
    copy = entry.replace(b"bag/data/a.bin", b"bag/data/b.bin")
    end = data.index(b"PK\x05\x06")
    record = bytearray(data[end:])
    record[8:10] = (3).to_bytes(2, "little")
    record[10:12] = (3).to_bytes(2, "little")
    size = int.from_bytes(record[12:16], "little") + len(copy)
    record[12:16] = size.to_bytes(4, "little")
    bundle.write_bytes(bytes(data[:end]) + copy + bytes(record))
    with pytest.raises(UnusableBundleError, match="entries overlap; refusing a likely zip bomb"):
        verify_bundle(bundle, scratch_dir=tmp_path / "scratch")
    assert leftovers(tmp_path / "scratch") == []


def test_names_from_the_bundle_are_capped_and_escaped(tmp_path: Path, signer: Leaf) -> None:
    hostile = "\x1b[2J\x1b[31mFORGED\nok   signature: fine" + "A" * 500
    bundle = tmp_path / "names.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr(f"../{hostile}", b"x")
    with pytest.raises(UnusableBundleError) as refused:
        verify_bundle(bundle)
    message = str(refused.value)
    assert "\x1b" not in message and "\n" not in message and len(message) < 300
    assert "\\x1b[2J" in message

    bag = make_bag(tmp_path / "bag", signer)
    (bag / "data" / f"{hostile[:60]}.mp4").write_bytes(b"smuggled")
    report = verify_bundle(zip_dir(bag, tmp_path / "bag.zip"), anchors_for(signer))
    [extra] = [c.detail for c in report.failures if "present but not listed" in c.detail]
    assert "\x1b" not in extra and "\n" not in extra and "\\x1b[2J" in extra
    summary = report.summary
    assert "\x1b" not in summary and "\n" not in summary


def test_shown_caps_and_escapes() -> None:
    assert shown("plain") == "plain"
    assert shown("Крадіжка") == "Крадіжка"
    assert shown("a\nb\x00c\u2028") == "a\\nb\\x00c\\u2028"
    assert shown("x" * 300) == "x" * 200 + "…"
    assert len(shown("\x1b" * 300)) == 201
    assert shown(["a", 1]) == "['a', 1]"


def test_the_scratch_dir_is_used_and_left_empty(tmp_path: Path, signer: Leaf) -> None:
    bundle = zip_dir(make_bag(tmp_path / "bag", signer), tmp_path / "bundle.zip")
    scratch, stats = tmp_path / "elsewhere" / "scratch", ExtractionStats()
    report = verify_bundle(bundle, anchors_for(signer), scratch_dir=scratch, stats=stats)
    assert report.ok
    assert stats.files_written > 10 and stats.bytes_written >= tree_size(tmp_path / "bag")
    assert scratch.is_dir() and leftovers(scratch) == []
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    with pytest.raises(UnusableBundleError, match="cannot be used"):
        verify_bundle(bundle, scratch_dir=blocked / "scratch")


@pytest.mark.parametrize("entries", [
    {"bag/bagit.txt": b"x", "": b"empty name"},
    {"bag/bagit.txt": b"x", "bag/" + "n" * 300 + "/a": b"long name"},
])
def test_odd_entry_names_are_unusable(tmp_path: Path, entries: dict[str, bytes]) -> None:
    bundle = tmp_path / "odd.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    with pytest.raises(UnusableBundleError):
        verify_bundle(bundle, scratch_dir=tmp_path / "scratch")
    assert leftovers(tmp_path / "scratch") == []


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z",
                                   "9999-12-31T23:59:59-23:00", "2026-10-28T14:00:05"])
def test_an_unparsable_signing_time_is_invalid(tmp_path: Path, signer: Leaf,
                                               value: str) -> None:
    bag = make_bag(tmp_path, signer, signed_at=None)
    finish(bag, signer, signed_at=None, extra_info=(("Oko-Signed-At", value),))
    report = verify_bundle(bag, anchors_for(signer))
    assert report.verdict is Verdict.INVALID
    assert any(p.startswith("signing time: bag-info Oko-Signed-At") for p in failed(report))


@pytest.mark.parametrize("manifest", ["manifest-sha256.txt", "tagmanifest-sha256.txt"])
def test_a_manifest_naming_a_file_too_long_for_the_filesystem_is_invalid(
        tmp_path: Path, signer: Leaf, manifest: str) -> None:
    """Found by the 20,000-mutation fuzz run: is_file() raised ENAMETOOLONG."""
    bag = make_bag(tmp_path, signer)
    with (bag / manifest).open("a", encoding="utf-8") as handle:
        handle.write(f"{'ab' * 32}  data/{'n' * 300}\n")
    report = verify_bundle(zip_dir(bag, tmp_path / "long.zip"), anchors_for(signer))
    assert report.verdict is Verdict.INVALID
    assert any(f"data/{'n' * 100}" in p and "listed in" in p for p in failed(report))


def test_a_bundle_path_too_long_to_probe_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(UnusableBundleError, match="cannot be read"):
        verify_bundle(tmp_path / ("x" * 300) / "b.zip")
