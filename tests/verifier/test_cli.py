"""``oko-verify``: options, exit codes 0/3/1/2, JSON, and one-sentence errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from oko_verify import certificate_fingerprint
from oko_verify.cli import main

from tests.verifier.bags import make_zip
from tests.verifier.pki import Root, make_root, write


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Root, Path]:
    root = make_root()
    return root, make_zip(tmp_path, root.issue())


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_each_verdict_has_its_exit_code(pki: tuple[Root, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, bundle = pki
    monkeypatch.delenv("OKO_TRUST_STORE", raising=False)
    code, out, _ = run(capsys, str(bundle))
    assert code == 3 and out.splitlines()[-1].startswith("INTACT, SIGNER NOT TRUSTED:")
    assert "WARN trust: nothing you gave vouches" in out

    root_pem = write(tmp_path / "root.pem", root.pem)
    code, out, _ = run(capsys, str(bundle), "--trusted-cert", str(root_pem))
    assert code == 0 and out.splitlines()[-1].startswith("VALID: the bundle is intact")

    fingerprint = certificate_fingerprint(root.certificate)
    code, out, _ = run(capsys, str(bundle), "--fingerprint", "00" * 32,
                       "--fingerprint", fingerprint.upper())
    assert code == 0  # any one pin that matches vouches

    code, out, _ = run(capsys, str(bundle), "--fingerprint", "11" * 32, "--json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "INVALID" and report["exit_code"] == 1
    assert report["summary"].startswith("INVALID: 1 check(s) failed: trust:")

    store = tmp_path / "store"
    write(store / "root.crt", root.pem)
    monkeypatch.setenv("OKO_TRUST_STORE", str(store))
    code, out, _ = run(capsys, str(bundle), "--json")
    assert code == 0 and json.loads(out)["verdict"] == "VALID"
    monkeypatch.setenv("OKO_TRUST_STORE", str(tmp_path / "no-such-store"))
    code, _, _ = run(capsys, str(bundle), "--trust-store", str(store))
    assert code == 0  # the option wins over the environment


def test_a_tampered_bundle_is_invalid(pki: tuple[Root, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root, bundle = pki
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path / "x")
    [bag] = (tmp_path / "x").iterdir()
    pdf = bag / "data" / "report.pdf"
    pdf.write_bytes(pdf.read_bytes()[:-1] + b"!")
    code, out, _ = run(capsys, str(bag), "--trusted-cert",
                       str(write(tmp_path / "root.pem", root.pem)))
    assert code == 1 and "FAIL payload hash: data/report.pdf: SHA-256 mismatch" in out


@pytest.mark.parametrize(("args", "message"), [
    (["{bundle}", "--fingerprint", "nope"], "error: 'nope' is not a SHA-256 certificate"),
    (["{bundle}", "--trusted-cert", "{tmp}/missing.pem"], "missing.pem is not a readable PEM"),
    (["{bundle}", "--trust-store", "{tmp}/none"], "is not a directory"),
    (["{tmp}/missing.zip"], "missing.zip does not exist."),
    (["{tmp}/junk.zip"], "junk.zip is not a readable zip file."),
    ([], "error: the following arguments are required: BUNDLE; see oko-verify --help."),
    (["{bundle}", "--no-such-option"], "error: unrecognized arguments: --no-such-option"),
])
def test_unusable_input_and_usage_errors_exit_2_in_one_line(
        pki: tuple[Root, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    filled = [a.format(bundle=pki[1], tmp=tmp_path) for a in args]
    code, out, err = run(capsys, *filled)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_the_installed_command_and_python_m(pki: tuple[Root, Path], tmp_path: Path) -> None:
    root, bundle = pki
    command = shutil.which("oko-verify", path=str(Path(sys.executable).parent))
    assert command is not None, "make venv installs oko-verify"
    root_pem = write(tmp_path / "root.pem", root.pem)
    done = subprocess.run([command, str(bundle), "--trusted-cert", str(root_pem)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "VALID: the bundle is intact" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-m", "oko_verify", str(bundle), "--scratch-dir",
                           str(tmp_path / "scratch")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 3 and done.stderr == ""
    assert list((tmp_path / "scratch").iterdir()) == []
