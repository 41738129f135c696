"""Real services for tests, started on 127.0.0.1 in a temp dir and torn down afterwards.

PostgreSQL refuses to run as root, and CI runs as root, so there the server runs as the
unprivileged ``nobody`` user (``runuser``/``setpriv``) with its data dir chowned to it.
Under ``CI=true`` a missing service fails the test; elsewhere it is skipped with a reason.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
UNPRIVILEGED_USER = "nobody"
TEMPLATE_DB = "oko_template"


def service_unavailable(reason: str) -> None:
    """Skip, or fail under CI=true, where no test may skip for a missing service."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: services must be available)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_service_user(command: list[str]) -> list[str]:
    """Prefix ``command`` so it runs unprivileged when we are root."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            *command]


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster; ``create_database`` gives each test its own DB."""

    root: Path
    port: int
    user: str = "oko"
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _template_ready: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} "
                             "dbname=postgres", autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, *, migrated: bool = False) -> str:
        """A new database on this server, empty or already at the head schema (copied from a
        template migrated once per session, which is much faster than migrating each time);
        returns its SQLAlchemy URL."""
        name = f"oko_test_{next(self._names)}"
        if not migrated:
            self._execute(f'CREATE DATABASE "{name}"')
            return self.url(name)
        if not self._template_ready:
            from storage.db import make_engine, migrate

            self._execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
            engine = make_engine(self.url(TEMPLATE_DB))
            migrate(engine)
            engine.dispose()
            self._template_ready = True
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(_as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir),
                                         "-m", "immediate", "-w", "stop"]),
                       capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb + pg_ctl start on a free port; raises ``RuntimeError`` with the server log."""
    if not (PG_BIN / "initdb").exists():
        raise FileNotFoundError(f"PostgreSQL binaries are not installed in {PG_BIN}")
    # as root, TMPDIR may sit under /root, which the service user cannot traverse
    base = "/tmp" if os.geteuid() == 0 and Path("/tmp").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="oko-pg-", dir=base))
    root.chmod(0o755)  # the service user must traverse it
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(root=root, port=free_port())
    log = root / "server.log"
    steps = [
        [str(PG_BIN / "initdb"), "-D", str(server.data_dir), "-U", server.user,
         "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        [str(PG_BIN / "pg_ctl"), "-D", str(server.data_dir), "-l", str(log), "-w", "-t", "60",
         "-o", f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -F "
               "-c full_page_writes=off -c max_connections=200", "start"],
    ]
    for step in steps:
        result = subprocess.run(_as_service_user(step), capture_output=True, text=True,
                                check=False, cwd=root)
        if result.returncode != 0:
            detail = result.stderr.strip() or (log.read_text() if log.exists() else "")
            server.stop()
            raise RuntimeError(f"PostgreSQL did not start: {detail[-2000:]}")
    return server


DATABASE_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def database_url_for(request: pytest.FixtureRequest, tmp_path: Path, *,
                     migrated: bool = False) -> str:
    """For a fixture parametrized over ``DATABASE_BACKENDS``: a fresh database of its own.

    ``migrated=True`` lets PostgreSQL start at the head schema (SQLite migrates quickly
    anyway when the state is built).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'oko-test.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(migrated=migrated)


__all__ = [
    "DATABASE_BACKENDS",
    "PostgresServer",
    "database_url_for",
    "free_port",
    "service_unavailable",
    "start_postgres",
]
