from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from storage.blobstore import BlobExistsError, BlobStore


def test_blob_is_content_addressed_read_only_and_never_overwritten(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    data = b"frame data" * 1000
    stored = store.put_bytes(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.path.read_bytes() == data
    assert not stored.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    with pytest.raises(BlobExistsError, match="cannot be overwritten"):
        store.put_bytes(data)
    assert stored.path.read_bytes() == data
    assert list(store.iter_hashes()) == [stored.sha256]
    assert os.listdir(tmp_path / "tmp") == []
    assert store.verify(stored.sha256)
