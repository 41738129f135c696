"""The installation's evidence keys on disk: the authority's root, the signing
certificate it issued, the archive of every signing certificate, and the CRL.

Layout of ``keys_dir`` (``evidence.authority`` builds the certificates):

- ``root-key.pem``: the root's ECDSA P-256 key, PKCS#8 encrypted with the passphrase.
  Only rotation and revocation read it, so it may be kept offline (moved to removable
  media after ``oko init``) and brought back for those two commands;
- ``root.pem``: the root certificate "<organisation> evidence authority", the one
  certificate prosecutors import;
- ``signing-key.pem``: the current Ed25519 signing key, PKCS#8 encrypted;
- ``signer.pem``: the current signing certificate first, then the root (the chain every
  bundle carries);
- ``certs/<fingerprint>.pem``: every signing certificate ever used, so old bundles and
  audit checkpoints still verify after ``rotate_signing_identity``;
- ``crl.pem``: the root-signed CRL naming revoked signing certificates;
- ``report-key.pem``, ``report-signer.pem``, ``report-certs/``: the ECDSA report-signing
  key that signs the PDF report, issued, rotated and revoked with the signing key
  (``evidence.report_signing_keys``).

An installation made before the authority existed has only a self-signed
"<organisation> evidence authority" signing certificate (no ``root.pem``). It keeps
signing with it; ``rotate_signing_identity`` creates the root and a first issued
certificate, and the old certificate stays trusted by this installation for old bundles.

Fingerprints are the lowercase hex SHA-256 of the certificate's DER bytes (what
``openssl x509 -noout -fingerprint -sha256`` prints, without colons).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from evidence.authority import (
    RevokedEntry,
    build_crl,
    build_root,
    crl_entries,
    crl_number,
    issue_signing_certificate,
    issued_by,
    parse_reason,
    root_certificate_for,
)
from evidence.report_signing_keys import (
    ReportSigner,
    current_report_certificate,
    issue_report_signer,
    known_report_certificates,
    load_report_signer,
)
from storage.atomic import write_atomically
from storage.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from oko_verify.trust import TrustAnchors

KEY_FILE = "signing-key.pem"
CERT_FILE = "signer.pem"
ROOT_KEY_FILE = "root-key.pem"
ROOT_CERT_FILE = "root.pem"
CRL_FILE = "crl.pem"
CERTS_DIR = "certs"
TRUST_ROOT_FILE = "evidence-authority-root.pem"
TRUST_CRL_FILE = "evidence-authority.crl"


@dataclass(frozen=True)
class Signer:
    """Signs bytes with the current evidence key; carries its certificate and issuers."""

    private_key: Ed25519PrivateKey
    certificate: x509.Certificate
    issuers: tuple[x509.Certificate, ...] = ()  # up to and including the root
    report: ReportSigner | None = None  # signs the PDF report; None without a root

    def sign(self, data: bytes) -> bytes:
        """A raw 64-byte Ed25519 signature over ``data``."""
        return self.private_key.sign(data)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """The signing certificate, then its issuers: what ``signer.pem`` holds."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.certificate, *self.issuers))

    @property
    def fingerprint_sha256(self) -> str:
        return certificate_fingerprint(self.certificate)

    @property
    def root_fingerprint_sha256(self) -> str | None:
        """The root's fingerprint; None for a self-signed certificate of old."""
        return certificate_fingerprint(self.issuers[-1]) if self.issuers else None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


