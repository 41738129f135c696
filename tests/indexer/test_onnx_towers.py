"""CLIP towers on ONNX Runtime: parity with open_clip, the stored export, and its fallbacks.

Every test exports the tiny random open_clip model (the suite's ``test-tiny`` preset)
through the production code path into a fresh cache dir.
"""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
import torch
from PIL import Image, ImageDraw

from indexer import onnx_towers
from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder
from indexer.onnx_towers import (
    EXPORTER,
    OPSET,
    OnnxExportError,
    load_tower,
    tower_paths,
    use_onnx_towers,
)

QUERIES = [
    "a red car at night", "white van turning left at the crossing", "cyclist in a yellow jacket",
    "two people next to a black SUV", "bus", "a truck " * 40,  # longer than 77 tokens
    "червоний автомобіль уночі", "білий фургон повертає ліворуч на перехресті",
    "велосипедист у жовтій куртці", "двоє людей біля чорного позашляховика", "автобус",
]


def street_frames(count: int, *, seed: int = 3) -> list[Image.Image]:
    """Frames drawn here: a sky-to-road gradient with coloured boxes and blobs, 448x252."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        rows = np.linspace(rng.integers(0, 120), rng.integers(120, 256), 252)
        base = np.repeat(rows[:, None, None], 448, axis=1).repeat(3, axis=2).astype(np.uint8)
        image = Image.fromarray(base)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = int(rng.integers(0, 400)), int(rng.integers(0, 220))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.rectangle((x, y, x + int(rng.integers(10, 60)), y + int(rng.integers(8, 30))),
                           fill=colour)
            draw.ellipse((y, x // 2, y + 25, x // 2 + 25), fill=colour[::-1])
        frames.append(image)
    return frames


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_text_tower_matches_open_clip_in_english_and_ukrainian(
        embedder: ClipEmbedder, tmp_path: Path) -> None:
    expected = embedder.encode_text(QUERIES)  # open_clip's encode_text
    tower = load_tower(embedder, "text", cache_dir=tmp_path / "onnx", threads=1)
    whole = tower(embedder.tokenize(QUERIES).numpy())
    one_by_one = np.concatenate([tower(embedder.tokenize([q]).numpy()) for q in QUERIES])
    assert whole.shape == one_by_one.shape == (len(QUERIES), embedder.dim)
    assert cosines(expected, whole).min() >= 0.999
    assert cosines(expected, one_by_one).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)

    assert use_onnx_towers(embedder, towers=("text",), cache_dir=tmp_path / "onnx") == {}
    assert embedder.text_backend == "onnx-fp32" and embedder.image_backend == "torch"
    assert cosines(expected, embedder.encode_text(QUERIES)).min() >= 0.999
    assert embedder.encode_text([]).shape == (0, embedder.dim)


def test_the_export_is_recorded_beside_it_keyed_by_the_weights(
        embedder: ClipEmbedder, tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    tower = load_tower(embedder, "text", cache_dir=cache)
    graph, record_path = tower_paths(cache, embedder.weights_sha256, "text")
    assert tower.path == graph and graph.parent.name == embedder.weights_sha256
    record = json.loads(record_path.read_text())
    assert record == tower.record
    assert record["weights_sha256"] == embedder.weights_sha256
    assert record["exporter"] == EXPORTER and record["opset"] == OPSET
    assert record["torch"] == torch.__version__ and record["onnxruntime"] == ort.__version__
    assert record["onnx_sha256"] == hashlib.sha256(graph.read_bytes()).hexdigest()
    assert record["parity_min_cosine"] >= 0.999 and record["precision"] == "fp32"
    assert files_under(cache) == sorted([graph, record_path])  # no temp file left
    assert stat.S_IMODE(graph.stat().st_mode) == 0o600


def test_a_stored_export_is_reused(embedder: ClipEmbedder, tmp_path: Path,
                                   count_exports: list[int]) -> None:
    cache = tmp_path / "onnx"
    load_tower(embedder, "text", cache_dir=cache)
    graph, _ = tower_paths(cache, embedder.weights_sha256, "text")
    before = graph.read_bytes()
    again = load_tower(embedder, "text", cache_dir=cache)
    assert len(count_exports) == 1 and graph.read_bytes() == before
    assert cosines(embedder.encode_text(QUERIES),
                   again(embedder.tokenize(QUERIES).numpy())).min() >= 0.999


@pytest.mark.parametrize("damage", ["flip_graph_byte", "other_torch", "record_missing",
                                    "record_not_json", "graph_missing"])
def test_a_damaged_or_stale_export_is_made_again(
        embedder: ClipEmbedder, tmp_path: Path, count_exports: list[int], damage: str) -> None:
    cache = tmp_path / "onnx"
    load_tower(embedder, "text", cache_dir=cache)
    graph, record_path = tower_paths(cache, embedder.weights_sha256, "text")
    if damage == "flip_graph_byte":
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0x01
        graph.write_bytes(bytes(data))
    elif damage == "other_torch":
        record = json.loads(record_path.read_text())
        record["torch"] = "1.0.0"
        record_path.write_text(json.dumps(record))
    elif damage == "record_missing":
        record_path.unlink()
    elif damage == "record_not_json":
        record_path.write_text("{ torn")
    else:
        graph.unlink()
    tower = load_tower(embedder, "text", cache_dir=cache)
    assert len(count_exports) == 2
    record = json.loads(record_path.read_text())
    assert record["torch"] == torch.__version__
    assert record["onnx_sha256"] == hashlib.sha256(graph.read_bytes()).hexdigest()
    assert cosines(embedder.encode_text(QUERIES),
                   tower(embedder.tokenize(QUERIES).numpy())).min() >= 0.999


def test_other_weights_get_their_own_export(embedder: ClipEmbedder, tmp_path: Path) -> None:
    other = build_unsafe_random_embedder("test-tiny", seed=1, threads=2)
    assert other.weights_sha256 != embedder.weights_sha256
    cache = tmp_path / "onnx"
    mine = load_tower(embedder, "text", cache_dir=cache)
    theirs = load_tower(other, "text", cache_dir=cache)
    assert mine.path.parent != theirs.path.parent
    tokens = embedder.tokenize(QUERIES).numpy()
    assert cosines(other.encode_text(QUERIES), theirs(tokens)).min() >= 0.999
    assert cosines(mine(tokens), theirs(tokens)).max() < 0.99


def test_export_failure_falls_back_to_torch_and_keeps_nothing(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    expected = embedder.encode_text(QUERIES)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("exporter unavailable\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", broken)
    cache = tmp_path / "onnx"
    with caplog.at_level(logging.WARNING, logger="indexer.onnx_towers"):
        reasons = use_onnx_towers(embedder, towers=("text",), cache_dir=cache)
    assert reasons == {"text": "The test-tiny text tower could not be exported to ONNX "
                               "(RuntimeError: exporter unavailable)."}
    assert "The text tower runs on torch." in caplog.text
    assert embedder.text_backend == "torch"
    np.testing.assert_array_equal(embedder.encode_text(QUERIES), expected)
    assert files_under(cache) == []


def test_an_export_that_misses_parity_is_refused_and_not_kept(
        embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(onnx_towers.PARITY_MIN, "fp32", 1.5)  # no graph can reach it
    cache = tmp_path / "onnx"
    with pytest.raises(OnnxExportError, match=r"reached cosine [01]\.\d+ with open_clip, below"):
        load_tower(embedder, "text", cache_dir=cache)
    assert files_under(cache) == []
    assert use_onnx_towers(embedder, towers=("text",), cache_dir=cache)["text"].endswith(
        "below the 1.5 required; it was not kept.")
    assert embedder.text_backend == "torch" and files_under(cache) == []


def test_unwritable_cache_dir_falls_back_to_torch(embedder: ClipEmbedder,
                                                  tmp_path: Path) -> None:
    blocker = tmp_path / "onnx"
    blocker.write_text("a file where the cache dir should be")
    reasons = use_onnx_towers(embedder, towers=("text",), cache_dir=blocker)
    assert reasons["text"].startswith("The ONNX export could not be stored (")
    assert embedder.text_backend == "torch" and blocker.read_text().startswith("a file")


def test_unknown_tower_or_precision_is_refused(embedder: ClipEmbedder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tower"):
        load_tower(embedder, "audio", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown tower"):
        load_tower(embedder, "text", cache_dir=tmp_path, precision="fp8")
    assert files_under(tmp_path) == []


def _image_parity(embedder: ClipEmbedder, run: Callable[[list[Image.Image]], np.ndarray],
                  frames: list[Image.Image]) -> float:
    expected = embedder.torch_encode_images(embedder.preprocess_batch(frames))
    return float(cosines(expected, run(frames)).min())


def test_image_tower_matches_open_clip(embedder: ClipEmbedder, tmp_path: Path) -> None:
    frames = street_frames(11)
    tower = load_tower(embedder, "image", cache_dir=tmp_path / "onnx", threads=1)
    assert _image_parity(embedder, lambda f: tower(embedder.preprocess_batch(f).numpy()),
                         frames) >= 0.999
    expected = embedder.encode_images(frames)
    embedder.batch_size = 4  # batches of 4, 4 and 3 through the dynamic batch axis
    assert use_onnx_towers(embedder, towers=("image",), cache_dir=tmp_path / "onnx") == {}
    assert embedder.image_backend == "onnx-fp32" and embedder.text_backend == "torch"
    assert cosines(expected, embedder.encode_images(frames)).min() >= 0.999


def test_int8_image_tower_records_its_measured_parity(embedder: ClipEmbedder,
                                                      tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    tower = load_tower(embedder, "image", cache_dir=cache, precision="int8")
    assert tower.backend == "onnx-int8" and tower.path.name == "image-int8.onnx"
    fp32_graph, _ = tower_paths(cache, embedder.weights_sha256, "image", "fp32")
    assert not fp32_graph.exists()  # the fp32 graph it came from was a temp file
    assert tower.record["parity_min_cosine"] >= 0.99
    assert [p.name for p in files_under(cache)] == ["image-int8.json", "image-int8.onnx"]
    parity = _image_parity(embedder, lambda f: tower(embedder.preprocess_batch(f).numpy()),
                           street_frames(6, seed=9))
    assert parity >= 0.99
