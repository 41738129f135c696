"""oko-verify: the offline verifier for Oko evidence bundles.

It depends on the standard library and ``cryptography`` only, so a prosecutor can
install it alone (``pip install ./verifier``) and run ``oko-verify BUNDLE``. Oko's own
``oko verify`` and ``POST /api/verify`` run this same code.

    from oko_verify import TrustAnchors, verify_bundle
    report = verify_bundle(Path("KV-2026-001.zip"), TrustAnchors.from_store(Path("trust")))
    report.verdict  # Verdict.VALID, INTACT_SIGNER_NOT_TRUSTED or INVALID
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from oko_verify.errors import (
    BundleInvalidError,
    InvalidFingerprintError,
    SignerNotTrustedError,
    TrustAnchorError,
    UnusableBundleError,
    VerifierError,
)
from oko_verify.report import CheckResult, Verdict, VerificationReport

if TYPE_CHECKING:
    from oko_verify.trust import (
        TrustAnchors,
        certificate_fingerprint,
        load_pem_certificates,
        merge,
        normalise_fingerprint,
    )
    from oko_verify.unpack import BundleLimits, ExtractionStats
    from oko_verify.verify import verify_bundle

# Loaded on first use, so Oko's custody chain (``oko_verify.custody``) does not pull
# in the X.509 and CMS stack of the full verifier.
_LAZY = {
    "TrustAnchors": "trust", "certificate_fingerprint": "trust",
    "load_pem_certificates": "trust", "merge": "trust", "normalise_fingerprint": "trust",
    "BundleLimits": "unpack", "ExtractionStats": "unpack", "verify_bundle": "verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oko_verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"oko_verify.{module}"), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "BundleInvalidError",
    "BundleLimits",
    "CheckResult",
    "ExtractionStats",
    "InvalidFingerprintError",
    "SignerNotTrustedError",
    "TrustAnchorError",
    "TrustAnchors",
    "UnusableBundleError",
    "Verdict",
    "VerificationReport",
    "VerifierError",
    "certificate_fingerprint",
    "load_pem_certificates",
    "merge",
    "normalise_fingerprint",
    "verify_bundle",
]
