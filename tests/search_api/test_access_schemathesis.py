"""Schema fuzzing: schemathesis against a live uvicorn server on 127.0.0.1; no 5xx allowed.

The run is bounded (a few examples per operation) and authenticated as each role in
turn, so the fuzzer reaches the handlers and not only the 401 guard. Its hooks
(``schemathesis_hooks.py``) send extreme ``date-time`` values and non-ASCII strings on
purpose, and the test checks from their record that both were sent; the explicit cases
below send the same classes, and a non-ASCII CSRF header, whatever the fuzzer draws.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from evidence.keys import ensure_signing_identity
from search_api.accounts import create_user
from search_api.security import CSRF_HEADER, SESSION_COOKIE, issue_token, load_token_secret
from search_api.state import build_state
from storage.models.access import Role, User
from storage.models.media import Camera
from storage.settings import Settings
from tests.search_api.schemathesis_hooks import EXTREME_DATETIMES, NON_ASCII
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_EXAMPLES = "5"


@dataclass
class LiveServer:
    url: str
    home: Path
    users: dict[Role, User]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("fuzz") / "oko-home"
    env = {**os.environ, "OKO_HOME": str(home), "OKO_ENVIRONMENT": "test",
           "OKO_KEY_PASSPHRASE": "fuzz-passphrase", "OKO_MAX_UPLOAD_BYTES": str(2 * 1024**2),
           # the fuzzed sign-ins all come from 127.0.0.1: without this, the per-address
           # limit answers 429 to every later test on this module's server
           "OKO_LOGIN_MAX_FAILURES_PER_IP": "1000000"}
    settings = Settings(home=home, environment="test", key_passphrase="fuzz-passphrase")
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko fuzz",
                            passphrase=settings.key_passphrase)
    with Session(state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="cam-1", name="Майдан", latitude=50.45, longitude=30.52,
                           agency="police"))
        users = {role: create_user(session, username=f"fuzz-{role.value}",
                                   password="fuzz-password-1", agency="police", role=role)
                 for role in Role}
        session.commit()
    state.engine.dispose()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.search_api.fuzz_app:create_fuzz_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
        if server.poll() is not None:
            break
    else:
        server.kill()
        pytest.fail("uvicorn did not start within 120 s")
    if server.poll() is not None:
        output = server.stdout.read().decode() if server.stdout else ""
        pytest.fail(f"uvicorn exited: {output[-2000:]}")
    yield LiveServer(url, home, users)
    server.terminate()
    server.wait(timeout=30)


# Operations whose side effects would end the fuzzing session itself (sign-out) or walk
# the server's whole filesystem (ingest of an arbitrary absolute path such as "/").
EXCLUDED = ["/api/auth/logout", "/api/ingest"]


@pytest.mark.slow
@pytest.mark.parametrize("role", [Role.INVESTIGATOR, Role.ADMIN, Role.AUDITOR,
                                  Role.PROSECUTOR, Role.SUPERVISOR])
def test_fuzzing_finds_no_server_errors(live_server: LiveServer, role: Role,
                                        tmp_path: Path) -> None:
    secret = load_token_secret(live_server.home / "keys")
    token = issue_token(user=live_server.users[role], secret=secret, minutes=30).token
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run",
        f"{live_server.url}/openapi.json", "--checks", "not_a_server_error",
        "--max-examples", MAX_EXAMPLES, "--seed", "20261125", "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--no-shrink", "--no-color",
        "--request-timeout", "60", "--generation-database", "none",
        "--header", f"Authorization: Bearer {token}",
        "--report", "junit", "--report-dir", str(tmp_path),
        *[arg for path in EXCLUDED for arg in ("--exclude-path", path)],
    ]
    record = tmp_path / "sent.jsonl"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "OKO_FUZZ_RECORD": str(record)}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            timeout=900, check=False, env=env)
    failures = result.stdout.split("FAILURES")[-1]
    assert result.returncode == 0, failures[:8000] + result.stderr[-2000:]
    # one JSON object a line, written with ensure_ascii=False ("\u2028" is not a line end)
    sent = [line for line in record.read_text(encoding="utf-8").split("\n") if line]
    assert any(NON_ASCII in line for line in sent), "no non-ASCII string was sent"
    assert any(value in line for line in sent for value in EXTREME_DATETIMES), (
        "no extreme date-time was sent")


@pytest.mark.slow
@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize("value", EXTREME_DATETIMES)
def test_extreme_search_times_are_refused_in_one_sentence(
        live_server: LiveServer, field: str, value: str) -> None:
    secret = load_token_secret(live_server.home / "keys")
    token = issue_token(user=live_server.users[Role.INVESTIGATOR], secret=secret,
                        minutes=30).token
    response = httpx.post(f"{live_server.url}/api/search", timeout=60,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"text": NON_ASCII, "purpose": NON_ASCII, field: value})
    assert response.status_code == 422, response.text
    assert "is outside the years" in response.json()["detail"]


@pytest.mark.slow
def test_non_ascii_text_and_csrf_header_are_answered_below_500(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        login = client.post("/api/auth/login", json={"username": NON_ASCII,
                                                     "password": NON_ASCII})
        assert login.status_code == 401, login.text
        login = client.post("/api/auth/login", json={
            "username": live_server.users[Role.INVESTIGATOR].username,
            "password": "fuzz-password-1"})
        assert login.status_code == 200, login.text
        session = login.cookies[SESSION_COOKIE]  # Secure: httpx keeps it off plain http
        for raw in (NON_ASCII.encode(), "é".encode("latin-1"), b"\xff" * 43):
            refused = client.post("/api/cases", json={"title": NON_ASCII}, headers={
                CSRF_HEADER.encode(): raw, b"cookie": f"{SESSION_COOKIE}={session}".encode()})
            assert refused.status_code == 403, refused.text
            assert refused.json()["detail"] == (
                "Missing or wrong X-CSRF-Token header; reload the page and try again.")
