"""The installation's evidence-signing identity: an Ed25519 key and its X.509 certificate.

Layout of ``keys_dir``:

- ``signing-key.pem``: the current private key, PKCS#8 encrypted with the passphrase;
- ``signer.pem``: the current self-signed certificate "<organisation> evidence authority";
- ``certs/<fingerprint>.pem``: every certificate ever used, so old bundles still verify
  after ``rotate_signing_identity``.

Fingerprints are the lowercase hex SHA-256 of the certificate's DER bytes (what
``openssl x509 -noout -fingerprint -sha256`` prints, without colons).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from storage.atomic import write_atomically
from storage.errors import ConfigurationError, InvalidInputError

KEY_FILE = "signing-key.pem"
CERT_FILE = "signer.pem"
CERTS_DIR = "certs"
CERT_VALIDITY = timedelta(days=365 * 20)


@dataclass(frozen=True)
class Signer:
    """Signs bytes with the current evidence key; carries its certificate."""

    private_key: Ed25519PrivateKey
    certificate: x509.Certificate

    def sign(self, data: bytes) -> bytes:
        """A raw 64-byte Ed25519 signature over ``data``."""
        return self.private_key.sign(data)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint_sha256(self) -> str:
        return certificate_fingerprint(self.certificate)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accepts plain hex, ``AB:CD:...`` or openssl's ``sha256 Fingerprint=AB:CD:...``.

    Raises ``InvalidInputError`` otherwise.
    """
    cleaned = text.strip().rsplit("=", 1)[-1].replace(":", "").lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InvalidInputError(f"'{text}' is not a SHA-256 certificate fingerprint.")
    return cleaned


def _require_passphrase(passphrase: str | None) -> bytes:
    if not passphrase:
        raise ConfigurationError(
            "The evidence-signing key needs a passphrase; set OKO_KEY_PASSPHRASE."
        )
    return passphrase.encode("utf-8")


def _make_certificate(key: Ed25519PrivateKey, organisation: str) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} evidence authority"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, None)
    )


def _create_identity(keys_dir: Path, organisation: str, secret: bytes) -> Signer:
    key = Ed25519PrivateKey.generate()
    certificate = _make_certificate(key, organisation)
    signer = Signer(private_key=key, certificate=certificate)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    # The archived certificate goes first: a crash then leaves an extra cert, never a key
    # whose certificate was lost.
    write_atomically(keys_dir / CERTS_DIR / f"{signer.fingerprint_sha256}.pem",
                     signer.certificate_pem, mode=0o644)
    write_atomically(keys_dir / KEY_FILE, pem_key, mode=0o600)
    write_atomically(keys_dir / CERT_FILE, signer.certificate_pem, mode=0o644)
    return signer


def load_signer(*, keys_dir: Path, passphrase: str | None) -> Signer:
    """The current signing identity.

    Raises ``ConfigurationError`` when there is no key (run ``oko init``), the passphrase
    is missing or wrong, or the key does not match its certificate.
    """
    secret = _require_passphrase(passphrase)
    key_path, cert_path = keys_dir / KEY_FILE, keys_dir / CERT_FILE
    if not key_path.is_file() or not cert_path.is_file():
        raise ConfigurationError(
            f"There is no evidence-signing key in {keys_dir}; run `oko init` first."
        )
    key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
    for path, content in ((key_path, key_pem), (cert_path, cert_pem)):
        if not content.strip():
            raise ConfigurationError(f"{path} is empty; restore the keys folder from a backup.")
    try:
        key = serialization.load_pem_private_key(key_pem, password=secret)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            "The evidence-signing key could not be decrypted; check OKO_KEY_PASSPHRASE."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{key_path} does not hold an Ed25519 key.")
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigurationError(f"{cert_path} does not hold a PEM certificate.") from exc
    if certificate.public_key() != key.public_key():
        raise ConfigurationError(f"{cert_path} does not belong to the signing key.")
    return Signer(private_key=key, certificate=certificate)


def ensure_signing_identity(*, keys_dir: Path, organisation: str,
                            passphrase: str | None) -> Signer:
    """Create the signing key and certificate unless they exist; return the signer.

    Idempotent: an existing identity is loaded (which also checks the passphrase).
    """
    secret = _require_passphrase(passphrase)
    if (keys_dir / KEY_FILE).is_file():
        return load_signer(keys_dir=keys_dir, passphrase=passphrase)
    return _create_identity(keys_dir, organisation, secret)


def rotate_signing_identity(*, keys_dir: Path, organisation: str,
                            passphrase: str | None) -> Signer:
    """Replace the signing key with a new one; old certificates stay in ``certs/``.

    The old key must decrypt first, so a wrong passphrase cannot destroy it.
    """
    load_signer(keys_dir=keys_dir, passphrase=passphrase)
    return _create_identity(keys_dir, organisation, _require_passphrase(passphrase))


def known_certificates(keys_dir: Path) -> list[x509.Certificate]:
    """Every certificate this installation has signed with, oldest first."""
    paths = sorted((keys_dir / CERTS_DIR).glob("*.pem"))
    certificates = [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths]
    return sorted(certificates, key=lambda c: c.not_valid_before_utc)


def verify_signature(certificate: x509.Certificate, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature by the certificate's key."""
    from cryptography.exceptions import InvalidSignature

    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        return False
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "Signer",
    "certificate_fingerprint",
    "ensure_signing_identity",
    "known_certificates",
    "load_signer",
    "normalise_fingerprint",
    "rotate_signing_identity",
    "verify_signature",
]
