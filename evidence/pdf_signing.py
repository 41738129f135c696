"""The PDF report's PAdES signature, which Adobe Reader, Okular and ``pdfsig`` check.

``sign_report_pdf`` signs a built report in place with the installation's report-signing
key (ECDSA P-256, issued by the evidence authority's root; ``evidence.report_signing_keys``):

1. refuse an expired, not-yet-valid or revoked report-signing certificate
   (``ConfigurationError``), before anything is read or written;
2. add the signature field ``SIGNATURE_FIELD_NAME`` with its widget on page 1 over
   ``SIGNATURE_BOX``, where the report draws the visible signature block; the widget's
   own appearance is empty, so readers show the report's block and mark it as signed;
3. sign with pyhanko as an incremental update: subfilter ``ETSI.CAdES.detached``
   (PAdES), SHA-256, the leaf and the root in the CMS;
4. level B-T when a time-stamping authority is given (its RFC 3161 token over the
   signature value is inside the signature), B-B when not. The root, the leaf and the
   root's CRL (and the TSA's chain) go into the document security store of the same
   revision whenever the chain validates now (``embed_validation_info``), which makes a
   timestamped signature B-LT. When revocation information cannot be embedded, the
   signature stays B-T (or B-B) and ``PdfSignature.note`` says why;
5. write the signed PDF to a temp file beside the report and rename it over the report,
   so a failure leaves the unsigned report (which the export then discards) and never a
   half-written one.

The signature covers the whole file as it was built; a change after signing shows in any
reader (pyhanko: the modification level; ``pdfsig``: "not the total document").
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from asn1crypto import crl as asn1_crl  # type: ignore[import-untyped]
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from evidence.keys import Signer
from evidence.report import SIGNATURE_BOX, SIGNATURE_FIELD_NAME
from evidence.report_signing_keys import ReportSigner, report_key_missing
from evidence.timestamp import (
    TimestampAuthority,
    TsaNotTrustedError,
    TsaRefusedError,
    TsaUnreachableError,
)
from storage.errors import StorageError

LEVEL_B_B, LEVEL_B_T, LEVEL_B_LT = "PAdES-B-B", "PAdES-B-T", "PAdES-B-LT"


class ReportSigningError(StorageError):
    """The PDF report could not be signed (a TSA that failed, a PDF pyhanko rejects)."""


@dataclass(frozen=True)
class PdfSignature:
    """What ``sign_report_pdf`` did: the level reached and, below B-LT, why."""

    level: str
    signer_fingerprint_sha256: str
    signed_at: datetime
    timestamped: bool
    note: str = ""


def _asn1_cert(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _simple_signer(report: ReportSigner) -> signers.SimpleSigner:
    key_der = report.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    root = _asn1_cert(report.root)
    return signers.SimpleSigner(
        signing_cert=_asn1_cert(report.certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs([root]))  # type: ignore[no-untyped-call]


def _validation_context(report: ReportSigner,
                        timestamping: TimestampAuthority | None) -> ValidationContext:
    crls = [asn1_crl.CertificateList.load(report.crl.public_bytes(serialization.Encoding.DER))
            ] if report.crl is not None else []
    roots = [_asn1_cert(report.root)]
    if timestamping is not None:
        roots += [_asn1_cert(c) for c in timestamping.ca_certificates]
    return ValidationContext(trust_roots=roots, crls=crls, allow_fetching=False,
                             revocation_mode="hard-fail" if crls else "soft-fail")


def _sign(source: Path, target: Path, *, report: ReportSigner,
          timestamping: TimestampAuthority | None, embed: bool, visible: bool) -> None:
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD_NAME, md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=embed,
        # one revision: the signature then covers the whole file, DSS included
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
            include_vri=False),
        validation_context=_validation_context(report, timestamping) if embed else None,
        name=report.certificate.subject.rfc4514_string(),
        reason="Evidence report of an Oko bundle")
    timestamper = HTTPTimeStamper(  # type: ignore[no-untyped-call]
        timestamping.url, timeout=timestamping.timeout_seconds) \
        if timestamping is not None else None
    x1, y1, x2, y2 = SIGNATURE_BOX if visible else (0, 0, 0, 0)
    field_spec = fields.SigFieldSpec(sig_field_name=SIGNATURE_FIELD_NAME, on_page=0,
                                     box=(int(x1), int(y1), int(x2), int(y2)))
    pdf_signer = signers.PdfSigner(
        metadata, signer=_simple_signer(report), timestamper=timestamper,
        stamp_style=StaticStampStyle(border_width=0, background=None),
        new_field_spec=field_spec)
    with source.open("rb") as inf, target.open("wb") as out:
        pdf_signer.sign_pdf(IncrementalPdfFileWriter(inf, strict=False), output=out)
        out.flush()
        os.fsync(out.fileno())


def sign_report_pdf(path: Path, *, report: ReportSigner,
                    timestamping: TimestampAuthority | None = None,
                    now: datetime | None = None, visible: bool = True) -> PdfSignature:
    """Sign the PDF at ``path`` in place (see the module docstring for the steps).

    ``visible=False`` puts the field nowhere on the page (a report that draws no signature
    block, the redacted disclosure's); readers still list the signature.

    Raises ``ConfigurationError`` for an expired, not yet valid or revoked report-signing
    certificate (nothing is read or written), ``TsaUnreachableError`` or
    ``TsaRefusedError`` when the TSA gives no token, and ``ReportSigningError`` when
    pyhanko cannot sign the file; ``path`` is unchanged on every error.
    """
    moment = now or datetime.now(UTC)
    report.refuse_unusable(moment)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(temp_name)
    note = ""
    try:
        level = LEVEL_B_T if timestamping is not None else LEVEL_B_B
        try:
            _sign(path, temp, report=report, timestamping=timestamping, embed=True,
                  visible=visible)
            if timestamping is not None:  # B-LT builds on B-T: no token, no B-LT
                level = LEVEL_B_LT
        except SigningError as exc:
            # embedding needs the chain and its revocation info to validate now
            note = ("the chain's revocation information could not be embedded "
                    f"({str(exc)[:200]})")
            _sign(path, temp, report=report, timestamping=timestamping, embed=False,
                  visible=visible)
        os.replace(temp, path)
    except TimestampRequestError as exc:
        temp.unlink(missing_ok=True)
        raise _tsa_error(timestamping, exc) from exc
    except (PathBuildingError, PathValidationError) as exc:  # the TSA's chain (R1)
        temp.unlink(missing_ok=True)
        url = timestamping.url if timestamping is not None else "?"
        raise TsaNotTrustedError(f"The time-stamping authority at {url} is not trusted: "
                                 f"its certificate does not chain to OKO_TSA_CA_CERT "
                                 f"({str(exc)[:200]}).") from exc
    except (SigningError, PdfError, OSError) as exc:
        temp.unlink(missing_ok=True)
        where = f" with the time-stamping authority {timestamping.url}" \
            if timestamping is not None else ""
        raise ReportSigningError(
            f"The PDF report could not be signed{where}: {str(exc)[:300]}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return PdfSignature(level=level, signer_fingerprint_sha256=report.fingerprint_sha256,
                        signed_at=moment, timestamped=timestamping is not None, note=note)


def sign_bundle_report(path: Path, *, signer: Signer,
                       timestamping: TimestampAuthority | None,
                       visible: bool = True) -> PdfSignature | None:
    """Sign a bundle's report with the installation's report signer (``sign_report_pdf``).

    An installation of old with no evidence authority (a self-signed signing certificate)
    has no root to certify a report key: its report stays unsigned (None), the bundle's
    own signature still covering it, until ``oko keys rotate`` creates the authority.
    Raises ``ConfigurationError`` when the authority exists but the report key is
    missing (its root key is offline), and ``sign_report_pdf``'s errors.
    """
    if signer.report is None:
        if not signer.issuers:
            return None
        raise report_key_missing()
    return sign_report_pdf(path, report=signer.report, timestamping=timestamping,
                           visible=visible)


def _tsa_error(timestamping: TimestampAuthority | None,
               exc: TimestampRequestError) -> TsaUnreachableError | TsaRefusedError:
    url = timestamping.url if timestamping is not None else "?"
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectionError | requests.Timeout):
        return TsaUnreachableError(
            f"The time-stamping authority at {url} cannot be reached for the PDF report's "
            "signature; try again later, or export with --no-timestamp (recorded).")
    return TsaRefusedError(f"The time-stamping authority at {url} gave no timestamp for "
                           f"the PDF report's signature ({str(exc)[:200]}).")


__all__ = [
    "LEVEL_B_B",
    "LEVEL_B_LT",
    "LEVEL_B_T",
    "PdfSignature",
    "ReportSigningError",
    "sign_bundle_report",
    "sign_report_pdf",
]
