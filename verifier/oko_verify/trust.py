"""Trust anchors and the certificate chain a bundle carries in ``signer.pem``.

An anchor is what the person verifying brings: a pinned SHA-256 fingerprint of a
certificate (the signing certificate or any issuer up to the root), a trusted
certificate (usually the installation's root, or a signing certificate trusted
directly), or a trust store directory of them, with CRLs.

``evaluate_chain`` checks the chain at the time the bundle was signed, in order:

1. every certificate is within its validity at that time;
2. each certificate is signed by the next one (the issuer's name matches too);
3. each issuer is a CA (BasicConstraints ca=True) with keyCertSign, within its
   path length;
4. the signing certificate (the first) has the digitalSignature key usage;
5. no certificate is revoked at that time by a CRL among the anchors that is signed
   by its issuer;
6. some certificate of the verified chain is an anchor (a chain that ends below a
   trusted certificate is completed with it).

Steps 1-5 fail the bundle; step 6 only decides whether anybody vouches for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from oko_verify.errors import InvalidFingerprintError, TrustAnchorError
from oko_verify.text import shown

HEX = frozenset("0123456789abcdef")
CERT_SUFFIXES = (".pem", ".crt")
CRL_SUFFIXES = (".crl", ".crl.pem")
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER bytes (openssl's, without colons)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accepts plain hex, ``AB:CD:...`` or openssl's ``sha256 Fingerprint=AB:CD:...``.

    Raises ``InvalidFingerprintError`` (a ``ValueError``) otherwise.
    """
    cleaned = text.strip().rsplit("=", 1)[-1].replace(":", "").strip().lower()
    if len(cleaned) != 64 or any(c not in HEX for c in cleaned):
        raise InvalidFingerprintError(
            f"'{shown(text, 80)}' is not a SHA-256 certificate fingerprint.")
    return cleaned


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a concatenated PEM chain, in file order.

    Raises ``ValueError`` when there is none or one is malformed.
    """
    return list(x509.load_pem_x509_certificates(data))


def describe(certificate: x509.Certificate) -> str:
    """The certificate's common name (or whole subject), capped and escaped."""
    try:
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        text = str(names[0].value) if names else certificate.subject.rfc4514_string()
    except ValueError:
        text = "an unreadable subject"
    return f"'{shown(text, 120)}'"


@dataclass(frozen=True)
class TrustAnchors:
    """What the verifier is told to trust; fingerprints are normalised on creation."""

    fingerprints: tuple[str, ...] = ()
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    sources: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprints",
                           tuple(normalise_fingerprint(f) for f in self.fingerprints))

    @property
    def empty(self) -> bool:
        return not self.fingerprints and not self.certificates

    @property
    def trusted_fingerprints(self) -> frozenset[str]:
        return frozenset(self.fingerprints) | {certificate_fingerprint(c)
                                               for c in self.certificates}

    @classmethod
    def from_store(cls, directory: Path) -> TrustAnchors:
        """Every ``*.pem``/``*.crt`` certificate and ``*.crl``/``*.crl.pem`` CRL in a
        directory (not its subfolders).

        Raises ``TrustAnchorError`` for a missing directory, an unreadable file, or a
        store that holds neither certificates nor CRLs.
        """
        if not directory.is_dir():
            raise TrustAnchorError(f"The trust store {directory} is not a directory.")
        certificates: list[x509.Certificate] = []
        crls: list[x509.CertificateRevocationList] = []
        for path in sorted(directory.iterdir()):
            name = path.name.lower()
            if not path.is_file():
                continue
            if name.endswith(CRL_SUFFIXES):
                crls.append(load_crl_file(path))
            elif name.endswith(CERT_SUFFIXES):
                certificates.extend(load_certificate_file(path))
        if not certificates and not crls:
            raise TrustAnchorError(
                f"The trust store {directory} holds no certificate (*.pem, *.crt) or CRL.")
        return cls(certificates=tuple(certificates), crls=tuple(crls),
                   sources=(f"trust store {directory}",))


