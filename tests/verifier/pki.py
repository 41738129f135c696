"""A test PKI built in the test: an ECDSA P-256 root CA and Ed25519 signing certificates
it issues (the shape ``oko init`` creates), plus strangers and CRLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ORGANISATION = "Kyiv municipal CCTV"


def name(common_name: str, organisation: str = ORGANISATION) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=sign,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                         decipher_only=False)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


@dataclass
class Root:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    revoked: list[tuple[int, datetime]] = field(default_factory=list)

    def issue(self, *, subject: str = f"{ORGANISATION} evidence signing",
              not_before: datetime = EPOCH, days: int = 3650, ca: bool = False,
              sign: bool = True) -> Leaf:
        key = Ed25519PrivateKey.generate()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name(subject)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_before + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_usage(sign=sign, ca=ca), critical=True)
            .sign(self.key, hashes.SHA256()))
        return Leaf(key=key, certificate=certificate, chain=(certificate, self.certificate))

    def revoke(self, leaf: Leaf, at: datetime) -> None:
        self.revoked.append((leaf.certificate.serial_number, at))

    def crl(self, *, signer: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.certificate.subject)
                   .last_update(EPOCH).next_update(EPOCH + timedelta(days=3650)))
        for serial, at in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
                .build())
        crl = builder.sign(signer or self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    @property
    def pem(self) -> bytes:
        return pem(self.certificate)


@dataclass
class Leaf:
    key: Ed25519PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    @property
    def chain_pem(self) -> bytes:
        return pem(*self.chain)


def make_root(common_name: str = f"{ORGANISATION} evidence authority", *,
              not_before: datetime = EPOCH - timedelta(days=1), days: int = 7300) -> Root:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name(common_name)).issuer_name(name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .sign(key, hashes.SHA256()))
    return Root(key=key, certificate=certificate)


def self_signed_leaf(subject: str | x509.Name = f"{ORGANISATION} evidence authority") -> Leaf:
    """A lone self-signed signing certificate (what Oko made before the authority)."""
    key = Ed25519PrivateKey.generate()
    subject_name = subject if isinstance(subject, x509.Name) else name(subject)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject_name).issuer_name(subject_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH).not_valid_after(EPOCH + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .sign(key, None))
    return Leaf(key=key, certificate=certificate, chain=(certificate,))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
