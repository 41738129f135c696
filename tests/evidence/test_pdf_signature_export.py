"""The PAdES signature as an export makes it: B-LT with the real test TSA's token inside
(pyhanko reports the TSA's time; ``pdfsig`` the whole document signed), an expired
report-signing certificate refused before anything is written, and an installation of
old without an evidence authority exporting its report unsigned."""

from __future__ import annotations

import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    RevocationInfoValidationType,
    validate_pdf_ltv_signature,
    validate_pdf_signature,
)
from pyhanko_certvalidator import ValidationContext
from sqlmodel import select

from evidence.authority import LEAF_VALIDITY
from evidence.exports import ExportResult, pending_parts
from evidence.keys import load_signer, root_certificate
from evidence.report_signing_keys import issue_report_signer
from evidence.timestamp import TimestampAuthority
from search_api.state import AppState
from storage.errors import ConfigurationError
from storage.models.evidence import CustodyEntry
from tests.evidence.conftest import EvidenceWorld, build_world
from tests.evidence.test_keys import make_legacy_identity
from tests.evidence.test_pdf_signature import pdfsig
from tests.evidence.test_report import render_pages, save_sample_pages
from tests.tsa_service import TsaService

REPORT = "oko-KV-2026-001/data/report.pdf"


def _export(world: EvidenceWorld, out: Path,
            tsa: TimestampAuthority | None = None) -> ExportResult:
    return world.export(out, timestamp_authority=tsa)


def _report(bundle: Path, tmp_path: Path) -> Path:
    pdf = tmp_path / "report.pdf"
    with zipfile.ZipFile(bundle) as archive:
        pdf.write_bytes(archive.read(REPORT))
    return pdf


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def test_with_a_tsa_the_signature_carries_its_token_pades_b_lt(
    world: EvidenceWorld, running_tsa: TsaService, tmp_path: Path,
) -> None:
    """The README's sample report: Ukrainian, PAdES-signed, timestamped; checked by pyhanko,
    pdfsig and ``openssl ts``, then its pages saved to docs/screenshots."""
    tsa_ca = x509.load_pem_x509_certificate(running_tsa.ca_cert_path.read_bytes())
    tsa = TimestampAuthority(url=running_tsa.url,
                             ca_cert_pem=running_tsa.ca_cert_path.read_bytes(),
                             timeout_seconds=5)
    before = datetime.now(UTC).replace(microsecond=0)
    bundle = _export(world, tmp_path / "b.zip", tsa).bundle_path
    pdf = _report(bundle, tmp_path)
    root = root_certificate(world.state.settings.keys_dir)
    assert root is not None
    with pdf.open("rb") as stream:
        (signature,) = PdfFileReader(stream, strict=False).embedded_signatures
        status = validate_pdf_signature(
            signature, ValidationContext(trust_roots=[_asn1(root)]),
            ts_validation_context=ValidationContext(trust_roots=[_asn1(tsa_ca)]))
        assert status.bottom_line, status.pretty_print_details()
        stamp = status.timestamp_validity
        assert stamp is not None and stamp.intact and stamp.valid and stamp.trusted
        assert before - timedelta(seconds=2) <= stamp.timestamp <= datetime.now(UTC)
        assert "Oko test TSA" in stamp.signing_cert.subject.human_friendly
        # B-LT: the chain, the root's CRL and the TSA's chain validate from the PDF alone
        long_term = validate_pdf_ltv_signature(
            signature, RevocationInfoValidationType.PADES_LT,
            validation_context_kwargs={"trust_roots": [_asn1(root), _asn1(tsa_ca)]})
        assert long_term.bottom_line, long_term.pretty_print_details()
    out = pdfsig(pdf)
    assert "- Signature Validation: Signature is Valid." in out
    assert "- Total document signed" in out
    # the bundle's own token over signature.sig, as VERIFY.txt tells a prosecutor to check it
    bag = tmp_path / "bag"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(bag)
    checked = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "signature.sig", "-in", "timestamp.tsr",
         "-CAfile", str(running_tsa.ca_cert_path)], cwd=bag / "oko-KV-2026-001",
        capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Звіт про докази" in text
    save_sample_pages(render_pages(pdf, tmp_path / "pages"))


def _custody_count(world: EvidenceWorld) -> int:
    with world.session() as session:
        return len(session.exec(select(CustodyEntry)).all())


def test_an_expired_report_certificate_refuses_the_export_and_writes_nothing(
    world: EvidenceWorld, tmp_path: Path,
) -> None:
    keys_dir = world.state.settings.keys_dir
    passphrase = world.state.settings.key_passphrase
    assert passphrase
    root = root_certificate(keys_dir)
    assert root is not None
    root_key = serialization.load_pem_private_key((keys_dir / "root-key.pem").read_bytes(),
                                                  password=passphrase.encode())
    issued = datetime.now(UTC) - LEAF_VALIDITY - timedelta(days=3)
    expired = issue_report_signer(keys_dir, root_key=root_key,  # type: ignore[arg-type]
                                  root=root, organisation="Oko test",
                                  secret=passphrase.encode(), now=issued)
    world.signer = load_signer(keys_dir=keys_dir, passphrase=passphrase)
    assert world.signer.report is not None
    assert world.signer.report.fingerprint_sha256 == expired.fingerprint_sha256
    entries = _custody_count(world)
    out = tmp_path / "out" / "b.zip"
    out.parent.mkdir()
    until = expired.certificate.not_valid_after_utc
    with pytest.raises(ConfigurationError, match=(
            rf"^The report-signing certificate {expired.fingerprint_sha256} expired on "
            rf"{until:%Y-%m-%d}; run `oko keys rotate` before exporting again\.$")):
        _export(world, out)
    assert list(out.parent.iterdir()) == [] and pending_parts(out) == []
    assert _custody_count(world) == entries
    assert list(world.state.settings.tmp_dir.iterdir()) == []


def test_an_installation_without_an_authority_exports_its_report_unsigned(
    state: AppState, footage_file: Path, tmp_path: Path,
) -> None:
    make_legacy_identity(state.settings.keys_dir, organisation="Old", passphrase="test-passphrase")
    world = build_world(state, tmp_path, footage=footage_file)
    assert world.signer.report is None and world.signer.issuers == ()
    pdf = _report(_export(world, tmp_path / "old.zip").bundle_path, tmp_path)
    assert "/AcroForm" not in pypdf.PdfReader(pdf).trailer["/Root"]
    assert "Signature #1" not in pdfsig(pdf)
