"""The search provenance names the towers: the text tower that encoded the query (torch or
ONNX, precision, weights hash, the graph's path and hash), whether the query vector came
from the cache, and the image tower that embedded the frames searched."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from indexer.embeddings import build_unsafe_random_embedder
from indexer.onnx_towers import tower_paths, use_onnx_towers
from indexer.query_cache import CachedQueryEmbedder, QueryCache
from indexer.search.engine import SearchRequest, SearchResult, search
from indexer.search.types import (
    ImageTowerInfo,
    QueryEmbedder,
    SearchFilters,
    TextEncoderInfo,
)
from indexer.shard_files import ShardStore
from search_api.state import AppState
from tests.search_corpus import SearchCorpus


def _search(session: Session, shards: ShardStore, state: AppState, embedder: QueryEmbedder,
            **kwargs: object) -> SearchResult:
    return search(session=session, get_embedder=lambda: embedder, shards=shards,
                  request=SearchRequest(**kwargs), derived=state.derived)  # type: ignore[arg-type]


def test_a_torch_query_names_the_torch_tower_and_the_image_tower(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState) -> None:
    prov = _search(session, shards, search_state, search_corpus.embedder,
                   text="red car").provenance
    weights = search_corpus.embedder.weights_sha256
    assert prov.text_encoder == TextEncoderInfo(
        backend="torch", precision="fp32", weights_sha256=weights,
        text_sequence=search_corpus.embedder.text_sequence)
    assert prov.text_encoder.text_sequence in ("eot", "full")
    assert prov.query_vector_cached is False  # no cache in front of this embedder
    # shards and embedding rows record preset and weights, not the image tower's backend
    assert prov.image_tower == ImageTowerInfo(preset="test-tiny", weights_sha256=weights,
                                              backend=None)


def test_the_cache_says_whether_the_vector_was_encoded_or_reused(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState) -> None:
    cached = CachedQueryEmbedder(search_corpus.embedder, QueryCache(8))
    first = _search(session, shards, search_state, cached, text="Red  car").provenance
    again = _search(session, shards, search_state, cached, text="red car at night").provenance
    other = _search(session, shards, search_state, cached, text="white van").provenance
    assert (first.query_vector_cached, again.query_vector_cached,
            other.query_vector_cached) == (False, True, False)
    assert first.text_encoder is not None and first.text_encoder.backend == "torch"
    assert cached.cache.stats().entries == 2


def test_an_onnx_query_names_the_graph_file_and_its_hash(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState, tmp_path: Path) -> None:
    embedder = build_unsafe_random_embedder(seed=0)  # the corpus's weights, its own runner
    assert embedder.weights_sha256 == search_corpus.embedder.weights_sha256
    assert use_onnx_towers(embedder, towers=("text",), cache_dir=tmp_path / "onnx") == {}
    cached = CachedQueryEmbedder(embedder, QueryCache(8))
    prov = _search(session, shards, search_state, cached, text="red car").provenance
    graph, record = tower_paths(tmp_path / "onnx", embedder.weights_sha256, "text")
    assert prov.text_encoder == TextEncoderInfo(
        backend="onnx", precision="fp32", weights_sha256=embedder.weights_sha256,
        onnx_path=str(graph), onnx_sha256=hashlib.sha256(graph.read_bytes()).hexdigest(),
        text_sequence=json.loads(record.read_text())["text_sequence"])
    assert prov.query_vector_cached is False
    assert prov.shards_searched and prov.image_tower is not None


def test_a_similar_frame_query_encodes_no_text(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState, red_frame: int) -> None:
    prov = _search(session, shards, search_state, search_corpus.embedder,
                   similar_to_frame_id=red_frame).provenance
    assert prov.text_encoder is None and prov.query_vector_cached is None
    assert prov.image_tower is not None
    assert prov.image_tower.weights_sha256 == search_corpus.embedder.weights_sha256


def test_a_search_that_searches_no_frame_names_no_image_tower(
        session: Session, shards: ShardStore, search_corpus: SearchCorpus,
        search_state: AppState) -> None:
    # a day with no footage: no shard is selected and no frame is scored
    empty_day = SearchFilters(start=datetime(2020, 1, 1, tzinfo=UTC),
                              end=datetime(2020, 1, 2, tzinfo=UTC))
    prov = _search(session, shards, search_state, search_corpus.embedder, text="red car",
                   filters=empty_day).provenance
    assert prov.shards_searched == [] and prov.frames_scored_from_database == 0
    assert prov.image_tower is None
    assert prov.text_encoder is not None and prov.query_vector_cached is False
