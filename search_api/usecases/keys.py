"""Use cases: the installation's evidence authority, signing certificate and
report-signing certificate (the PDF's PAdES signature), created, shown, rotated, revoked
and published.

Creating, rotating or revoking changes what every later bundle is signed with, or what
verifies, so each is audited (``key_change``, with the fingerprints). The passphrase is
the settings' ``key_passphrase``; the CLI asks for it before calling in. Publishing the
trust store (the root and its CRL) writes only public certificates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from evidence.keys import (
    KEY_FILE,
    ROOT_KEY_FILE,
    certificate_fingerprint,
    current_certificate,
    ensure_signing_identity,
    export_trust_store,
    known_certificates,
    legacy_certificates,
    revocation_of,
    revoke_signing_certificate,
    root_certificate,
    rotate_signing_identity,
)
from evidence.report_signing_keys import current_report_certificate, known_report_certificates
from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.errors import StorageError
from storage.permissions import Permission


@dataclass(frozen=True)
class PreviousCertificate:
    fingerprint_sha256: str
    valid_from: datetime
    valid_until: datetime
    self_signed: bool  # from before the evidence authority
    revoked_at: datetime | None
    revocation_reason: str | None
    report: bool = False  # a report-signing certificate (the PDF's PAdES signature)


@dataclass(frozen=True)
class ReportCertificate:
    """The current report-signing certificate (ECDSA P-256, signs the PDF report)."""

    subject: str
    fingerprint_sha256: str
    valid_until: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class SigningIdentity:
    """The root prosecutors import, the current signing certificate, and the ones it
    replaced (old bundles are signed by them)."""

    subject: str
    fingerprint_sha256: str
    valid_until: datetime
    revoked_at: datetime | None  # set only until ``oko keys rotate`` replaces it
    root_subject: str | None  # None: a self-signed certificate of old, no authority yet
    root_fingerprint_sha256: str | None
    root_key_present: bool  # False once root-key.pem has been moved offline
    previous: list[PreviousCertificate]
    report: ReportCertificate | None = None  # None until the root issues one


@dataclass(frozen=True)
class RevocationResult:
    fingerprint_sha256: str
    revoked_at: datetime
    reason: str
    identity: SigningIdentity  # after the revocation (a new certificate if it was current)


def signing_identity(ctx: UseCaseContext) -> SigningIdentity:
    """What the keys folder holds; reads certificates only (no passphrase needed).

    Raises ``ConfigurationError`` when there is no signing certificate (run ``oko init``)
    or a certificate or the CRL is unreadable.
    """
    keys_dir = ctx.settings.keys_dir
    current = current_certificate(keys_dir)
    current_fingerprint = certificate_fingerprint(current)
    root = root_certificate(keys_dir)
    legacy = {certificate_fingerprint(c) for c in legacy_certificates(keys_dir)}
    previous = []
    for cert in known_certificates(keys_dir):
        fingerprint = certificate_fingerprint(cert)
        if fingerprint == current_fingerprint:
            continue
        revoked = revocation_of(keys_dir, cert)
        previous.append(PreviousCertificate(
            fingerprint, cert.not_valid_before_utc, cert.not_valid_after_utc,
            self_signed=fingerprint in legacy,
            revoked_at=revoked.revoked_at if revoked else None,
            revocation_reason=revoked.reason if revoked else None))
    report = current_report_certificate(keys_dir)
    report_fingerprint = certificate_fingerprint(report) if report is not None else None
    for cert in known_report_certificates(keys_dir):
        fingerprint = certificate_fingerprint(cert)
        if fingerprint != report_fingerprint:
            revoked = revocation_of(keys_dir, cert)
            previous.append(PreviousCertificate(
                fingerprint, cert.not_valid_before_utc, cert.not_valid_after_utc,
                self_signed=False, revoked_at=revoked.revoked_at if revoked else None,
                revocation_reason=revoked.reason if revoked else None, report=True))
    report_revoked = revocation_of(keys_dir, report) if report is not None else None
    revoked = revocation_of(keys_dir, current)
    return SigningIdentity(
        subject=current.subject.rfc4514_string(), fingerprint_sha256=current_fingerprint,
        valid_until=current.not_valid_after_utc,
        revoked_at=revoked.revoked_at if revoked else None,
        root_subject=root.subject.rfc4514_string() if root is not None else None,
        root_fingerprint_sha256=certificate_fingerprint(root) if root is not None else None,
        root_key_present=(keys_dir / ROOT_KEY_FILE).is_file(), previous=previous,
        report=ReportCertificate(
            report.subject.rfc4514_string(), certificate_fingerprint(report),
            report.not_valid_after_utc,
            report_revoked.revoked_at if report_revoked else None)
        if report is not None else None)


def ensure_signing_key(ctx: UseCaseContext) -> SigningIdentity:
    """The ``oko init`` step: create the root and the signing certificate unless a
    signing key exists (audited)."""
    ctx.require(Permission.MANAGE_KEYS)
    settings = ctx.settings
    creating = not (settings.keys_dir / KEY_FILE).is_file()
    signer = ensure_signing_identity(keys_dir=settings.keys_dir,
                                     organisation=settings.organisation,
                                     passphrase=settings.key_passphrase)
    if creating:
        ctx.audit(AuditAction.KEY_CHANGE, change="create",
                  fingerprint_sha256=signer.fingerprint_sha256,
                  root_fingerprint_sha256=signer.root_fingerprint_sha256,
                  report_fingerprint_sha256=signer.report.fingerprint_sha256
                  if signer.report is not None else None)
        ctx.commit()
    return signing_identity(ctx)


def rotate_signing_key(ctx: UseCaseContext) -> SigningIdentity:
    """A new signing certificate from the root (created first on an installation whose
    certificate is self-signed); old certificates are kept so old bundles still verify.

    Raises ``ConfigurationError`` when the current key does not decrypt (it is kept) or
    the root key is offline.
    """
    ctx.require(Permission.MANAGE_KEYS)
    settings = ctx.settings
    old = certificate_fingerprint(current_certificate(settings.keys_dir))
    had_root = root_certificate(settings.keys_dir) is not None
    new = rotate_signing_identity(keys_dir=settings.keys_dir,
                                  organisation=settings.organisation,
                                  passphrase=settings.key_passphrase)
    details: dict[str, object] = {
        "previous_fingerprint_sha256": old, "fingerprint_sha256": new.fingerprint_sha256,
        "report_fingerprint_sha256": new.report.fingerprint_sha256
        if new.report is not None else None}
    if not had_root:
        details["root_fingerprint_sha256"] = new.root_fingerprint_sha256
    ctx.audit(AuditAction.KEY_CHANGE, change="rotate", **details)
    ctx.commit()
    return signing_identity(ctx)


def revoke_certificate(ctx: UseCaseContext, *, fingerprint: str,
                       reason: str) -> RevocationResult:
    """Revoke a signing certificate in the root's CRL, as of now (audited); revoking the
    current one issues its replacement first.

    Raises ``PermissionDeniedError`` unless the actor manages keys, and the errors of
    ``evidence.keys.revoke_signing_certificate`` (nothing is written then).
    """
    ctx.require(Permission.MANAGE_KEYS)
    settings = ctx.settings
    revocation = revoke_signing_certificate(
        keys_dir=settings.keys_dir, fingerprint=fingerprint, reason=reason,
        organisation=settings.organisation, passphrase=settings.key_passphrase)
    replacement = revocation.replacement
    ctx.audit(AuditAction.KEY_CHANGE, change="revoke",
              fingerprint_sha256=revocation.fingerprint_sha256, reason=revocation.reason,
              revoked_at=f"{revocation.revoked_at:%Y-%m-%dT%H:%M:%SZ}",
              replaced_by_fingerprint_sha256=replacement.fingerprint_sha256
              if replacement is not None else None)
    ctx.commit()
    return RevocationResult(fingerprint_sha256=revocation.fingerprint_sha256,
                            revoked_at=revocation.revoked_at, reason=revocation.reason,
                            identity=signing_identity(ctx))


def export_trust(ctx: UseCaseContext, *, out_dir: Path) -> list[Path]:
    """Write the root, its CRL and any self-signed certificates of old into ``out_dir``,
    what a prosecutor puts in a trust store (``oko-verify --trust-store DIR``).

    Raises ``PermissionDeniedError`` unless the actor manages keys, ``NotFoundError``
    before ``oko init`` and ``StorageError`` when ``out_dir`` cannot be written.
    """
    ctx.require(Permission.MANAGE_KEYS)
    try:
        return export_trust_store(ctx.settings.keys_dir, out_dir)
    except OSError as exc:
        raise StorageError(f"Could not write the trust store to {out_dir}: "
                           f"{exc.strerror or exc}.") from exc


__all__ = [
    "PreviousCertificate",
    "ReportCertificate",
    "RevocationResult",
    "SigningIdentity",
    "ensure_signing_key",
    "export_trust",
    "revoke_certificate",
    "rotate_signing_key",
    "signing_identity",
]
