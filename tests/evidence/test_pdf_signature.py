"""The report's PAdES signature, checked by tools other than Oko: pyhanko's validator and
poppler's ``pdfsig``; a byte changed or a page appended after signing fails both; the
bundle that carries the signed PDF still verifies with ``oko-verify``."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pypdf
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from evidence.keys import certificate_fingerprint, root_certificate
from evidence.pdf_signing import sign_report_pdf
from evidence.report import SIGNATURE_BOX, SIGNATURE_FIELD_NAME
from storage.errors import ConfigurationError
from tests.evidence.conftest import EvidenceWorld

BAG = "oko-KV-2026-001"
REPORT = f"{BAG}/data/report.pdf"


def _extract(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    return into / BAG


def _root_context(world: EvidenceWorld) -> ValidationContext:
    root = root_certificate(world.state.settings.keys_dir)
    assert root is not None
    der = root.public_bytes(serialization.Encoding.DER)
    return ValidationContext(trust_roots=[asn1_x509.Certificate.load(der)])


def _validate(pdf: Path, context: ValidationContext) -> PdfSignatureStatus:
    with pdf.open("rb") as stream:
        (signature,) = PdfFileReader(stream, strict=False).embedded_signatures
        return validate_pdf_signature(signature, context)


def pdfsig(pdf: Path) -> str:
    """``pdfsig``'s report (poppler-utils); exits 0 even for an invalid signature."""
    return subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True,
                          check=False).stdout


def test_pyhanko_finds_the_report_signed_intact_and_trusted_by_the_root(
    shared_world: EvidenceWorld, bundle_zip: Path, tmp_path: Path,
) -> None:
    pdf = _extract(bundle_zip, tmp_path) / "data" / "report.pdf"
    status = _validate(pdf, _root_context(shared_world))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.bottom_line
    assert status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
    report = shared_world.signer.report
    assert report is not None
    assert status.signing_cert.sha256.hex() == report.fingerprint_sha256
    # the field's widget is page 1's signature block, where the report draws it
    reader = pypdf.PdfReader(pdf)
    widgets = [a.get_object() for a in reader.pages[0].get("/Annots", [])]
    (widget,) = [w for w in widgets if w.get("/T") == SIGNATURE_FIELD_NAME]
    assert [round(float(v)) for v in widget["/Rect"]] == [round(v) for v in SIGNATURE_BOX]
    # PAdES, with the chain (leaf + root) in the signature and the root's CRL in the DSS
    with pdf.open("rb") as stream:
        reader_h = PdfFileReader(stream, strict=False)
        (signature,) = reader_h.embedded_signatures
        assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
        carried = {c.chosen.sha256.hex() for c in signature.signed_data["certificates"]}
        root = root_certificate(shared_world.state.settings.keys_dir)
        assert root is not None
        assert carried == {report.fingerprint_sha256, certificate_fingerprint(root)}
        dss = reader_h.root["/DSS"]
        assert len(dss["/CRLs"]) == 1 and len(dss["/Certs"]) == 2


def test_pdfsig_says_the_signature_is_valid_and_covers_the_whole_document(
    bundle_zip: Path, tmp_path: Path,
) -> None:
    out = pdfsig(_extract(bundle_zip, tmp_path) / "data" / "report.pdf")
    assert f"Signature Field Name: {SIGNATURE_FIELD_NAME}" in out
    assert "Signature Type: ETSI.CAdES.detached" in out
    assert "- Total document signed" in out
    assert "- Signature Validation: Signature is Valid." in out
    assert "evidence report signing" in out  # the signer's common name


def test_the_bundle_with_the_signed_report_still_verifies(
    shared_world: EvidenceWorld, bundle_zip: Path, tmp_path: Path,
) -> None:
    bag = _extract(bundle_zip, tmp_path)
    manifest = (bag / "manifest-sha256.txt").read_text().splitlines()
    assert any(line.endswith("  data/report.pdf") for line in manifest)
    root = root_certificate(shared_world.state.settings.keys_dir)
    assert root is not None
    pem = tmp_path / "root.pem"
    pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run([".venv/bin/oko-verify", str(bundle_zip), "--trusted-cert", str(pem)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout


def test_a_byte_changed_in_the_signed_range_fails_pyhanko_and_pdfsig(
    shared_world: EvidenceWorld, bundle_zip: Path, tmp_path: Path,
) -> None:
    pdf = _extract(bundle_zip, tmp_path) / "data" / "report.pdf"
    data = bytearray(pdf.read_bytes())
    # inside the first signed range: a byte of the page content, not the signature value
    at = data.index(b"/Producer")
    data[at + 2] ^= 0x01
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    status = _validate(tampered, _root_context(shared_world))
    assert not status.intact and not status.bottom_line
    out = pdfsig(tampered)
    assert "Signature is Valid." not in out
    assert "- Signature Validation: Digest Mismatch." in out


def test_a_page_appended_after_signing_shows_in_pyhanko_and_pdfsig(
    shared_world: EvidenceWorld, bundle_zip: Path, tmp_path: Path,
) -> None:
    pdf = _extract(bundle_zip, tmp_path) / "data" / "report.pdf"
    edited = tmp_path / "edited.pdf"
    writer = pypdf.PdfWriter(pdf, incremental=True)
    writer.add_blank_page()
    with edited.open("wb") as out:
        writer.write(out)
    assert edited.read_bytes().startswith(pdf.read_bytes())  # an incremental update
    status = _validate(edited, _root_context(shared_world))
    assert status.intact  # the signed revision itself is unchanged ...
    assert status.coverage is not None and status.coverage.name != "ENTIRE_FILE"
    assert not status.bottom_line, status.pretty_print_details()  # ... but not this file
    out = pdfsig(edited)
    assert "- Not total document signed" in out
    assert "- Total document signed" not in out


def test_signing_refuses_an_expired_report_certificate_and_leaves_the_pdf(
    shared_world: EvidenceWorld, bundle_zip: Path, tmp_path: Path,
) -> None:
    report = shared_world.signer.report
    assert report is not None
    pdf = tmp_path / "unsigned.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% not signed\n")
    later = report.certificate.not_valid_after_utc.replace(year=report.certificate
                                                           .not_valid_after_utc.year + 1)
    with pytest.raises(ConfigurationError, match=r"^The report-signing certificate "
                       f"{report.fingerprint_sha256} expired on "
                       rf"{report.certificate.not_valid_after_utc:%Y-%m-%d}; run `oko keys "
                       r"rotate` before exporting again\.$"):
        sign_report_pdf(pdf, report=report, now=later)
    assert pdf.read_bytes() == b"%PDF-1.4\n% not signed\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unsigned.pdf"]
