"""Offline verification of an Oko evidence bundle: every check, every failure, one verdict.

``verify_bundle`` never stops at the first problem. It runs, in order:

1. bag structure: ``bagit.txt`` (version, encoding), ``bag-info.txt``, ``data/``, manifests;
2. payload manifest syntax and safe paths (no path leaves ``data/``);
3. every payload hash (one check per file, named by its path);
4. completeness: files listed but missing, files present but not listed;
5. ``Payload-Oxum`` in bag-info against the payload's octets and file count;
6. the tag manifest: every tag file's hash, required tag files listed, no unlisted ones;
7. the Ed25519 signature over the exact bytes of ``tagmanifest-sha256.txt`` by the first
   certificate of ``signer.pem``;
8. the signing time (``Oko-Signed-At``, else ``Oko-Export-Time-UTC``, else
   ``Bagging-Date`` at 00:00 UTC, else now) and the certificate chain at that time
   (``oko_verify.trust``: validity, issuers, key usage, revocation);
9. trust: the chain reaches an anchor the caller gave (a pinned fingerprint that matches
   nothing fails the bundle; no anchor at all leaves it intact but not trusted);
10. custody chain continuity (hashes, sequence, links, acquisitions, export clip hashes);
11. provenance: every file hash in ``provenance.jsonld`` matches the file in the bag;
12. the evidence digest in bag-info (printed in the PDF footer) matches the manifest;
13. ``timestamp.tsr`` (``oko_verify.timestamp.check_timestamp``): an RFC 3161 token over
    ``signature.sig`` whose TSA chains to ``tsa_anchors`` (default: ``anchors``); a
    token for other data, or one bag-info promises but is missing, fails the bundle;
    an untrusted TSA is a warning and the report names no trusted time.

Input that cannot be checked at all raises ``UnusableBundleError`` (exit code 2); no
other exception escapes for anything a bundle holds.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from oko_verify.bag import (
    BAG_INFO,
    MANIFEST_LINE,
    PAYLOAD_MANIFEST,
    SIGNATURE,
    SIGNED_AT_FIELD,
    SIGNER_CERT,
    TAG_FILES,
    TAG_MANIFEST,
    TIMESTAMP,
    is_file,
    parse_bag_info,
    read_text,
)
from oko_verify.content import check_custody, check_digest, check_provenance, safe_hash
from oko_verify.report import TRUST_CHECK, VerificationReport
from oko_verify.text import shown
from oko_verify.timestamp import check_timestamp
from oko_verify.trust import (
    ChainResult,
    TrustAnchors,
    certificate_fingerprint,
    describe,
    evaluate_chain,
    load_pem_certificates,
)
from oko_verify.unpack import BundleLimits, ExtractionStats, open_bundle

CHAIN_CHECK = "certificate chain"


def verify_bundle(path: Path, anchors: TrustAnchors | None = None, *,
                  limits: BundleLimits | None = None, scratch_dir: Path | None = None,
                  stats: ExtractionStats | None = None,
                  tsa_anchors: TrustAnchors | None = None) -> VerificationReport:
    """Run every check on the bundle at ``path`` (zip or directory); see the module doc.

    A zip is extracted into ``scratch_dir`` (default: the system temp dir) within
    ``limits``. Raises ``UnusableBundleError`` for input that cannot be checked.
    """
    anchors = anchors or TrustAnchors()
    report = VerificationReport()
    with open_bundle(path, limits=limits, scratch_dir=scratch_dir, stats=stats) as root:
        info = parse_bag_info(read_text(root / BAG_INFO) or "")
        report.case_number = shown(info["Oko-Case-Number"], 80) \
            if "Oko-Case-Number" in info else None
        _check_structure(root, report)
        listed = _check_payload(root, info, report)
        _check_tag_manifest(root, report)
        chain = _check_signature(root, report)
        _check_chain(chain, info, anchors, report)
        check_custody(root, report)
        check_provenance(root, report)
        check_digest(root, listed, report)
        check_timestamp(root, info, tsa_anchors or anchors, report)
    return report


def _check_structure(root: Path, report: VerificationReport) -> None:
    bagit = read_text(root / "bagit.txt") or ""
    good = "BagIt-Version: 1.0" in bagit and "Tag-File-Character-Encoding: UTF-8" in bagit
    report.add("bag structure", good, "bagit.txt declares BagIt 1.0, UTF-8" if good
               else "bagit.txt: missing or not BagIt-Version 1.0 / UTF-8")
    for name in (BAG_INFO, PAYLOAD_MANIFEST, TAG_MANIFEST, SIGNATURE, SIGNER_CERT):
        present = is_file(root / name)
        report.add("bag structure", present, f"{name}: " + ("present" if present else "missing"))
    has_data = (root / "data").is_dir()
    report.add("bag structure", has_data, "data/: " + ("present" if has_data else "missing"))


def _parse_manifest(root: Path, name: str, report: VerificationReport,
                    *, payload: bool) -> dict[str, str]:
    """``path -> hash`` from a manifest; malformed or unsafe lines become failures."""
    text = read_text(root / name)
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
        unsafe = (pure.is_absolute() or ".." in pure.parts or "\\" in rel or "\x00" in rel
                  or pure.as_posix() != rel)
        if unsafe or (payload and pure.parts[:1] != ("data",)) or rel in entries:
            report.add("manifest syntax", False,
                       f"{name} line {number}: unsafe or duplicate path '{shown(rel)}'")
            continue
        entries[rel] = digest
    return entries


def _present_files(root: Path) -> set[str]:
    data = root / "data"
    return {p.relative_to(root).as_posix() for p in data.rglob("*")
            if p.is_file()} if data.is_dir() else set()


def _check_payload(root: Path, info: dict[str, str], report: VerificationReport
                   ) -> dict[str, str]:
    listed = _parse_manifest(root, PAYLOAD_MANIFEST, report, payload=True)
    present = _present_files(root)
    for rel in sorted(listed):
        if rel not in present:
            report.add("payload completeness", False,
                       f"{shown(rel)}: listed in {PAYLOAD_MANIFEST} but missing")
            continue
        actual = safe_hash(root / rel)
        good = actual == listed[rel]
        report.add("payload hash", good, f"{shown(rel)}: " + (
            "SHA-256 ok" if good else f"SHA-256 mismatch (manifest {listed[rel]}, file "
                                      f"{actual or 'unreadable'})"))
    for rel in sorted(present - set(listed)):
        report.add("payload completeness", False,
                   f"{shown(rel)}: present but not listed in {PAYLOAD_MANIFEST}")
    if listed and set(listed) == present:
        report.add("payload completeness", True, f"all {len(listed)} payload files present")
    oxum = info.get("Payload-Oxum", "")
    expected = f"{sum((root / p).stat().st_size for p in present)}.{len(present)}"
    report.add("payload oxum", oxum == expected,
               f"Payload-Oxum {shown(oxum or 'missing', 40)} " + (
                   "matches" if oxum == expected else f"but the payload is {expected}"))
    return listed


def _check_tag_manifest(root: Path, report: VerificationReport) -> None:
    listed = _parse_manifest(root, TAG_MANIFEST, report, payload=False)
    for name in TAG_FILES:
        if name not in listed:
            report.add("tag manifest", False, f"{name}: not listed in {TAG_MANIFEST}")
    for name, digest in sorted(listed.items()):
        path = root / name
        if not is_file(path):
            report.add("tag manifest", False,
                       f"{shown(name)}: listed in {TAG_MANIFEST} but missing")
            continue
        actual = safe_hash(path)
        good = actual == digest
        report.add("tag manifest", good, f"{shown(name)}: " + (
            "SHA-256 ok" if good else f"SHA-256 mismatch (tag manifest {digest}, file "
                                      f"{actual or 'unreadable'})"))
    expected_top = set(listed) | {TAG_MANIFEST, SIGNATURE, TIMESTAMP, "data"}
    for extra in sorted(p.name for p in root.iterdir() if p.name not in expected_top):
        report.add("tag manifest", False,
                   f"{shown(extra)}: present but not covered by {TAG_MANIFEST}")


def _signature_holds(certificate: x509.Certificate, signature: bytes, data: bytes) -> bool:
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _check_signature(root: Path, report: VerificationReport) -> list[x509.Certificate]:
    """Step 7; returns the chain from ``signer.pem`` (empty when it cannot be read)."""
    try:
        chain = load_pem_certificates((root / SIGNER_CERT).read_bytes())
        report.signer_fingerprint = certificate_fingerprint(chain[0])
        report.signer_subject = describe(chain[0])
    except (OSError, ValueError, IndexError):
        report.add("signature", False, f"{SIGNER_CERT}: missing or not a PEM certificate")
        return []
    try:
        signature = (root / SIGNATURE).read_bytes()
        tag_bytes = (root / TAG_MANIFEST).read_bytes()
    except OSError:
        report.add("signature", False, f"{SIGNATURE} or {TAG_MANIFEST}: missing")
        return chain
    report.tag_manifest_sha256 = hashlib.sha256(tag_bytes).hexdigest()
    if len(signature) != 64:
        report.add("signature", False, f"{SIGNATURE}: {len(signature)} bytes, not a raw "
                   "64-byte Ed25519 signature")
        return chain
    good = _signature_holds(chain[0], signature, tag_bytes)
    report.add("signature", good, f"{SIGNATURE}: " + (
        f"valid Ed25519 signature over {TAG_MANIFEST} by the first certificate of "
        f"{SIGNER_CERT}" if good
        else f"does not verify over {TAG_MANIFEST} with the key in {SIGNER_CERT}"))
    return chain


def _parse_time(text: str, *, date_only: bool = False) -> datetime | None:
    try:
        if date_only:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        value = datetime.fromisoformat(text)
        return value.astimezone(UTC) if value.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _signing_time(info: dict[str, str], report: VerificationReport) -> datetime:
    """Step 8's time; an unparsable ``Oko-Signed-At`` is a failed check."""
    for field, date_only in ((SIGNED_AT_FIELD, False), ("Oko-Export-Time-UTC", False),
                             ("Bagging-Date", True)):
        if field not in info:
            continue
        value = _parse_time(info[field], date_only=date_only)
        if value is not None:
            report.add("signing time", True,
                       f"signed at {value:%Y-%m-%dT%H:%M:%SZ} (bag-info {field})")
            return value
        report.add("signing time", False,
                   f"bag-info {field} {shown(info[field], 60)} is not an ISO 8601 UTC time")
    now = datetime.now(UTC)
    report.add("signing time", True, "bag-info names no signing time; the chain is checked "
               "at the current time")
    return now


