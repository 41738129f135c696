"""BagIt (RFC 8493) bag writing, signing and deterministic zipping, written to the RFC.

A bag directory is filled with ``data/`` by the exporter; ``finish_bag`` then writes the
tag files in this order, so each can cover the ones before it:

1. ``manifest-sha256.txt``: ``<sha256>  <path>`` for every payload file, sorted by path;
2. ``bagit.txt``, ``bag-info.txt`` (with ``Payload-Oxum`` and ``Oko-Signed-At``, the
   signing time a verifier checks the certificate chain at), ``VERIFY.txt``,
   ``signer.pem`` (the signing certificate first, then its issuers up to the root);
3. ``tagmanifest-sha256.txt`` over the files of step 1 and 2;
4. ``signature.sig``: raw 64-byte Ed25519 over the exact bytes of the tag manifest;
5. with a TSA, ``timestamp.tsr``: an RFC 3161 response over the exact bytes of
   ``signature.sig`` (not in the tag manifest, which the signature covers; bag-info's
   ``Oko-Trusted-Time``, written in step 2, says a token must be there).

The evidence digest printed in the PDF footer is the SHA-256 of the payload manifest
text without its ``data/report.pdf`` line (a PDF cannot carry a hash of itself).
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

# The layout and the digest are the verifier's, so writer and reader cannot drift.
from oko_verify.bag import (
    BAGIT_TXT,
    PAYLOAD_MANIFEST,
    REPORT_PATH,
    SIGNATURE,
    SIGNER_CERT,
    TAG_FILES,
    TAG_MANIFEST,
    TIMESTAMP,
    TRUSTED_TIME_FIELD,
    evidence_digest,
    manifest_text,
)
from oko_verify.bag import SIGNED_AT_FIELD as SIGNED_AT

from evidence.keys import Signer
from evidence.timestamp import Timestamp, TimestampAuthority, fetch_timestamp
from storage.atomic import atomic_write
from storage.blobstore import sha256_file
from storage.errors import ConfigurationError

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
STORED_SUFFIXES = (".mp4", ".jpg", ".pdf", ".mkv", ".avi", ".mov", ".ts")


def hash_payload(bag_dir: Path, *, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``data/``."""
    result: dict[str, str] = {}
    for path in sorted((bag_dir / "data").rglob("*")):
        rel = path.relative_to(bag_dir).as_posix()
        if path.is_file() and rel not in exclude:
            result[rel] = sha256_file(path)
    return result


def bag_info_text(fields: list[tuple[str, str]]) -> str:
    """``Label: value`` lines; values are single-line by construction."""
    return "".join(f"{label}: {' '.join(value.split())}\n" for label, value in fields)


def signed_at_text(when: datetime) -> str:
    """``Oko-Signed-At``'s value: ISO 8601 UTC to the second, e.g. 2026-12-01T14:00:05Z."""
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def finish_bag(bag_dir: Path, *, bag_info: list[tuple[str, str]], verify_text: str,
               signer: Signer, signed_at: datetime | None = None,
               timestamp_authority: TimestampAuthority | None = None) -> str:
    """Write manifests, tag files and the signature; return the tag manifest's SHA-256.

    ``signed_at`` (default: now) goes into bag-info as ``Oko-Signed-At``; the chain in
    ``signer.pem`` is checked at that time, so a certificate revoked or expired later
    does not undo this signature. Raises ``ConfigurationError`` when the signing
    certificate is not valid at ``signed_at`` (nothing is signed then). With
    ``timestamp_authority``, step 5 fetches ``timestamp.tsr`` and raises what
    ``evidence.timestamp.fetch_timestamp`` raises (the caller discards the bag).
    """
    when = (signed_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    certificate = signer.certificate
    if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        raise ConfigurationError(
            f"The signing certificate {signer.fingerprint_sha256} is not valid at "
            f"{signed_at_text(when)}; run `oko keys rotate` before signing again.")
    payload = hash_payload(bag_dir)
    (bag_dir / PAYLOAD_MANIFEST).write_text(manifest_text(payload.items()), encoding="utf-8")
    octets = sum((bag_dir / p).stat().st_size for p in payload)
    info = [*bag_info, ("Payload-Oxum", f"{octets}.{len(payload)}"),
            (SIGNED_AT, signed_at_text(when))]
    (bag_dir / "bagit.txt").write_bytes(BAGIT_TXT)
    (bag_dir / "bag-info.txt").write_text(bag_info_text(info), encoding="utf-8")
    (bag_dir / "VERIFY.txt").write_text(verify_text, encoding="utf-8")
    (bag_dir / SIGNER_CERT).write_bytes(signer.chain_pem)
    tags = manifest_text((name, sha256_file(bag_dir / name)) for name in TAG_FILES)
    tag_bytes = tags.encode("utf-8")
    (bag_dir / TAG_MANIFEST).write_bytes(tag_bytes)
    (bag_dir / SIGNATURE).write_bytes(signer.sign(tag_bytes))
    if timestamp_authority is not None:
        timestamp_signature(bag_dir, timestamp_authority)
    return hashlib.sha256(tag_bytes).hexdigest()


def timestamp_signature(bag_dir: Path, authority: TimestampAuthority) -> Timestamp:
    """Step 5: a checked RFC 3161 token over ``signature.sig``, written as
    ``timestamp.tsr``. Raises ``evidence.timestamp``'s errors, writing nothing then."""
    stamp = fetch_timestamp((bag_dir / SIGNATURE).read_bytes(), authority)
    (bag_dir / TIMESTAMP).write_bytes(stamp.response)
    return stamp


def zip_bag(bag_dir: Path, out_path: Path, *, top_dir: str) -> str:
    """Zip the bag under ``top_dir/`` deterministically and move it to ``out_path``.

    Entries are sorted with fixed timestamps and permissions; media is stored, text is
    deflated. The zip is written next to ``out_path`` and renamed into place
    (``storage.atomic``), so a crash never leaves a partial bundle under the final name.
    Returns the zip's SHA-256.
    """
    with (atomic_write(out_path) as handle,
          zipfile.ZipFile(handle, "w", allowZip64=True) as archive):
        for path in sorted(p for p in bag_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(bag_dir).as_posix()
            info = zipfile.ZipInfo(f"{top_dir}/{rel}", date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            stored = rel.lower().endswith(STORED_SUFFIXES)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                for chunk in iter(lambda: src.read(1024 * 1024), b""):
                    dst.write(chunk)
    return sha256_file(out_path)


__all__ = [
    "PAYLOAD_MANIFEST",
    "REPORT_PATH",
    "SIGNATURE",
    "SIGNED_AT",
    "SIGNER_CERT",
    "TAG_FILES",
    "TAG_MANIFEST",
    "TIMESTAMP",
    "TRUSTED_TIME_FIELD",
    "bag_info_text",
    "evidence_digest",
    "finish_bag",
    "hash_payload",
    "manifest_text",
    "signed_at_text",
    "timestamp_signature",
    "zip_bag",
]
