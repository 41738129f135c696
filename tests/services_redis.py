"""A throwaway redis-server on 127.0.0.1 for tests that need a real Redis broker.

Started once per test session on a free port with persistence off, and torn
down at the end. Without a redis-server binary the tests that need it skip, except
under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.services import free_port, service_unavailable

START_TIMEOUT_S = 15.0


def redis_server_binary() -> str:
    """The redis-server path; skips the test (fails under CI=true) when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server is not installed (apt-get install -y redis-server)")
        raise AssertionError("unreachable")
    return binary


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(work_dir: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its ``redis://127.0.0.1:PORT/0`` URL."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no", "--dir", str(work_dir),
               "--protected-mode", "yes"]
    log = (work_dir / "redis.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {work_dir / 'redis.log'}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A session-wide redis-server; import this fixture into a conftest to use it."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
