"""Offline verification of an evidence bundle: every independent check, every failure.

``verify_bundle`` never stops at the first problem. It runs, in order:

1. bag structure: ``bagit.txt`` (version, encoding), ``bag-info.txt``, ``data/``, manifests;
2. payload manifest syntax and safe paths (no path leaves ``data/``);
3. every payload hash (one check per file, named by its path);
4. completeness: files listed but missing, files present but not listed;
5. ``Payload-Oxum`` in bag-info against the payload's octets and file count;
6. the tag manifest: every tag file's hash, required tag files listed, no unlisted ones;
7. the Ed25519 signature over the exact bytes of ``tagmanifest-sha256.txt``;
8. the signer policy (pinned fingerprint, trusted certificates, or "not pinned");
9. custody chain continuity (hashes, sequence, links, acquisitions, export clip hashes);
10. provenance: every file hash in ``provenance.jsonld`` matches the file in the bag;
11. the evidence digest in bag-info (printed in the PDF footer) matches the manifest.

Input that cannot be checked at all raises ``UnusableBundleError`` (exit code 2).
The report has no truth value: use ``report.ok`` or ``report.raise_for_failure()``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from cryptography import x509

from evidence.bundle import (
    PAYLOAD_MANIFEST,
    REPORT_PATH,
    SIGNATURE,
    SIGNER_CERT,
    TAG_FILES,
    TAG_MANIFEST,
    evidence_digest,
)
from evidence.keys import certificate_fingerprint, normalise_fingerprint, verify_signature
from evidence.provenance import bag_file_hashes
from evidence.unpack import BundleLimits, UnusableBundleError, open_bundle
from storage.blobstore import sha256_file
from storage.custody_hash import GENESIS_HASH, HASHED_FIELDS, compute_entry_hash
from storage.errors import OkoError

MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
UNPINNED = "signature valid, signer not pinned"


class BundleInvalidError(OkoError):
    """The bundle was checked and at least one check failed (exit code 1)."""

    exit_code = 1
    http_status = 422


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass
class VerificationReport:
    checks: list[CheckResult] = field(default_factory=list)
    signer_fingerprint: str | None = None
    case_number: str | None = None
    tag_manifest_sha256: str | None = None

    def __bool__(self) -> bool:
        raise TypeError("Use report.ok, not the report's truth value.")

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(CheckResult(name, passed, detail))

    def raise_for_failure(self) -> None:
        """Raises ``BundleInvalidError`` listing every failed check."""
        if not self.ok:
            raise BundleInvalidError(
                f"The bundle is invalid: {len(self.failures)} check(s) failed.",
                details=[f"{c.name}: {c.detail}" for c in self.failures],
            )

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "case_number": self.case_number,
                "signer_fingerprint": self.signer_fingerprint,
                "tag_manifest_sha256": self.tag_manifest_sha256,
                "checks": [c.__dict__ for c in self.checks]}


class SignerPolicy(Protocol):
    """Decides whether the certificate that signed a bundle is trusted."""

    def check(self, certificate: x509.Certificate) -> list[CheckResult]: ...


@dataclass(frozen=True)
class PinnedFingerprint:
    fingerprint: str

    def check(self, certificate: x509.Certificate) -> list[CheckResult]:
        expected = normalise_fingerprint(self.fingerprint)
        actual = certificate_fingerprint(certificate)
        return [CheckResult("signer", actual == expected,
                            f"signer.pem fingerprint {actual} "
                            + ("matches the pinned fingerprint" if actual == expected
                               else f"is not the pinned {expected}"))]


@dataclass(frozen=True)
class TrustedCertificates:
    certificates: tuple[x509.Certificate, ...]

    def check(self, certificate: x509.Certificate) -> list[CheckResult]:
        trusted = {certificate_fingerprint(c) for c in self.certificates}
        actual = certificate_fingerprint(certificate)
        return [CheckResult("signer", actual in trusted,
                            f"signer.pem ({actual}) "
                            + ("is a trusted certificate" if actual in trusted
                               else "is not among the trusted certificates"))]


@dataclass(frozen=True)
class UnpinnedSigner:
    """No pin given: the signature is checked but nobody vouches for the signer."""

    def check(self, certificate: x509.Certificate) -> list[CheckResult]:
        return [CheckResult("signer", True,
                            f"{UNPINNED} ({certificate_fingerprint(certificate)})")]


@dataclass(frozen=True)
class AnyOf:
    """Passes when one child passes; keeps every child's reasons."""

    policies: tuple[SignerPolicy, ...]

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("AnyOf needs at least one policy.")

    def check(self, certificate: x509.Certificate) -> list[CheckResult]:
        results = [r for p in self.policies for r in p.check(certificate)]
        return [CheckResult("signer", any(r.passed for r in results),
                            "; ".join(r.detail for r in results))]


