"""The client address the audit log and the sign-in limits see: the TCP peer, unless a
trusted proxy says otherwise, and never arbitrary text.

The server tests run ``oko serve``'s own uvicorn configuration on 127.0.0.1.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from sqlmodel import Session, col, select

from evidence.audit import MAX_IP_CHARS, append_audit_event
from search_api.app import create_app
from search_api.cli.setup import server_config
from search_api.state import build_state
from storage.models.access import AuditEvent
from storage.settings import Settings
from tests.services import free_port

FORWARDED = "198.51.100.7"


@contextmanager
def serving(tmp_path: Path, *, trusted_proxies: str) -> Iterator[tuple[str, Settings]]:
    """``oko serve``'s uvicorn config in a thread; yields its base URL and settings."""
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", trusted_proxies=trusted_proxies)
    state = build_state(settings)
    port = free_port()
    config = server_config(create_app(settings, state=state), settings, host="127.0.0.1",
                           port=port)
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        state.engine.dispose()


def _failed_login_ip(base_url: str, settings: Settings, forwarded_for: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/token",
                          data={"username": "nobody", "password": "wrong-password"},
                          headers={"X-Forwarded-For": forwarded_for}, timeout=30)
    assert response.status_code == 401, response.text
    engine = build_state(settings).engine
    try:
        with Session(engine) as session:
            event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    finally:
        engine.dispose()
    assert event is not None and event.action == "login_failed"
    return event.ip


def test_without_trusted_proxies_the_peer_is_the_address(tmp_path: Path) -> None:
    with serving(tmp_path, trusted_proxies="") as (base_url, settings):
        assert _failed_login_ip(base_url, settings, FORWARDED) == "127.0.0.1"


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    with serving(tmp_path, trusted_proxies="10.0.0.0/8, 127.0.0.1") as (base_url, settings):
        assert _failed_login_ip(base_url, settings, FORWARDED) == FORWARDED
        assert _failed_login_ip(base_url, settings, f"203.0.113.9, {FORWARDED}") == FORWARDED
        garbage = " ".join(["word"] * 3000)
        assert _failed_login_ip(base_url, settings, garbage) == "unknown"
        assert _failed_login_ip(base_url, settings, "<script>alert(1)</script>") == "unknown"


def test_the_uvicorn_config_believes_only_the_listed_proxies() -> None:
    default = server_config(object(), Settings(environment="test"), host="127.0.0.1", port=1)
    assert default.proxy_headers is False
    proxied = server_config(object(), Settings(environment="test",
                                               trusted_proxies=" 192.0.2.1 ,2001:db8::/32"),
                            host="127.0.0.1", port=1)
    assert proxied.proxy_headers is True
    assert proxied.forwarded_allow_ips == ["192.0.2.1", "2001:db8::/32"]


def test_a_bad_trusted_proxy_setting_is_refused_with_one_sentence() -> None:
    with pytest.raises(ValidationError, match=re.escape(
            "OKO_TRUSTED_PROXIES lists 'proxy.local', which is not an IP address or network")):
        Settings(environment="test", trusted_proxies="127.0.0.1,proxy.local")


def test_the_audit_writer_caps_the_address(tmp_path: Path) -> None:
    state = build_state(Settings(home=tmp_path / "oko-home", environment="test"))
    try:
        with Session(state.engine) as session:
            event = append_audit_event(session, actor="x", agency="", ip="word " * 3000,
                                       action="login_failed", details={},
                                       mac_key=state.audit_mac_key())
            session.commit()
            assert len(event.ip) == MAX_IP_CHARS
    finally:
        state.engine.dispose()