def _check_chain(chain: list[x509.Certificate], info: dict[str, str], anchors: TrustAnchors,
                 report: VerificationReport) -> None:
    """Steps 8 and 9."""
    at = _signing_time(info, report)
    report.signed_at = at
    if not chain:
        report.add(CHAIN_CHECK, False, f"{SIGNER_CERT}: no certificate to check")
        report.add(TRUST_CHECK, False, "no usable certificate, so no signer can be trusted")
        return
    try:
        result = evaluate_chain(chain, anchors, at)
        _report_chain(result, at, anchors, report)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        report.add(CHAIN_CHECK, False, f"{SIGNER_CERT}: a certificate cannot be read "
                   f"({shown(str(exc), 80)})")
        report.add(TRUST_CHECK, False, "the chain cannot be read, so no signer can be trusted")


def _report_chain(result: ChainResult, at: datetime, anchors: TrustAnchors,
                  report: VerificationReport) -> None:
    report.root_fingerprint = certificate_fingerprint(result.root)
    for problem in result.problems:
        report.add(CHAIN_CHECK, False, problem)
    if not result.problems:
        report.add(CHAIN_CHECK, True,
                   f"{len(result.chain)} certificate(s) from {report.signer_subject} up to "
                   f"{describe(result.root)}, each valid at {at:%Y-%m-%dT%H:%M:%SZ} and "
                   "issued by the next, none revoked")
    for note in result.notes:
        report.add(CHAIN_CHECK, True, note)
    _check_trust(result.chain, result.anchor, anchors, report)