def load_trusted_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UnusableBundleError(f"{path} is not a PEM certificate.") from exc


def verify_bundle(path: Path, policy: SignerPolicy | None = None, *,
                  limits: BundleLimits | None = None,
                  work_dir: Path | None = None) -> VerificationReport:
    """Run every check on the bundle at ``path`` (zip or directory); see module doc."""
    report = VerificationReport()
    with open_bundle(path, limits=limits, work_dir=work_dir) as root:
        _check_structure(root, report)
        listed = _check_payload(root, report)
        _check_tag_manifest(root, report)
        certificate = _check_signature(root, report)
        if certificate is not None:
            report.checks += (policy or UnpinnedSigner()).check(certificate)
        else:
            report.add("signer", False, "no usable certificate, so no signer can be trusted")
        _check_custody(root, report)
        _check_provenance(root, report)
        _check_digest(root, listed, report)
    return report


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _bag_info(root: Path) -> dict[str, str]:
    text = _read_text(root / "bag-info.txt") or ""
    info: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep:
            info[label.strip()] = value.strip()
    return info


def _check_structure(root: Path, report: VerificationReport) -> None:
    bagit = _read_text(root / "bagit.txt") or ""
    good = "BagIt-Version: 1.0" in bagit and "Tag-File-Character-Encoding: UTF-8" in bagit
    report.add("bag structure", good, "bagit.txt declares BagIt 1.0, UTF-8" if good
               else "bagit.txt: missing or not BagIt-Version 1.0 / UTF-8")
    for name in ("bag-info.txt", PAYLOAD_MANIFEST, TAG_MANIFEST, SIGNATURE, SIGNER_CERT):
        present = (root / name).is_file()
        report.add("bag structure", present, f"{name}: " + ("present" if present else "missing"))
    has_data = (root / "data").is_dir()
    report.add("bag structure", has_data, "data/: " + ("present" if has_data else "missing"))
    info = _bag_info(root)
    report.case_number = info.get("Oko-Case-Number")


def _parse_manifest(root: Path, name: str, report: VerificationReport,
                    *, payload: bool) -> dict[str, str]:
    """``path -> hash`` from a manifest; malformed or unsafe lines become failures."""
    text = _read_text(root / name)
    if text is None:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = MANIFEST_LINE.match(line)
        if not match:
            report.add("manifest syntax", False, f"{name} line {number}: not '<sha256>  <path>'")
            continue
        digest, rel = match.groups()
        pure = PurePosixPath(rel)
        unsafe = pure.is_absolute() or ".." in pure.parts or "\\" in rel
        if unsafe or (payload and pure.parts[:1] != ("data",)) or rel in entries:
            report.add("manifest syntax", False,
                       f"{name} line {number}: unsafe or duplicate path '{rel}'")
            continue
        entries[rel] = digest
    return entries


