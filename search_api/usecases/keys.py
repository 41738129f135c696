"""Use cases: the installation's evidence-signing identity, created, shown and rotated.

Creating or rotating the key changes what every later bundle is signed with, so both
are audited (``key_change``, with the fingerprints). The passphrase is the settings'
``key_passphrase``; the CLI asks for it before calling in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evidence.keys import (
    KEY_FILE,
    certificate_fingerprint,
    ensure_signing_identity,
    known_certificates,
    rotate_signing_identity,
)
from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.permissions import Permission


@dataclass(frozen=True)
class PreviousCertificate:
    fingerprint_sha256: str
    valid_from: datetime


@dataclass(frozen=True)
class SigningIdentity:
    """The certificate prosecutors pin, and the ones it replaced (old bundles use them)."""

    subject: str
    fingerprint_sha256: str
    previous: list[PreviousCertificate]


def signing_identity(ctx: UseCaseContext) -> SigningIdentity:
    """Raises ``ConfigurationError`` without a key or with a wrong passphrase."""
    signer = ctx.state.signer()
    previous = [PreviousCertificate(certificate_fingerprint(cert), cert.not_valid_before_utc)
                for cert in known_certificates(ctx.settings.keys_dir)
                if certificate_fingerprint(cert) != signer.fingerprint_sha256]
    return SigningIdentity(subject=signer.subject,
                           fingerprint_sha256=signer.fingerprint_sha256, previous=previous)


def ensure_signing_key(ctx: UseCaseContext) -> SigningIdentity:
    """The ``oko init`` step: create the key and certificate unless they exist (audited)."""
    ctx.require(Permission.MANAGE_KEYS)
    settings = ctx.settings
    creating = not (settings.keys_dir / KEY_FILE).is_file()
    signer = ensure_signing_identity(keys_dir=settings.keys_dir,
                                     organisation=settings.organisation,
                                     passphrase=settings.key_passphrase)
    if creating:
        ctx.audit(AuditAction.KEY_CHANGE, change="create",
                  fingerprint_sha256=signer.fingerprint_sha256)
        ctx.commit()
    return signing_identity(ctx)


def rotate_signing_key(ctx: UseCaseContext) -> SigningIdentity:
    """A new key; the old certificate is kept so old bundles still verify.

    Raises ``ConfigurationError`` when the current key does not decrypt (it is kept).
    """
    ctx.require(Permission.MANAGE_KEYS)
    old = ctx.state.signer().fingerprint_sha256
    settings = ctx.settings
    new = rotate_signing_identity(keys_dir=settings.keys_dir,
                                  organisation=settings.organisation,
                                  passphrase=settings.key_passphrase)
    ctx.audit(AuditAction.KEY_CHANGE, change="rotate", previous_fingerprint_sha256=old,
              fingerprint_sha256=new.fingerprint_sha256)
    ctx.commit()
    return signing_identity(ctx)


__all__ = ["SigningIdentity", "ensure_signing_key", "rotate_signing_key", "signing_identity"]
