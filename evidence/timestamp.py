"""RFC 3161 trusted timestamps from a time-stamping authority (TSA), checked on arrival.

``fetch_timestamp(data, authority)``:

1. builds a ``TimeStampReq`` with the SHA-256 of ``data``, a random 64-bit nonce and
   ``certReq`` (so the token carries the TSA's certificate);
2. POSTs it as ``application/timestamp-query`` to the TSA with a short timeout;
3. checks the reply: HTTP 200 with a granted status, the nonce echoed, the imprint equal
   to our digest, the CMS signature (``oko_verify.timestamp.check_token``, the same code
   the stand-alone verifier runs), and the TSA's chain up to the configured CA
   certificate at the token's genTime;
4. returns the response bytes (written as ``timestamp.tsr``) and the TSA's genTime.

Errors, one sentence each: ``TsaUnreachableError`` (no answer), ``TsaRefusedError``
(an answer that is not a granted token), ``TsaNotTrustedError`` (its chain does not
reach the configured CA) and ``TimestampMismatchError`` (a token for other data).
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from pathlib import Path

from asn1crypto import algos, core, tsp  # type: ignore[import-untyped]
from cryptography import x509
from oko_verify.timestamp import TimestampToken, TimestampTokenError, check_token
from oko_verify.timestamp import token_chain_result as _chain_result
from oko_verify.trust import TrustAnchors

from evidence.report_text import report_text
from storage.errors import ConfigurationError, OkoError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 1024 * 1024


class TsaUnreachableError(OkoError):
    """The TSA did not answer (down, refused the connection, timed out)."""

    exit_code = 4
    http_status = 503


class TsaRefusedError(OkoError):
    """The TSA answered, but not with a granted timestamp."""

    exit_code = 4
    http_status = 502


class TsaNotTrustedError(OkoError):
    """The token's TSA does not chain to the configured TSA CA certificate."""

    exit_code = 4
    http_status = 502


class TimestampMismatchError(OkoError):
    """The token does not hold for the data it was requested for."""

    exit_code = 4
    http_status = 502


@dataclass(frozen=True)
class TimestampAuthority:
    """A TSA and the CA certificate(s) that vouch for it (PEM); from ``OKO_TSA_URL`` and
    ``OKO_TSA_CA_CERT``. The PAdES signature uses the same one for its -T level."""

    url: str
    ca_cert_pem: bytes
    timeout_seconds: float = 10.0

    @property
    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        """The configured CA certificates; ``ConfigurationError`` when unreadable."""
        try:
            return tuple(x509.load_pem_x509_certificates(self.ca_cert_pem))
        except ValueError as exc:
            raise ConfigurationError("OKO_TSA_CA_CERT is not a PEM certificate; give the "
                                     "TSA's CA certificate.") from exc


@dataclass(frozen=True)
class Timestamp:
    """A checked timestamp: ``response`` is the DER TimeStampResp as the TSA sent it."""

    response: bytes
    token: TimestampToken
    tsa_url: str

    @property
    def gen_time(self) -> datetime:
        return self.token.gen_time

    @property
    def gen_time_text(self) -> str:
        return self.token.gen_time_text


@dataclass(frozen=True)
class TrustedTime:
    """An export's choice about a trusted time, as bag-info, custody and the report say it.

    ``authority`` None and ``declined_by`` None: no TSA configured; ``declined_by``: the
    exporter gave ``--no-timestamp`` (the API's ``no_timestamp``), whatever is configured.
    """

    authority: TimestampAuthority | None = None
    declined_by: str | None = None

    @property
    def requested(self) -> TimestampAuthority | None:
        """The TSA to ask, or None."""
        return None if self.declined_by is not None else self.authority

    @property
    def field(self) -> str:
        """bag-info's ``Oko-Trusted-Time`` (and the export custody entry's ``trusted_time``).

        ``TSA <url> (...)`` promises ``timestamp.tsr``: the verifier fails a bundle whose
        signed bag-info says so but carries no token.
        """
        if self.declined_by is not None:
            return f"none (declined: --no-timestamp by {self.declined_by})"
        if self.authority is None:
            return "none (no TSA configured)"
        return (f"TSA {self.authority.url} (RFC 3161 token in timestamp.tsr over "
                "signature.sig)")

    def note(self, lang: str) -> str:
        """The report's line under "Trusted time" in ``lang``, from the report catalogs."""
        text = report_text(lang)
        if self.declined_by is not None:
            return text.t("trusted_time.declined", user=self.declined_by)
        if self.authority is None:
            return text.t("trusted_time.none")
        return text.t("trusted_time.tsa", url=self.authority.url)