def _check_payload(root: Path, report: VerificationReport) -> dict[str, str]:
    listed = _parse_manifest(root, PAYLOAD_MANIFEST, report, payload=True)
    present = {p.relative_to(root).as_posix() for p in (root / "data").rglob("*")
               if p.is_file()} if (root / "data").is_dir() else set()
    for rel in sorted(listed):
        if rel not in present:
            report.add("payload completeness", False,
                       f"{rel}: listed in {PAYLOAD_MANIFEST} but missing")
            continue
        actual = sha256_file(root / rel)
        good = actual == listed[rel]
        report.add("payload hash", good, f"{rel}: " + (
            "SHA-256 ok" if good else f"SHA-256 mismatch (manifest {listed[rel]}, file {actual})"))
    for rel in sorted(present - set(listed)):
        report.add("payload completeness", False,
                   f"{rel}: present but not listed in {PAYLOAD_MANIFEST}")
    if listed and set(listed) <= present and present <= set(listed):
        report.add("payload completeness", True, f"all {len(listed)} payload files present")
    oxum = _bag_info(root).get("Payload-Oxum", "")
    expected = f"{sum((root / p).stat().st_size for p in present)}.{len(present)}"
    report.add("payload oxum", oxum == expected,
               f"Payload-Oxum {oxum or 'missing'} " + (
                   "matches" if oxum == expected else f"but the payload is {expected}"))
    return listed


def _check_tag_manifest(root: Path, report: VerificationReport) -> None:
    listed = _parse_manifest(root, TAG_MANIFEST, report, payload=False)
    for name in TAG_FILES:
        if name not in listed:
            report.add("tag manifest", False, f"{name}: not listed in {TAG_MANIFEST}")
    for name, digest in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            report.add("tag manifest", False, f"{name}: listed in {TAG_MANIFEST} but missing")
            continue
        actual = sha256_file(path)
        good = actual == digest
        report.add("tag manifest", good, f"{name}: " + (
            "SHA-256 ok" if good else f"SHA-256 mismatch (tag manifest {digest}, file {actual})"))
    expected_top = set(listed) | {TAG_MANIFEST, SIGNATURE, "data"}
    for extra in sorted(p.name for p in root.iterdir() if p.name not in expected_top):
        report.add("tag manifest", False, f"{extra}: present but not covered by {TAG_MANIFEST}")


def _check_signature(root: Path, report: VerificationReport) -> x509.Certificate | None:
    try:
        certificate = x509.load_pem_x509_certificate((root / SIGNER_CERT).read_bytes())
        report.signer_fingerprint = certificate_fingerprint(certificate)
    except (OSError, ValueError):
        report.add("signature", False, f"{SIGNER_CERT}: missing or not a PEM certificate")
        return None
    try:
        signature = (root / SIGNATURE).read_bytes()
        tag_bytes = (root / TAG_MANIFEST).read_bytes()
    except OSError:
        report.add("signature", False, f"{SIGNATURE} or {TAG_MANIFEST}: missing")
        return certificate
    report.tag_manifest_sha256 = hashlib.sha256(tag_bytes).hexdigest()
    if len(signature) != 64:
        report.add("signature", False, f"{SIGNATURE}: {len(signature)} bytes, not a raw "
                   "64-byte Ed25519 signature")
        return certificate
    good = verify_signature(certificate, signature, tag_bytes)
    report.add("signature", good, f"{SIGNATURE}: " + (
        f"valid Ed25519 signature over {TAG_MANIFEST} by {SIGNER_CERT}" if good
        else f"does not verify over {TAG_MANIFEST} with the key in {SIGNER_CERT}"))
    return certificate


def _load_custody(root: Path, report: VerificationReport) -> list[dict[str, Any]] | None:
    text = _read_text(root / "data" / "custody.jsonl")
    if text is None:
        report.add("custody chain", False, "data/custody.jsonl: missing or not UTF-8")
        return None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or any(k not in record for k in
                                                   (*HASHED_FIELDS, "entry_hash")):
                raise ValueError("missing fields")
            records.append(record)
        except ValueError:
            report.add("custody chain", False,
                       f"data/custody.jsonl line {number}: not a custody entry")
    return records


