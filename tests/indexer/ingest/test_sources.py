"""Where ingest reads from: ingest roots, bounded folder walks, and the stored copy's probe."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session

import indexer.ingest
from indexer.ingest import FolderTooLargeError, resolve_source, walk_folder
from indexer.media import MediaInfo, probe
from indexer.samples import SampleSet
from search_api.state import AppState
from storage.errors import NotFoundError
from storage.models.media import Original
from tests.indexer.ingest.conftest import Ingest

CLIP = "CAM-001_20260125T100000.mp4"  # 12 s
OTHER = "CAM-002_20260125T120000.mp4"  # 16 s


def _outside_answer(path: Path) -> str:
    return f"^'{path}' is not under an ingest root or does not exist.$"


def test_outside_the_roots_and_missing_get_the_same_answer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere.mp4"
    elsewhere.write_bytes(b"x")
    missing = tmp_path / "missing.mp4"
    answers = []
    for path in (elsewhere, missing, root / "missing.mp4", Path("/etc/passwd"),
                 Path("/nonexistent/x.mp4")):
        with pytest.raises(NotFoundError, match=_outside_answer(path)) as raised:
            resolve_source(path, roots=[root])
        answers.append(raised.value.message.replace(str(path), "PATH"))
    assert len(set(answers)) == 1


def test_symlinks_and_dotdot_cannot_leave_a_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"x")
    (root / "link.mp4").symlink_to(secret)
    (root / "linked-dir").symlink_to(tmp_path)
    for path in (root / "link.mp4", root / ".." / "secret.mp4",
                 root / "linked-dir" / "secret.mp4"):
        with pytest.raises(NotFoundError, match=_outside_answer(path)):
            resolve_source(path, roots=[root])


def test_a_path_under_a_root_resolves_to_its_real_path(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    (real_root / "day").mkdir(parents=True)
    clip = real_root / "day" / "a.mp4"
    clip.write_bytes(b"x")
    (tmp_path / "alias").symlink_to(real_root)
    assert resolve_source(tmp_path / "alias" / "day" / "a.mp4",
                          roots=[tmp_path / "alias"]) == clip.resolve()
    assert resolve_source(real_root, roots=[real_root]) == real_root.resolve()


def test_the_walk_leaves_out_links_out_of_the_folder_and_does_not_follow_folder_links(
        tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    (folder / "day").mkdir(parents=True)
    (folder / "day" / "a.mp4").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.mp4").write_bytes(b"x")
    (folder / "b.mp4").symlink_to(outside / "b.mp4")
    (folder / "more").symlink_to(outside)
    (folder / "again.mp4").symlink_to(folder / "day" / "a.mp4")
    assert walk_folder(folder).files == [(folder / "day" / "a.mp4").resolve()]


@pytest.mark.parametrize(("limit", "value", "sentence"), [
    ("MAX_WALK_FILES", 3, "holds more than 3 video files; ingest its subfolders one at a time."),
    ("MAX_WALK_ENTRIES", 5, "holds more than 5 files and folders to look through; ingest its"
                            " subfolders one at a time."),
    ("MAX_WALK_DEPTH", 2, "nests folders more than 2 deep; ingest its subfolders one at a"
                          " time."),
])
def test_a_walk_past_its_limits_stops_with_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, value: int,
        sentence: str) -> None:
    folder = tmp_path / "big"
    deep = folder / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for index in range(4):
        (folder / f"clip{index}.mp4").write_bytes(b"x")
    monkeypatch.setattr(indexer.ingest, limit, value)
    with pytest.raises(FolderTooLargeError) as raised:
        walk_folder(folder)
    assert raised.value.message.endswith(sentence)


def _tracking_probe(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    probed: list[Path] = []

    def tracking(path: Path, *, scan: bool = True) -> MediaInfo:
        probed.append(path)
        return probe(path, scan=scan)

    monkeypatch.setattr(indexer.ingest, "probe", tracking)
    return probed


def test_a_file_replaced_after_hashing_is_probed_from_the_stored_copy(
        ingest: Ingest, registered: AppState, samples: SampleSet, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / CLIP
    shutil.copyfile(samples.by_name(CLIP).path, source)
    stored_bytes = source.read_bytes()
    real_store = indexer.ingest._store
    probed = _tracking_probe(monkeypatch)

    def store_then_swap(store: object, **kwargs: object) -> str:
        sha = real_store(store, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("path") == source:
            os.replace(shutil.copyfile(samples.by_name(OTHER).path, tmp_path / "swap"), source)
        return sha

    monkeypatch.setattr(indexer.ingest, "_store", store_then_swap)
    outcome = ingest(source, camera_id="CAM-001")

    assert outcome.sha256 == hashlib.sha256(stored_bytes).hexdigest()
    assert probed[-1] == registered.originals.path_for(outcome.sha256)
    with Session(registered.engine) as session:
        original = session.get(Original, outcome.original_id)
        assert original is not None
        assert original.duration_s == pytest.approx(12.0)
        assert original.size_bytes == len(stored_bytes)


def test_a_file_replaced_between_probe_and_hashing_is_described_by_what_was_stored(
        ingest: Ingest, registered: AppState, samples: SampleSet, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / CLIP
    shutil.copyfile(samples.by_name(CLIP).path, source)
    other = samples.by_name(OTHER).path
    assert probe(other).duration_s != pytest.approx(probe(source).duration_s)

    def probe_then_swap(path: Path, *, scan: bool = True) -> MediaInfo:
        info = probe(path, scan=scan)
        if path == source:
            os.replace(shutil.copyfile(other, tmp_path / "swap"), source)
        return info

    monkeypatch.setattr(indexer.ingest, "probe", probe_then_swap)
    outcome = ingest(source, camera_id="CAM-001")

    assert outcome.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()
    with Session(registered.engine) as session:
        original = session.get(Original, outcome.original_id)
        assert original is not None
        assert original.duration_s == pytest.approx(probe(other).duration_s)
        assert original.size_bytes == other.stat().st_size
