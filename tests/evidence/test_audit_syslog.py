"""Audit checkpoints also go to syslog (OKO_AUDIT_CHECKPOINT_SYSLOG) once committed: a
remote collector on 127.0.0.1 (UDP and TCP) receives one tagged message a checkpoint, and
its file of messages serves as the external copy that catches a rewound database."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from evidence.audit import load_checkpoint_file
from evidence.audit_syslog import SYSLOG_TAG, SyslogAddress
from evidence.keys import ensure_signing_identity
from search_api.audit import AuditAction
from search_api.cli.common import operator_usecase
from search_api.state import AppState, build_state
from search_api.usecases.audit_log import verify_audit_log
from storage.errors import ConfigurationError
from storage.settings import Settings


class Collector:
    """A syslog collector on a loopback port, keeping every message it receives."""

    def __init__(self, kind: socket.SocketKind) -> None:
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.lock = threading.Lock()
        if kind == socket.SOCK_STREAM:
            self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                if self.kind == socket.SOCK_DGRAM:
                    data, _ = self.sock.recvfrom(65536)
                    chunks = [data + b"\n"]
                else:
                    conn, _ = self.sock.accept()
                    with conn:
                        chunks = list(iter(lambda c=conn: c.recv(65536), b""))  # type: ignore[misc]
            except OSError:
                return
            with self.lock:
                for chunk in chunks:
                    self.received += chunk

    def messages(self) -> list[str]:
        with self.lock:
            return [m for m in self.received.decode().split("\n") if m]

    def close(self) -> None:
        self.sock.close()


def _state(tmp_path: Path, address: str) -> AppState:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", audit_checkpoint_entries=5,
                        audit_checkpoint_minutes=600, audit_checkpoint_syslog=address)
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                            passphrase="test-passphrase")
    return state


def _write(state: AppState, count: int) -> None:
    for i in range(count):
        with operator_usecase(state) as ctx:
            ctx.audit(AuditAction.SEARCH, text=f"red car {i}", purpose="case 12/2026")
            ctx.commit()


def _wait_for(collector: Collector, count: int) -> list[str]:
    for _ in range(200):
        messages = collector.messages()
        if len(messages) >= count:
            return messages
        threading.Event().wait(0.02)
    return collector.messages()


@pytest.fixture(params=[socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def collector(request: pytest.FixtureRequest) -> Iterator[Collector]:
    running = Collector(request.param)
    yield running
    running.close()


def test_each_committed_checkpoint_reaches_the_collector(tmp_path: Path,
                                                         collector: Collector) -> None:
    scheme = "udp" if collector.kind == socket.SOCK_DGRAM else "tcp"
    state = _state(tmp_path, f"{scheme}://127.0.0.1:{collector.port}")
    try:
        _write(state, 12)
        messages = _wait_for(collector, 2)
        assert len(messages) == 2
        assert all(SYSLOG_TAG in m and m.startswith("<") for m in messages)  # <PRI> first
        counts = [json.loads(m.partition(SYSLOG_TAG)[2])["entry_count"] for m in messages]
        assert counts == [5, 10]
        # the collector's file is the external copy: a rewound database no longer verifies
        copy = tmp_path / "collector.log"
        copy.write_text("\n".join(messages) + "\n")
        exported = load_checkpoint_file(copy)
        with operator_usecase(state) as ctx:
            assert verify_audit_log(ctx, exported=exported).ok
        with state.engine.begin() as conn:
            conn.execute(text("DELETE FROM auditevent WHERE seq >= 7"))
            conn.execute(text("DELETE FROM auditcheckpoint WHERE entry_count >= 7"))
            conn.execute(text("UPDATE audithead SET seq = 6, entry_hash = "
                              "(SELECT entry_hash FROM auditevent WHERE seq = 6)"))
        with operator_usecase(state) as ctx:
            report = verify_audit_log(ctx, exported=exported)
        assert not report.ok and report.first_broken_seq == 7
    finally:
        state.engine.dispose()


def test_a_rolled_back_checkpoint_is_not_sent(tmp_path: Path) -> None:
    collector = Collector(socket.SOCK_DGRAM)
    state = _state(tmp_path, f"udp://127.0.0.1:{collector.port}")
    try:
        _write(state, 4)
        with operator_usecase(state) as ctx:
            ctx.audit(AuditAction.SEARCH, text="rolled back")  # #5 signs a checkpoint
            ctx.session.rollback()
        threading.Event().wait(0.2)
        assert collector.messages() == []
        _write(state, 1)
        assert len(_wait_for(collector, 1)) == 1
    finally:
        state.engine.dispose()
        collector.close()


def test_an_unreachable_collector_never_fails_the_action(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a TCP port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = _state(tmp_path, f"tcp://127.0.0.1:{port}")
    try:
        _write(state, 6)  # the checkpoint at #5 cannot be sent; the actions still commit
        with operator_usecase(state) as ctx:
            assert verify_audit_log(ctx).ok
    finally:
        state.engine.dispose()


@pytest.mark.parametrize("address", ["syslog.example:514", "udp://127.0.0.1", "unix:dev/log",
                                     "http://127.0.0.1:514", "udp://127.0.0.1:99999"])
def test_malformed_addresses_are_one_sentence(address: str) -> None:
    with pytest.raises(ConfigurationError, match="OKO_AUDIT_CHECKPOINT_SYSLOG"):
        SyslogAddress.parse(address)