def _check_custody(root: Path, report: VerificationReport) -> None:
    records = _load_custody(root, report)
    if records is None:
        return
    failures_before = len(report.failures)
    chains: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        chains.setdefault(str(record["chain"]), []).append(record)
        if compute_entry_hash(record) != record["entry_hash"]:
            report.add("custody chain", False,
                       f"data/custody.jsonl {record['chain']} #{record['seq']}: entry hash "
                       "does not match its content")
    for chain, entries in chains.items():
        previous = GENESIS_HASH
        for expected_seq, record in enumerate(entries):
            if record["seq"] != expected_seq or record["prev_hash"] != previous:
                report.add("custody chain", False,
                           f"data/custody.jsonl {chain} #{record['seq']}: breaks the chain "
                           f"(expected #{expected_seq} after {previous[:12]}…)")
            previous = record["entry_hash"]
    hashes = {r["entry_hash"] for r in records}
    for record in records:
        ref = record["details"].get("acquisition_entry_hash") if isinstance(
            record["details"], dict) else None
        if record["action"] == "clip" and ref and ref not in hashes:
            report.add("custody chain", False,
                       f"data/custody.jsonl {record['chain']} #{record['seq']}: the original's "
                       "acquisition entry is not in the bundle")
    exports = [r for r in records if r["action"] == "export"]
    for clip in (exports[-1]["details"].get("clips", []) if exports else []):
        for key_path, key_hash in (("path", "sha256"), ("still_path", "still_sha256")):
            rel = str(clip.get(key_path, ""))
            path = root / rel
            safe = rel.startswith("data/") and ".." not in PurePosixPath(rel).parts
            if not safe or not path.is_file() or sha256_file(path) != clip.get(key_hash):
                report.add("custody chain", False,
                           f"{rel}: does not match the hash recorded in the export entry")
    if not exports:
        report.add("custody chain", False, "data/custody.jsonl: no export entry")
    if len(report.failures) == failures_before:
        report.add("custody chain", True,
                   f"{len(records)} entries in {len(chains)} chain(s) link up")


def _check_provenance(root: Path, report: VerificationReport) -> None:
    text = _read_text(root / "data" / "provenance.jsonld")
    try:
        files = bag_file_hashes(json.loads(text or ""))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        report.add("provenance", False, "data/provenance.jsonld: missing or not the expected "
                   "JSON-LD")
        return
    clips = {p.relative_to(root).as_posix() for p in (root / "data" / "clips").glob("*")
             if p.is_file()} if (root / "data" / "clips").is_dir() else set()
    for rel in sorted(clips - set(files)):
        report.add("provenance", False, f"{rel}: has no derivation in provenance.jsonld")
    for rel, digest in sorted(files.items()):
        pure = PurePosixPath(rel)
        path = root / rel
        if pure.is_absolute() or ".." in pure.parts or not path.is_file():
            report.add("provenance", False, f"{rel}: named in provenance.jsonld but missing")
            continue
        good = sha256_file(path) == digest
        report.add("provenance", good, f"{rel}: " + (
            "matches provenance.jsonld" if good else "SHA-256 differs from provenance.jsonld"))


def _check_digest(root: Path, listed: dict[str, str], report: VerificationReport) -> None:
    stated = _bag_info(root).get("Oko-Evidence-Digest")
    actual = evidence_digest(listed)
    good = stated == actual
    report.add("evidence digest", good, "bag-info Oko-Evidence-Digest " + (
        f"matches the manifest without {REPORT_PATH}" if good
        else f"{stated or 'missing'} differs from the manifest's {actual}"))


__all__ = [
    "UNPINNED",
    "AnyOf",
    "BundleInvalidError",
    "CheckResult",
    "PinnedFingerprint",
    "SignerPolicy",
    "TrustedCertificates",
    "UnpinnedSigner",
    "VerificationReport",
    "load_trusted_certificate",
    "verify_bundle",
]
