"""Trusted timestamps (RFC 3161) for bundles, against the real test TSA (tests/tsa_service).

Each export here is checked by openssl and the stand-alone verifier; each bad input
(a TSA that is down, one whose certificate is not trusted, a token for other data) gets
its one-sentence error and leaves nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from oko_verify.bag import TIMESTAMP, parse_bag_info
from oko_verify.cli import tsa_anchors
from oko_verify.report import Verdict
from oko_verify.trust import TrustAnchors, load_certificate_file
from oko_verify.verify import verify_bundle
from sqlmodel import select

from evidence.exports import ExportResult
from evidence.timestamp import (
    TimestampAuthority,
    TimestampMismatchError,
    TsaNotTrustedError,
    TsaUnreachableError,
    authority_from,
    fetch_timestamp,
)
from storage.errors import ConfigurationError
from storage.models.evidence import CustodyEntry
from tests.evidence.conftest import EvidenceWorld
from tests.tsa_service import TsaService


def authority(tsa: TsaService, ca: TsaService | None = None) -> TimestampAuthority:
    """The TSA at ``tsa.url``, trusted through ``ca``'s CA certificate (default: its own)."""
    return TimestampAuthority(url=tsa.url, ca_cert_pem=(ca or tsa).ca_cert_path.read_bytes(),
                              timeout_seconds=5)


def export(world: EvidenceWorld, out: Path, *, tsa: TimestampAuthority | None,
           no_timestamp: bool = False) -> ExportResult:
    return world.export(out, timestamp_authority=tsa, no_timestamp=no_timestamp)


def unzip(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    [bag] = list(into.iterdir())
    return bag


def custody_count(world: EvidenceWorld) -> int:
    with world.session() as session:
        return len(session.exec(select(CustodyEntry)).all())


def trusting(tsa: TsaService) -> TrustAnchors:
    return TrustAnchors(certificates=tuple(load_certificate_file(tsa.ca_cert_path)))


def test_a_token_from_the_real_tsa_is_checked_and_openssl_agrees(
        running_tsa: TsaService, tmp_path: Path) -> None:
    data = b"the exact bytes of a signature"
    stamp = fetch_timestamp(data, authority(running_tsa))
    assert stamp.token.tsa == "'Oko test TSA'" and stamp.token.digest_algorithm == "sha256"
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "t.tsr").write_bytes(stamp.response)
    ok = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "data"),
                         "-in", str(tmp_path / "t.tsr"), "-CAfile",
                         str(running_tsa.ca_cert_path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout
    (tmp_path / "other").write_bytes(data + b"!")
    bad = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "other"),
                          "-in", str(tmp_path / "t.tsr"), "-CAfile",
                          str(running_tsa.ca_cert_path)], capture_output=True, text=True)
    assert bad.returncode != 0


def test_a_tsa_that_is_down_is_one_sentence(down_tsa: TsaService) -> None:
    with pytest.raises(TsaUnreachableError) as caught:
        fetch_timestamp(b"x", authority(down_tsa))
    message = str(caught.value)
    assert message.startswith(f"The time-stamping authority at {down_tsa.url} cannot be "
                              "reached (")
    assert message.endswith("export with --no-timestamp to go without a trusted time.")
    assert "\n" not in message and caught.value.exit_code == 4


def test_a_tsa_under_another_ca_is_not_trusted(untrusted_tsa: TsaService,
                                               tsa_service: TsaService) -> None:
    with pytest.raises(TsaNotTrustedError, match=r"^The time-stamping authority at "
                       r"http://127\.0\.0\.1:\d+/tsa is not trusted: its certificate "
                       r"'Stranger TSA' fails \(it does not chain to OKO_TSA_CA_CERT\)\.$"):
        fetch_timestamp(b"x", authority(untrusted_tsa, ca=tsa_service))


def test_a_tsa_answering_for_other_data_is_refused(running_tsa: TsaService) -> None:
    """A TSA (or something between) that answers with a token for another request."""
    other = fetch_timestamp(b"another request", authority(running_tsa)).response

    class Replay(TsaService):
        def reply(self, query: bytes) -> bytes:
            return other

    replay = Replay(root=running_tsa.root)
    replay.start()
    try:
        with pytest.raises(TimestampMismatchError, match="the token is for different data"):
            fetch_timestamp(b"our signature", authority(replay, ca=running_tsa))
    finally:
        replay.stop()


def test_the_tsa_settings_need_a_readable_ca(tmp_path: Path) -> None:
    assert authority_from(None, None) is None
    with pytest.raises(ConfigurationError, match="OKO_TSA_CA_CERT is not"):
        authority_from("http://tsa.example/", None)
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="not a PEM certificate"):
        authority_from("http://tsa.example/", tmp_path / "bad.pem")


