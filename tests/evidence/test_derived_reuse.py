"""A clip or still made again reuses the stored copy only when that copy is still intact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from evidence.clips import cut_clip, still_frame
from storage.blobstore import BlobStore, DamagedBlobError
from tests.evidence.conftest import make_footage


def _damage(store: BlobStore, sha256: str) -> bytes:
    path = store.path_for(sha256)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    path.chmod(stat.S_IRUSR)
    return bytes(data)


def test_a_clip_cut_again_reuses_the_intact_stored_copy(tmp_path: Path) -> None:
    footage = make_footage(tmp_path / "cam.mp4")
    derived = BlobStore(tmp_path / "derived", tmp_path / "tmp")
    first = cut_clip(original_path=footage, start_s=1.0, end_s=3.0, derived=derived,
                     tmp_dir=tmp_path / "tmp")
    again = cut_clip(original_path=footage, start_s=1.0, end_s=3.0, derived=derived,
                     tmp_dir=tmp_path / "tmp")
    assert again.sha256 == first.sha256 and again.size_bytes == first.size_bytes
    assert derived.verify(first.sha256)


def test_a_damaged_stored_clip_is_refused_not_reused(tmp_path: Path) -> None:
    footage = make_footage(tmp_path / "cam.mp4")
    derived = BlobStore(tmp_path / "derived", tmp_path / "tmp")
    first = cut_clip(original_path=footage, start_s=1.0, end_s=3.0, derived=derived,
                     tmp_dir=tmp_path / "tmp")
    damaged = _damage(derived, first.sha256)
    with pytest.raises(DamagedBlobError, match="no longer matches its SHA-256") as caught:
        cut_clip(original_path=footage, start_s=1.0, end_s=3.0, derived=derived,
                 tmp_dir=tmp_path / "tmp")
    assert caught.value.exit_code == 3 and caught.value.http_status == 500
    # Nothing was written over the damaged copy (write-once), and no temp file is left.
    assert derived.path_for(first.sha256).read_bytes() == damaged
    assert os.listdir(tmp_path / "tmp") == []


def test_a_damaged_stored_still_is_refused_not_reused(tmp_path: Path) -> None:
    footage = make_footage(tmp_path / "cam.mp4")
    derived = BlobStore(tmp_path / "derived", tmp_path / "tmp")
    first = still_frame(original_path=footage, offset_s=1.0, derived=derived)
    assert still_frame(original_path=footage, offset_s=1.0, derived=derived).sha256 \
        == first.sha256
    _damage(derived, first.sha256)
    with pytest.raises(DamagedBlobError):
        still_frame(original_path=footage, offset_s=1.0, derived=derived)
