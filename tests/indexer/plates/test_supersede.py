"""A changed plate reader: ``oko reindex`` re-reads the frames and the old reader's
sightings are replaced, atomically per original, so search never shows both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, col, select

from indexer.plates.reader import Box, PlateRead, PlateReader, ReaderConfig, ReadStats
from indexer.plates.sightings import pending_plate_frames, read_pending_plates
from indexer.plates.supersede import ExpiredCrops
from search_api.cli import main
from search_api.state import AppState
from search_api.usecases import plate_watch
from search_api.usecases.context import Actor, UseCaseContext
from search_api.usecases.plates import PlateSearchQuery, search_plates
from storage.errors import StorageError
from storage.models.access import AuditEvent
from storage.models.plates import PlateEvent, PlateFrameScan, PlateSighting, WatchlistEntry
from storage.settings import Settings
from storage.types import utcnow
from tests.indexer.plates.conftest import add_camera, ingest_clip
from tests.services import DATABASE_BACKENDS, database_url_for

NEW_CONFIG = ReaderConfig(min_confidence=0.55)  # other parameters: another reader key


@pytest.fixture(params=DATABASE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """SQLite and PostgreSQL: the replacement deletes rows other rows point at."""
    return Settings(home=tmp_path / "oko-home", environment="test",
                    key_passphrase="test-passphrase",
                    database_url=database_url_for(request, tmp_path, migrated=True))


@pytest.fixture(scope="module")
def new_reader() -> PlateReader:
    return PlateReader(NEW_CONFIG)


class CrashingReader:
    """The new reader, failing on its third frame (a crash in the middle of an original)."""

    def __init__(self, inner: PlateReader) -> None:
        self.inner, self.config, self.identity, self.key = (
            inner, inner.config, inner.identity, inner.key)
        self.calls = 0

    def read(self, image: Image.Image, stats: ReadStats | None = None,
             source: Callable[[], Image.Image | None] | None = None,
             regions: list[Box] | None = None) -> list[PlateRead]:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("killed mid-original")
        return self.inner.read(image, stats, source=source, regions=regions)

    def changed_regions(self, image: Image.Image,
                        previous: Image.Image | None) -> list[Box] | None:
        return self.inner.changed_regions(image, previous)


def _sightings(state: AppState) -> list[tuple[str, str]]:
    with Session(state.engine) as session:
        return [(s.plate, s.reader_key) for s in session.exec(
            select(PlateSighting).order_by(col(PlateSighting.first_seen_utc))).all()]


def _read(state: AppState, reader: object, **options: object):  # type: ignore[no-untyped-def]
    return read_pending_plates(engine=state.engine, derived=state.derived,
                               reader=reader,  # type: ignore[arg-type]
                               motion_threshold=state.settings.motion_threshold,
                               on_crops_expired=plate_watch.crop_expiry_auditor(state),
                               **options)  # type: ignore[arg-type]


def _search(state: AppState, plate: str) -> list[str]:
    with Session(state.engine, expire_on_commit=False) as session:
        ctx = UseCaseContext(session=session, state=state, actor=Actor.local_operator())
        result = search_plates(ctx, query=PlateSearchQuery(plate=plate, purpose="case 1",
                                                           fuzzy=False))
    return [m.plate for m in result.moments]


@pytest.fixture
def read_once(state: AppState, reader: PlateReader, plate_clip: Path) -> AppState:
    """The clip read by the current reader, with a watch-list event for AE1234KX."""
    add_camera(state)
    ingest_clip(state, plate_clip)
    report = _read(state, reader)
    with Session(state.engine) as session:
        session.add(WatchlistEntry(plate="AE1234KX", reason="stolen", added_by="admin",
                                   expires_at=utcnow() + timedelta(days=5)))
        session.commit()
    assert len(plate_watch.raise_watch_events(state, sighting_ids=report.touched)) == 1
    assert _sightings(state) == [("AE1234KX", reader.key), ("BC0815AA", reader.key)]
    return state


def test_a_new_reader_replaces_the_old_sightings(read_once: AppState, reader: PlateReader,
                                                 new_reader: PlateReader) -> None:
    state = read_once
    assert new_reader.key != reader.key
    with Session(state.engine) as session:
        assert pending_plate_frames(session=session, reader_key=new_reader.key) == 6
        old_event = session.exec(select(PlateEvent)).one()
    # a limit does not cut the original short: it is replaced whole
    report = _read(state, new_reader, limit=2, batch=2)
    assert report.frames == 6
    assert report.replaced.sightings_replaced == 2 and report.replaced.events_moved == 1
    assert report.as_dict()["sightings_replaced"] == 2
    assert _sightings(state) == [("AE1234KX", new_reader.key), ("BC0815AA", new_reader.key)]
    assert _search(state, "AE1234KX") == ["AE1234KX"]  # one sighting, not two
    with Session(state.engine) as session:
        assert pending_plate_frames(session=session, reader_key=new_reader.key) == 0
        assert {s.reader_key for s in session.exec(select(PlateFrameScan)).all()} == {
            new_reader.key}
        event = session.exec(select(PlateEvent)).one()  # moved, not raised again
        new_ae = session.exec(select(PlateSighting).where(
            PlateSighting.plate == "AE1234KX")).one()
        assert (event.id, event.sighting_id) == (old_event.id, new_ae.id)
        assert new_ae.crop_provenance["parameters"]["min_confidence"] == 0.55
    assert plate_watch.raise_watch_events(state, sighting_ids=report.touched) == []
    # a rerun has nothing to do
    assert _read(state, new_reader).frames == 0
    assert len(_sightings(state)) == 2


def test_a_crash_mid_original_leaves_the_old_sightings_alone(
        read_once: AppState, reader: PlateReader, new_reader: PlateReader) -> None:
    state = read_once
    crashing = CrashingReader(new_reader)
    with pytest.raises(RuntimeError, match="killed mid-original"):
        _read(state, crashing, batch=1)  # batches would have committed by the third frame
    assert crashing.calls == 3
    assert _sightings(state) == [("AE1234KX", reader.key), ("BC0815AA", reader.key)]
    assert _search(state, "AE1234KX") == ["AE1234KX"]
    with Session(state.engine) as session:
        assert pending_plate_frames(session=session, reader_key=new_reader.key) == 6
        assert len(session.exec(select(PlateEvent)).all()) == 1
    # the rerun replaces them whole
    assert _read(state, new_reader).replaced.sightings_replaced == 2
    assert _sightings(state) == [("AE1234KX", new_reader.key), ("BC0815AA", new_reader.key)]


def test_oko_reindex_rereads_with_the_new_reader(
        read_once: AppState, reader: PlateReader, new_reader: PlateReader,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    state = read_once
    for name in ("OKO_CLIP_WEIGHTS", "OKO_CLIP_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OKO_DATABASE_URL", state.settings.resolved_database_url)
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setattr(plate_watch, "_reader", new_reader)  # the process's reader changed
    code = main(["reindex"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Read plates in" in out
    assert code == 4  # then embedding waits: no CLIP model in this data dir
    assert _sightings(state) == [("AE1234KX", new_reader.key), ("BC0815AA", new_reader.key)]
    with Session(state.engine) as session:
        assert len(session.exec(select(PlateEvent)).all()) == 1


def _crops(state: AppState) -> dict[str, str]:
    with Session(state.engine) as session:
        return {s.plate: s.crop_sha256 for s in session.exec(select(PlateSighting)).all()
                if s.camera_id == "CAM-P01"}


def test_old_crops_no_row_names_are_expired_one_still_named_is_kept(
        read_once: AppState, reader: PlateReader) -> None:
    state = read_once
    old = _crops(state)
    assert all(state.derived.path_for(sha).is_file() for sha in old.values())
    add_camera(state, "CAM-P02")
    with Session(state.engine) as session:  # another camera's sighting names AE's crop
        ae = session.exec(select(PlateSighting).where(PlateSighting.plate == "AE1234KX")).one()
        data = ae.model_dump(exclude={"id"})
        session.add(PlateSighting(**{**data, "camera_id": "CAM-P02"}))
        session.commit()

    wider = PlateReader(ReaderConfig(margin=0.24))  # other crops: other bytes
    report = _read(state, wider)

    assert report.replaced.sightings_replaced == 2
    assert report.replaced.crops_expired == 1 and report.as_dict()["crops_expired"] == 1
    new = _crops(state)
    assert set(new) == {"AE1234KX", "BC0815AA"} and not set(new.values()) & set(old.values())
    assert not state.derived.path_for(old["BC0815AA"]).exists()  # no row names it
    assert state.derived.path_for(old["AE1234KX"]).is_file()  # CAM-P02's sighting does
    assert all(state.derived.path_for(sha).is_file() for sha in new.values())
    # the deletion is on the record: one entry for the batch, naming the hash
    [entry] = _crop_expiries(state)
    assert (entry.action, entry.actor, entry.agency) == (
        "plate_crops_expired", "system:plates", "police")
    assert entry.details == {
        "camera_id": "CAM-P01", "reason": f"plate reader {reader.key} replaced by {wider.key}",
        "replaced_reader_keys": [reader.key], "reader_key": wider.key, "count": 1,
        "crop_sha256": [old["BC0815AA"]]}


def _crop_expiries(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.action == "plate_crops_expired").order_by(col(AuditEvent.seq))).all())


def test_crops_are_not_removed_when_their_audit_entry_cannot_be_written(
        read_once: AppState) -> None:
    state = read_once
    old = _crops(state)

    def failing(session: Session, batch: ExpiredCrops) -> None:
        assert batch.sha256 == sorted(old.values())
        raise StorageError("The audit log cannot be written.")

    with pytest.raises(StorageError, match="audit log"):
        read_pending_plates(engine=state.engine, derived=state.derived,
                            reader=PlateReader(ReaderConfig(margin=0.24)),
                            motion_threshold=state.settings.motion_threshold,
                            on_crops_expired=failing)
    # no deletion without its entry: both old crops are still stored, no entry written
    assert all(state.derived.path_for(sha).is_file() for sha in old.values())
    assert _crop_expiries(state) == []


def test_a_crop_the_new_reader_made_again_is_kept(read_once: AppState,
                                                  new_reader: PlateReader) -> None:
    state = read_once
    old = _crops(state)
    report = _read(state, new_reader)  # only min_confidence differs: the same crops
    assert report.replaced.sightings_replaced == 2
    assert report.replaced.crops_expired == 0
    assert _crop_expiries(state) == []  # nothing deleted, nothing recorded
    assert _crops(state) == old
    assert all(state.derived.path_for(sha).is_file() for sha in old.values())
