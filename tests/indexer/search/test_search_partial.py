"""Shards that cannot answer, the search backlog, and filters answered inside the shard."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlmodel import Session, col, func, select

from indexer.embed_queue import embed_pending_frames
from indexer.ingest import IngestOptions, ingest_file
from indexer.media import ffmpeg_exe
from indexer.search.engine import SearchFilters, SearchRequest, SearchResult, search
from indexer.search.shard_search import ShardQuery, search_loaded_shard
from indexer.shard_files import PHASE_CODES, ShardKey, ShardStore, write_shard
from indexer.shards import sync_shards
from search_api.state import AppState
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import SearchBacklog, SearchShard
from tests.search_corpus import SearchCorpus

KYIV = ZoneInfo("Europe/Kyiv")
CAM3 = "CAM-003/2026-01-25"


def similar(state: AppState, corpus: SearchCorpus, frame_id: int, **filters: object
            ) -> SearchResult:
    with Session(state.engine) as fresh:
        return search(session=fresh, get_embedder=lambda: corpus.embedder,
                      shards=ShardStore(state.settings.index_dir),
                      request=SearchRequest(similar_to_frame_id=frame_id, k=500,
                                            filters=SearchFilters(**filters)),  # type: ignore[arg-type]
                      derived=state.derived)


def snapshot(index_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(index_dir)): p.read_bytes()
            for p in sorted(index_dir.rglob("*")) if p.is_file()}


def cam3_frame(session: Session) -> int:
    frame = session.exec(select(Frame).join(FrameEmbedding, col(FrameEmbedding.frame_id)
                                            == col(Frame.id))
                         .where(Frame.camera_id == "CAM-003", FrameEmbedding.status
                                == "embedded")).first()
    assert frame is not None and frame.id is not None
    return frame.id


def test_the_corpus_backlog_is_empty_once_every_frame_is_in_a_shard(session: Session) -> None:
    assert session.exec(select(func.count()).select_from(SearchBacklog)).one() == 0
    assert sorted(session.exec(select(SearchShard.shard_key)).all()) == [
        "CAM-001/2026-01-25", "CAM-002/2026-01-25", CAM3]


def test_a_corrupt_shard_is_left_out_with_a_reason_and_the_search_answers(
        search_state: AppState, search_corpus: SearchCorpus, session: Session,
        red_frame: int) -> None:
    index_dir = search_state.settings.index_dir
    meta = next(m for m in ShardStore(index_dir).all_meta() if m.key.name == CAM3)
    data = meta.key.directory(index_dir) / meta.data_file
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = b"\xff" * 64  # same size: the sidecar still reads
    data.write_bytes(bytes(raw))
    before = snapshot(index_dir)

    result = similar(search_state, search_corpus, red_frame)
    prov = result.provenance
    assert prov.partial and list(prov.shards_left_out) == [CAM3]
    assert "CAM-003/2026-01-25" in prov.shards_left_out[CAM3]
    assert "corrupt" in prov.shards_left_out[CAM3]
    assert prov.shards_searched == ["CAM-001/2026-01-25", "CAM-002/2026-01-25"]
    assert red_frame in result.moments[0].frame_ids  # the other shards still answer
    assert {m.camera_id for m in result.moments} <= {"CAM-001", "CAM-002"}
    assert snapshot(index_dir) == before  # nothing rewritten or half-written


def test_a_shard_of_another_model_is_left_out_while_the_others_answer(
        search_state: AppState, search_corpus: SearchCorpus, session: Session,
        red_frame: int) -> None:
    index_dir = search_state.settings.index_dir
    loaded = ShardStore(index_dir).load(
        next(m for m in ShardStore(index_dir).all_meta() if m.key.name == CAM3))
    write_shard(index_dir=index_dir, key=loaded.meta.key, timezone="Europe/Kyiv",
                vector_ids=loaded.ids, vectors=np.asarray(loaded.exact, dtype=np.float32),
                captured_at_us=loaded.captured_at_us, phases=loaded.phases,
                frame_ids=[int(f) for f in loaded.frame_ids], preset="other",
                weights_sha256="e" * 64, approximate_min_vectors=50_000)
    before = snapshot(index_dir)

    result = similar(search_state, search_corpus, red_frame)
    prov = result.provenance
    assert prov.partial and list(prov.shards_left_out) == [CAM3]
    assert "will not mix models" in prov.shards_left_out[CAM3]
    assert "eeeeeeeeeeee" in prov.shards_left_out[CAM3]
    assert red_frame in result.moments[0].frame_ids
    assert snapshot(index_dir) == before


def test_a_shard_whose_files_are_gone_is_scored_from_the_database(
        search_state: AppState, search_corpus: SearchCorpus, session: Session) -> None:
    frame_id = cam3_frame(session)
    baseline = similar(search_state, search_corpus, frame_id, camera_ids=("CAM-003",))
    index_dir = search_state.settings.index_dir
    meta = next(m for m in ShardStore(index_dir).all_meta() if m.key.name == CAM3)
    data = meta.key.directory(index_dir) / meta.data_file
    data.write_bytes(data.read_bytes()[:100])  # truncated: the sidecar no longer matches

    fallback = similar(search_state, search_corpus, frame_id, camera_ids=("CAM-003",))
    prov = fallback.provenance
    assert prov.shards_searched == [] and prov.shards_scored_from_database == [CAM3]
    assert not prov.partial and prov.frames_scored_from_database > 0
    assert [m.frame_ids for m in fallback.moments] == [m.frame_ids
                                                      for m in baseline.moments]


def test_new_footage_is_searchable_from_the_backlog_until_its_shard_commits(
        search_state: AppState, search_corpus: SearchCorpus, tmp_path: Path) -> None:
    clip = tmp_path / "new.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=320x180:d=4:r=10", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-g", "10", str(clip)], check=True)
    start = datetime(2026, 1, 26, 12, 0, tzinfo=KYIV)
    ingest_file(engine=search_state.engine, originals=search_state.originals,
                derived=search_state.derived, path=clip, camera_id="CAM-003", start=start,
                options=IngestOptions(segment_seconds=4.0, sample_interval_seconds=1.0))
    with Session(search_state.engine) as db:
        new = db.exec(select(Frame.id).where(Frame.captured_at_utc >= start)).all()
        backlog = db.exec(select(SearchBacklog)).all()
    assert new and sorted(b.frame_id for b in backlog) == sorted(new)
    assert not any(b.embedded for b in backlog)  # ingest: waiting for an embedding
    waiting = similar(search_state, search_corpus, cam3_frame(Session(search_state.engine)))
    assert waiting.provenance.frames_waiting_for_embedding == len(new)

    embed_pending_frames(engine=search_state.engine, derived=search_state.derived,
                         embedder=search_corpus.embedder, batch_size=8,
                         motion_threshold=search_state.settings.motion_threshold)
    with Session(search_state.engine) as db:
        assert all(b.embedded for b in db.exec(select(SearchBacklog)))
    found = similar(search_state, search_corpus, new[0])
    assert found.provenance.frames_scored_from_database > 0
    assert found.provenance.frames_waiting_for_embedding == 0
    assert new[0] in found.moments[0].frame_ids and found.moments[0].score == pytest.approx(1.0)

    report = sync_shards(engine=search_state.engine, index_dir=search_state.settings.index_dir)
    assert report.shards_written == ["CAM-003/2026-01-26"]
    with Session(search_state.engine) as db:
        assert db.exec(select(func.count()).select_from(SearchBacklog)).one() == 0
    indexed = similar(search_state, search_corpus, new[0])
    assert indexed.provenance.frames_scored_from_database == 0
    assert "CAM-003/2026-01-26" in indexed.provenance.shards_searched
    assert [m.frame_ids for m in indexed.moments[:1]] == [found.moments[0].frame_ids]


def test_a_time_range_inside_a_static_stretch_finds_the_linked_frames(
        search_state: AppState, search_corpus: SearchCorpus, session: Session) -> None:
    linked = session.exec(select(FrameEmbedding, Frame)
                          .join(Frame, col(Frame.id) == col(FrameEmbedding.frame_id))
                          .where(FrameEmbedding.status == "linked")
                          .order_by(col(Frame.captured_at_utc))).all()
    row, frame = next((e, f) for e, f in linked if e.linked_frame_id is not None and (
        f.captured_at_utc - session.get(Frame, e.linked_frame_id).captured_at_utc  # type: ignore[union-attr]
        ).total_seconds() >= 1.0)
    assert row.linked_frame_id is not None
    at = frame.captured_at_utc
    result = similar(search_state, search_corpus, row.linked_frame_id,
                     camera_ids=(frame.camera_id,), start=at, end=at + timedelta(seconds=0.5))
    frames = [f for m in result.moments for f in m.frame_ids]
    assert frame.id in frames  # its vector's own frame lies before the range
    assert row.linked_frame_id not in frames
    assert result.moments[0].score == pytest.approx(1.0, abs=1e-4)


def _brute_force(times: np.ndarray, phases: np.ndarray, *, zone: ZoneInfo,
                 hours: tuple[int, int], phase: int) -> set[int]:
    rows = set()
    for i, (t, p) in enumerate(zip(times.tolist(), phases.tolist(), strict=True)):
        local = datetime.fromtimestamp(t / 1e6, UTC).astimezone(zone)
        if hours[0] <= local.hour < hours[1] and p == phase:
            rows.add(i)
    return rows


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 6, 1)])
def test_a_local_hour_window_is_answered_in_the_shard_on_dst_days(tmp_path: Path,
                                                                  day: date) -> None:
    """Kyiv changes clocks on 29 March and 25 October 2026: 17:00-23:00 local moves in UTC."""
    zone = ZoneInfo("Europe/Kyiv")
    begin = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    count = int((end.astimezone(UTC) - begin).total_seconds() // 60)  # one row a minute
    times = np.array([int((begin + timedelta(minutes=i)).timestamp() * 1e6)
                      for i in range(count)], dtype=np.int64)
    rng = np.random.default_rng(3)
    phases = rng.choice([PHASE_CODES["day"], PHASE_CODES["night"]], size=count).astype(np.uint8)
    vectors = rng.normal(size=(count, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, count + 1, dtype=np.int64)
    meta = write_shard(index_dir=tmp_path, key=ShardKey("CAM-X", day), timezone="Europe/Kyiv",
                       vector_ids=ids, vectors=vectors, captured_at_us=times, phases=phases,
                       frame_ids=ids.tolist(), preset="t", weights_sha256="a" * 64,
                       approximate_min_vectors=50_000)
    loaded = ShardStore(tmp_path).load(meta)
    night = PHASE_CODES["night"]
    expected = _brute_force(times, phases, zone=zone, hours=(17, 23), phase=night)
    query = ShardQuery(vector=vectors[0], k=count, time_range_us=None,
                       phases=frozenset({night}), local_hours=(17, 23))
    hits, admitted = search_loaded_shard(loaded, query)
    assert {vid - 1 for vid, _score in hits} == expected and admitted == len(expected)
    assert 100 < len(expected) < 260  # about half of the window's 360 minutes


def test_a_clock_window_in_the_query_is_answered_in_the_shard(
        search_state: AppState, search_corpus: SearchCorpus, session: Session) -> None:
    with Session(search_state.engine) as fresh:
        result = search(session=fresh, get_embedder=lambda: search_corpus.embedder,
                        shards=ShardStore(search_state.settings.index_dir),
                        request=SearchRequest(text="red car 21:00-22:00", k=500))
    prov = result.provenance
    assert prov.clip_text == "red car"
    assert ("hours", "21:00-22:00 (21:00-22:00 local)") in [(f.name, f.value)
                                                             for f in prov.filters]
    assert result.moments and {m.start_local.hour for m in result.moments} == {21}
    everything = similar(search_state, search_corpus, result.moments[0].best_frame_id)
    assert any(m.start_local.hour != 21 for m in everything.moments)  # the filter narrowed
