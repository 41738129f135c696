"""Trust anchors and the signer.pem chain: who vouches, and what fails the bundle."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from oko_verify import (
    InvalidFingerprintError,
    TrustAnchorError,
    TrustAnchors,
    Verdict,
    VerificationReport,
    certificate_fingerprint,
    load_pem_certificates,
    merge,
    normalise_fingerprint,
    verify_bundle,
)

from tests.verifier.bags import SIGNED_AT, make_bag, resign
from tests.verifier.pki import EPOCH, Leaf, make_root, name, pem, self_signed_leaf, write


def failed(report: VerificationReport) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.failures]


def roots(*certificates: x509.Certificate) -> TrustAnchors:
    return TrustAnchors(certificates=certificates)


def test_the_root_as_anchor_makes_the_bundle_valid(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue()
    bag = make_bag(tmp_path, leaf)
    report = verify_bundle(bag, roots(root.certificate))
    assert report.verdict is Verdict.VALID and report.exit_code == 0, failed(report)
    assert report.ok and report.intact
    assert report.root_fingerprint == certificate_fingerprint(root.certificate)
    assert report.signer_fingerprint == certificate_fingerprint(leaf.certificate)
    assert report.signed_at == SIGNED_AT
    assert report.summary == (
        "VALID: the bundle is intact and signed by 'Kyiv municipal CCTV evidence signing', "
        "which chains to your trusted root 'Kyiv municipal CCTV evidence authority' "
        f"(certificate {report.root_fingerprint}).")
    for fingerprint in (report.root_fingerprint, report.signer_fingerprint):
        assert fingerprint is not None
        assert verify_bundle(bag, TrustAnchors(fingerprints=(fingerprint.upper(),))).ok
    assert verify_bundle(bag, roots(leaf.certificate)).ok  # a leaf trusted directly


def test_no_anchor_leaves_it_intact_and_says_what_to_compare(tmp_path: Path) -> None:
    root = make_root()
    bag = make_bag(tmp_path, root.issue())
    report = verify_bundle(bag)
    assert report.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED and report.exit_code == 3
    assert report.intact and not report.ok
    assert [c.name for c in report.failures] == ["trust"]
    root_fp = certificate_fingerprint(root.certificate)
    assert f"compare root fingerprint {root_fp} (signer {report.signer_fingerprint})" \
        in report.summary
    assert "with the one the issuing installation published" in report.summary
    assert f"--fingerprint {root_fp} or --trust-store DIR" in report.summary
    assert report.to_dict()["verdict"] == "INTACT_SIGNER_NOT_TRUSTED"


def test_a_stranger_under_the_same_subject(tmp_path: Path) -> None:
    """Re-signed by a fresh key under the real names: intact with no anchor, INVALID when
    pinned to the real signer, intact-not-trusted against the real root."""
    real_root = make_root()
    real_leaf = real_root.issue()
    bag = make_bag(tmp_path, real_leaf)
    stranger_root = make_root()  # same subject "Kyiv municipal CCTV evidence authority"
    stranger = stranger_root.issue()
    (bag / "signer.pem").write_bytes(stranger.chain_pem)
    resign(bag, stranger)

    assert verify_bundle(bag).verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    pinned = verify_bundle(bag, TrustAnchors(
        fingerprints=(certificate_fingerprint(real_leaf.certificate),)))
    assert pinned.verdict is Verdict.INVALID and pinned.exit_code == 1
    assert [c.name for c in pinned.failures] == ["trust"]
    assert "INVALID: 1 check(s) failed: trust: no certificate of signer.pem has the pinned" \
        in pinned.summary
    against_root = verify_bundle(bag, roots(real_root.certificate))
    assert against_root.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    assert "one of yours has the same name: it is another key" in against_root.summary


def test_a_root_missing_from_the_store_is_intact_and_says_so(tmp_path: Path) -> None:
    issuer = make_root()
    other = make_root("Lviv municipal CCTV evidence authority")
    bag = make_bag(tmp_path / "bag", issuer.issue())
    store = tmp_path / "store"
    write(store / "lviv-root.pem", other.pem)
    report = verify_bundle(bag, TrustAnchors.from_store(store))
    assert report.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    assert ("its root 'Kyiv municipal CCTV evidence authority' is not among the 1 "
            "certificate(s) you trust") in report.summary
    write(store / "kyiv-root.crt", issuer.pem)
    assert verify_bundle(bag, TrustAnchors.from_store(store)).ok


def test_a_chain_carrying_only_the_signing_certificate_is_completed_by_the_anchor(
        tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue()
    bag = make_bag(tmp_path, leaf)
    (bag / "signer.pem").write_bytes(pem(leaf.certificate))
    resign(bag, leaf)
    assert verify_bundle(bag, roots(root.certificate)).ok
    alone = verify_bundle(bag, roots(make_root().certificate))  # its issuer is unknown
    assert alone.verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED


def test_an_expired_signing_certificate_at_signing_time_is_invalid(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue(not_before=EPOCH, days=30)  # expired long before SIGNED_AT
    report = verify_bundle(make_bag(tmp_path, leaf), roots(root.certificate))
    assert report.verdict is Verdict.INVALID
    assert failed(report) == [
        "certificate chain: the signing certificate expired at 2026-01-31T00:00:00Z, "
        "before the signing time 2026-10-28T14:00:05Z"]


def test_a_certificate_not_yet_valid_at_signing_time_is_invalid(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue(not_before=SIGNED_AT + timedelta(days=1))
    report = verify_bundle(make_bag(tmp_path, leaf), roots(root.certificate))
    assert report.verdict is Verdict.INVALID
    assert any("is not valid until" in p for p in failed(report))


def test_revocation_counts_from_its_date(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue()
    before = make_bag(tmp_path / "before", leaf, signed_at=SIGNED_AT - timedelta(days=10))
    after = make_bag(tmp_path / "after", leaf, signed_at=SIGNED_AT + timedelta(days=10))
    root.revoke(leaf, SIGNED_AT)
    store = tmp_path / "store"
    write(store / "root.pem", root.pem)
    write(store / "evidence.crl", root.crl())
    anchors = TrustAnchors.from_store(store)
    assert len(anchors.crls) == 1
    early = verify_bundle(before, anchors)
    assert early.verdict is Verdict.VALID, failed(early)
    assert any("revoked at 2026-10-28T14:00:05Z, after this bundle was signed" in c.detail
               for c in early.checks)
    late = verify_bundle(after, anchors)
    assert late.verdict is Verdict.INVALID
    assert failed(late) == ["certificate chain: the signing certificate was revoked at "
                            "2026-10-28T14:00:05Z, before the signing time "
                            "2026-11-07T14:00:05Z"]


def test_a_crl_not_signed_by_the_issuer_is_ignored(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue()
    bag = make_bag(tmp_path / "bag", leaf)
    root.revoke(leaf, EPOCH)
    forged = x509.load_pem_x509_crl(root.crl(signer=make_root().key))
    report = verify_bundle(bag, TrustAnchors(certificates=(root.certificate,), crls=(forged,)))
    assert report.verdict is Verdict.VALID, failed(report)
    assert any("is not signed by it; ignored" in c.detail for c in report.checks)


def test_issuers_must_be_cas_and_the_leaf_must_sign(tmp_path: Path) -> None:
    root = make_root()
    not_a_ca = root.issue(subject="Not a CA")
    key = Ed25519PrivateKey.generate()
    certificate = (x509.CertificateBuilder()
                   .subject_name(name("Signed by a non-CA"))
                   .issuer_name(not_a_ca.certificate.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(EPOCH).not_valid_after(EPOCH + timedelta(days=3650))
                   .sign(not_a_ca.key, None))  # no key usage at all
    signer = Leaf(key=key, certificate=certificate,
                  chain=(certificate, not_a_ca.certificate, root.certificate))
    report = verify_bundle(make_bag(tmp_path / "a", signer), roots(root.certificate))
    problems = failed(report)
    assert report.verdict is Verdict.INVALID
    assert "certificate chain: issuer 'Not a CA' is not a CA (BasicConstraints)" in problems
    assert "certificate chain: issuer 'Not a CA' lacks the keyCertSign key usage" in problems
    assert "certificate chain: the signing certificate lacks the digitalSignature key usage" \
        in problems
    no_sign = root.issue(sign=False)
    report = verify_bundle(make_bag(tmp_path / "b", no_sign), roots(root.certificate))
    assert failed(report) == [
        "certificate chain: the signing certificate lacks the digitalSignature key usage"]


def test_a_broken_link_is_invalid_and_never_trusted(tmp_path: Path) -> None:
    root = make_root()
    stranger = self_signed_leaf("Kyiv municipal CCTV evidence signing")
    bag = make_bag(tmp_path, stranger)
    (bag / "signer.pem").write_bytes(pem(stranger.certificate, root.certificate))
    resign(bag, stranger)
    report = verify_bundle(bag, roots(root.certificate))
    assert report.verdict is Verdict.INVALID
    assert any("is not issued by certificate 2" in p for p in failed(report))
    assert any(c.name == "trust" and not c.passed for c in report.checks)


def test_the_signing_time_falls_back_to_the_bagging_date(tmp_path: Path) -> None:
    root = make_root()
    bag = make_bag(tmp_path, root.issue(), signed_at=None)
    report = verify_bundle(bag, roots(root.certificate))
    assert report.ok and report.signed_at is not None
    assert f"{report.signed_at:%H:%M:%S}" == "00:00:00"
    assert any("bag-info Bagging-Date" in c.detail for c in report.checks)


def test_openssl_verifies_the_test_pki(tmp_path: Path) -> None:
    root = make_root()
    leaf = root.issue()
    write(tmp_path / "root.pem", root.pem)
    write(tmp_path / "signer-leaf.pem", pem(leaf.certificate))
    run = subprocess.run(["openssl", "verify", "-CAfile", "root.pem", "signer-leaf.pem"],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "signer-leaf.pem: OK" in run.stdout, run.stderr
    stranger = make_root()
    write(tmp_path / "stranger.pem", stranger.pem)
    run = subprocess.run(["openssl", "verify", "-CAfile", "stranger.pem", "signer-leaf.pem"],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode != 0


@pytest.mark.parametrize("text", [
    "AB" * 32, ":".join(["ab"] * 32), "sha256 Fingerprint=" + ":".join(["AB"] * 32),
    "SHA256 Fingerprint=" + "ab" * 32 + "\n"])
def test_fingerprints_in_every_usual_spelling(text: str) -> None:
    assert normalise_fingerprint(text) == "ab" * 32


@pytest.mark.parametrize("text", ["", "nope", "ab" * 31, "zz" * 32, "ab" * 33,
                                  "\x1b[31m" + "ab" * 32])
def test_a_malformed_fingerprint_is_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(InvalidFingerprintError, match="is not a SHA-256 certificate") as err:
        normalise_fingerprint(text)
    assert isinstance(err.value, ValueError) and "\x1b" not in str(err.value)
    with pytest.raises(InvalidFingerprintError):
        TrustAnchors(fingerprints=(text,))


def test_trust_stores_and_merging(tmp_path: Path) -> None:
    a, b = make_root(), make_root("Lviv municipal CCTV evidence authority")
    store = tmp_path / "store"
    write(store / "chain.pem", a.pem + b.pem)
    write(store / "notes.txt", b"not a certificate; ignored")
    write(store / "revoked.crl.pem", a.crl())
    (store / "sub").mkdir()
    anchors = TrustAnchors.from_store(store)
    assert [certificate_fingerprint(c) for c in anchors.certificates] == [
        certificate_fingerprint(a.certificate), certificate_fingerprint(b.certificate)]
    assert len(anchors.crls) == 1
    merged = merge(anchors, TrustAnchors(fingerprints=("AB" * 32,)), anchors)
    assert len(merged.certificates) == 2 and merged.fingerprints == ("ab" * 32,)
    assert len(load_pem_certificates(a.pem + b.pem)) == 2


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "is not a readable PEM certificate"),
    ("broken.crl", b"garbage", "is not a readable CRL"),
])
def test_an_unreadable_store_file_is_named(tmp_path: Path, name: str, content: bytes,
                                           message: str) -> None:
    write(tmp_path / "store" / name, content)
    with pytest.raises(TrustAnchorError, match=message):
        TrustAnchors.from_store(tmp_path / "store")


def test_an_empty_or_missing_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrustAnchorError, match="holds no certificate"):
        TrustAnchors.from_store(tmp_path / "empty")
    with pytest.raises(TrustAnchorError, match="is not a directory"):
        TrustAnchors.from_store(tmp_path / "missing")
