"""Round trip, standard-tool checks and every tamper case, each detected and named."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from evidence.bundle import TAG_MANIFEST
from evidence.verify import (
    BundleInvalidError,
    PinnedFingerprint,
    SignerNotTrustedError,
    TrustedCertificates,
    Verdict,
    VerificationReport,
    raise_for_failure,
    verify_bundle,
)
from storage.errors import OkoError
from tests.evidence.conftest import EvidenceWorld
from tests.verifier.bags import resign
from tests.verifier.pki import self_signed_leaf

BAG = "oko-KV-2026-001"


@pytest.fixture
def bag(bundle_zip: Path, tmp_path: Path) -> Path:
    """A private, extracted copy of the session bundle that a test may tamper with."""
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(tmp_path / "x")
    return tmp_path / "x" / BAG


def failed(report: VerificationReport) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.failures]


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if offset is None else offset
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip_zip_without_an_anchor_is_intact_but_not_trusted(bundle_zip: Path) -> None:
    report = verify_bundle(bundle_zip)
    assert report.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED, failed(report)
    assert (report.ok, report.intact, report.exit_code) == (False, True, 3)
    assert [c.name for c in report.failures] == ["trust"]
    assert report.case_number == "KV-2026-001"
    assert f"compare root fingerprint {report.root_fingerprint}" in report.summary
    assert report.to_dict()["verdict"] == "INTACT_SIGNER_NOT_TRUSTED"
    names = {c.name for c in report.checks}
    assert {"bag structure", "payload hash", "payload completeness", "tag manifest",
            "signature", "certificate chain", "trust", "custody chain", "provenance",
            "evidence digest"} <= names
    with pytest.raises(SignerNotTrustedError) as raised:
        raise_for_failure(report)
    assert isinstance(raised.value, OkoError) and raised.value.exit_code == 3


def test_pinned_fingerprint_and_trusted_cert(bundle_zip: Path, shared_world: EvidenceWorld,
                                             tmp_path: Path) -> None:
    fingerprint = shared_world.signer.fingerprint_sha256
    pinned = verify_bundle(bundle_zip, PinnedFingerprint(fingerprint.upper()))
    assert pinned.verdict is Verdict.VALID and pinned.exit_code == 0, failed(pinned)
    wrong = verify_bundle(bundle_zip, PinnedFingerprint("00" * 32))
    assert wrong.verdict is Verdict.INVALID
    [problem] = failed(wrong)
    assert problem.startswith(f"trust: no certificate of signer.pem has the pinned "
                              f"fingerprint {'00' * 32}")
    with pytest.raises(BundleInvalidError, match="1 check"):
        raise_for_failure(wrong)
    trusted = TrustedCertificates((shared_world.signer.certificate,))
    assert verify_bundle(bundle_zip, trusted).ok


def test_standard_tools_sha256sum_and_openssl(bag: Path) -> None:
    for manifest in ("manifest-sha256.txt", TAG_MANIFEST):
        run = subprocess.run(["sha256sum", "-c", manifest], cwd=bag, capture_output=True,
                             text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
    pubkey = subprocess.run(["openssl", "x509", "-in", "signer.pem", "-pubkey", "-noout"],
                            cwd=bag, capture_output=True, check=True).stdout
    (bag.parent / "pub.pem").write_bytes(pubkey)
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(bag.parent / "pub.pem"),
              "-rawin", "-in", TAG_MANIFEST, "-sigfile", "signature.sig"]
    run = subprocess.run(verify, cwd=bag, capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "Signature Verified Successfully" in run.stdout
    flip_byte(bag / TAG_MANIFEST, 3)
    run = subprocess.run(verify, cwd=bag, capture_output=True, text=True, check=False)
    assert run.returncode != 0


def test_extracted_directory_verifies(bag: Path, shared_world: EvidenceWorld) -> None:
    assert verify_bundle(bag, PinnedFingerprint(shared_world.signer.fingerprint_sha256)).ok


@pytest.mark.parametrize(("target", "expected"), [
    ("data/clips/clip-001-cam-1.mp4", [
        "payload hash: data/clips/clip-001-cam-1.mp4: SHA-256 mismatch",
        "custody chain: data/clips/clip-001-cam-1.mp4: does not match the hash recorded",
        "provenance: data/clips/clip-001-cam-1.mp4: SHA-256 differs from provenance.jsonld"]),
    ("data/custody.jsonl", ["payload hash: data/custody.jsonl: SHA-256 mismatch",
                            "custody chain: data/custody.jsonl"]),
    ("data/provenance.jsonld", ["payload hash: data/provenance.jsonld: SHA-256 mismatch",
                                "provenance: data/originals/"]),
    ("data/report.pdf", ["payload hash: data/report.pdf: SHA-256 mismatch"]),
    ("manifest-sha256.txt", ["tag manifest: manifest-sha256.txt: SHA-256 mismatch"]),
    (TAG_MANIFEST, ["signature: signature.sig: does not verify"]),
    ("signature.sig", ["signature: signature.sig: does not verify"]),
])
def test_one_flipped_byte_is_named(bag: Path, target: str, expected: list[str]) -> None:
    path = bag / target
    if target == "data/custody.jsonl":
        text = path.read_text(encoding="utf-8")  # flip a digit of a hash: still valid JSON
        index = text.index('"entry_hash": "') + len('"entry_hash": "') + 5
        path.write_text(text[:index] + ("1" if text[index] != "1" else "2") + text[index + 1:],
                        encoding="utf-8")
    elif target == "data/provenance.jsonld":
        text = path.read_text(encoding="utf-8")
        index = text.index('"@value": "') + len('"@value": "') + 3
        path.write_text(text[:index] + ("1" if text[index] != "1" else "2") + text[index + 1:],
                        encoding="utf-8")
    elif target == "manifest-sha256.txt":
        flip_byte(path, 2)  # a hex digit of the first hash
    elif target == TAG_MANIFEST:
        flip_byte(path, 70)
    else:
        flip_byte(path)
    report = verify_bundle(bag)
    problems = failed(report)
    assert not report.ok
    for needle in expected:
        assert any(p.startswith(needle) for p in problems), (needle, problems)


def test_certificate_swapped_for_another_keys(bag: Path) -> None:
    other = self_signed_leaf("Mallory evidence authority")
    (bag / "signer.pem").write_bytes(other.chain_pem)
    problems = failed(verify_bundle(bag))
    assert "tag manifest: signer.pem: SHA-256 mismatch" in problems[0]
    assert any(p.startswith("signature: signature.sig: does not verify") for p in problems)


def test_bundle_resigned_by_a_stranger_under_the_same_subject(
        bag: Path, shared_world: EvidenceWorld) -> None:
    stranger = self_signed_leaf(shared_world.signer.certificate.subject)
    (bag / "signer.pem").write_bytes(stranger.chain_pem)
    resign(bag, stranger)
    unanchored = verify_bundle(bag)  # self-consistent: hashes and signature all check out
    assert unanchored.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED and not unanchored.ok
    assert unanchored.signer_fingerprint != shared_world.signer.fingerprint_sha256
    pinned = verify_bundle(bag, PinnedFingerprint(shared_world.signer.fingerprint_sha256))
    assert pinned.verdict is Verdict.INVALID and pinned.exit_code == 1
    assert [c.name for c in pinned.failures] == ["trust"]
    trusted = verify_bundle(bag, TrustedCertificates((shared_world.signer.certificate,)))
    assert trusted.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    assert stranger.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) != b""


def test_deleted_file_is_named(bag: Path) -> None:
    (bag / "data" / "stills" / "clip-002-cam-1.jpg").unlink()
    problems = failed(verify_bundle(bag))
    assert ("payload completeness: data/stills/clip-002-cam-1.jpg: listed in "
            "manifest-sha256.txt but missing") in problems
    assert any("provenance: data/stills/clip-002-cam-1.jpg" in p for p in problems)


def test_added_file_is_named(bag: Path) -> None:
    (bag / "data" / "clips" / "extra.mp4").write_bytes(b"not evidence")
    (bag / "notes.txt").write_text("hello", encoding="utf-8")
    problems = failed(verify_bundle(bag))
    assert ("payload completeness: data/clips/extra.mp4: present but not listed in "
            "manifest-sha256.txt") in problems
    assert "tag manifest: notes.txt: present but not covered by tagmanifest-sha256.txt" \
        in problems
    assert "provenance: data/clips/extra.mp4: has no derivation in provenance.jsonld" \
        in problems


def test_every_check_runs_even_when_structure_is_broken(bag: Path) -> None:
    (bag / "manifest-sha256.txt").unlink()
    report = verify_bundle(bag)
    names = {c.name for c in report.failures}
    assert {"bag structure", "payload completeness", "tag manifest", "evidence digest"} <= names
    assert any(c.name == "custody chain" and c.passed for c in report.checks)


def test_report_has_no_truth_value(bundle_zip: Path) -> None:
    report = verify_bundle(bundle_zip)
    with pytest.raises(TypeError, match=r"report\.ok"):
        bool(report)


def test_copy_of_bundle_zip_in_dir_with_one_top_folder(bundle_zip: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.zip"
    shutil.copy(bundle_zip, copy)
    assert verify_bundle(copy).intact


def test_the_exporter_and_the_verifier_share_the_bag_layout() -> None:
    """evidence.bundle writes with the names and digest oko_verify.bag reads with."""
    import oko_verify.bag as bag

    import evidence.bundle as bundle

    for name in ("BAGIT_TXT", "PAYLOAD_MANIFEST", "TAG_MANIFEST", "SIGNATURE", "SIGNER_CERT",
                 "REPORT_PATH", "TAG_FILES"):
        assert getattr(bundle, name) == getattr(bag, name), name
    hashes = {"data/report.pdf": "aa" * 32, "data/custody.jsonl": "bb" * 32}
    assert bundle.evidence_digest(hashes) == bag.evidence_digest(hashes)
    assert bundle.manifest_text(hashes.items()) == bag.manifest_text(hashes.items())