def authority_from(url: str | None, ca_cert: Path | None, *,
                   timeout_seconds: float = 10.0) -> TimestampAuthority | None:
    """The TSA ``OKO_TSA_URL`` and ``OKO_TSA_CA_CERT`` configure, or None without a URL.

    Raises ``ConfigurationError`` when the URL is set without a readable CA certificate.
    """
    if not url:
        return None
    if ca_cert is None:
        raise ConfigurationError("OKO_TSA_URL is set but OKO_TSA_CA_CERT is not; give the "
                                 "PEM of the CA that vouches for the TSA.")
    try:
        pem = ca_cert.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"OKO_TSA_CA_CERT {ca_cert} cannot be read "
                                 f"({exc.strerror or exc}).") from exc
    authority = TimestampAuthority(url=url, ca_cert_pem=pem, timeout_seconds=timeout_seconds)
    _ = authority.ca_certificates
    return authority


def timestamp_request(data: bytes, nonce: int) -> bytes:
    """DER ``TimeStampReq`` (v1, SHA-256 imprint, ``nonce``, certReq)."""
    der = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "hashed_message": sha256(data).digest()}),
        "nonce": core.Integer(nonce),
        "cert_req": True,
    }).dump()
    return bytes(der)


def _post(authority: TimestampAuthority, query: bytes) -> bytes:
    if not authority.url.startswith(("http://", "https://")):
        raise ConfigurationError(f"OKO_TSA_URL {authority.url[:100]} is not an http:// or "
                                 "https:// URL.")
    request = urllib.request.Request(authority.url, data=query, method="POST",  # noqa: S310
                                     headers={"Content-Type": QUERY_TYPE,
                                              "Accept": REPLY_TYPE})
    try:
        with urllib.request.urlopen(request,  # noqa: S310 (http(s) only, checked above)
                                    timeout=authority.timeout_seconds) as reply:
            body: bytes = reply.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TsaRefusedError(f"The time-stamping authority at {authority.url} refused the "
                              f"request (HTTP {exc.code}).") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TsaUnreachableError(
            f"The time-stamping authority at {authority.url} cannot be reached ({reason}); "
            "try again later, or export with --no-timestamp to go without a trusted "
            "time.") from exc
    if len(body) > MAX_REPLY_BYTES:
        raise TsaRefusedError(f"The time-stamping authority at {authority.url} sent a "
                              "reply too large to be a timestamp.")
    return body


def fetch_timestamp(data: bytes, authority: TimestampAuthority) -> Timestamp:
    """A timestamp over ``data`` from ``authority``, checked; see the module doc.

    Raises ``TsaUnreachableError``, ``TsaRefusedError``, ``TsaNotTrustedError``,
    ``TimestampMismatchError`` or ``ConfigurationError`` (unreadable CA certificate).
    """
    anchors = TrustAnchors(certificates=authority.ca_certificates)
    nonce = secrets.randbits(63) | 1
    response = _post(authority, timestamp_request(data, nonce))
    try:
        status = tsp.TimeStampResp.load(response)["status"]["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TsaRefusedError(f"The time-stamping authority at {authority.url} did not "
                              "answer with an RFC 3161 response.") from exc
    if status not in ("granted", "granted_with_mods"):
        raise TsaRefusedError(f"The time-stamping authority at {authority.url} refused "
                              f"the request (status {status}).")
    try:
        token = check_token(response, data)
    except TimestampTokenError as exc:
        raise TimestampMismatchError(f"The time-stamping authority at {authority.url} sent "
                                     f"a token that does not hold: {exc}.") from exc
    if token.nonce != nonce:
        raise TimestampMismatchError(f"The time-stamping authority at {authority.url} sent "
                                     "a token for another request (its nonce differs).")
    chain = _chain_result(token, anchors)
    if chain.problems or chain.anchor is None:
        why = "; ".join(chain.problems) or "it does not chain to OKO_TSA_CA_CERT"
        raise TsaNotTrustedError(f"The time-stamping authority at {authority.url} is not "
                                 f"trusted: its certificate {token.tsa} fails ({why}).")
    return Timestamp(response=response, token=token, tsa_url=authority.url)


__all__ = [
    "Timestamp",
    "TimestampAuthority",
    "TimestampMismatchError",
    "TrustedTime",
    "TsaNotTrustedError",
    "TsaRefusedError",
    "TsaUnreachableError",
    "authority_from",
    "fetch_timestamp",
    "timestamp_request",
]
