"""The report-signing key: the ECDSA P-256 key and certificate that sign the PDF report.

The bundle signer is Ed25519, which PDF readers (Adobe Reader, Okular, ``pdfsig``) do not
verify, so the report carries a PAdES signature by a second leaf that the same root
issues (``evidence.authority.issue_report_certificate``). Files in ``keys_dir``, beside
``evidence.keys``'s:

- ``report-key.pem``: the current report-signing key, PKCS#8 encrypted with the
  passphrase that protects the signing key;
- ``report-signer.pem``: its certificate first, then the root (the chain every signed
  PDF carries);
- ``report-certs/<fingerprint>.pem``: every report-signing certificate ever used.

``oko init`` creates it with the signing identity, ``oko keys rotate`` renews both, and
``oko keys revoke FP`` revokes it in the root's CRL like a signing certificate (revoking
the current one issues its replacement). An installation made before the report key has
one created the next time its signer is loaded while the root key is in the keys folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evidence.authority import crl_entries, issue_report_certificate, issued_by
from storage.atomic import write_atomically
from storage.errors import ConfigurationError

REPORT_KEY_FILE = "report-key.pem"
REPORT_CERT_FILE = "report-signer.pem"
REPORT_CERTS_DIR = "report-certs"


@dataclass(frozen=True)
class ReportSigner:
    """The key that signs PDF reports, its certificate, the root that issued it and the
    root's CRL as loaded (what a B-LT signature embeds)."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    root: x509.Certificate
    crl: x509.CertificateRevocationList | None = None

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def refuse_unusable(self, now: datetime) -> None:
        """Raises ``ConfigurationError`` when the certificate has expired, is not yet
        valid, or the CRL revokes it: no report is signed with it then."""
        certificate = self.certificate
        if now > certificate.not_valid_after_utc:
            raise ConfigurationError(
                f"The report-signing certificate {self.fingerprint_sha256} expired on "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}; run `oko keys rotate` before "
                "exporting again.")
        if now < certificate.not_valid_before_utc:
            raise ConfigurationError(
                f"The report-signing certificate {self.fingerprint_sha256} is valid only "
                f"from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check the "
                "clock of this machine.")
        entries = crl_entries(self.crl) if self.crl is not None else []
        revoked = next((e for e in entries if e.serial_number == certificate.serial_number),
                       None)
        if revoked is not None:
            raise ConfigurationError(
                f"The report-signing certificate {self.fingerprint_sha256} was revoked on "
                f"{revoked.revoked_at:%Y-%m-%d %H:%M} UTC; run `oko keys rotate` before "
                "exporting again.")


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def issue_report_signer(keys_dir: Path, *, root_key: ec.EllipticCurvePrivateKey,
                        root: x509.Certificate, organisation: str, secret: bytes,
                        crl: x509.CertificateRevocationList | None = None,
                        now: datetime | None = None) -> ReportSigner:
    """A new report-signing key and certificate from the root, installed as current.

    The archived certificate is written first, then the key, then the chain: a crash
    leaves an extra archived certificate, never a key whose certificate was lost.
    """
    key, certificate = issue_report_certificate(root_key, root, organisation, now=now)
    signer = ReportSigner(private_key=key, certificate=certificate, root=root, crl=crl)
    write_atomically(keys_dir / REPORT_CERTS_DIR / f"{signer.fingerprint_sha256}.pem",
                     _pem(certificate), mode=0o644)
    write_atomically(keys_dir / REPORT_KEY_FILE, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret)), mode=0o600)
    write_atomically(keys_dir / REPORT_CERT_FILE, _pem(certificate) + _pem(root), mode=0o644)
    return signer


def load_report_signer(keys_dir: Path, *, secret: bytes, root: x509.Certificate,
                       crl: x509.CertificateRevocationList | None) -> ReportSigner | None:
    """The current report signer; None when this installation has none yet.

    Raises ``ConfigurationError`` when the key does not decrypt, is not ECDSA, does not
    match its certificate, or the certificate is not the root's.
    """
    key_path, cert_path = keys_dir / REPORT_KEY_FILE, keys_dir / REPORT_CERT_FILE
    if not key_path.is_file() or not cert_path.is_file():
        return None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=secret)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("The report-signing key could not be decrypted; check "
                                 "OKO_KEY_PASSPHRASE.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{key_path} does not hold an ECDSA key.")
    try:
        certificate = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except ValueError as exc:
        raise ConfigurationError(f"{cert_path} does not hold a PEM certificate.") from exc
    if certificate.public_key() != key.public_key():
        raise ConfigurationError(f"{cert_path} does not belong to the report-signing key.")
    if not issued_by(certificate, root):
        raise ConfigurationError(f"{cert_path} was not issued by the root in root.pem; run "
                                 "`oko keys rotate`.")
    return ReportSigner(private_key=key, certificate=certificate, root=root, crl=crl)


def current_report_certificate(keys_dir: Path) -> x509.Certificate | None:
    """The current report-signing certificate, read without the key; None if absent."""
    path = keys_dir / REPORT_CERT_FILE
    if not path.is_file():
        return None
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except ValueError as exc:
        raise ConfigurationError(f"{path} does not hold a PEM certificate.") from exc


def known_report_certificates(keys_dir: Path) -> list[x509.Certificate]:
    """Every report-signing certificate this installation has used, oldest first."""
    paths = sorted((keys_dir / REPORT_CERTS_DIR).glob("*.pem"))
    certificates = [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths]
    return sorted(certificates, key=lambda c: c.not_valid_before_utc)


def report_key_missing() -> ConfigurationError:
    """The error an export raises when the installation has no report-signing key."""
    return ConfigurationError(
        "There is no report-signing key in the keys folder; bring the root key "
        "(root-key.pem) back into it and run `oko keys rotate`.")


__all__ = [
    "REPORT_CERTS_DIR",
    "REPORT_CERT_FILE",
    "REPORT_KEY_FILE",
    "ReportSigner",
    "current_report_certificate",
    "issue_report_signer",
    "known_report_certificates",
    "load_report_signer",
    "report_key_missing",
]