@dataclass(frozen=True)
class Revocation:
    """A recorded revocation, and the certificate that replaced a revoked current one."""

    fingerprint_sha256: str
    serial_number: int
    revoked_at: datetime
    reason: str
    replacement: Signer | None


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accepts plain hex, ``AB:CD:...`` or openssl's ``sha256 Fingerprint=AB:CD:...``.

    Raises ``InvalidInputError`` otherwise.
    """
    cleaned = text.strip().rsplit("=", 1)[-1].replace(":", "").lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InvalidInputError(f"'{text[:100]}' is not a SHA-256 certificate fingerprint.")
    return cleaned


def _require_passphrase(passphrase: str | None) -> bytes:
    if not passphrase:
        raise ConfigurationError(
            "The evidence-signing key needs a passphrase; set OKO_KEY_PASSPHRASE."
        )
    return passphrase.encode("utf-8")


def _encrypted(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey, secret: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(secret))


def _pem(item: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return item.public_bytes(serialization.Encoding.PEM)


def _read_nonempty(path: Path) -> bytes:
    content = path.read_bytes()
    if not content.strip():
        raise ConfigurationError(f"{path} is empty; restore the keys folder from a backup.")
    return content


def _decrypt(path: Path, secret: bytes, what: str) -> object:
    try:
        return serialization.load_pem_private_key(_read_nonempty(path), password=secret)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"The {what} could not be decrypted; check OKO_KEY_PASSPHRASE.") from exc


# --- the root -------------------------------------------------------------------------

def root_certificate(keys_dir: Path) -> x509.Certificate | None:
    """The authority's root certificate; None on an installation made before it."""
    path = keys_dir / ROOT_CERT_FILE
    if not path.is_file():
        return None
    try:
        return x509.load_pem_x509_certificate(_read_nonempty(path))
    except ValueError as exc:
        raise ConfigurationError(f"{path} does not hold a PEM certificate.") from exc


def _root_key_missing(keys_dir: Path) -> ConfigurationError:
    return ConfigurationError(
        f"The evidence authority's root key ({ROOT_KEY_FILE}) is not in {keys_dir}; bring "
        "it back from where it is kept offline, then run the command again.")


