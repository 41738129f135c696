"""Filters-first search over the indexed sample corpus (random tiny model)."""

from __future__ import annotations

import itertools
import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlmodel import Session, select

from indexer.daynight import DayPhase
from indexer.embed_queue import BacklogFrame, add_to_backlog
from indexer.embeddings import build_unsafe_random_embedder
from indexer.search.engine import (
    EmbedderFailedError,
    InvalidImageError,
    SearchFilters,
    SearchRequest,
    SearchResult,
    search,
)
from indexer.shard_files import ShardStore
from search_api.state import AppState
from storage.errors import InvalidInputError, NotFoundError
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry
from tests.search_corpus import SearchCorpus

KYIV = ZoneInfo("Europe/Kyiv")


def run(session: Session, shards: ShardStore, corpus: SearchCorpus, state: AppState,
        **kwargs: object) -> SearchResult:
    filters = kwargs.pop("filters", SearchFilters())
    return search(session=session, get_embedder=lambda: corpus.embedder, shards=shards,
                  request=SearchRequest(filters=filters, **kwargs),  # type: ignore[arg-type]
                  derived=state.derived)


def phases(session: Session, frame_ids: list[int]) -> set[str]:
    return {session.get(FrameIndexEntry, f).day_phase for f in frame_ids}  # type: ignore[union-attr]


def test_text_query_at_night_applies_the_night_filter(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState) -> None:
    result = run(session, shards, search_corpus, search_state, text="red car at night")
    prov = result.provenance
    assert prov.clip_text == "red car"
    assert [(f.name, f.value, f.source) for f in prov.filters] == [
        ("day_phase", "night", "query phrase 'at night'")]
    assert prov.preset == "test-tiny"
    assert prov.weights_sha256 == search_corpus.embedder.weights_sha256
    assert prov.dim == search_corpus.embedder.dim and prov.k == 50 and prov.elapsed_ms > 0
    # every camera's day is searched inside its shard; CAM-003 has no night rows to offer
    assert prov.shards_searched == ["CAM-001/2026-01-25", "CAM-002/2026-01-25",
                                    "CAM-003/2026-01-25"]
    assert prov.shard_index_types == dict.fromkeys(prov.shards_searched, "flat")
    assert prov.shards_left_out == {} and not prov.partial
    assert prov.frames_scored_from_database == 0 and prov.frames_waiting_for_embedding == 0
    assert result.moments
    for moment in result.moments:
        assert phases(session, moment.frame_ids) == {"night"}
        assert moment.start_local.hour >= 21
    red_cameras = {m.camera_id for m in result.moments}
    assert red_cameras == {"CAM-001", "CAM-002"}  # the night clips with the red car


def test_ukrainian_phrase_sets_the_same_filter(session: Session, shards: ShardStore,
                                               search_corpus: SearchCorpus,
                                               search_state: AppState) -> None:
    result = run(session, shards, search_corpus, search_state, text="червоне авто вночі")
    assert result.provenance.clip_text == "червоне авто"
    assert result.provenance.filters[0].value == "night"
    assert all(phases(session, m.frame_ids) == {"night"} for m in result.moments)


def test_find_similar_from_a_red_car_frame_returns_its_moment_first(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState, red_frame: int) -> None:
    result = run(session, shards, search_corpus, search_state, similar_to_frame_id=red_frame,
                 filters=SearchFilters(day_phase=DayPhase.NIGHT))
    first = result.moments[0]
    assert red_frame in first.frame_ids
    assert first.camera_id == "CAM-001"
    assert first.start_local.replace(tzinfo=None) >= datetime(2026, 1, 25, 21, 0)
    assert first.end_local.replace(tzinfo=None) <= datetime(2026, 1, 25, 21, 0, 12)
    assert first.score == pytest.approx(1.0, abs=1e-4)
    assert result.provenance.similar_to_frame_id == red_frame
    assert result.provenance.filters[0].source == "request"


def test_moment_structure_locates_the_best_frame_in_its_segment(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState, red_frame: int) -> None:
    result = run(session, shards, search_corpus, search_state, similar_to_frame_id=red_frame)
    scores = [m.score for m in result.moments]
    assert scores == sorted(scores, reverse=True)
    for moment in result.moments:
        assert moment.start_utc <= moment.best_frame_utc <= moment.end_utc
        assert moment.start_local.utcoffset() == moment.start_utc.astimezone(KYIV).utcoffset()
        frame = session.get(Frame, moment.best_frame_id)
        assert frame is not None and frame.segment_id == moment.segment_id
        assert 0.0 <= moment.offset_in_segment_s <= 4.0 + 1e-3
    # one camera's consecutive hits form one moment: no two moments of a camera overlap
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for moment in result.moments:
        spans.setdefault(moment.camera_id, []).append((moment.start_utc, moment.end_utc))
    for camera_spans in spans.values():
        camera_spans.sort()
        for (_, end), (start, _) in itertools.pairwise(camera_spans):
            assert (start - end).total_seconds() > 6.0


