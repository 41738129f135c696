"""Use case: verify a bundle offline, the prosecutor's tool.

It needs no data dir, reads no database and writes nothing, so ``oko verify`` runs on
any computer. It is the standalone verifier's code (``oko_verify``, the same the
``oko-verify`` command runs) with Oko's errors, and imports nothing heavier.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from oko_verify.cli import build_anchors, tsa_anchors

from evidence.verify import TrustAnchors, VerificationReport, oko_errors, verify_bundle


def trust_anchors(*, fingerprints: Iterable[str] = (), trusted_certs: Iterable[Path] = (),
                  trust_store: Path | None = None) -> TrustAnchors:
    """The anchors ``--fingerprint``, ``--trusted-cert`` and ``--trust-store`` name.

    Raises ``InvalidInputError`` subclasses for a malformed fingerprint or an unreadable
    certificate, CRL or store.
    """
    with oko_errors():
        return build_anchors(fingerprints=tuple(fingerprints),
                             trusted_certs=tuple(trusted_certs), trust_store=trust_store)


def signer_policy(*, fingerprint: str | None = None,
                  trusted_cert: Path | None = None) -> TrustAnchors:
    """The old single-option form of ``trust_anchors``."""
    return trust_anchors(fingerprints=(fingerprint,) if fingerprint else (),
                         trusted_certs=(trusted_cert,) if trusted_cert else ())


def verify_offline(bundle: Path, *, fingerprints: Iterable[str] = (),
                   trusted_certs: Iterable[Path] = (), trust_store: Path | None = None,
                   scratch_dir: Path | None = None,
                   tsa_certs: Iterable[Path] = ()) -> VerificationReport:
    """Every check on a bundle zip or bag directory, with no data dir and no audit entry.

    ``tsa_certs`` (``--tsa-ca``) and the trust store's certificates vouch for the TSA of
    ``timestamp.tsr``. Raises ``UnusableBundleError`` (exit 2) for input that is no
    usable bundle.
    """
    anchors = trust_anchors(fingerprints=fingerprints, trusted_certs=trusted_certs,
                            trust_store=trust_store)
    with oko_errors():
        tsa = tsa_anchors(anchors, tuple(tsa_certs))
    return verify_bundle(bundle, anchors, scratch_dir=scratch_dir, tsa_anchors=tsa)


__all__ = ["signer_policy", "trust_anchors", "verify_offline"]
