"""The retention sweep: expired originals go with everything derived from them, each with
a custody and an audit entry naming its hash; evidence stays; a dry run and a refused
setting change nothing; a crash at any step is finished by the next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from indexer.retention import ExpiredOriginal
from search_api.cli.common import operator_usecase
from search_api.usecases.retention import run_retention
from storage.models.access import AuditEvent
from storage.models.evidence import CustodyEntry
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.plates import PlateSighting
from storage.models.retention import OriginalExpiry
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchShard
from tests.indexer.retention.conftest import CAMERA, OTHER, World
from tests.search_api.access_helpers import oko_runner


def _original(world: World, original_id: int) -> Original:
    with Session(world.state.engine) as session:
        row = session.get(Original, original_id)
        assert row is not None
        return row


def _entries(world: World, model: type, action: str) -> list:  # type: ignore[type-arg]
    with Session(world.state.engine) as session:
        return list(session.exec(select(model).where(model.action == action)  # type: ignore[attr-defined]
                                 .order_by(col(model.id) if hasattr(model, "id") else  # type: ignore[attr-defined]
                                           col(model.seq))).all())  # type: ignore[attr-defined]


def _frame_ids(world: World, original_id: int | None) -> list[int]:
    with Session(world.state.engine) as session:
        return [i for i in session.exec(select(Frame.id).where(Frame.original_id == original_id)
                                        .order_by(col(Frame.id))).all() if i is not None]


def _run(world: World, *, dry_run: bool = False, **kwargs: object) -> object:
    with operator_usecase(world.state) as ctx:
        return run_retention(ctx, dry_run=dry_run, **kwargs)  # type: ignore[arg-type]


def _no_row_points_at_a_missing_blob(world: World) -> None:
    with Session(world.state.engine) as session:
        for segment in session.exec(select(Segment)).all():
            assert world.state.derived.exists(segment.sha256)
        for frame in session.exec(select(Frame)).all():
            assert world.state.derived.exists(frame.thumbnail_sha256)
        for sighting in session.exec(select(PlateSighting)).all():
            assert world.state.derived.exists(sighting.crop_sha256)
        for original in session.exec(select(Original)).all():
            if original.status == "ready":
                assert world.state.originals.exists(original.sha256)


def test_an_expired_original_goes_with_all_derived_from_it(world: World) -> None:
    world.state.settings.retention_days = 30
    old = world.ingest(0, days_ago=40)
    recent = world.ingest(1, days_ago=10)
    other = world.ingest(2, camera=OTHER, days_ago=10)
    world.embed_all()
    old_frames, recent_frames = _frame_ids(world, old.id), _frame_ids(world, recent.id)
    world.link(recent_frames[-1], old_frames[0])  # a static frame reusing an old vector
    world.sighting(old)
    assert len(world.sync()) == 3
    old_derived = world.derived_of(old.id)  # type: ignore[arg-type]
    kept_derived = world.derived_of(recent.id) | world.derived_of(other.id)  # type: ignore[arg-type]
    with Session(world.state.engine) as session:
        crop = session.exec(select(PlateSighting.crop_sha256)).one()
        old_shard = session.get(FrameIndexEntry, old_frames[0]).shard_key  # type: ignore[union-attr]

    report = _run(world)

    assert [o.sha256 for o in report.deleted] == [old.sha256]  # type: ignore[attr-defined]
    assert report.kept_locked == [] and report.shards_removed == [old_shard]  # type: ignore[attr-defined]
    row = _original(world, old.id)  # type: ignore[arg-type]
    assert row.status == "expired" and not world.state.originals.exists(old.sha256)
    assert _frame_ids(world, old.id) == []
    assert world.count(Segment, original_id=old.id) == 0
    assert world.count(PlateSighting) == 0 and not world.state.derived.exists(crop)
    assert world.count(FrameEmbedding) == len(recent_frames) + len(_frame_ids(world, other.id))
    for sha256 in old_derived - kept_derived:
        assert not world.state.derived.exists(sha256)
    for sha256 in kept_derived:  # a thumbnail identical to a kept one is kept
        assert world.state.derived.exists(sha256)
    with Session(world.state.engine) as session:
        relinked = session.get(FrameEmbedding, recent_frames[-1])
        assert relinked is not None and relinked.status == "embedded" and relinked.vector
        assert session.exec(select(SearchShard).where(
            SearchShard.shard_key == old_shard)).first() is None
    assert not (world.state.settings.index_dir / f"{old_shard}.json").exists()
    # the next shard sync rewrites the recent day's shard with the copied vector
    world.sync()
    with Session(world.state.engine) as session:
        assert session.get(FrameIndexEntry, recent_frames[-1]).shard_key  # type: ignore[union-attr]
    # the other camera's and the recent footage are whole
    for kept in (recent, other):
        assert _original(world, kept.id).status == "ready"  # type: ignore[arg-type]
        assert world.state.originals.verify(kept.sha256)
    [custody] = _entries(world, CustodyEntry, "retention_deletion")
    assert custody.original_id == old.id and custody.actor == "system:retention"
    assert custody.details["original_sha256"] == old.sha256
    assert custody.details["camera_id"] == CAMERA
    assert custody.details["rule"] == "retention 30 days"
    assert custody.details["start_utc"] == old.recording_start_utc.isoformat()
    [audit] = _entries(world, AuditEvent, "retention_delete")
    assert audit.details["original_sha256"] == old.sha256
    assert audit.details["rule"] == "retention 30 days"
    assert audit.details["end_utc"] == custody.details["end_utc"]
    _no_row_points_at_a_missing_blob(world)
    # a second run finds nothing more
    assert _run(world).deleted == []  # type: ignore[attr-defined]


def test_an_original_under_evidence_lock_is_never_deleted(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.state.settings.retention_days = 30
    locked = world.ingest(0, days_ago=40)
    expired = world.ingest(1, days_ago=41)
    world.lock(locked)
    frames = len(_frame_ids(world, locked.id))
    oko = oko_runner(world.state.settings, monkeypatch)
    monkeypatch.setenv("OKO_RETENTION_DAYS", "30")

    result = oko("retention", "run", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [o["sha256"] for o in report["deleted"]] == [expired.sha256]
    assert [o["sha256"] for o in report["kept_locked"]] == [locked.sha256]
    assert report["kept_locked_count"] == 1
    assert _original(world, locked.id).status == "ready"  # type: ignore[arg-type]
    assert world.state.originals.verify(locked.sha256)
    assert len(_frame_ids(world, locked.id)) == frames
    assert [e.original_id for e in _entries(world, CustodyEntry, "retention_deletion")] == [
        expired.id]
    text = oko("retention", "run")
    assert text.code == 0
    assert "Deleted 0 original(s) (0.0 MiB); kept 1 under evidence lock." in text.out


def test_a_dry_run_lists_and_deletes_nothing(world: World,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    old = world.ingest(0, days_ago=40)
    derived = world.derived_of(old.id)  # type: ignore[arg-type]
    oko = oko_runner(world.state.settings, monkeypatch)
    monkeypatch.setenv("OKO_RETENTION_DAYS", "30")

    result = oko("retention", "run", "--dry-run", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["dry_run"] is True
    assert [(o["sha256"], o["rule"]) for o in report["deleted"]] == [
        (old.sha256, "retention 30 days")]
    assert _original(world, old.id).status == "ready"  # type: ignore[arg-type]
    assert world.state.originals.verify(old.sha256)
    assert all(world.state.derived.exists(h) for h in derived)
    assert world.count(OriginalExpiry) == 0
    assert _entries(world, CustodyEntry, "retention_deletion") == []
    assert _entries(world, AuditEvent, "retention_delete") == []


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("at", ["marked", "rows_deleted", "blobs_deleted"])
def test_a_crash_at_any_step_is_finished_by_the_next_run(world: World, at: str) -> None:
    world.state.settings.retention_days = 30
    old = world.ingest(0, days_ago=40)
    recent = world.ingest(1, days_ago=1)
    world.embed_all()
    world.sync()
    derived = world.derived_of(old.id) - world.derived_of(recent.id)  # type: ignore[arg-type]

    def crash(step: str, _original: ExpiredOriginal) -> None:
        if step == at:
            raise Crash(step)

    with pytest.raises(Crash):
        _run(world, step=crash)

    assert _original(world, old.id).status == "expiring"  # type: ignore[arg-type]
    _no_row_points_at_a_missing_blob(world)
    assert _entries(world, CustodyEntry, "retention_deletion") == []

    report = _run(world)

    assert report.resumed == 1 and [o.sha256 for o in report.deleted] == [old.sha256]  # type: ignore[attr-defined]
    assert _original(world, old.id).status == "expired"  # type: ignore[arg-type]
    assert not world.state.originals.exists(old.sha256)
    assert not any(world.state.derived.exists(h) for h in derived)
    assert world.count(Segment, original_id=old.id) == 0
    assert len(_entries(world, CustodyEntry, "retention_deletion")) == 1
    assert len(_entries(world, AuditEvent, "retention_delete")) == 1
    assert _original(world, recent.id).status == "ready"  # type: ignore[arg-type]
    _no_row_points_at_a_missing_blob(world)


def test_a_camera_keeps_its_own_period(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    short = world.ingest(0, days_ago=10)
    forever = world.ingest(1, camera=OTHER, days_ago=400)
    oko = oko_runner(world.state.settings, monkeypatch)
    monkeypatch.delenv("OKO_RETENTION_DAYS", raising=False)
    assert json.loads(oko("retention", "run", "--json").out)["deleted"] == []  # kept forever

    refused = oko("cameras", "set", CAMERA, "--retention-days", "0")
    assert refused.code == 2
    assert "A retention period is 1 to 36500 days, not 0." in refused.err
    assert oko("cameras", "set", CAMERA, "--retention-days", "7").code == 0
    with Session(world.state.engine) as session:
        assert session.get(Camera, CAMERA).retention_days == 7  # type: ignore[union-attr]
        changes = session.exec(select(AuditEvent).where(AuditEvent.action == "camera_change")
                               ).all()
        assert [c.details for c in changes] == [
            {"change": "retention_days", "camera_id": CAMERA, "retention_days": 7}]

    report = json.loads(oko("retention", "run", "--json").out)

    assert [(o["sha256"], o["rule"]) for o in report["deleted"]] == [
        (short.sha256, "retention 7 days")]
    assert _original(world, forever.id).status == "ready"  # type: ignore[arg-type]
    shown = json.loads(oko("cameras", "show", CAMERA, "--json").out)
    assert shown["retention_days"] == 7
    assert oko("cameras", "set", CAMERA, "--default-retention").code == 0
    with Session(world.state.engine) as session:
        assert session.get(Camera, CAMERA).retention_days is None  # type: ignore[union-attr]


def test_expire_needs_a_rule_and_is_the_only_way_out(world: World, tmp_path: Path) -> None:
    blob = world.state.derived.put_bytes(b"thumbnail")
    from storage.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="only expired with the rule"):
        world.state.derived.expire(blob.sha256, reason=" ")
    assert world.state.derived.exists(blob.sha256)
    assert world.state.derived.expire(blob.sha256, reason="retention 30 days") is True
    assert world.state.derived.expire(blob.sha256, reason="retention 30 days") is False
    assert not hasattr(world.state.derived, "delete")


def test_two_sweeps_at_once_delete_an_original_once(world: World) -> None:
    world.state.settings.retention_days = 30
    old = world.ingest(0, days_ago=40)
    inner: list[object] = []

    def second_sweep(step: str, _original: ExpiredOriginal) -> None:
        if step == "marked" and not inner:  # another worker's sweep runs in between
            inner.append(_run(world))

    outer = _run(world, step=second_sweep)

    [report] = inner
    assert report.resumed == 1 and [o.sha256 for o in report.deleted] == [old.sha256]  # type: ignore[attr-defined]
    assert outer.kept_locked == []  # type: ignore[attr-defined]
    assert _original(world, old.id).status == "expired"  # type: ignore[arg-type]
    assert len(_entries(world, CustodyEntry, "retention_deletion")) == 1
    assert len(_entries(world, AuditEvent, "retention_delete")) == 1


def test_footage_ingested_again_after_it_expired_expires_again(world: World) -> None:
    world.state.settings.retention_days = 30
    old = world.ingest(0, days_ago=40)
    assert [o.sha256 for o in _run(world).deleted] == [old.sha256]  # type: ignore[attr-defined]
    again = world.ingest(0, days_ago=40)  # the same file, from a backup
    assert again.id == old.id and again.status == "ready"
    assert world.state.originals.verify(old.sha256)

    assert [o.sha256 for o in _run(world).deleted] == [old.sha256]  # type: ignore[attr-defined]
    assert _original(world, old.id).status == "expired"  # type: ignore[arg-type]
    assert not world.state.originals.exists(old.sha256)
    assert len(_entries(world, CustodyEntry, "retention_deletion")) == 2


def test_a_segments_playback_proxy_and_its_record_go_with_it(world: World) -> None:
    from storage.media_copies import proxy_record_path

    world.state.settings.retention_days = 30
    old = world.ingest(0, days_ago=40)
    with Session(world.state.engine) as session:
        segment = session.exec(select(Segment).where(Segment.original_id == old.id)).first()
        assert segment is not None
    proxy = world.state.derived.put_bytes(b"an H.264 proxy of the segment")
    record = proxy_record_path(world.state.derived, segment.sha256)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"sha256": proxy.sha256, "source_sha256": segment.sha256}))

    report = _run(world)

    assert [o.sha256 for o in report.deleted] == [old.sha256]  # type: ignore[attr-defined]
    assert not record.exists() and not world.state.derived.exists(proxy.sha256)
    with Session(world.state.engine) as session:
        expiry = session.get(OriginalExpiry, old.id)
        assert expiry is not None and expiry.stage == "done"
        assert proxy.sha256 in expiry.derived_sha256 and segment.sha256 in expiry.derived_sha256


def test_a_batch_with_an_original_locked_meanwhile_deletes_only_the_others(
        world: World) -> None:
    """One batch: two expired originals go, one put under evidence lock after it was
    marked comes back whole, and one locked before the sweep is never marked."""
    world.state.settings.retention_days = 30
    first, locked_meanwhile, last = (world.ingest(n, days_ago=d) for n, d in
                                     ((0, 45), (1, 41), (2, 40)))
    locked_before = world.ingest(3, days_ago=50)
    world.lock(locked_before)
    world.embed_all()
    world.sync()
    frames = len(_frame_ids(world, locked_meanwhile.id))
    marked: list[str] = []

    def lock_during_the_batch(step: str, original: ExpiredOriginal) -> None:
        if step == "marked":
            marked.append(original.sha256)
            if len(marked) == 1:  # the batch is marked: a clip takes one of its originals
                world.lock(locked_meanwhile)

    report = _run(world, step=lock_during_the_batch)

    assert marked == [first.sha256, locked_meanwhile.sha256, last.sha256]  # one batch
    assert sorted(o.sha256 for o in report.deleted) == sorted([first.sha256, last.sha256])  # type: ignore[attr-defined]
    assert sorted(o.sha256 for o in report.kept_locked) == sorted(  # type: ignore[attr-defined]
        [locked_before.sha256, locked_meanwhile.sha256])
    for kept in (locked_meanwhile, locked_before):
        assert _original(world, kept.id).status == "ready"  # type: ignore[arg-type]
        assert world.state.originals.verify(kept.sha256)
        with Session(world.state.engine) as session:
            assert session.get(OriginalExpiry, kept.id) is None
    assert len(_frame_ids(world, locked_meanwhile.id)) == frames
    assert all(world.state.derived.exists(h) for h in world.derived_of(locked_meanwhile.id))  # type: ignore[arg-type]
    for gone in (first, last):
        assert _original(world, gone.id).status == "expired"  # type: ignore[arg-type]
        assert not world.state.originals.exists(gone.sha256)
    custody = _entries(world, CustodyEntry, "retention_deletion")
    assert sorted(e.details["original_sha256"] for e in custody) == sorted(
        [first.sha256, last.sha256])
    assert sorted(e.original_id for e in custody) == sorted([first.id, last.id])
    audits = _entries(world, AuditEvent, "retention_delete")
    assert sorted(a.details["original_sha256"] for a in audits) == sorted(
        [first.sha256, last.sha256])
    _no_row_points_at_a_missing_blob(world)
