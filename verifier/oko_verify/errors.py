"""The verifier's errors: one sentence each, with the exit code and HTTP status they mean.

They mirror Oko's ``OkoError`` (``message``, ``details``, ``diagnostics()``) without
importing it, so this package runs alone; Oko's ``evidence.verify`` translates them.
"""

from __future__ import annotations


class VerifierError(Exception):
    """Base class for every error the verifier raises on purpose."""

    exit_code: int = 2
    http_status: int = 422

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def diagnostics(self) -> str:
        """The message plus any per-item details, one per line."""
        return "\n".join([self.message, *(f"  - {d}" for d in self.details)])


class UnusableBundleError(VerifierError):
    """The input is not a bundle that can be checked at all (exit code 2)."""


class InvalidFingerprintError(VerifierError, ValueError):
    """A pinned fingerprint is not a SHA-256 certificate fingerprint (exit code 2)."""


class TrustAnchorError(VerifierError):
    """A trusted certificate, CRL or trust store cannot be read (exit code 2)."""


class BundleInvalidError(VerifierError):
    """The bundle was checked and at least one check failed (exit code 1)."""

    exit_code = 1


class SignerNotTrustedError(VerifierError):
    """The bundle is intact but nothing the verifier was given vouches for it (exit 3)."""

    exit_code = 3


__all__ = [
    "BundleInvalidError",
    "InvalidFingerprintError",
    "SignerNotTrustedError",
    "TrustAnchorError",
    "UnusableBundleError",
    "VerifierError",
]
