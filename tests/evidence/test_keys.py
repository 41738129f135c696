"""The signing identity: a root and an issued certificate, encrypted at rest, passphrase
checks, rotation under the same root, old self-signed installations."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from evidence.authority import issued_by
from evidence.keys import (
    certificate_fingerprint,
    ensure_signing_identity,
    installation_anchors,
    known_certificates,
    legacy_certificates,
    load_signer,
    normalise_fingerprint,
    root_certificate,
    rotate_signing_identity,
    verify_signature,
)
from storage.errors import ConfigurationError, InvalidInputError


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def make_legacy_identity(keys_dir: Path, *, organisation: str, passphrase: str) -> str:
    """What ``oko init`` wrote before the authority: one self-signed certificate."""
    key = Ed25519PrivateKey.generate()
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} evidence authority"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=400)).not_valid_after(now + timedelta(days=7000))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, None))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    fingerprint = certificate_fingerprint(cert)
    (keys_dir / "certs").mkdir(parents=True)
    (keys_dir / "certs" / f"{fingerprint}.pem").write_bytes(pem)
    (keys_dir / "signer.pem").write_bytes(pem)
    (keys_dir / "signing-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode())))
    return fingerprint


def test_init_makes_a_root_and_a_signing_certificate_it_issued(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="Київ CCTV",
                                     passphrase="s3cret")
    for name in ("signing-key.pem", "root-key.pem"):
        pem = (tmp_path / name).read_text()
        assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert (tmp_path / name).stat().st_mode & 0o077 == 0
    assert signer.subject == "O=Київ CCTV,CN=Київ CCTV evidence signing"
    root = root_certificate(tmp_path)
    assert root is not None and signer.issuers == (root,)
    assert "CN=Київ CCTV evidence authority" in root.subject.rfc4514_string()
    assert issued_by(signer.certificate, root)
    # signer.pem: the signing certificate first, then the root
    chain = x509.load_pem_x509_certificates((tmp_path / "signer.pem").read_bytes())
    assert chain == [signer.certificate, root]
    assert signer.root_fingerprint_sha256 == certificate_fingerprint(root)
    signature = signer.sign(b"data")
    assert len(signature) == 64 and verify_signature(signer.certificate, signature, b"data")
    printed = openssl("x509", "-in", "signer.pem", "-noout", "-fingerprint", "-sha256",
                      cwd=tmp_path).stdout
    assert normalise_fingerprint(printed) == signer.fingerprint_sha256
    verified = openssl("verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "root.pem",
                       "signer.pem", cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.strip() == "signer.pem: OK"
    again = ensure_signing_identity(keys_dir=tmp_path, organisation="x", passphrase="s3cret")
    assert again.fingerprint_sha256 == signer.fingerprint_sha256
    assert root_certificate(tmp_path) == root


def test_wrong_missing_passphrase_and_missing_key(tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="right")
    with pytest.raises(ConfigurationError, match="could not be decrypted"):
        load_signer(keys_dir=tmp_path, passphrase="wrong")
    with pytest.raises(ConfigurationError, match="set OKO_KEY_PASSPHRASE"):
        load_signer(keys_dir=tmp_path, passphrase=None)
    with pytest.raises(ConfigurationError, match="run `oko init` first"):
        load_signer(keys_dir=tmp_path / "none", passphrase="right")
    assert not (tmp_path / "none").exists()


def test_rotation_keeps_the_root_and_old_certificates(tmp_path: Path) -> None:
    old = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ConfigurationError, match="could not be decrypted"):
        rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="bad")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    new = rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    assert new.fingerprint_sha256 != old.fingerprint_sha256
    assert new.root_fingerprint_sha256 == old.root_fingerprint_sha256
    assert (tmp_path / "root-key.pem").read_bytes() == before["root-key.pem"]
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        new.fingerprint_sha256
    fingerprints = {certificate_fingerprint(c) for c in known_certificates(tmp_path)}
    assert fingerprints == {old.fingerprint_sha256, new.fingerprint_sha256}
    root = root_certificate(tmp_path)
    assert root is not None
    assert all(issued_by(c, root) for c in known_certificates(tmp_path))
    # the root vouches for both; neither needs to be an anchor of its own
    anchors = installation_anchors(tmp_path)
    assert anchors.certificates == (root,) and len(anchors.crls) == 1


def test_rotation_needs_the_root_key_back_from_offline(tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    offline = tmp_path.parent / f"{tmp_path.name}-usb"
    offline.mkdir()
    (tmp_path / "root-key.pem").rename(offline / "root-key.pem")
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigurationError) as caught:
        rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    assert str(caught.value) == (
        f"The evidence authority's root key (root-key.pem) is not in {tmp_path}; bring it "
        "back from where it is kept offline, then run the command again.")
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    load_signer(keys_dir=tmp_path, passphrase="p")  # signing needs only the signing key
    (offline / "root-key.pem").rename(tmp_path / "root-key.pem")
    rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")


def test_an_old_self_signed_installation_keeps_working_and_rotation_creates_the_root(
    tmp_path: Path,
) -> None:
    legacy = make_legacy_identity(tmp_path, organisation="Old", passphrase="p")
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="Old", passphrase="p")
    assert signer.fingerprint_sha256 == legacy and signer.issuers == ()
    assert signer.root_fingerprint_sha256 is None
    assert not (tmp_path / "root.pem").exists()  # init leaves an old identity alone
    assert [certificate_fingerprint(c) for c in installation_anchors(tmp_path).certificates] \
        == [legacy]
    new = rotate_signing_identity(keys_dir=tmp_path, organisation="Old", passphrase="p")
    root = root_certificate(tmp_path)
    assert root is not None and new.issuers == (root,)
    assert [certificate_fingerprint(c) for c in legacy_certificates(tmp_path)] == [legacy]
    anchors = installation_anchors(tmp_path)
    assert {certificate_fingerprint(c) for c in anchors.certificates} == {
        legacy, certificate_fingerprint(root)}
    assert len(anchors.crls) == 1


def test_an_expired_signing_certificate_is_not_used(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    root_key = serialization.load_pem_private_key((tmp_path / "root-key.pem").read_bytes(),
                                                  password=b"p")
    assert signer.issuers
    expired = (x509.CertificateBuilder().subject_name(signer.certificate.subject)
               .issuer_name(signer.issuers[0].subject)
               .public_key(signer.private_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime.now(UTC) - timedelta(days=800))
               .not_valid_after(datetime.now(UTC) - timedelta(days=70))
               .sign(root_key, hashes.SHA256()))  # type: ignore[arg-type]
    (tmp_path / "signer.pem").write_bytes(
        expired.public_bytes(serialization.Encoding.PEM)
        + signer.issuers[0].public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigurationError) as caught:
        load_signer(keys_dir=tmp_path, passphrase="p")
    assert str(caught.value) == (
        f"The signing certificate {certificate_fingerprint(expired)} expired on "
        f"{expired.not_valid_after_utc:%Y-%m-%d}; run `oko keys rotate` before signing again.")
    fresh = rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        fresh.fingerprint_sha256


def test_fingerprint_input_forms() -> None:
    raw = "ab" * 32
    assert normalise_fingerprint(":".join(["AB"] * 32)) == raw
    assert normalise_fingerprint("sha256 Fingerprint=" + ":".join(["AB"] * 32)) == raw
    with pytest.raises(InvalidInputError, match="is not a SHA-256 certificate fingerprint"):
        normalise_fingerprint("abc")