def test_camera_and_time_filters_choose_shards_before_ranking(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState, red_frame: int) -> None:
    start = datetime(2026, 1, 25, 21, 0, 2, tzinfo=KYIV)
    end = datetime(2026, 1, 25, 21, 0, 6, tzinfo=KYIV)
    result = run(session, shards, search_corpus, search_state, similar_to_frame_id=red_frame,
                 k=3, filters=SearchFilters(camera_ids=("CAM-001",), start=start, end=end))
    assert result.provenance.shards_searched == ["CAM-001/2026-01-25"]
    frames = [f for m in result.moments for f in m.frame_ids]
    assert frames
    for frame_id in frames:
        frame = session.get(Frame, frame_id)
        assert frame is not None and frame.camera_id == "CAM-001"
        assert start <= frame.captured_at_utc <= end
    assert result.provenance.candidates <= 5 and result.provenance.k == 3
    names = {f.name for f in result.provenance.filters}
    assert {"cameras", "from", "to"} <= names


def test_naive_times_are_local_to_the_cameras(session: Session, shards: ShardStore,
                                              search_corpus: SearchCorpus,
                                              search_state: AppState, red_frame: int) -> None:
    result = run(session, shards, search_corpus, search_state, similar_to_frame_id=red_frame,
                 filters=SearchFilters(start=datetime(2026, 1, 25, 21, 0),
                                       end=datetime(2026, 1, 25, 21, 59)))
    assert {m.camera_id for m in result.moments} == {"CAM-001"}
    assert dict((f.name, f.value) for f in result.provenance.filters)["from"] \
        == "2026-01-25T19:00:00+00:00"


def test_small_k_reports_truncation(session: Session, shards: ShardStore,
                                    search_corpus: SearchCorpus, search_state: AppState) -> None:
    result = run(session, shards, search_corpus, search_state, text="street", k=2)
    assert result.provenance.truncated
    assert sum(len(m.frame_ids) for m in result.moments) >= 2
    full = run(session, shards, search_corpus, search_state, text="street", k=500)
    assert not full.provenance.truncated


def test_district_filter(session: Session, shards: ShardStore, search_corpus: SearchCorpus,
                         search_state: AppState) -> None:
    result = run(session, shards, search_corpus, search_state, text="metro exit",
                 filters=SearchFilters(districts=("obolonskyi",)))
    assert {m.camera_id for m in result.moments} == {"CAM-003"}


def test_visible_cameras_are_a_prefilter(session: Session, shards: ShardStore,
                                         search_corpus: SearchCorpus,
                                         search_state: AppState, red_frame: int) -> None:
    result = search(session=session, get_embedder=lambda: search_corpus.embedder, shards=shards,
                    request=SearchRequest(text="car"), visible_camera_ids={"CAM-002"})
    assert {m.camera_id for m in result.moments} == {"CAM-002"}
    with pytest.raises(NotFoundError, match="Camera 'CAM-001' does not exist"):
        search(session=session, get_embedder=lambda: search_corpus.embedder, shards=shards,
               request=SearchRequest(text="car", filters=SearchFilters(camera_ids=("CAM-001",))),
               visible_camera_ids={"CAM-002"})
    with pytest.raises(NotFoundError, match=f"Frame {red_frame} does not exist"):
        search(session=session, get_embedder=lambda: search_corpus.embedder, shards=shards,
               request=SearchRequest(similar_to_frame_id=red_frame),
               visible_camera_ids={"CAM-002"})


def test_text_and_image_combined(session: Session, shards: ShardStore,
                                 search_corpus: SearchCorpus, search_state: AppState,
                                 red_frame: int) -> None:
    frame = session.get(Frame, red_frame)
    assert frame is not None
    with search_state.derived.open(frame.thumbnail_sha256) as handle:
        image = handle.read()
    result = run(session, shards, search_corpus, search_state, text="red car", image=image)
    assert result.provenance.image_supplied and result.provenance.clip_text == "red car"
    assert result.moments


