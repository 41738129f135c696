"""``oko case export`` with a TSA (down: one sentence, exit 4, nothing written; declined
with --no-timestamp: recorded) and ``oko verify --tsa-ca`` reporting the TSA's time."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlmodel import select

from search_api.cli import main
from storage.models.evidence import CustodyEntry
from storage.settings import Settings
from tests.evidence.conftest import EvidenceWorld
from tests.tsa_service import TsaService

NUMBER = "KV-2026-001"


@pytest.fixture
def oko(world: EvidenceWorld, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OKO_HOME", str(settings.home))
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, " ".join(err.split())

    return run


def use_tsa(monkeypatch: pytest.MonkeyPatch, tsa: TsaService) -> None:
    monkeypatch.setenv("OKO_TSA_URL", tsa.url)
    monkeypatch.setenv("OKO_TSA_CA_CERT", str(tsa.ca_cert_path))


def export_entries(world: EvidenceWorld) -> int:
    with world.session() as session:
        return len(session.exec(select(CustodyEntry)
                                .where(CustodyEntry.action == "export")).all())


def test_cli_export_with_the_tsa_down_then_declined(  # type: ignore[no-untyped-def]
        oko, world: EvidenceWorld, down_tsa: TsaService, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_tsa(monkeypatch, down_tsa)
    out = tmp_path / "down.zip"
    code, _, err = oko("--as", "investigator-police", "case", "export", NUMBER,
                       "--out", str(out))
    assert code == 4 and f"The time-stamping authority at {down_tsa.url} cannot be " \
        "reached" in err, err
    assert not out.exists() and export_entries(world) == 0
    code, _, err = oko("--as", "investigator-police", "case", "export", NUMBER,
                       "--out", str(out), "--no-timestamp")
    assert code == 0 and out.is_file(), err
    with zipfile.ZipFile(out) as archive:
        info = archive.read(f"oko-{NUMBER}/bag-info.txt").decode()
        assert f"oko-{NUMBER}/timestamp.tsr" not in archive.namelist()
    assert ("Oko-Trusted-Time: none (declined: --no-timestamp by investigator-police)"
            in info)
    assert export_entries(world) == 1


def test_cli_export_with_a_tsa_and_oko_verify_tsa_ca(  # type: ignore[no-untyped-def]
        oko, world: EvidenceWorld, running_tsa: TsaService, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_tsa(monkeypatch, running_tsa)
    out = tmp_path / "stamped.zip"
    code, _, err = oko("--as", "investigator-police", "case", "export", NUMBER,
                       "--out", str(out))
    assert code == 0, err
    pin = world.signer.fingerprint_sha256
    code, printed, _ = oko("verify", str(out), "--fingerprint", pin, "--tsa-ca",
                           str(running_tsa.ca_cert_path))
    assert code == 0
    assert "Trusted time (TSA 'Oko test TSA'): " in printed.splitlines()[-1]
    code, printed, _ = oko("verify", str(out), "--fingerprint", pin)
    assert code == 0 and "WARN timestamp trust: timestamp not trusted" in printed
