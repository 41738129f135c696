"""The redaction workflow from the CLI: `oko case redact CASE --clip N` proposes, `oko
redact exclude|approve|export` review and write a disclosure bundle that verifies; a bad
decision exits 2 with one sentence and records nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oko_verify.trust import TrustAnchors, load_pem_certificates
from sqlmodel import Session, select

from evidence.keys import ROOT_CERT_FILE
from evidence.verify import verify_bundle
from search_api.cli import main
from search_api.state import build_state
from storage.models.redaction import RedactionDecision
from storage.settings import Settings
from tests.evidence.redaction.world import RedactionWorld, build_redaction_world

Oko = Callable[..., tuple[int, str, str]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[RedactionWorld]:
    state = build_state(Settings(home=tmp_path / "oko-home", environment="test",
                                 key_passphrase="test-passphrase"))
    yield build_redaction_world(state, tmp_path)
    state.engine.dispose()


@pytest.fixture
def oko(world: RedactionWorld, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Oko:
    monkeypatch.setenv("OKO_HOME", str(world.state.settings.home))
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_propose_review_and_export_from_the_cli(oko: Oko, world: RedactionWorld,
                                                tmp_path: Path) -> None:
    number = world.case_number
    code, out, err = oko("--as", "investigator-police", "case", "redact", number,
                         "--clip", "1", "--json")
    assert code == 0, err
    proposed = json.loads(out)
    assert sorted(t["kind"] for t in proposed["tracks"]) == ["face", "face", "plate"]
    redaction_id = str(proposed["id"])

    with Session(world.state.engine) as session:
        decisions_before = len(session.exec(select(RedactionDecision)).all())
    code, _, err = oko("--as", "investigator-police", "redact", "exclude", number,
                       redaction_id, "face-1")
    assert code == 2 and "reason" in err and "Traceback" not in err
    with Session(world.state.engine) as session:
        assert len(session.exec(select(RedactionDecision)).all()) == decisions_before

    code, _, err = oko("--as", "investigator-police", "redact", "exclude", number,
                       redaction_id, "face-1", "--reason", "the suspect, for the court copy")
    assert code == 0, err
    code, _, err = oko("--as", "investigator-police", "redact", "approve", number,
                       redaction_id)
    assert code == 0, err
    bundle = tmp_path / "disclosure.zip"
    code, out, err = oko("--as", "investigator-police", "redact", "export", number,
                         "--out", str(bundle))
    assert code == 0, err
    assert "1 excluded" in out and bundle.is_file()
    root_pem = (world.state.settings.keys_dir / ROOT_CERT_FILE).read_bytes()
    report = verify_bundle(bundle, TrustAnchors(
        certificates=tuple(load_pem_certificates(root_pem))))
    assert report.ok, [c.detail for c in report.failures]
