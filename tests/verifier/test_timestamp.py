"""oko-verify and ``timestamp.tsr``: real tokens from the test TSA over a bag's signature.

A token for other data, a changed token, or a token bag-info promises but the bag lacks
make the bundle INVALID; a TSA nobody trusts leaves it VALID with "timestamp not trusted".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oko_verify.bag import SIGNATURE, TIMESTAMP
from oko_verify.cli import main, tsa_anchors
from oko_verify.report import Verdict
from oko_verify.trust import TrustAnchors, certificate_fingerprint
from oko_verify.verify import verify_bundle

from evidence.timestamp import TimestampAuthority, fetch_timestamp
from tests.tsa_service import TsaService
from tests.verifier.bags import finish, make_bag, write_payload
from tests.verifier.pki import Leaf, Root, make_root

PROMISE = ("Oko-Trusted-Time", "TSA http://tsa.example/ (RFC 3161 token in timestamp.tsr "
                               "over signature.sig)")


def token(tsa: TsaService, data: bytes) -> bytes:
    authority = TimestampAuthority(url=tsa.url, ca_cert_pem=tsa.ca_cert_path.read_bytes())
    return fetch_timestamp(data, authority).response


@pytest.fixture
def pki() -> tuple[Root, Leaf]:
    root = make_root()
    return root, root.issue()


def stamped_bag(tmp_path: Path, signer: Leaf, tsa: TsaService) -> Path:
    bag = make_bag(tmp_path, signer)
    (bag / TIMESTAMP).write_bytes(token(tsa, (bag / SIGNATURE).read_bytes()))
    return bag


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


def test_a_trusted_token_gives_the_tsas_time(tmp_path: Path, pki: tuple[Root, Leaf],
                                            running_tsa: TsaService,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, signer = pki
    bag = stamped_bag(tmp_path, signer, running_tsa)
    pin = certificate_fingerprint(root.certificate)
    code, out = run(capsys, str(bag), "--fingerprint", pin, "--tsa-ca",
                    str(running_tsa.ca_cert_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "VALID"
    assert report["trusted_time"] is not None
    assert report["timestamp_authority"] == "'Oko test TSA'"
    assert f"Trusted time (TSA 'Oko test TSA'): {report['trusted_time']}." in report["summary"]
    code, out = run(capsys, str(bag), "--fingerprint", pin, "--tsa-ca",
                    str(running_tsa.ca_cert_path))
    assert code == 0
    assert f"ok   timestamp: {TIMESTAMP}: RFC 3161 token by 'Oko test TSA' over {SIGNATURE}" \
        in out


def test_a_trust_store_holding_the_tsa_ca_vouches_too(
        tmp_path: Path, pki: tuple[Root, Leaf], running_tsa: TsaService) -> None:
    root, signer = pki
    bag = stamped_bag(tmp_path, signer, running_tsa)
    store = TrustAnchors(certificates=(root.certificate,))
    without = verify_bundle(bag, store)
    assert without.verdict is Verdict.VALID and without.trusted_time is None
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "root.pem").write_bytes(root.pem)
    (tmp_path / "store" / "tsa-ca.pem").write_bytes(running_tsa.ca_cert_path.read_bytes())
    anchors = TrustAnchors.from_store(tmp_path / "store")
    report = verify_bundle(bag, anchors, tsa_anchors=tsa_anchors(anchors))
    assert report.verdict is Verdict.VALID and report.trusted_time is not None


def test_a_token_for_different_data_is_invalid(tmp_path: Path, pki: tuple[Root, Leaf],
                                               running_tsa: TsaService,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root, signer = pki
    bag = make_bag(tmp_path, signer)
    (bag / TIMESTAMP).write_bytes(token(running_tsa, b"another bundle's signature"))
    code, out = run(capsys, str(bag), "--fingerprint",
                    certificate_fingerprint(root.certificate), "--tsa-ca",
                    str(running_tsa.ca_cert_path))
    assert code == 1
    assert (f"FAIL timestamp: {TIMESTAMP} does not hold for {SIGNATURE}: its message imprint "
            "is not the digest of this data: the token is for different data") in out
    assert out.splitlines()[-1].startswith("INVALID: 1 check(s) failed")


def test_a_changed_token_is_invalid(tmp_path: Path, pki: tuple[Root, Leaf],
                                    running_tsa: TsaService) -> None:
    root, signer = pki
    bag = stamped_bag(tmp_path, signer, running_tsa)
    raw = bytearray((bag / TIMESTAMP).read_bytes())
    at = raw.find(b"Oko test TSA")  # inside the signed TSTInfo (tsa name) or the certs
    raw[at] ^= 0x01
    (bag / TIMESTAMP).write_bytes(bytes(raw))
    report = verify_bundle(bag, TrustAnchors(certificates=(root.certificate,)))
    assert report.verdict is Verdict.INVALID
    [failed] = report.failures
    assert failed.name == "timestamp" and failed.detail.startswith(
        f"{TIMESTAMP} does not hold for {SIGNATURE}: ")


def test_a_promised_token_that_is_missing_is_invalid(tmp_path: Path,
                                                     pki: tuple[Root, Leaf]) -> None:
    root, signer = pki
    bag = tmp_path / "bag"
    bag.mkdir()
    write_payload(bag)
    finish(bag, signer, extra_info=(PROMISE,))
    report = verify_bundle(bag, TrustAnchors(certificates=(root.certificate,)))
    assert report.verdict is Verdict.INVALID
    assert [(c.name, c.detail) for c in report.failures] == [
        ("timestamp", f"{TIMESTAMP}: missing, though bag-info Oko-Trusted-Time says "
                      f"{PROMISE[1]}")]


def test_a_tsa_nobody_trusts_leaves_the_bundle_valid_with_a_warning(
        tmp_path: Path, pki: tuple[Root, Leaf], untrusted_tsa: TsaService,
        tsa_service: TsaService, capsys: pytest.CaptureFixture[str]) -> None:
    root, signer = pki
    bag = stamped_bag(tmp_path, signer, untrusted_tsa)
    code, out = run(capsys, str(bag), "--fingerprint",
                    certificate_fingerprint(root.certificate), "--tsa-ca",
                    str(tsa_service.ca_cert_path))
    assert code == 0
    assert ("WARN timestamp trust: timestamp not trusted: nothing you gave vouches for the "
            "TSA 'Stranger TSA'") in out
    assert out.splitlines()[-1].endswith("The timestamp's TSA 'Stranger TSA' is not trusted.")


def test_an_unreadable_tsa_ca_is_a_usage_error(tmp_path: Path, pki: tuple[Root, Leaf],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _root, signer = pki
    bag = make_bag(tmp_path, signer)
    (tmp_path / "bad.pem").write_text("no certificate here")
    capsys.readouterr()
    assert main([str(bag), "--tsa-ca", str(tmp_path / "bad.pem")]) == 2
    assert "is not a readable PEM certificate." in capsys.readouterr().err