def test_export_with_a_tsa_carries_a_token_openssl_and_oko_verify_accept(
        world: EvidenceWorld, running_tsa: TsaService, tmp_path: Path) -> None:
    result = export(world, tmp_path / "stamped.zip", tsa=authority(running_tsa))
    bag = unzip(result.bundle_path, tmp_path / "x")
    assert (bag / TIMESTAMP).is_file()
    tag_manifest = (bag / "tagmanifest-sha256.txt").read_text()
    assert TIMESTAMP not in tag_manifest  # like signature.sig: it covers the signature
    info = parse_bag_info((bag / "bag-info.txt").read_text())
    assert info["Oko-Trusted-Time"] == (f"TSA {running_tsa.url} (RFC 3161 token in "
                                        "timestamp.tsr over signature.sig)")
    verify_text = (bag / "VERIFY.txt").read_text()
    assert ("openssl ts -verify -data signature.sig -in timestamp.tsr -CAfile ../tsa-ca.pem"
            in verify_text)
    # the prosecutor's command, as VERIFY.txt prints it, run in the bag
    (tmp_path / "x" / "tsa-ca.pem").write_bytes(running_tsa.ca_cert_path.read_bytes())
    ok = subprocess.run(["openssl", "ts", "-verify", "-data", "signature.sig", "-in",
                         "timestamp.tsr", "-CAfile", "../tsa-ca.pem"], cwd=bag,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr

    signer = TrustAnchors(fingerprints=(world.signer.fingerprint_sha256,))
    report = verify_bundle(result.bundle_path, signer,
                           tsa_anchors=tsa_anchors(signer, [running_tsa.ca_cert_path]))
    assert report.verdict is Verdict.VALID, report.summary
    assert report.trusted_time is not None
    assert f"Trusted time (TSA 'Oko test TSA'): {report.trusted_time:%Y-%m-%dT%H:%M:%SZ}" \
        in report.summary
    # without the TSA's CA: the bundle is still VALID, the time is not trusted
    untrusted = verify_bundle(result.bundle_path, signer)
    assert untrusted.verdict is Verdict.VALID and untrusted.trusted_time is None
    [warning] = [c for c in untrusted.checks if c.name == "timestamp trust"]
    assert not warning.passed and not warning.fatal
    assert warning.detail.startswith("timestamp not trusted: nothing you gave vouches for "
                                     "the TSA 'Oko test TSA'")
    assert "The timestamp's TSA 'Oko test TSA' is not trusted." in untrusted.summary


def test_export_fails_in_one_sentence_when_the_tsa_is_down_and_writes_nothing(
        world: EvidenceWorld, down_tsa: TsaService, tmp_path: Path) -> None:
    out = tmp_path / "out" / "down.zip"
    out.parent.mkdir()
    before = custody_count(world)
    with pytest.raises(TsaUnreachableError, match=r"cannot be reached .*--no-timestamp"):
        export(world, out, tsa=authority(down_tsa))
    assert not out.exists() and list(out.parent.iterdir()) == []  # no .part either
    assert custody_count(world) == before
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []

    declined = export(world, out, tsa=authority(down_tsa), no_timestamp=True)
    bag = unzip(declined.bundle_path, tmp_path / "x")
    assert not (bag / TIMESTAMP).exists()
    info = parse_bag_info((bag / "bag-info.txt").read_text())
    wanted = "none (declined: --no-timestamp by investigator-police)"
    assert info["Oko-Trusted-Time"] == wanted
    last = json.loads((bag / "data" / "custody.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["details"]["trusted_time"]) == ("export", wanted)
    with world.session() as session:
        entry = session.exec(select(CustodyEntry).where(CustodyEntry.action == "export")).one()
    assert entry.details["trusted_time"] == wanted
    report = verify_bundle(declined.bundle_path,
                           TrustAnchors(fingerprints=(world.signer.fingerprint_sha256,)))
    assert report.verdict is Verdict.VALID
    assert any(c.name == "timestamp" and c.passed and c.detail.startswith("no trusted time")
               for c in report.checks)


def test_export_refuses_a_tsa_whose_certificate_is_not_trusted(
        world: EvidenceWorld, untrusted_tsa: TsaService, tsa_service: TsaService,
        tmp_path: Path) -> None:
    out = tmp_path / "untrusted.zip"
    before = custody_count(world)
    with pytest.raises(TsaNotTrustedError, match="is not trusted"):
        export(world, out, tsa=authority(untrusted_tsa, ca=tsa_service))
    assert not out.exists() and list(tmp_path.glob(".untrusted.zip*")) == []
    assert custody_count(world) == before


def test_export_without_a_tsa_says_no_trusted_time(world: EvidenceWorld,
                                                  tmp_path: Path) -> None:
    result = export(world, tmp_path / "plain.zip", tsa=None)
    bag = unzip(result.bundle_path, tmp_path / "x")
    info = parse_bag_info((bag / "bag-info.txt").read_text())
    assert info["Oko-Trusted-Time"] == "none (no TSA configured)"
    assert not (bag / TIMESTAMP).exists()
    assert "openssl ts" not in (bag / "VERIFY.txt").read_text()
