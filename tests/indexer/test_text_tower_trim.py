"""The text tower run only on the tokens up to the end-of-text token (issue 16).

CLIP's text tower is causal and pools the end-of-text token, so cutting each token row
after that token must give open_clip's own full 77-token vector. Every test builds the
tiny random open_clip model (``test-tiny``) and exports it through the production path
into a fresh cache dir; the reference is always ``model.encode_text`` on the full rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
import torch

from indexer import onnx_towers
from indexer.embeddings import (
    TEXT_EOT,
    TEXT_FULL,
    ClipEmbedder,
    eot_length,
)
from indexer.onnx_towers import load_tower, tower_paths, use_onnx_towers
from tests.indexer.test_onnx_towers import cosines, files_under, street_frames

NEAR_77 = ("a man in a dark hooded jacket and grey trousers walks a small white dog along the "
           "wet pavement past the pharmacy then crosses the road at the tram stop near the "
           "yellow kiosk while a blue taxi and a red bus wait at the lights and a cyclist in "
           "a yellow jacket rides past them on the cycle lane towards the old bridge by the "
           "river in the rain")  # 72 tokens with the start and end tokens
QUERIES = [
    "a red car at night", "bus", "", "  Білий   ФУРГОН  ", "червоний автомобіль уночі",
    "людина з рюкзаком біля метро", NEAR_77, "a truck " * 40, "вантажівка " * 40,
]


def full_pass(embedder: ClipEmbedder, texts: list[str]) -> np.ndarray:
    """open_clip's own ``encode_text`` on the full, padded 77-token rows."""
    with torch.inference_mode():
        rows = embedder.model.encode_text(embedder.tokenize(texts), normalize=True)
    return np.asarray(rows.numpy(), dtype=np.float32)


def rebuilt(embedder: ClipEmbedder) -> ClipEmbedder:
    """A new embedder around ``embedder``'s (changed) model, as loading would build it."""
    return ClipEmbedder(preset=embedder._preset, model=embedder.model,
                        preprocess=embedder.preprocess, tokenizer=embedder.tokenizer,
                        weights_sha256=embedder.weights_sha256)


