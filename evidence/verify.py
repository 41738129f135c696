"""Offline verification of an evidence bundle: Oko's names for ``oko_verify``.

The checks, the trust anchors and the three verdicts live in the standalone verifier
(``verifier/oko_verify``, stdlib + cryptography only), so the prosecutor's
``oko-verify`` and Oko's ``oko verify`` and ``POST /api/verify`` run the same code. This
module translates the verifier's errors into Oko's ``OkoError`` hierarchy and keeps
the names the rest of Oko imports:

- ``verify_bundle(path, anchors=None, *, limits=None, scratch_dir=None)`` returns a
  ``VerificationReport`` (``verdict``, ``ok`` only for VALID, ``intact``, ``checks``);
- ``PinnedFingerprint`` and ``TrustedCertificates`` build ``TrustAnchors`` (the old
  signer policies became anchors; ``SignerPolicy`` is ``TrustAnchors``);
- ``raise_for_failure(report)`` raises ``BundleInvalidError`` or ``SignerNotTrustedError``
  as ``OkoError``\\ s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import oko_verify
from cryptography import x509
from oko_verify import CheckResult, TrustAnchors, Verdict, VerificationReport
from oko_verify.trust import load_certificate_file, merge, normalise_fingerprint

from evidence.unpack import BundleLimits, UnusableBundleError
from storage.errors import InvalidInputError, OkoError

SignerPolicy = TrustAnchors


class BundleInvalidError(OkoError, oko_verify.BundleInvalidError):
    """The bundle was checked and at least one check failed (exit code 1)."""

    exit_code = 1
    http_status = 422


class SignerNotTrustedError(OkoError, oko_verify.SignerNotTrustedError):
    """The bundle is intact but nothing given vouches for its signer (exit code 3)."""

    exit_code = 3
    http_status = 422


class TrustAnchorError(InvalidInputError, oko_verify.TrustAnchorError):
    """A trusted certificate, CRL or trust store cannot be read (exit code 2)."""


class InvalidFingerprintError(InvalidInputError, oko_verify.InvalidFingerprintError):
    """A pinned fingerprint is not a SHA-256 certificate fingerprint (exit code 2)."""


_TRANSLATIONS: tuple[tuple[type[oko_verify.VerifierError], type[OkoError]], ...] = (
    (oko_verify.UnusableBundleError, UnusableBundleError),
    (oko_verify.BundleInvalidError, BundleInvalidError),
    (oko_verify.SignerNotTrustedError, SignerNotTrustedError),
    (oko_verify.TrustAnchorError, TrustAnchorError),
    (oko_verify.InvalidFingerprintError, InvalidFingerprintError),
)


@contextmanager
def oko_errors() -> Iterator[None]:
    """Re-raise the verifier's errors as the ``OkoError`` of the same meaning."""
    try:
        yield
    except oko_verify.VerifierError as exc:
        if isinstance(exc, OkoError):
            raise
        target = next((oko for ours, oko in _TRANSLATIONS if isinstance(exc, ours)),
                      InvalidInputError)
        raise target(exc.message, details=exc.details) from exc


def verify_bundle(path: Path, anchors: TrustAnchors | None = None, *,
                  limits: BundleLimits | None = None, scratch_dir: Path | None = None,
                  work_dir: Path | None = None,
                  tsa_anchors: TrustAnchors | None = None) -> VerificationReport:
    """``oko_verify.verify_bundle``; raises ``UnusableBundleError`` (an ``OkoError``).

    ``work_dir`` is the old name of ``scratch_dir``; ``tsa_anchors`` vouch for the TSA
    of ``timestamp.tsr`` (default: ``anchors``).
    """
    with oko_errors():
        return oko_verify.verify_bundle(path, anchors, limits=limits,
                                        scratch_dir=scratch_dir or work_dir,
                                        tsa_anchors=tsa_anchors)


def raise_for_failure(report: VerificationReport) -> None:
    """``report.raise_for_failure()`` raising ``OkoError``\\ s (exit 1 or 3)."""
    with oko_errors():
        report.raise_for_failure()


def PinnedFingerprint(fingerprint: str) -> TrustAnchors:
    """Anchors that trust the certificate (signing or any issuer) with this fingerprint.

    Raises ``InvalidFingerprintError`` (an ``InvalidInputError``) for a malformed one.
    """
    with oko_errors():
        return TrustAnchors(fingerprints=(normalise_fingerprint(fingerprint),))


def TrustedCertificates(certificates: Iterable[x509.Certificate]) -> TrustAnchors:
    """Anchors that trust these certificates (roots, or signing certificates directly)."""
    return TrustAnchors(certificates=tuple(certificates))


def load_trusted_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file. Raises ``TrustAnchorError`` when it has none."""
    with oko_errors():
        return load_certificate_file(path)[0]


__all__ = [
    "BundleInvalidError",
    "BundleLimits",
    "CheckResult",
    "InvalidFingerprintError",
    "PinnedFingerprint",
    "SignerNotTrustedError",
    "SignerPolicy",
    "TrustAnchorError",
    "TrustAnchors",
    "TrustedCertificates",
    "UnusableBundleError",
    "Verdict",
    "VerificationReport",
    "load_trusted_certificate",
    "merge",
    "oko_errors",
    "raise_for_failure",
    "verify_bundle",
]
