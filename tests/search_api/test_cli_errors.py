"""How the CLI fails: usage errors are Click's message and exit 2, domain errors one
sentence and their own code, a bug one sentence and exit 70 with the traceback logged.

Also: commands that need no model never import torch or open_clip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_api import cli
from search_api.cli import setup
from search_api.state import AppState
from tests.search_api.jobs.conftest import settings_env

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def oko_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("OKO_HOME", str(home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("COLUMNS", "400")
    return home


def test_an_unexpected_failure_is_one_sentence_with_the_traceback_logged(
    oko_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def broken_setup(state: AppState) -> list[str]:
        raise RuntimeError("disk controller fell over")

    monkeypatch.setattr(setup, "run_setup", broken_setup)

    assert cli.main(["init"]) == 70
    err = " ".join(capsys.readouterr().err.split())
    log = oko_home / "logs" / "cli-errors.log"
    assert err == f"error: Oko failed unexpectedly (RuntimeError); the details are in {log}."
    assert "Traceback" not in err
    assert "disk controller fell over" in log.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["cameras", "add", "--id", "CAM-9"], "Missing option '--name'"),
    (["case", "create", "X"], "Missing option '--title'"),
    (["cameras", "list", "--bogus"], "No such option '--bogus'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["jobs", "--limit", "0"], "Invalid value for '--limit'"),
    (["users", "add", "olena", "--agency", "police", "--role", "emperor"],
     "Invalid value for '--role'"),
])
def test_usage_errors_print_clicks_message_and_exit_2(
    oko_home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    assert cli.main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert "Usage:" in err or "Try 'oko" in err
    assert "unexpectedly" not in err
    assert not (oko_home / "logs" / "cli-errors.log").exists()


def test_a_bad_option_value_caught_by_a_request_model_is_one_sentence_and_exit_2(
    oko_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["search", "car", "--similar", "0", "--purpose", "KV-1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: Invalid similar_to_frame_id:")
    assert "unexpectedly" not in err


def test_a_domain_error_keeps_its_sentence_and_exit_code(
    oko_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["case", "show", "KV-404"]) == 1
    assert " ".join(capsys.readouterr().err.split()) == "error: Case KV-404 does not exist."


def test_acting_as_an_unknown_user_is_refused(
    oko_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--as", "nobody", "cameras", "list"]) == 1
    assert " ".join(capsys.readouterr().err.split()) == "error: User 'nobody' does not exist."


HEAVY = ("torch", "torchvision", "open_clip")

PROBE = """
import json, sys
from search_api.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
"""


def _probe(args: list[str], env: dict[str, str], modules: tuple[str, ...]) -> dict[str, object]:
    run = subprocess.run([sys.executable, "-c", PROBE % (modules,), *args], env=env,
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [
    ["cameras", "list", "--json"], ["users", "list", "--json"], ["case", "list", "--json"],
    ["jobs", "--json"], ["audit", "verify"], ["init"], ["keys", "--help"],
])
def test_commands_that_need_no_model_never_import_torch(state: AppState,
                                                        args: list[str]) -> None:
    env = settings_env(state.settings) | {"OKO_FIRST_ADMIN_PASSWORD": "a long admin password"}
    result = _probe(args, env, HEAVY)
    assert result["loaded"] == []
    assert result["code"] == 0


def test_verify_loads_no_model_index_database_or_pdf_stack(tmp_path: Path,
                                                          state: AppState) -> None:
    missing = tmp_path / "no-such-bundle.zip"
    result = _probe(["verify", str(missing)], settings_env(state.settings),
                    (*HEAVY, "faiss", "fastapi", "celery", "numpy", "sqlalchemy", "reportlab"))
    assert result == {"code": 2, "loaded": []}
