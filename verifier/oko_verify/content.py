"""The checks on what the payload says about itself: custody chain, provenance, digest.

Every field is read as untrusted JSON: a value of the wrong type is a failed check
named by its line, never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from oko_verify.bag import (
    REPORT_PATH,
    evidence_digest,
    is_file,
    parse_bag_info,
    read_text,
    sha256_file,
)
from oko_verify.custody import GENESIS_HASH, compute_entry_hash
from oko_verify.provenance import bag_file_hashes
from oko_verify.report import VerificationReport
from oko_verify.text import shown

CUSTODY = "data/custody.jsonl"
PROVENANCE = "data/provenance.jsonld"
# field -> the JSON types a custody entry may hold there (bool is not an int here)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "chain": (str,), "seq": (int,), "prev_hash": (str,), "action": (str,), "actor": (str,),
    "case_id": (int, type(None)), "original_id": (int, type(None)), "recorded_at": (str,),
    "details": (dict,), "entry_hash": (str,),
}


def bag_path(root: Path, rel: Any, *, under_data: bool = False) -> Path | None:
    """The file ``rel`` names inside the bag, or None when it is not a safe, existing
    file path there."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return None
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or (under_data and pure.parts[:1] != ("data",)):
        return None
    path = root.joinpath(*pure.parts)
    return path if is_file(path) else None


def safe_hash(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _entry_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, types in FIELD_TYPES.items():
        if name not in record:
            return f"no {name}"
        value = record[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{name} is not a {' or '.join(t.__name__ for t in types)}"
    return None


def _load_custody(root: Path, report: VerificationReport) -> list[dict[str, Any]] | None:
    text = read_text(root / "data" / "custody.jsonl")
    if text is None:
        report.add("custody chain", False, f"{CUSTODY}: missing or not UTF-8")
        return None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            report.add("custody chain", False, f"{CUSTODY} line {number}: not JSON")
            continue
        problem = _entry_problem(record)
        if problem is not None:
            report.add("custody chain", False,
                       f"{CUSTODY} line {number}: not a custody entry ({problem})")
            continue
        records.append(record)
    return records


def _entry_name(record: dict[str, Any]) -> str:
    return f"{CUSTODY} {shown(record['chain'], 80)} #{record['seq']}"


def _hash_matches(record: dict[str, Any]) -> bool:
    try:
        return bool(compute_entry_hash(record) == record["entry_hash"])
    except (ValueError, RecursionError):  # a lone surrogate cannot be encoded
        return False


def _check_links(records: list[dict[str, Any]], report: VerificationReport) -> None:
    chains: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        chains.setdefault(record["chain"], []).append(record)
        if not _hash_matches(record):
            report.add("custody chain", False,
                       f"{_entry_name(record)}: entry hash does not match its content")
    for entries in chains.values():
        previous = GENESIS_HASH
        for expected_seq, record in enumerate(entries):
            if record["seq"] != expected_seq or record["prev_hash"] != previous:
                report.add("custody chain", False,
                           f"{_entry_name(record)}: breaks the chain "
                           f"(expected #{expected_seq} after {shown(previous[:12], 12)}…)")
            previous = record["entry_hash"]
    hashes = {r["entry_hash"] for r in records}
    for record in records:
        ref = record["details"].get("acquisition_entry_hash")
        if record["action"] == "clip" and ref is not None and (
                not isinstance(ref, str) or ref not in hashes):
            report.add("custody chain", False,
                       f"{_entry_name(record)}: the original's acquisition entry is not in "
                       "the bundle")


def _check_export_clips(root: Path, records: list[dict[str, Any]],
                        report: VerificationReport) -> None:
    exports = [r for r in records if r["action"] == "export"]
    if not exports:
        report.add("custody chain", False, f"{CUSTODY}: no export entry")
        return
    clips = exports[-1]["details"].get("clips", [])
    if not isinstance(clips, list):
        report.add("custody chain", False, f"{_entry_name(exports[-1])}: clips is not a list")
        return
    for number, clip in enumerate(clips, start=1):
        if not isinstance(clip, dict):
            report.add("custody chain", False,
                       f"{_entry_name(exports[-1])}: clip {number} is not an object")
            continue
        for key_path, key_hash in (("path", "sha256"), ("still_path", "still_sha256"),
                                   ("viewing_copy_path", "viewing_copy_sha256")):
            if key_path == "viewing_copy_path" and key_path not in clip:
                continue  # a clip that plays everywhere has no viewing copy
            rel = clip.get(key_path)
            path = bag_path(root, rel, under_data=True)
            if path is None or safe_hash(path) != clip.get(key_hash):
                report.add("custody chain", False,
                           f"{shown(rel)}: does not match the hash recorded in the export "
                           "entry")


def check_custody(root: Path, report: VerificationReport) -> None:
    """Hashes, sequence and links of every chain, acquisitions, the export's clip hashes."""
    failures_before = len(report.failures)
    records = _load_custody(root, report)
    if records is None:
        return
    _check_links(records, report)
    _check_export_clips(root, records, report)
    if len(report.failures) == failures_before:
        chains = len({r["chain"] for r in records})
        report.add("custody chain", True,
                   f"{len(records)} entries in {chains} chain(s) link up")


def check_provenance(root: Path, report: VerificationReport) -> None:
    """Every file hash in provenance.jsonld matches the file; every clip has one."""
    text = read_text(root / "data" / "provenance.jsonld")
    try:
        files = bag_file_hashes(json.loads(text or ""))
    except (ValueError, RecursionError):
        report.add("provenance", False,
                   f"{PROVENANCE}: missing or not the expected JSON-LD")
        return
    clips_dir = root / "data" / "clips"
    clips = {p.relative_to(root).as_posix() for p in clips_dir.glob("*")
             if p.is_file()} if clips_dir.is_dir() else set()
    for rel in sorted(clips - set(files)):
        report.add("provenance", False, f"{shown(rel)}: has no derivation in provenance.jsonld")
    for rel, digest in sorted(files.items()):
        path = bag_path(root, rel)
        if path is None:
            report.add("provenance", False,
                       f"{shown(rel)}: named in provenance.jsonld but missing")
            continue
        good = safe_hash(path) == digest
        report.add("provenance", good, f"{shown(rel)}: " + (
            "matches provenance.jsonld" if good else "SHA-256 differs from provenance.jsonld"))


def check_digest(root: Path, listed: dict[str, str], report: VerificationReport) -> None:
    """The evidence digest in bag-info (printed in the PDF footer) matches the manifest."""
    stated = parse_bag_info(read_text(root / "bag-info.txt") or "").get("Oko-Evidence-Digest")
    actual = evidence_digest(listed)
    good = stated == actual
    report.add("evidence digest", good, "bag-info Oko-Evidence-Digest " + (
        f"matches the manifest without {REPORT_PATH}" if good
        else f"{shown(stated or 'missing', 80)} differs from the manifest's {actual}"))


__all__ = ["bag_path", "check_custody", "check_digest", "check_provenance", "safe_hash"]
