"""The installation's X.509 evidence authority: a root, the signing certificates it
issues, and the CRL that revokes them. Pure certificate building; files live in
``evidence.keys``.

- The root, "<organisation> evidence authority", has an ECDSA P-256 key (PDF readers
  such as Adobe's and pyhanko's need one they know), ``BasicConstraints(ca=True,
  path_length=0)``, key usage ``keyCertSign`` + ``cRLSign`` and a subject key
  identifier, valid ``ROOT_VALIDITY``. It signs nothing but certificates and CRLs, so its
  key can live offline between rotations.
- A signing certificate, "<organisation> evidence signing", holds the Ed25519 key that
  signs bundles and audit checkpoints: ``ca=False``, key usage ``digitalSignature`` +
  ``contentCommitment`` only, the root's key identifier, valid ``LEAF_VALIDITY`` (never
  past the root).
- A report-signing certificate, "<organisation> evidence report signing", is the same
  kind of leaf with an ECDSA P-256 key: it signs the PDF report (PAdES), which PDF
  readers verify and Ed25519 they do not (``evidence.report_signing_keys``).
- The CRL lists each revoked signing certificate with its revocation time and reason;
  it is reissued whole, with an increasing CRL number, on every revocation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID

from storage.errors import InvalidInputError

ROOT_VALIDITY = timedelta(days=365 * 20)
LEAF_VALIDITY = timedelta(days=365 * 2)
BACKDATE = timedelta(minutes=5)  # tolerate a verifier whose clock is a little behind
ROOT_UNIT = "Evidence authority root"

REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "privilege-withdrawn": x509.ReasonFlags.privilege_withdrawn,
}
"""The RFC 5280 reasons ``oko keys revoke --reason`` takes (``_`` may stand for ``-``)."""


@dataclass(frozen=True)
class RevokedEntry:
    """One line of the CRL."""

    serial_number: int
    revoked_at: datetime
    reason: str


def parse_reason(text: str) -> str:
    """The reason's canonical name. Raises ``InvalidInputError`` for any other word."""
    name = text.strip().lower().replace("_", "-").replace(" ", "-")
    if name not in REASONS:
        raise InvalidInputError(f"'{text}' is not a revocation reason; use one of "
                                f"{', '.join(REASONS)}.")
    return name


def _serial() -> int:
    return int.from_bytes(secrets.token_bytes(16), "big") >> 1


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing, content_commitment=signing, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
        crl_sign=not signing, encipher_only=False, decipher_only=False)


def build_root(organisation: str, *, now: datetime | None = None
               ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new root key and its self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, root_certificate_for(key, organisation, now=now)


def root_certificate_for(key: ec.EllipticCurvePrivateKey, organisation: str, *,
                         now: datetime | None = None) -> x509.Certificate:
    """The self-signed root certificate of ``key``, valid ``ROOT_VALIDITY`` from now."""
    start = now or datetime.now(UTC)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} evidence authority"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROOT_UNIT),
    ])
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(start + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def _authority_key_identifier(root: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def issue_signing_certificate(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                              organisation: str, *, now: datetime | None = None
                              ) -> tuple[Ed25519PrivateKey, x509.Certificate]:
    """A new Ed25519 signing key and its certificate, issued by the root."""
    key = Ed25519PrivateKey.generate()
    return key, _issue_leaf(root_key, root, key.public_key(),
                            f"{organisation} evidence signing", organisation, now=now)


def issue_report_certificate(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                             organisation: str, *, now: datetime | None = None
                             ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new ECDSA P-256 report-signing key (the PDF report's PAdES signature, which PDF
    readers verify) and its certificate, issued by the root like the signing one."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _issue_leaf(root_key, root, key.public_key(),
                            f"{organisation} evidence report signing", organisation,
                            now=now)


def _issue_leaf(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                public_key: Ed25519PublicKey | ec.EllipticCurvePublicKey, common_name: str,
                organisation: str, *, now: datetime | None) -> x509.Certificate:
    start = now or datetime.now(UTC)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ])
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(min(start + LEAF_VALIDITY, root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                       critical=False)
        .add_extension(_authority_key_identifier(root), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def build_crl(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
              entries: list[RevokedEntry], *, number: int,
              now: datetime | None = None) -> x509.CertificateRevocationList:
    """The root's CRL listing ``entries``; its next update is the root's expiry (a new
    CRL is issued on each revocation, not on a schedule)."""
    start = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(start - BACKDATE)
        .next_update(root.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_identifier(root), critical=False)
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial_number)
            .revocation_date(entry.revoked_at)
            .add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
            .build())
    return builder.sign(root_key, hashes.SHA256())


def crl_entries(crl: x509.CertificateRevocationList) -> list[RevokedEntry]:
    """The CRL's revoked certificates, oldest revocation first."""
    names = {flag: name for name, flag in REASONS.items()}
    entries = []
    for revoked in crl:
        try:
            flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reason = names.get(flag, "unspecified")
        except x509.ExtensionNotFound:
            reason = "unspecified"
        entries.append(RevokedEntry(revoked.serial_number, revoked.revocation_date_utc,
                                    reason))
    return sorted(entries, key=lambda e: e.revoked_at)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``certificate`` under ``issuer``'s name."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


__all__ = [
    "LEAF_VALIDITY",
    "REASONS",
    "ROOT_VALIDITY",
    "RevokedEntry",
    "build_crl",
    "build_root",
    "crl_entries",
    "crl_number",
    "issue_report_certificate",
    "issue_signing_certificate",
    "issued_by",
    "parse_reason",
    "root_certificate_for",
]
