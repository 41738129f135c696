"""The bag layout Oko writes (RFC 8493 BagIt) and the small parsers the checks share.

Both sides use these names: Oko's exporter (``evidence.bundle``) writes with them, and
the verifier reads with them, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = "signature.sig"
SIGNER_CERT = "signer.pem"
REPORT_PATH = "data/report.pdf"
BAG_INFO = "bag-info.txt"
TAG_FILES = ("bagit.txt", BAG_INFO, PAYLOAD_MANIFEST, "VERIFY.txt", SIGNER_CERT)
SIGNED_AT_FIELD = "Oko-Signed-At"
# An RFC 3161 TimeStampResp over the exact bytes of signature.sig. Like the signature it
# stands beside, it cannot be listed in the tag manifest the signature covers; it is
# self-authenticating (the TSA's signature and its imprint of signature.sig), and
# bag-info's Oko-Trusted-Time (signed) says whether one must be there.
TIMESTAMP = "timestamp.tsr"
TRUSTED_TIME_FIELD = "Oko-Trusted-Time"
TRUSTED_TIME_TSA = "TSA "  # Oko-Trusted-Time: TSA <url> (...): a token must be present
MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    """``<hash>  <path>`` lines (what ``sha256sum`` prints), sorted by path."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries))


def evidence_digest(payload_hashes: dict[str, str]) -> str:
    """SHA-256 of the payload manifest minus ``data/report.pdf``.

    Equals ``grep -v '  data/report.pdf$' manifest-sha256.txt | sha256sum``.
    """
    text = manifest_text((p, h) for p, h in payload_hashes.items() if p != REPORT_PATH)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_file(path: Path) -> bool:
    """``path.is_file()`` that is False, not an ``OSError``, for a name the filesystem
    refuses (too long, a NUL byte) or cannot reach."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_text(path: Path) -> str | None:
    """A tag file's UTF-8 text, or None when it is missing, not a file or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def parse_bag_info(text: str) -> dict[str, str]:
    """``Label: value`` lines; the first occurrence of a label wins."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep:
            info.setdefault(label.strip(), value.strip())
    return info


__all__ = [
    "BAGIT_TXT",
    "BAG_INFO",
    "MANIFEST_LINE",
    "PAYLOAD_MANIFEST",
    "REPORT_PATH",
    "SIGNATURE",
    "SIGNED_AT_FIELD",
    "SIGNER_CERT",
    "TAG_FILES",
    "TAG_MANIFEST",
    "TIMESTAMP",
    "TRUSTED_TIME_FIELD",
    "TRUSTED_TIME_TSA",
    "evidence_digest",
    "is_file",
    "manifest_text",
    "parse_bag_info",
    "read_text",
    "sha256_file",
]
