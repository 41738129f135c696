"""Engine, sessions and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

import storage.models  # noqa: F401  (registers every table)

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0018"
"""The newest migration; ``tests/storage/test_migrations.py`` checks it is Alembic's head."""


SQLITE_FILE_MODE = 0o600


def private_sqlite_file(url: str) -> None:
    """Create the SQLite file (and narrow its WAL and shared-memory files) as mode 0600.

    SQLite creates a database with 0644 less the umask and gives its -wal and -shm files
    the database's mode, so creating it here first makes all three owner-only.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing folder in its own words
    fd = os.open(path, os.O_RDWR | os.O_CREAT, SQLITE_FILE_MODE)
    os.close(fd)
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists() and stat.S_IMODE(name.stat().st_mode) != SQLITE_FILE_MODE:
            os.chmod(name, SQLITE_FILE_MODE)


def make_engine(url: str, *, pool_size: int = 5, pool_timeout: float = 30.0) -> Engine:
    """An engine with the per-backend settings Oko relies on.

    ``pool_size`` connections are kept and no more are opened (no overflow), so a burst
    waits at most ``pool_timeout`` seconds for one and then fails with SQLAlchemy's
    ``TimeoutError``, which the API answers as 503 busy.
    """
    pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0,
                            "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        if (make_url(url).database or ":memory:") == ":memory:":
            pool = {}  # one connection per thread (SingletonThreadPool), nothing to size
        private_sqlite_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at; None before the first one."""
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table yet
        return None
    return str(found) if found is not None else None


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema in place to ``revision``.

    Every command starts with this; a database already at the head is seen with one
    query, without loading Alembic (a fifth of a light command's start-up).
    """
    if revision == "head" and schema_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