def load_certificate_file(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file. Raises ``TrustAnchorError`` when it has none."""
    try:
        return load_pem_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TrustAnchorError(f"{path} is not a readable PEM certificate.") from exc


def load_crl_file(path: Path) -> x509.CertificateRevocationList:
    """A CRL in PEM or DER. Raises ``TrustAnchorError`` when it is neither."""
    try:
        data = path.read_bytes()
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError) as exc:
        raise TrustAnchorError(f"{path} is not a readable CRL.") from exc


def merge(*anchors: TrustAnchors) -> TrustAnchors:
    """One set of anchors holding everything in ``anchors`` (duplicates dropped)."""
    fingerprints = tuple(dict.fromkeys(f for a in anchors for f in a.fingerprints))
    seen: set[str] = set()
    certificates: list[x509.Certificate] = []
    for certificate in (c for a in anchors for c in a.certificates):
        fingerprint = certificate_fingerprint(certificate)
        if fingerprint not in seen:
            seen.add(fingerprint)
            certificates.append(certificate)
    crls = tuple({c.public_bytes(serialization.Encoding.DER): c
                  for a in anchors for c in a.crls}.values())
    sources = tuple(dict.fromkeys(s for a in anchors for s in a.sources))
    return TrustAnchors(fingerprints=fingerprints, certificates=tuple(certificates),
                        crls=crls, sources=sources)


@dataclass(frozen=True)
class ChainResult:
    """What ``evaluate_chain`` found: problems (each fails the bundle) and trust."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    chain: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None  # the certificate of the chain an anchor vouches for

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` signed ``child``; otherwise why not."""
    try:
        child.verify_directly_issued_by(issuer)
    except ValueError:
        return "its issuer name is not the next certificate's subject"
    except InvalidSignature:
        return "its signature does not verify with the next certificate's key"
    except TypeError:
        return "it is signed with an unsupported algorithm"
    return None


def _extension(certificate: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a duplicate or malformed extension
        return None


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and _issued_by(
        certificate, certificate) is None


def _complete(chain: list[x509.Certificate], anchors: TrustAnchors) -> list[x509.Certificate]:
    """The chain, extended by anchor certificates that issued its last certificate."""
    chain = list(chain)
    known = {certificate_fingerprint(c) for c in chain}
    while not _self_signed(chain[-1]) and len(chain) < 16:
        issuer = next((c for c in anchors.certificates
                       if certificate_fingerprint(c) not in known
                       and c.subject == chain[-1].issuer
                       and _issued_by(chain[-1], c) is None), None)
        if issuer is None:
            break
        known.add(certificate_fingerprint(issuer))
        chain.append(issuer)
    return chain


def _check_validity(chain: list[x509.Certificate], at: datetime, problems: list[str]) -> None:
    for position, certificate in enumerate(chain):
        role = "the signing certificate" if position == 0 else f"issuer {describe(certificate)}"
        if at < certificate.not_valid_before_utc:
            problems.append(f"{role} is not valid until "
                            f"{certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}, after "
                            f"the signing time {at:%Y-%m-%dT%H:%M:%SZ}")
        elif at > certificate.not_valid_after_utc:
            problems.append(f"{role} expired at "
                            f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, before "
                            f"the signing time {at:%Y-%m-%dT%H:%M:%SZ}")


def _check_links(chain: list[x509.Certificate], problems: list[str]) -> int:
    """Checks steps 2-4; returns how many certificates from the leaf verified in a row."""
    verified = 1
    broken = False
    for position in range(len(chain) - 1):
        child, issuer = chain[position], chain[position + 1]
        why = _issued_by(child, issuer)
        if why is not None:
            problems.append(f"certificate {position + 1} of signer.pem ({describe(child)}) "
                            f"is not issued by certificate {position + 2}: {why}")
            broken = True
        constraints = _extension(issuer, x509.BasicConstraints)
        usage = _extension(issuer, x509.KeyUsage)
        if constraints is None or not constraints.ca:
            problems.append(f"issuer {describe(issuer)} is not a CA (BasicConstraints)")
            broken = True
        elif constraints.path_length is not None and position > constraints.path_length:
            problems.append(f"issuer {describe(issuer)} may not issue a chain this deep")
            broken = True
        if usage is None or not usage.key_cert_sign:
            problems.append(f"issuer {describe(issuer)} lacks the keyCertSign key usage")
            broken = True
        if not broken:
            verified += 1
    leaf_usage = _extension(chain[0], x509.KeyUsage)
    if leaf_usage is None or not leaf_usage.digital_signature:
        problems.append("the signing certificate lacks the digitalSignature key usage")
    return verified


def _check_revocation(chain: list[x509.Certificate], anchors: TrustAnchors, at: datetime,
                      problems: list[str], notes: list[str]) -> None:
    for position, certificate in enumerate(chain[:-1] if len(chain) > 1 else chain):
        issuer = chain[position + 1] if position + 1 < len(chain) else certificate
        for crl in anchors.crls:
            if crl.issuer != certificate.issuer:
                continue
            try:
                signed = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):
                signed = False
            if not signed:
                notes.append(f"a CRL naming {describe(issuer)} is not signed by it; ignored")
                continue
            revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            if revoked is None:
                continue
            when = revoked.revocation_date_utc
            role = "the signing certificate" if position == 0 else describe(certificate)
            if when <= at:
                problems.append(f"{role} was revoked at {when:%Y-%m-%dT%H:%M:%SZ}, before "
                                f"the signing time {at:%Y-%m-%dT%H:%M:%SZ}")
            else:
                notes.append(f"{role} was revoked at {when:%Y-%m-%dT%H:%M:%SZ}, after "
                             "this bundle was signed")


def evaluate_chain(chain: Iterable[x509.Certificate], anchors: TrustAnchors,
                   at: datetime) -> ChainResult:
    """Check a chain (signing certificate first) at time ``at``; see the module doc."""
    completed = _complete(list(chain), anchors)
    problems: list[str] = []
    notes: list[str] = []
    _check_validity(completed, at, problems)
    verified = _check_links(completed, problems)
    _check_revocation(completed, anchors, at, problems, notes)
    trusted = anchors.trusted_fingerprints
    anchor = next((c for c in completed[:verified]
                   if certificate_fingerprint(c) in trusted), None)
    return ChainResult(problems=tuple(problems), notes=tuple(notes), chain=tuple(completed),
                       anchor=anchor)


__all__ = [
    "ChainResult",
    "TrustAnchors",
    "certificate_fingerprint",
    "describe",
    "evaluate_chain",
    "load_certificate_file",
    "load_crl_file",
    "load_pem_certificates",
    "merge",
    "normalise_fingerprint",
]
