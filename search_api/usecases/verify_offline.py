"""Use case: verify a bundle offline, the prosecutor's tool.

It needs no data dir, reads no database and writes nothing, so ``oko verify`` runs on
any computer; it imports only what checking hashes and signatures needs.
"""

from __future__ import annotations

from pathlib import Path

from evidence.keys import normalise_fingerprint
from evidence.verify import (
    PinnedFingerprint,
    SignerPolicy,
    TrustedCertificates,
    UnpinnedSigner,
    VerificationReport,
    load_trusted_certificate,
    verify_bundle,
)
from storage.errors import InvalidInputError


def signer_policy(*, fingerprint: str | None = None,
                  trusted_cert: Path | None = None) -> SignerPolicy:
    """Pin the signer by certificate fingerprint or by a trusted PEM, or accept any signer
    (the report then says the signer was not pinned).

    Raises ``InvalidInputError`` for both at once or a malformed fingerprint, and
    ``evidence.verify``'s errors for an unreadable certificate.
    """
    if fingerprint and trusted_cert:
        raise InvalidInputError("Give --fingerprint or --trusted-cert, not both.")
    if fingerprint:
        return PinnedFingerprint(normalise_fingerprint(fingerprint))
    if trusted_cert:
        return TrustedCertificates((load_trusted_certificate(trusted_cert),))
    return UnpinnedSigner()


def verify_offline(bundle: Path, *, fingerprint: str | None = None,
                   trusted_cert: Path | None = None) -> VerificationReport:
    """Every check on a bundle zip or bag directory, with no data dir and no audit entry.

    Raises ``BundleInvalidError`` (exit 2) for input that is no usable bundle.
    """
    return verify_bundle(bundle, signer_policy(fingerprint=fingerprint,
                                               trusted_cert=trusted_cert))


__all__ = ["signer_policy", "verify_offline"]
