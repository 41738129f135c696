"""A bug reaches the user as one sentence and exit code 70; the traceback goes to a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_api import cli
from search_api.cli import setup
from search_api.state import AppState


def test_an_unexpected_failure_is_one_sentence_with_the_traceback_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def broken_setup(state: AppState) -> list[str]:
        raise RuntimeError("disk controller fell over")

    monkeypatch.setenv("OKO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(setup, "run_setup", broken_setup)

    assert cli.main(["init"]) == 70
    err = " ".join(capsys.readouterr().err.split())
    log = tmp_path / "home" / "logs" / "cli-errors.log"
    assert err == f"error: Oko failed unexpectedly (RuntimeError); the details are in {log}."
    assert "Traceback" not in err
    assert "disk controller fell over" in log.read_text()