def _check_trust(chain: tuple[x509.Certificate, ...], anchor: x509.Certificate | None,
                 anchors: TrustAnchors, report: VerificationReport) -> None:
    root = chain[-1]
    root_fp = certificate_fingerprint(root)
    if anchor is not None:
        fingerprint = certificate_fingerprint(anchor)
        kind = "pinned fingerprint" if fingerprint in anchors.fingerprints else "certificate"
        what = "root" if anchor is root and len(chain) > 1 else (
            "signing certificate" if anchor is chain[0] else "issuer")
        report.anchor = f"{what} {describe(anchor)} ({kind} {fingerprint})"
        report.add(TRUST_CHECK, True, f"{SIGNER_CERT} chains to your trusted {report.anchor}")
        return
    chain_words = (f"chain: signer {report.signer_fingerprint}, root {root_fp}"
                   if len(chain) > 1 else f"signer {report.signer_fingerprint}")
    if anchors.fingerprints:
        pinned = ", ".join(anchors.fingerprints)
        report.add(TRUST_CHECK, False,
                   f"no certificate of {SIGNER_CERT} has the pinned fingerprint {pinned} "
                   f"({chain_words})")
        return
    if anchors.empty:
        report.trust_hint = " (you gave no fingerprint, trusted certificate or trust store)"
    else:
        same_name = [c for c in anchors.certificates if c.subject == root.subject]
        report.trust_hint = (
            f" (its root {describe(root)} is not among the {len(anchors.certificates)} "
            "certificate(s) you trust"
            + (", though one of yours has the same name: it is another key, so the bundle "
               "may not come from the installation you trust" if same_name else "") + ")")
    report.add(TRUST_CHECK, False, f"nothing you gave vouches for {SIGNER_CERT} "
               f"({chain_words}){report.trust_hint}", fatal=False)


__all__ = ["verify_bundle"]