def _load_root(keys_dir: Path, secret: bytes, organisation: str
               ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    """The root's key and certificate, or None when neither exists.

    A root key without its certificate (a crash between the two writes) gets its
    certificate again: same key and name, so what it issued still chains to it. Raises
    ``ConfigurationError`` when only the certificate is here (the key is offline).
    """
    key_path = keys_dir / ROOT_KEY_FILE
    certificate = root_certificate(keys_dir)
    if not key_path.is_file():
        if certificate is not None:
            raise _root_key_missing(keys_dir)
        return None
    key = _decrypt(key_path, secret, "evidence authority's root key")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{key_path} does not hold an ECDSA key.")
    if certificate is None:
        certificate = root_certificate_for(key, organisation)
        write_atomically(keys_dir / ROOT_CERT_FILE, _pem(certificate), mode=0o644)
    elif certificate.public_key() != key.public_key():
        raise ConfigurationError(f"{keys_dir / ROOT_CERT_FILE} does not belong to "
                                 f"{key_path}.")
    return key, certificate


def _ensure_root(keys_dir: Path, organisation: str, secret: bytes
                 ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The root, created (key first, then certificate, then an empty CRL) if missing."""
    loaded = _load_root(keys_dir, secret, organisation)
    if loaded is not None:
        return loaded
    key, certificate = build_root(organisation)
    write_atomically(keys_dir / ROOT_KEY_FILE, _encrypted(key, secret), mode=0o600)
    write_atomically(keys_dir / ROOT_CERT_FILE, _pem(certificate), mode=0o644)
    write_atomically(keys_dir / CRL_FILE, _pem(build_crl(key, certificate, [], number=1)),
                     mode=0o644)
    return key, certificate


def load_crl(keys_dir: Path) -> x509.CertificateRevocationList | None:
    """The root's CRL, checked against the root; None when there is none.

    Raises ``ConfigurationError`` for a CRL that is unreadable or not the root's.
    """
    path = keys_dir / CRL_FILE
    root = root_certificate(keys_dir)
    if not path.is_file() or root is None:
        return None
    try:
        crl = x509.load_pem_x509_crl(_read_nonempty(path))
    except ValueError as exc:
        raise ConfigurationError(f"{path} does not hold a PEM CRL.") from exc
    public_key = root.public_key()
    if crl.issuer != root.subject or not isinstance(public_key, ec.EllipticCurvePublicKey) \
            or not crl.is_signature_valid(public_key):
        raise ConfigurationError(f"{path} is not signed by the root in {ROOT_CERT_FILE}; "
                                 "restore the keys folder from a backup.")
    return crl


def revocation_of(keys_dir: Path, certificate: x509.Certificate) -> RevokedEntry | None:
    """The CRL's entry for ``certificate`` when the root issued it and revoked it."""
    root, crl = root_certificate(keys_dir), load_crl(keys_dir)
    if root is None or crl is None or not issued_by(certificate, root):
        return None
    return next((e for e in crl_entries(crl) if e.serial_number == certificate.serial_number),
                None)


# --- the signing certificate ----------------------------------------------------------

def _load_current(keys_dir: Path, secret: bytes) -> Signer:
    key_path, cert_path = keys_dir / KEY_FILE, keys_dir / CERT_FILE
    if not key_path.is_file() or not cert_path.is_file():
        raise ConfigurationError(
            f"There is no evidence-signing key in {keys_dir}; run `oko init` first."
        )
    cert_pem = _read_nonempty(cert_path)
    key = _decrypt(key_path, secret, "evidence-signing key")
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{key_path} does not hold an Ed25519 key.")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ConfigurationError(f"{cert_path} does not hold a PEM certificate.") from exc
    if chain[0].public_key() != key.public_key():
        raise ConfigurationError(f"{cert_path} does not belong to the signing key.")
    return Signer(private_key=key, certificate=chain[0], issuers=tuple(chain[1:]))


def current_certificate(keys_dir: Path) -> x509.Certificate:
    """The current signing certificate (the first in ``signer.pem``), read without the
    key. Raises ``ConfigurationError`` when there is none or it is unreadable."""
    path = keys_dir / CERT_FILE
    if not path.is_file():
        raise ConfigurationError(
            f"There is no evidence-signing key in {keys_dir}; run `oko init` first.")
    try:
        return x509.load_pem_x509_certificate(_read_nonempty(path))
    except ValueError as exc:
        raise ConfigurationError(f"{path} does not hold a PEM certificate.") from exc


def _refuse_unusable(keys_dir: Path, signer: Signer, now: datetime) -> None:
    certificate = signer.certificate
    if now > certificate.not_valid_after_utc:
        raise ConfigurationError(
            f"The signing certificate {signer.fingerprint_sha256} expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}; run `oko keys rotate` before "
            "signing again.")
    revoked = revocation_of(keys_dir, certificate)
    if revoked is not None:
        raise ConfigurationError(
            f"The signing certificate {signer.fingerprint_sha256} was revoked on "
            f"{revoked.revoked_at:%Y-%m-%d %H:%M} UTC; run `oko keys rotate` before "
            "signing again.")


def load_signer(*, keys_dir: Path, passphrase: str | None) -> Signer:
    """The current signing identity, ready to sign.

    Raises ``ConfigurationError`` when there is no key (run ``oko init``), the passphrase
    is missing or wrong, the key does not match its certificate, or the certificate has
    expired or been revoked (run ``oko keys rotate``): nothing is signed with it then.
    """
    secret = _require_passphrase(passphrase)
    signer = _load_current(keys_dir, secret)
    _refuse_unusable(keys_dir, signer, datetime.now(UTC))
    return replace(signer, report=_report_signer(keys_dir, secret))


def _report_signer(keys_dir: Path, secret: bytes) -> ReportSigner | None:
    """The report signer, issued now for an installation made before it when the root
    key is here; None without a root or with its key offline (the export says so)."""
    root = root_certificate(keys_dir)
    if root is None:
        return None
    crl = load_crl(keys_dir)
    loaded = load_report_signer(keys_dir, secret=secret, root=root, crl=crl)
    if loaded is not None or not (keys_dir / ROOT_KEY_FILE).is_file():
        return loaded
    names = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    organisation = str(names[0].value) if names else "Oko"
    loaded_root = _load_root(keys_dir, secret, organisation)
    if loaded_root is None:
        raise _root_key_missing(keys_dir)
    return issue_report_signer(keys_dir, root_key=loaded_root[0], root=loaded_root[1],
                               organisation=organisation, secret=secret, crl=crl)


def _install_signer(keys_dir: Path, key: Ed25519PrivateKey, certificate: x509.Certificate,
                    issuers: tuple[x509.Certificate, ...], secret: bytes) -> Signer:
    signer = Signer(private_key=key, certificate=certificate, issuers=issuers)
    # The archived certificate goes first: a crash then leaves an extra cert, never a key
    # whose certificate was lost.
    write_atomically(keys_dir / CERTS_DIR / f"{signer.fingerprint_sha256}.pem",
                     signer.certificate_pem, mode=0o644)
    write_atomically(keys_dir / KEY_FILE, _encrypted(key, secret), mode=0o600)
    write_atomically(keys_dir / CERT_FILE, signer.chain_pem, mode=0o644)
    return signer


def _issue_signer(keys_dir: Path, organisation: str, secret: bytes) -> Signer:
    root_key, root = _ensure_root(keys_dir, organisation, secret)
    key, certificate = issue_signing_certificate(root_key, root, organisation)
    signer = _install_signer(keys_dir, key, certificate, (root,), secret)
    report = issue_report_signer(keys_dir, root_key=root_key, root=root,
                                 organisation=organisation, secret=secret,
                                 crl=load_crl(keys_dir))
    return replace(signer, report=report)


def ensure_signing_identity(*, keys_dir: Path, organisation: str,
                            passphrase: str | None) -> Signer:
    """Create the root and a signing certificate unless a signing key exists; return
    the signer.

    Idempotent: an existing identity is loaded (which also checks the passphrase), an
    old self-signed one included.
    """
    secret = _require_passphrase(passphrase)
    if (keys_dir / KEY_FILE).is_file():
        return load_signer(keys_dir=keys_dir, passphrase=passphrase)
    return _issue_signer(keys_dir, organisation, secret)


def rotate_signing_identity(*, keys_dir: Path, organisation: str,
                            passphrase: str | None) -> Signer:
    """A new signing key and certificate from the root (created first on an installation
    that has none); old certificates stay in ``certs/``.

    The old key must decrypt first, so a wrong passphrase cannot destroy it; an expired
    or revoked one may be rotated away. Raises ``ConfigurationError`` when the root key
    is offline.
    """
    secret = _require_passphrase(passphrase)
    _load_current(keys_dir, secret)
    return _issue_signer(keys_dir, organisation, secret)


def known_certificates(keys_dir: Path) -> list[x509.Certificate]:
    """Every signing certificate this installation has used, oldest first."""
    paths = sorted((keys_dir / CERTS_DIR).glob("*.pem"))
    certificates = [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths]
    return sorted(certificates, key=lambda c: c.not_valid_before_utc)


def legacy_certificates(keys_dir: Path) -> list[x509.Certificate]:
    """Signing certificates the root did not issue: the self-signed ones of old."""
    root = root_certificate(keys_dir)
    return [c for c in known_certificates(keys_dir) if root is None or not issued_by(c, root)]


# --- revocation and trust -------------------------------------------------------------

def revoke_signing_certificate(*, keys_dir: Path, fingerprint: str, reason: str,
                               organisation: str, passphrase: str | None) -> Revocation:
    """Revoke a signing certificate the root issued, as of now, in the root's CRL.

    Revoking the current certificate first issues its replacement, so the installation
    never signs with a revoked key. Bundles signed after the revocation time verify as
    INVALID; older ones stay VALID. Raises ``InvalidInputError`` for a malformed
    fingerprint or reason, the root itself or a self-signed certificate of old (a CRL
    cannot revoke it), ``NotFoundError`` for a certificate this installation never
    used, ``ConflictError`` when it is already revoked, and ``ConfigurationError`` for
    a wrong passphrase or a root key that is offline. Nothing is written on any error.
    """
    wanted = normalise_fingerprint(fingerprint)
    reason_name = parse_reason(reason)
    root = root_certificate(keys_dir)
    if root is not None and certificate_fingerprint(root) == wanted:
        raise InvalidInputError("The root certificate cannot be revoked by its own CRL; "
                                "a new root means a new evidence authority.")
    certificate = next((c for c in [*known_certificates(keys_dir),
                                    *known_report_certificates(keys_dir)]
                        if certificate_fingerprint(c) == wanted), None)
    if certificate is None:
        raise NotFoundError(f"No signing certificate {wanted} was used by this installation.")
    if root is None or not issued_by(certificate, root):
        raise InvalidInputError(
            f"Certificate {wanted} is self-signed, from before the evidence authority; a "
            "CRL cannot revoke it (run `oko keys rotate` to stop signing with it).")
    secret = _require_passphrase(passphrase)
    loaded = _load_root(keys_dir, secret, organisation)
    if loaded is None:
        raise _root_key_missing(keys_dir)
    root_key, root = loaded
    crl = load_crl(keys_dir)
    entries = crl_entries(crl) if crl is not None else []
    earlier = next((e for e in entries if e.serial_number == certificate.serial_number), None)
    if earlier is not None:
        raise ConflictError(f"Certificate {wanted} was already revoked on "
                            f"{earlier.revoked_at:%Y-%m-%d %H:%M} UTC.")
    current = _load_current(keys_dir, secret)  # the passphrase is right before any write
    replacement = None
    if current.fingerprint_sha256 == wanted:
        key, new_certificate = issue_signing_certificate(root_key, root, organisation)
        replacement = _install_signer(keys_dir, key, new_certificate, (root,), secret)
    current_report = current_report_certificate(keys_dir)
    if current_report is not None and certificate_fingerprint(current_report) == wanted:
        issue_report_signer(keys_dir, root_key=root_key, root=root,
                            organisation=organisation, secret=secret)
    now = _second_after(datetime.now(UTC))
    entry = RevokedEntry(certificate.serial_number, now, reason_name)
    new_crl = build_crl(root_key, root, [*entries, entry],
                        number=(crl_number(crl) if crl is not None else 0) + 1)
    write_atomically(keys_dir / CRL_FILE, _pem(new_crl), mode=0o644)
    if replacement is not None:  # ready to sign reports too, under the new CRL
        replacement = replace(replacement, report=_report_signer(keys_dir, secret))
    return Revocation(fingerprint_sha256=wanted, serial_number=certificate.serial_number,
                      revoked_at=now, reason=reason_name, replacement=replacement)


def _second_after(moment: datetime) -> datetime:
    """``moment`` rounded up to the second. ``Oko-Signed-At`` is rounded down, so a bundle
    signed before the revocation can never read as signed at or after it."""
    whole = moment.replace(microsecond=0)
    return whole + timedelta(seconds=1) if moment.microsecond else whole


def installation_anchors(keys_dir: Path) -> TrustAnchors:
    """What this installation trusts when it verifies a bundle itself: its root with
    its CRL, and the self-signed certificates of old (so their bundles stay VALID).

    Certificates the root issued are not anchors of their own: they chain to the root,
    so their revocation counts. Raises ``ConfigurationError`` for an unreadable root or
    CRL.
    """
    from oko_verify.trust import TrustAnchors  # the verifier package, loaded when used

    root, crl = root_certificate(keys_dir), load_crl(keys_dir)
    return TrustAnchors(
        certificates=tuple([root] if root is not None else []) + tuple(
            legacy_certificates(keys_dir)),
        crls=(crl,) if crl is not None else ())


def export_trust_store(keys_dir: Path, out_dir: Path) -> list[Path]:
    """Write what a prosecutor imports into ``out_dir``: the root, its CRL and any
    self-signed certificates of old (``legacy-<fingerprint>.pem``). Returns the paths.

    Raises ``NotFoundError`` when there is nothing to publish (no ``oko init`` yet).
    """
    root, crl = root_certificate(keys_dir), load_crl(keys_dir)
    files: list[tuple[str, bytes]] = []
    if root is not None:
        files.append((TRUST_ROOT_FILE, _pem(root)))
    if crl is not None:
        files.append((TRUST_CRL_FILE, _pem(crl)))
    files += [(f"legacy-{certificate_fingerprint(c)}.pem", _pem(c))
              for c in legacy_certificates(keys_dir)]
    if not files:
        raise NotFoundError(f"There is no evidence certificate in {keys_dir}; run `oko init`"
                            " first.")
    for name, content in files:
        write_atomically(out_dir / name, content, mode=0o644)
    return [out_dir / name for name, _ in files]


def verify_signature(certificate: x509.Certificate, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature by the certificate's key."""
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        return False
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "CERT_FILE",
    "CRL_FILE",
    "KEY_FILE",
    "ROOT_CERT_FILE",
    "ROOT_KEY_FILE",
    "Revocation",
    "Signer",
    "certificate_fingerprint",
    "current_certificate",
    "ensure_signing_identity",
    "export_trust_store",
    "installation_anchors",
    "known_certificates",
    "legacy_certificates",
    "load_crl",
    "load_signer",
    "normalise_fingerprint",
    "revocation_of",
    "revoke_signing_certificate",
    "root_certificate",
    "rotate_signing_identity",
    "verify_signature",
]