def lengths_seen_by_ort(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = ort.InferenceSession.run

    def spy(self: Any, outputs: Any, feeds: dict[str, np.ndarray], *args: Any) -> Any:
        seen.append(int(feeds["input"].shape[1]))
        return real(self, outputs, feeds, *args)

    monkeypatch.setattr(ort.InferenceSession, "run", spy)
    return seen


def test_the_queries_cover_short_near_and_over_77_tokens(embedder: ClipEmbedder) -> None:
    tokens = embedder.tokenize(QUERIES)
    lengths = [eot_length(tokens[i:i + 1]) for i in range(len(QUERIES))]
    assert lengths == [7, 3, 2, 16, 30, 34, 72, 77, 77]  # start, words, end
    assert lengths[6] < 77 and lengths[7] == lengths[8] == 77
    assert eot_length(tokens) == 77 and eot_length(tokens[:2]) == 7
    assert eot_length(tokens[:2], multiple=8) == 8 and eot_length(tokens[1:3], 8) == 8
    assert eot_length(tokens[7:8], multiple=8) == 77  # never past the row
    assert eot_length(tokens[:0]) == 77


def test_trimmed_onnx_tower_matches_the_full_open_clip_pass(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = full_pass(embedder, QUERIES)
    tower = load_tower(embedder, "text", cache_dir=tmp_path / "onnx", threads=1)
    assert tower.trims and tower.record["text_sequence"] == TEXT_EOT
    assert tower.record["text_sequence_note"].startswith("causal mask")
    assert tower.record["parity_min_cosine"] >= 0.999
    assert tower.session.get_inputs()[0].shape[1] == "tokens"  # a dynamic axis

    seen = lengths_seen_by_ort(monkeypatch)
    one_by_one = np.concatenate([tower(embedder.tokenize([q]).numpy()) for q in QUERIES])
    assert seen == [7, 3, 2, 16, 30, 34, 72, 77, 77]  # each query cut after its end token
    short_batch = tower(embedder.tokenize(QUERIES[:6]).numpy())
    assert seen[-1] == 34  # a batch is cut after its longest query
    whole = tower(embedder.tokenize(QUERIES).numpy())
    assert cosines(expected, one_by_one).min() >= 0.999
    assert cosines(expected[:6], short_batch).min() >= 0.999
    assert cosines(expected, whole).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)

    assert use_onnx_towers(embedder, towers=("text",), cache_dir=tmp_path / "onnx") == {}
    assert cosines(expected, embedder.encode_text(QUERIES)).min() >= 0.999


def test_torch_path_runs_the_cut_rows_and_matches(embedder: ClipEmbedder) -> None:
    expected = full_pass(embedder, QUERIES)
    seen: list[int] = []
    hook = embedder.model.transformer.register_forward_pre_hook(
        lambda _m, args: seen.append(int(args[0].shape[1])))
    try:
        got = np.concatenate([embedder.encode_text([q]) for q in QUERIES])
        reference = embedder.torch_encode_text(embedder.tokenize(QUERIES[:1]))
    finally:
        hook.remove()
    assert embedder.text_sequence == TEXT_EOT and embedder.text_backend == "torch"
    assert seen == [7, 3, 2, 16, 30, 34, 72, 77, 77, 77]  # the reference: the full rows
    assert cosines(expected, got).min() >= 0.999
    assert cosines(expected[:1], reference).min() >= 0.999999


def test_a_full_length_export_from_before_is_made_again(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        count_exports: list[int]) -> None:
    cache = tmp_path / "onnx"
    with monkeypatch.context() as old_code:  # what the previous release exported
        old_code.setattr(onnx_towers, "_text_sequence", lambda _e: (TEXT_FULL, "old"))
        old = load_tower(embedder, "text", cache_dir=cache)
    graph, record_path = tower_paths(cache, embedder.weights_sha256, "text")
    assert old.session.get_inputs()[0].shape[1] == 77 and not old.trims
    record = json.loads(record_path.read_text())
    del record["text_sequence"], record["text_sequence_note"]  # records had neither
    record_path.write_text(json.dumps(record))

    tower = load_tower(embedder, "text", cache_dir=cache)
    assert len(count_exports) == 2
    assert json.loads(record_path.read_text())["text_sequence"] == TEXT_EOT
    assert tower.trims and tower.session.get_inputs()[0].shape[1] == "tokens"
    assert files_under(cache) == sorted([graph, record_path])
    assert cosines(full_pass(embedder, QUERIES),
                   tower(embedder.tokenize(QUERIES).numpy())).min() >= 0.999
    load_tower(embedder, "text", cache_dir=cache)
    assert len(count_exports) == 2  # the new export is then reused


@pytest.mark.parametrize(("change", "note"), [
    ("no_causal_mask", "the text tower has no causal attention mask"),
    ("pool_last", "the text tower pools 'last', not the end-of-text token"),
])
def test_a_tower_that_is_not_causal_or_not_eot_pooled_keeps_the_full_length(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        change: str, note: str) -> None:
    model: Any = embedder.model
    if change == "no_causal_mask":
        model.attn_mask = None  # bidirectional: every token sees the padding
    else:
        model.text_pool_type = "last"
    changed = rebuilt(embedder)
    assert (changed.text_sequence, changed.text_sequence_note) == (TEXT_FULL, note)
    expected = full_pass(changed, QUERIES)
    tower = load_tower(changed, "text", cache_dir=tmp_path / "onnx")
    assert not tower.trims
    assert (tower.record["text_sequence"], tower.record["text_sequence_note"]) == (TEXT_FULL,
                                                                                   note)
    seen = lengths_seen_by_ort(monkeypatch)
    got = np.concatenate([tower(changed.tokenize([q]).numpy()) for q in QUERIES[:3]])
    assert seen == [77, 77, 77]
    assert cosines(expected[:3], got).min() >= 0.999
    assert cosines(expected, changed.encode_text(QUERIES)).min() >= 0.999999  # torch: full


def test_the_api_path_releases_the_torch_text_weights(embedder: ClipEmbedder,
                                                      tmp_path: Path) -> None:
    expected = full_pass(embedder, QUERIES)
    frames = street_frames(3)
    images = embedder.encode_images(frames)
    with pytest.raises(RuntimeError, match="cannot be released"):
        embedder.release_torch_text()  # nothing else answers the queries yet
    assert use_onnx_towers(embedder, towers=("text",), cache_dir=tmp_path / "onnx",
                           release_torch_text=True) == {}
    model: Any = embedder.model
    assert embedder.torch_text_released and model.transformer is None
    assert model.token_embedding is None and model.positional_embedding is None
    assert not any(name.startswith(("transformer.", "token_embedding."))
                   for name, _ in model.named_parameters())
    assert cosines(expected, embedder.encode_text(QUERIES)).min() >= 0.999
    np.testing.assert_array_equal(embedder.encode_images(frames), images)  # image: untouched
    with pytest.raises(RuntimeError, match="was released"):
        embedder.use_runner("text", None, "torch")
    with pytest.raises(RuntimeError, match="was released"):
        embedder.torch_encode_text(embedder.tokenize(["bus"]))
    assert embedder.text_backend == "onnx-fp32"


def test_a_failed_export_keeps_the_torch_text_weights(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(torch.onnx, "export", broken)
    cache = tmp_path / "onnx"
    reasons = use_onnx_towers(embedder, towers=("text",), cache_dir=cache,
                              release_torch_text=True)
    assert set(reasons) == {"text"} and files_under(cache) == []
    assert not embedder.torch_text_released and embedder.text_backend == "torch"
    assert cosines(full_pass(embedder, QUERIES), embedder.encode_text(QUERIES)).min() >= 0.999
