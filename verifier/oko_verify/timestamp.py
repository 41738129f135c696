"""RFC 3161 timestamp tokens: what a token says, and whether it holds for some data.

``check_token(response_or_token, data)`` parses a ``TimeStampResp`` (what ``openssl ts
-reply`` writes, ``timestamp.tsr``) or a bare token and checks, in order:

1. the response status is granted (a bare token has none);
2. the token is CMS SignedData over a ``TSTInfo``, with exactly one signer;
3. the message imprint (SHA-256/384/512) equals the digest of ``data``;
4. the signed attributes name ``id-ct-TSTInfo`` and carry the digest of the TSTInfo;
5. the ESS signing-certificate attribute names the certificate that signed;
6. that certificate has the (critical) extendedKeyUsage timeStamping only, and its
   signature over the signed attributes verifies (RSA, ECDSA or Ed25519).

Any failure raises ``TimestampTokenError`` ("the token does not hold for this data").
``token_chain_result`` then checks the TSA's certificate chain at the token's genTime
against the anchors the caller gave (``oko_verify.trust.evaluate_chain``), which says
whether anybody vouches for that TSA. Only asn1crypto and cryptography are used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp  # type: ignore[import-untyped]
from asn1crypto.core import Asn1Value  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from oko_verify.bag import SIGNATURE, TIMESTAMP, TRUSTED_TIME_FIELD, TRUSTED_TIME_TSA, is_file
from oko_verify.report import VerificationReport
from oko_verify.text import shown
from oko_verify.trust import ChainResult, TrustAnchors, describe, evaluate_chain

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class TimestampTokenError(ValueError):
    """The token is malformed or does not hold for the data it is checked against."""


@dataclass(frozen=True)
class TimestampToken:
    """A token that holds for its data (not yet: whether its TSA is trusted)."""

    gen_time: datetime
    serial_number: int
    policy: str
    nonce: int | None
    digest_algorithm: str
    chain: tuple[x509.Certificate, ...]  # the TSA's certificate first, then its issuers

    @property
    def tsa(self) -> str:
        """The TSA's certificate in words (its common name)."""
        return describe(self.chain[0])

    @property
    def gen_time_text(self) -> str:
        return f"{self.gen_time:%Y-%m-%dT%H:%M:%SZ}"


def digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _token_info(blob: bytes) -> cms.ContentInfo:
    """Step 1: the ContentInfo of a TimeStampResp or of a bare token."""
    try:
        response = tsp.TimeStampResp.load(blob)
        status = response["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = response["status"]["status_string"].native
            raise TimestampTokenError(f"the TSA answered '{status}'"
                                      + (f" ({'; '.join(text)[:200]})" if text else ""))
        token = response["time_stamp_token"]
        if not isinstance(token, cms.ContentInfo) or not token.contents:
            raise TimestampTokenError("the response holds no token")
        return token
    except TimestampTokenError:
        raise
    except (ValueError, TypeError, KeyError):
        pass
    try:
        token = cms.ContentInfo.load(blob)
        _ = token["content_type"].native  # malformed input fails here or in check_token
        return token
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampTokenError("it is not an RFC 3161 timestamp response or token") \
            from exc


def _attribute(attrs: Asn1Value, name: str) -> Any:
    values = [a["values"] for a in attrs if a["type"].native == name]
    if len(values) != 1 or len(values[0]) != 1:
        raise TimestampTokenError(f"the signed attributes do not carry one {name}")
    return values[0][0]


def _certificates(signed: cms.SignedData) -> list[x509.Certificate]:
    result = []
    for choice in signed["certificates"] or []:
        if choice.name == "certificate":
            result.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    return result


def _signer_certificate(sid: cms.SignerIdentifier,
                        certificates: list[x509.Certificate]) -> x509.Certificate:
    for certificate in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (certificate.serial_number == wanted["serial_number"].native
                    and certificate.issuer.public_bytes() == wanted["issuer"].dump()):
                return certificate
        else:
            try:
                ski = certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return certificate
    raise TimestampTokenError("the token does not carry the TSA's certificate (the "
                              "request must ask for it)")


def _verify_signature(certificate: x509.Certificate, signer: cms.SignerInfo,
                      hash_name: str, signed_bytes: bytes) -> None:
    signature = signer["signature"].native
    algorithm = _HASHES[hash_name]()
    try:
        key = certificate.public_key()
        kind = signer["signature_algorithm"].signature_algo
        if isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pkcs1v15":
            key.verify(signature, signed_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pss":
            key.verify(signature, signed_bytes,
                       padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO),
                       algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and kind == "ecdsa":
            key.verify(signature, signed_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, Ed25519PublicKey) and kind == "ed25519":
            key.verify(signature, signed_bytes)
        else:
            raise TimestampTokenError(f"its signature algorithm {kind} does not match the "
                                      "TSA's key")
    except InvalidSignature as exc:
        raise TimestampTokenError("the TSA's signature over the token does not verify") \
            from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TimestampTokenError("the TSA's key or signature cannot be read") from exc


def _check_ess(attrs: Asn1Value, certificate: x509.Certificate) -> None:
    """Step 5: the signed attributes pin the certificate that signed."""
    der = certificate.public_bytes(Encoding.DER)
    for attr in attrs:
        kind = attr["type"].native
        if kind == "signing_certificate_v2":
            cert_id = attr["values"][0]["certs"][0]
            name = cert_id["hash_algorithm"]["algorithm"].native
            if name in _HASHES and cert_id["cert_hash"].native == digest(name, der):
                return
            raise TimestampTokenError("the token names another certificate than the one "
                                      "that signed it")
        if kind == "signing_certificate":
            if attr["values"][0]["certs"][0]["cert_hash"].native == digest("sha1", der):
                return
            raise TimestampTokenError("the token names another certificate than the one "
                                      "that signed it")
    raise TimestampTokenError("the token does not name its signing certificate (ESS)")


def _check_usage(certificate: x509.Certificate) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise TimestampTokenError(f"the certificate of {describe(certificate)} is not "
                                  "for time-stamping (no extendedKeyUsage)") from exc
    if list(usage.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not usage.critical:
        raise TimestampTokenError(f"the certificate of {describe(certificate)} is not "
                                  "for time-stamping only (critical extendedKeyUsage)")


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate]
                 ) -> tuple[x509.Certificate, ...]:
    chain = [leaf]
    pool = [c for c in others if c != leaf]
    while chain[-1].issuer != chain[-1].subject and len(chain) < 8:
        issuer = next((c for c in pool if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        pool.remove(issuer)
        chain.append(issuer)
    return tuple(chain)


def check_token(blob: bytes, data: bytes) -> TimestampToken:
    """Steps 1-6 of the module doc for ``blob`` over ``data``; raises
    ``TimestampTokenError`` saying why the token does not hold."""
    info = _token_info(blob)
    try:
        if info["content_type"].native != "signed_data":
            raise TimestampTokenError("the token is not CMS SignedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampTokenError("the token does not hold a TSTInfo")
        tst_der = encap["content"].contents
        tst = tsp.TSTInfo.load(tst_der)
        imprint = tst["message_imprint"]
        hash_name = imprint["hash_algorithm"]["algorithm"].native
        if hash_name not in _HASHES:
            raise TimestampTokenError(f"its imprint uses {hash_name}, not SHA-2")
        if imprint["hashed_message"].native != digest(hash_name, data):
            raise TimestampTokenError("its message imprint is not the digest of this data: "
                                      "the token is for different data")
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            raise TimestampTokenError(f"the token has {len(signers)} signers, not one")
        signer = signers[0]
        signer_hash = signer["digest_algorithm"]["algorithm"].native
        if signer_hash not in _HASHES:
            raise TimestampTokenError(f"the TSA signed with {signer_hash}, not SHA-2")
        attrs = signer["signed_attrs"]
        if not attrs:
            raise TimestampTokenError("the token has no signed attributes")
        if _attribute(attrs, "content_type").native != "tst_info":
            raise TimestampTokenError("the signed content type is not TSTInfo")
        if _attribute(attrs, "message_digest").native != digest(signer_hash, tst_der):
            raise TimestampTokenError("the TSTInfo was changed after the TSA signed it")
        certificates = _certificates(signed)
        certificate = _signer_certificate(signer["sid"], certificates)
        _check_ess(attrs, certificate)
        _check_usage(certificate)
        signed_bytes = b"\x31" + attrs.dump()[1:]  # the SET OF, not the [0] tag (RFC 5652)
        _verify_signature(certificate, signer, signer_hash, signed_bytes)
        gen_time = tst["gen_time"].native.astimezone(UTC)
        return TimestampToken(
            gen_time=gen_time, serial_number=int(tst["serial_number"].native),
            policy=str(tst["policy"].native), nonce=tst["nonce"].native,
            digest_algorithm=hash_name, chain=_order_chain(certificate, certificates))
    except TimestampTokenError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise TimestampTokenError("the token cannot be read") from exc


def token_chain_result(token: TimestampToken, anchors: TrustAnchors) -> ChainResult:
    """The TSA's chain checked at the token's genTime; ``.anchor`` is None when nothing
    the caller trusts vouches for the TSA, ``.problems`` lists what is broken."""
    return evaluate_chain(token.chain, anchors, token.gen_time)


TIMESTAMP_CHECK = "timestamp"
TIMESTAMP_TRUST_CHECK = "timestamp trust"


def check_timestamp(root: Path, info: dict[str, str], anchors: TrustAnchors,
                    report: VerificationReport) -> None:
    """Step 13 of ``verify_bundle``: ``timestamp.tsr`` over ``signature.sig``.

    A token that does not hold (other data, a broken signature or chain), or one that
    the signed bag-info promises (``Oko-Trusted-Time: TSA ...``) but is missing, fails
    the bundle. A token whose TSA nobody the caller trusts vouches for is a warning
    ("timestamp not trusted"): the bundle's own verdict stands, the time is not shown
    as trusted. No token and no promise: one passing line saying there is no trusted
    time.
    """
    promised = info.get(TRUSTED_TIME_FIELD, "")
    path = root / TIMESTAMP
    if not is_file(path):
        if promised.startswith(TRUSTED_TIME_TSA):
            report.add(TIMESTAMP_CHECK, False, f"{TIMESTAMP}: missing, though bag-info "
                       f"{TRUSTED_TIME_FIELD} says {shown(promised, 120)}")
        else:
            report.add(TIMESTAMP_CHECK, True, "no trusted time: the bundle carries no "
                       f"{TIMESTAMP} (bag-info {TRUSTED_TIME_FIELD}: "
                       f"{shown(promised or 'not stated', 120)})")
        return
    try:
        token = check_token(path.read_bytes(), (root / SIGNATURE).read_bytes())
    except OSError:
        report.add(TIMESTAMP_CHECK, False, f"{TIMESTAMP} or {SIGNATURE} cannot be read")
        return
    except TimestampTokenError as exc:
        report.add(TIMESTAMP_CHECK, False, f"{TIMESTAMP} does not hold for {SIGNATURE}: {exc}")
        return
    report.add(TIMESTAMP_CHECK, True, f"{TIMESTAMP}: RFC 3161 token by {token.tsa} over "
               f"{SIGNATURE} ({token.digest_algorithm}), time {token.gen_time_text}")
    report.timestamp_authority = token.tsa
    try:
        chain = token_chain_result(token, anchors)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        report.add(TIMESTAMP_TRUST_CHECK, False, f"the TSA's chain cannot be read "
                   f"({shown(str(exc), 80)})")
        return
    for problem in chain.problems:
        report.add(TIMESTAMP_TRUST_CHECK, False, f"TSA {token.tsa}: {problem}")
    if chain.problems:
        return
    if chain.anchor is None:
        report.add(TIMESTAMP_TRUST_CHECK, False,
                   f"timestamp not trusted: nothing you gave vouches for the TSA {token.tsa} "
                   f"(root {describe(chain.root)}); pass its CA with --tsa-ca PEM",
                   fatal=False)
        return
    report.trusted_time = token.gen_time
    report.add(TIMESTAMP_TRUST_CHECK, True, f"the TSA {token.tsa} chains to your trusted "
               f"{describe(chain.anchor)}; trusted time {token.gen_time_text}")


__all__ = ["TIMESTAMP", "TIMESTAMP_CHECK", "TIMESTAMP_TRUST_CHECK", "TimestampToken",
           "TimestampTokenError", "check_timestamp", "check_token", "token_chain_result"]
