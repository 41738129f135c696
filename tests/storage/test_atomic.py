"""Atomic file writes on real files: complete or absent, no temp left, no overwrite if refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage.atomic import atomic_write, pending_file, write_atomically
from storage.blobstore import BlobStore
from storage.secret_files import load_or_create_secret


class WriterCrashed(Exception):
    pass


def test_a_new_file_appears_complete_with_its_mode_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "key.pem"
    write_atomically(target, b"secret key", mode=0o600)
    assert target.read_bytes() == b"secret key"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["key.pem"]


def test_a_failing_writer_leaves_the_old_file_and_removes_its_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"old report")
    with pytest.raises(WriterCrashed), atomic_write(target) as handle:
        handle.write(b"half of the new rep")
        assert os.listdir(tmp_path) != ["report.pdf"]  # the temp file sits beside it
        raise WriterCrashed
    assert target.read_bytes() == b"old report"
    assert os.listdir(tmp_path) == ["report.pdf"]


def test_a_failing_writer_of_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bundle.zip"
    with pytest.raises(WriterCrashed), atomic_write(target) as handle:
        handle.write(b"PK")
        raise WriterCrashed
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_the_file_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "2026-01-25.json"
    target.write_bytes(b"old sidecar")
    old_inode = target.stat().st_ino
    with atomic_write(target, temp_suffix=".tmp") as handle:
        handle.write(b"new ")
        assert target.read_bytes() == b"old sidecar"  # readers see the old one meanwhile
        assert [p.suffix for p in tmp_path.iterdir() if p != target] == [".tmp"]
        handle.write(b"sidecar")
    assert target.read_bytes() == b"new sidecar"
    assert target.stat().st_ino != old_inode
    assert os.listdir(tmp_path) == [target.name]


def test_without_overwrite_an_existing_file_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    target.write_bytes(b"first writer")
    with pytest.raises(FileExistsError), atomic_write(target, overwrite=False) as handle:
        handle.write(b"second writer")
    assert target.read_bytes() == b"first writer"
    assert os.listdir(tmp_path) == ["blob"]


def test_a_pending_file_commits_under_a_name_chosen_after_writing(tmp_path: Path) -> None:
    staging, final_dir = tmp_path / "staging", tmp_path / "store"
    with pending_file(staging, prefix="blob-") as pending:
        pending.handle.write(b"content")
        pending.sync()
        assert pending.path.read_bytes() == b"content"  # readable by path before commit
        pending.commit(final_dir / "ab" / "content-hash", overwrite=False, mode=0o444)
    assert (final_dir / "ab" / "content-hash").read_bytes() == b"content"
    assert os.listdir(staging) == []


def test_an_uncommitted_pending_file_is_removed(tmp_path: Path) -> None:
    with pending_file(tmp_path, prefix=".import-") as pending:
        pending.handle.write(b"refused checkpoint")
    assert os.listdir(tmp_path) == []


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """A real second process reads while this one writes 8 MiB: it sees nothing or all."""
    target = tmp_path / "shard.npz"
    data = os.urandom(8 * 1024 * 1024)
    reader = subprocess.Popen(
        [sys.executable, "-c",
         "import json, sys, pathlib, time\n"
         "p = pathlib.Path(sys.argv[1]); sizes = set(); end = time.time() + 20\n"
         "while time.time() < end:\n"
         "    try: sizes.add(len(p.read_bytes()))\n"
         "    except FileNotFoundError: sizes.add(0)\n"
         "    if int(sys.argv[2]) in sizes: break\n"
         "print(json.dumps(sorted(sizes)))\n", str(target), str(len(data))],
        stdout=subprocess.PIPE, text=True)
    with atomic_write(target) as handle:
        for start in range(0, len(data), 64 * 1024):
            handle.write(data[start:start + 64 * 1024])
    out, _ = reader.communicate(timeout=60)
    assert set(json.loads(out)) <= {0, len(data)}
    assert target.read_bytes() == data


def test_blob_store_refuses_a_racing_second_writer(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    outcomes: list[str] = []

    def put() -> None:
        try:
            store.put_bytes(b"same bytes" * 10_000)
            outcomes.append("stored")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=put) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["BlobExistsError"] * 3 + ["stored"]
    assert os.listdir(tmp_path / "tmp") == []


def test_two_processes_creating_a_secret_agree_on_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "token.key"
    code = ("import sys, pathlib; from storage.secret_files import load_or_create_secret; "
            "print(load_or_create_secret(pathlib.Path(sys.argv[1])).hex())")
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=root,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    secrets = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert secrets == {load_or_create_secret(path).hex()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["token.key"]
