"""The report-signing key (ECDSA P-256, signs the PDF report): issued by the root with
the signing key, encrypted at rest, renewed by rotation, revocable, and created for an
installation made before it once the root key is here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evidence.authority import crl_entries, issued_by
from evidence.keys import (
    ensure_signing_identity,
    load_crl,
    load_signer,
    revoke_signing_certificate,
    root_certificate,
    rotate_signing_identity,
)
from evidence.report_signing_keys import (
    REPORT_CERT_FILE,
    REPORT_CERTS_DIR,
    REPORT_KEY_FILE,
    report_key_missing,
)
from storage.errors import ConfigurationError

PASSPHRASE = "s3cret"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_init_issues_an_ecdsa_report_certificate_from_the_root(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="Київ CCTV",
                                     passphrase=PASSPHRASE)
    report = signer.report
    assert report is not None
    certificate = report.certificate
    root = root_certificate(tmp_path)
    assert root is not None and issued_by(certificate, root)
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert certificate.subject.rfc4514_string() == \
        "O=Київ CCTV,CN=Київ CCTV evidence report signing"
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert not usage.key_cert_sign and not usage.crl_sign
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca \
        is False
    # the key is encrypted with the passphrase; the chain file is leaf then root
    key_pem = (tmp_path / REPORT_KEY_FILE).read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_pem
    assert (tmp_path / REPORT_KEY_FILE).stat().st_mode & 0o777 == 0o600
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key_pem, password=None)
    chain = x509.load_pem_x509_certificates((tmp_path / REPORT_CERT_FILE).read_bytes())
    assert chain == [certificate, root]
    assert (tmp_path / REPORT_CERTS_DIR / f"{report.fingerprint_sha256}.pem").is_file()
    # loading again gives the same report key; a second init creates nothing
    again = ensure_signing_identity(keys_dir=tmp_path, organisation="Київ CCTV",
                                    passphrase=PASSPHRASE)
    assert again.report is not None
    assert again.report.fingerprint_sha256 == report.fingerprint_sha256


def test_rotation_renews_the_report_certificate_and_keeps_the_old_one(tmp_path: Path) -> None:
    first = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase=PASSPHRASE)
    second = rotate_signing_identity(keys_dir=tmp_path, organisation="o",
                                     passphrase=PASSPHRASE)
    assert first.report is not None and second.report is not None
    assert second.report.fingerprint_sha256 != first.report.fingerprint_sha256
    loaded = load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert loaded.report is not None
    assert loaded.report.fingerprint_sha256 == second.report.fingerprint_sha256
    archived = {p.stem for p in (tmp_path / REPORT_CERTS_DIR).glob("*.pem")}
    assert archived == {first.report.fingerprint_sha256, second.report.fingerprint_sha256}


def test_revoking_the_report_certificate_replaces_it_and_lists_it_in_the_crl(
    tmp_path: Path,
) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="o",
                                     passphrase=PASSPHRASE)
    assert signer.report is not None
    old = signer.report
    revocation = revoke_signing_certificate(
        keys_dir=tmp_path, fingerprint=old.fingerprint_sha256, reason="key-compromise",
        organisation="o", passphrase=PASSPHRASE)
    assert revocation.replacement is None  # the bundle signer stays
    crl = load_crl(tmp_path)
    assert crl is not None
    assert [e.serial_number for e in crl_entries(crl)] == [old.certificate.serial_number]
    loaded = load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert loaded.fingerprint_sha256 == signer.fingerprint_sha256
    assert loaded.report is not None
    assert loaded.report.fingerprint_sha256 != old.fingerprint_sha256
    assert loaded.report.crl is not None  # what a B-LT signature embeds


def test_an_installation_without_a_report_key_gets_one_while_the_root_key_is_here(
    tmp_path: Path,
) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="Old CCTV", passphrase=PASSPHRASE)
    for name in (REPORT_KEY_FILE, REPORT_CERT_FILE):
        (tmp_path / name).unlink()
    shutil.rmtree(tmp_path / REPORT_CERTS_DIR)
    # the root key offline: the signer loads, without a report key, and nothing is written
    offline = tmp_path.parent / f"{tmp_path.name}-offline-root-key.pem"
    (tmp_path / "root-key.pem").rename(offline)
    before = _files(tmp_path)
    signer = load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert signer.report is None
    assert _files(tmp_path) == before
    assert str(report_key_missing()) == (
        "There is no report-signing key in the keys folder; bring the root key "
        "(root-key.pem) back into it and run `oko keys rotate`.")
    # the root key back: the next load issues the report key under the root's organisation
    offline.rename(tmp_path / "root-key.pem")
    signer = load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert signer.report is not None
    assert signer.report.subject == "O=Old CCTV,CN=Old CCTV evidence report signing"
    assert (tmp_path / REPORT_KEY_FILE).is_file()


def test_a_wrong_passphrase_for_the_report_key_is_one_sentence(tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase=PASSPHRASE)
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / REPORT_KEY_FILE).write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"another passphrase")))
    before = _files(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^The report-signing key could not be "
                       r"decrypted; check OKO_KEY_PASSPHRASE\.$"):
        load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert _files(tmp_path) == before
    (tmp_path / REPORT_KEY_FILE).write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    before = _files(tmp_path)
    with pytest.raises(ConfigurationError, match="does not belong to the report-signing key"):
        load_signer(keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert _files(tmp_path) == before
