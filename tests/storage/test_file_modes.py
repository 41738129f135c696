"""Files on disk (issue 10, finding 9): the data dir, database, keys and blobs are
owner-only whatever the umask, secrets are written whole, and an empty key is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.keys import CERT_FILE, KEY_FILE, ensure_signing_identity, load_signer
from search_api.security import TOKEN_SECRET_FILENAME, load_token_secret
from search_api.state import build_state
from storage.atomic import make_private_dirs, write_atomically
from storage.blobstore import BlobStore
from storage.errors import ConfigurationError
from storage.secret_files import load_or_create_secret
from storage.settings import Settings

PASSPHRASE = "test-passphrase"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_a_new_data_dir_is_owner_only(tmp_path: Path, umask: int) -> None:
    settings = Settings(home=tmp_path / "site" / "oko-home", environment="test",
                        key_passphrase=PASSPHRASE)
    state = build_state(settings)
    try:
        ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                                passphrase=PASSPHRASE)
        load_token_secret(settings.keys_dir)
        blob = state.originals.put_bytes(b"original footage")
        derived = state.derived.put_bytes(b"a thumbnail")
    finally:
        state.engine.dispose()
    home = settings.home
    for directory in (home, settings.blobs_dir, settings.derived_dir, settings.models_dir,
                      settings.index_dir, settings.keys_dir, settings.tmp_dir,
                      blob.path.parent, blob.path.parent.parent, derived.path.parent):
        assert mode(directory) == 0o700, directory
    assert mode(home / "oko.db") == 0o600
    for name in ("oko.db-wal", "oko.db-shm"):
        if (home / name).exists():
            assert mode(home / name) == 0o600, name
    assert mode(settings.keys_dir / KEY_FILE) == 0o600
    assert mode(settings.keys_dir / TOKEN_SECRET_FILENAME) == 0o600
    assert mode(blob.path) == 0o400 and mode(derived.path) == 0o400
    # Nothing in the data dir may be read, written or entered by group or others, except
    # the public certificates, which sit behind the 0700 keys folder anyway.
    for path in home.rglob("*"):
        if path.suffix == ".pem" and path.name != KEY_FILE:
            continue
        assert mode(path) & 0o077 == 0, (path, oct(mode(path)))


def test_an_existing_data_dir_with_a_wide_mode_is_narrowed(tmp_path: Path) -> None:
    home = tmp_path / "oko-home"
    (home / "blobs").mkdir(parents=True)
    os.chmod(home, 0o755)  # noqa: S103 (the wide mode under test)
    os.chmod(home / "blobs", 0o777)  # noqa: S103
    above = mode(tmp_path)
    Settings(home=home, environment="test").ensure_dirs()
    assert mode(home) == 0o700 and mode(home / "blobs") == 0o700
    assert mode(tmp_path) == above  # the folder above the data dir is not Oko's


def test_atomic_writes_make_private_folders_but_leave_existing_ones(tmp_path: Path,
                                                                   umask: int) -> None:
    os.chmod(tmp_path, 0o755)  # noqa: S103 (a folder that is not Oko's)
    write_atomically(tmp_path / "a" / "b" / "file", b"x")
    assert mode(tmp_path) == 0o755  # someone else's folder keeps its mode
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "file") == 0o600
    make_private_dirs(tmp_path / "a")  # already there: nothing to do
    store = BlobStore(tmp_path / "store", tmp_path / "store-tmp")
    stored = store.put_bytes(b"evidence")
    assert mode(stored.path) == 0o400 and mode(tmp_path / "store-tmp") == 0o700


def test_secret_files_are_written_whole_with_mode_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "keys" / "secret"
    first = load_or_create_secret(path)
    assert len(first) == 32 and mode(path) == 0o600 and mode(path.parent) == 0o700
    assert load_or_create_secret(path) == first
    assert not [p for p in path.parent.iterdir() if p.name != "secret"]  # no temp left


@pytest.mark.parametrize("content", ["", "\n", "   "])
def test_an_empty_secret_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token-secret"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as caught:
        load_or_create_secret(path)
    assert str(caught.value) == (f"The secret file {path} is empty; restore it from a "
                                 "backup of the keys folder.")
    assert path.read_text() == content  # never replaced by a new secret


@pytest.mark.parametrize("name", [KEY_FILE, CERT_FILE])
def test_an_empty_signing_key_or_certificate_is_refused(tmp_path: Path, name: str) -> None:
    keys = tmp_path / "keys"
    ensure_signing_identity(keys_dir=keys, organisation="Oko test", passphrase=PASSPHRASE)
    (keys / name).write_bytes(b"")
    sentence = f"{keys / name} is empty; restore the keys folder from a backup."
    with pytest.raises(ConfigurationError) as caught:
        load_signer(keys_dir=keys, passphrase=PASSPHRASE)
    assert str(caught.value) == sentence
    with pytest.raises(ConfigurationError) as caught:
        ensure_signing_identity(keys_dir=keys, organisation="Oko test", passphrase=PASSPHRASE)
    assert str(caught.value) == sentence


def test_the_embedded_broker_database_is_owner_only(tmp_path: Path, umask: int) -> None:
    from search_api.tasks.app import make_celery

    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase=PASSPHRASE)
    app = make_celery(settings)
    with app.connection_for_write() as connection:
        connection.default_channel  # noqa: B018 (opening the channel creates the tables)
    assert mode(settings.home / "broker.db") == 0o600