def test_frames_missing_from_shards_are_scored_from_the_database(
        session: Session, search_corpus: SearchCorpus, search_state: AppState,
        red_frame: int) -> None:
    indexed = run(session, ShardStore(search_state.settings.index_dir), search_corpus,
                  search_state, similar_to_frame_id=red_frame)
    shutil.rmtree(search_state.settings.index_dir)
    search_state.settings.index_dir.mkdir()
    fallback = run(session, ShardStore(search_state.settings.index_dir), search_corpus,
                   search_state, similar_to_frame_id=red_frame)
    assert fallback.provenance.shards_searched == []
    assert fallback.provenance.frames_scored_from_database > 0
    assert [m.frame_ids for m in fallback.moments] == [m.frame_ids for m in indexed.moments]


def test_frames_waiting_for_embedding_are_reported(session: Session, shards: ShardStore,
                                                   search_corpus: SearchCorpus,
                                                   search_state: AppState) -> None:
    waiting = session.exec(select(FrameEmbedding).where(FrameEmbedding.status == "linked")).all()
    frames = [session.get(Frame, row.frame_id) for row in waiting]
    for row in waiting:
        entry = session.get(FrameIndexEntry, row.frame_id)
        session.delete(entry)
        session.delete(row)
    # as ingest leaves a new frame: in the backlog, not yet embedded
    add_to_backlog(session, [BacklogFrame(f.id, f.camera_id, f.captured_at_utc)
                             for f in frames if f is not None and f.id is not None],
                   embedded=False)
    session.commit()
    result = run(session, shards, search_corpus, search_state, text="street")
    assert result.provenance.frames_waiting_for_embedding == len(waiting) > 0
    cam1 = run(session, shards, search_corpus, search_state, text="street",
               filters=SearchFilters(camera_ids=("CAM-001",)))
    assert cam1.provenance.frames_waiting_for_embedding == sum(
        1 for f in frames if f is not None and f.camera_id == "CAM-001")


def test_shards_of_another_model_are_left_out_with_a_reason(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState) -> None:
    other = build_unsafe_random_embedder(seed=1)
    assert other.weights_sha256 != search_corpus.embedder.weights_sha256
    result = search(session=session, get_embedder=lambda: other, shards=shards,
                    request=SearchRequest(text="car"))
    prov = result.provenance
    assert result.moments == [] and prov.shards_searched == [] and prov.partial
    assert sorted(prov.shards_left_out) == ["CAM-001/2026-01-25", "CAM-002/2026-01-25",
                                            "CAM-003/2026-01-25"]
    assert all("will not mix models" in reason for reason in prov.shards_left_out.values())


def test_embedder_failure_raises_instead_of_returning_nothing(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus) -> None:
    class Broken:
        preset = "test-tiny"
        weights_sha256 = search_corpus.embedder.weights_sha256
        dim = search_corpus.embedder.dim

        def encode_text(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("CUDA out of memory")

        def encode_images(self, images: list[object]) -> np.ndarray:
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(EmbedderFailedError, match="failed to encode the query"):
        search(session=session, get_embedder=Broken, shards=shards,
               request=SearchRequest(text="car"))


@pytest.mark.parametrize(("request_", "error", "message"), [
    (SearchRequest(), InvalidInputError, "the query is empty"),
    (SearchRequest(text="   "), InvalidInputError, "the query is empty"),
    (SearchRequest(text="at night"), InvalidInputError, "only names a time of day"),
    (SearchRequest(text="car", k=0), InvalidInputError, "k must be between 1 and 500; got 0"),
    (SearchRequest(text="car", k=501), InvalidInputError, "got 501"),
    (SearchRequest(text="car", filters=SearchFilters(camera_ids=("CAM-999",))),
     NotFoundError, "Camera 'CAM-999' does not exist"),
    (SearchRequest(text="car", filters=SearchFilters(districts=("Atlantis",))),
     NotFoundError, "No camera you can see is in district 'Atlantis'"),
    (SearchRequest(text="car", filters=SearchFilters(
        start=datetime(2026, 1, 26, tzinfo=KYIV), end=datetime(2026, 1, 25, tzinfo=KYIV))),
     InvalidInputError, "is later than 'to'"),
    (SearchRequest(text="car at night", filters=SearchFilters(day_phase=DayPhase.DAY)),
     InvalidInputError, "choose one"),
    (SearchRequest(image=b"GIF89a but not really"), InvalidImageError, "not an image"),
    (SearchRequest(similar_to_frame_id=10**9), NotFoundError, "does not exist"),
])
def test_bad_input_is_refused_before_the_model_is_needed(
        session: Session, shards: ShardStore, request_: SearchRequest, error: type[Exception],
        message: str) -> None:
    def no_model() -> None:
        raise AssertionError("the model must not be loaded for a bad request")

    with pytest.raises(error, match=message):
        search(session=session, get_embedder=no_model, shards=shards,  # type: ignore[arg-type]
               request=request_)
