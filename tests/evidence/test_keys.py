"""The signing identity: encrypted at rest, passphrase checks, rotation keeps old certs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evidence.keys import (
    ensure_signing_identity,
    known_certificates,
    load_signer,
    normalise_fingerprint,
    rotate_signing_identity,
    verify_signature,
)
from storage.errors import ConfigurationError, InvalidInputError


def test_key_is_encrypted_pkcs8_and_cert_names_the_authority(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="Київ CCTV",
                                     passphrase="s3cret")
    pem = (tmp_path / "signing-key.pem").read_text()
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert "Київ CCTV evidence authority" in signer.subject
    signature = signer.sign(b"data")
    assert len(signature) == 64 and verify_signature(signer.certificate, signature, b"data")
    openssl = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "signer.pem"), "-noout",
                              "-fingerprint", "-sha256"], capture_output=True, text=True,
                             check=True).stdout
    assert normalise_fingerprint(openssl.split("=", 1)[1]) == signer.fingerprint_sha256
    again = ensure_signing_identity(keys_dir=tmp_path, organisation="x", passphrase="s3cret")
    assert again.fingerprint_sha256 == signer.fingerprint_sha256


def test_wrong_missing_passphrase_and_missing_key(tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="right")
    with pytest.raises(ConfigurationError, match="could not be decrypted"):
        load_signer(keys_dir=tmp_path, passphrase="wrong")
    with pytest.raises(ConfigurationError, match="set OKO_KEY_PASSPHRASE"):
        load_signer(keys_dir=tmp_path, passphrase=None)
    with pytest.raises(ConfigurationError, match="run `oko init` first"):
        load_signer(keys_dir=tmp_path / "none", passphrase="right")
    assert not (tmp_path / "none").exists()


def test_rotation_keeps_old_certificates(tmp_path: Path) -> None:
    old = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    with pytest.raises(ConfigurationError, match="could not be decrypted"):
        rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="bad")
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        old.fingerprint_sha256
    new = rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    assert new.fingerprint_sha256 != old.fingerprint_sha256
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        new.fingerprint_sha256
    fingerprints = [c.fingerprint(__import__("cryptography.hazmat.primitives.hashes",
                                             fromlist=["SHA256"]).SHA256()).hex()
                    for c in known_certificates(tmp_path)]
    assert set(fingerprints) == {old.fingerprint_sha256, new.fingerprint_sha256}


def test_fingerprint_input_forms() -> None:
    raw = "ab" * 32
    assert normalise_fingerprint(":".join(["AB"] * 32)) == raw
    assert normalise_fingerprint("sha256 Fingerprint=" + ":".join(["AB"] * 32)) == raw
    with pytest.raises(InvalidInputError, match="is not a SHA-256 certificate fingerprint"):
        normalise_fingerprint("abc")
