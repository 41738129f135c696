"""Random-weight CLIP models for the benchmarks, built once and reused.

Real CLIP weights cannot be downloaded on the build machine. A randomly initialised model
of the same architecture (``build_unsafe_random_embedder``, seed 0) has the same tensor
shapes and runs the same arithmetic, so it runs at the same speed; its vectors mean
nothing. ``benchmarks/embedding.py`` and ``benchmarks/search.py`` take the model from
``random_embedder``. ``benchmarks/recording.py`` needs more: the model installed the way
a worker loads it. ``prepare_random_model`` saves the state dict as a checkpoint
(``OKO_CLIP_WEIGHTS``) and exports its image tower to ONNX (``indexer.onnx_towers``,
keyed by the checkpoint's SHA-256, parity-checked against open_clip), both into a cache
directory, once. ``RandomModel.install_onnx`` hard-links that export into a data dir's
``models/onnx``, so a worker with ``OKO_IMAGE_ENCODER=onnx`` finds it instead of exporting.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.clip_presets import DEFAULT_PRESET, TEST_PRESET, get_preset
from storage.blobstore import sha256_file

if TYPE_CHECKING:  # torch and open_clip load only when a model is built
    from indexer.embeddings import ClipEmbedder

SEED = 0
EMBEDDERS = {"vit-b-32-random": DEFAULT_PRESET, "test-tiny": TEST_PRESET}
"""``--embedder`` names: the default preset's architecture, and the tests' tiny model."""
IMAGE_ENCODERS = ("onnx", "torch")


def random_embedder(preset: str = DEFAULT_PRESET, *, batch_size: int = 32) -> ClipEmbedder:
    """The benchmarks' random model of ``preset`` (seed 0: the same weights every time)."""
    from indexer.embeddings import build_unsafe_random_embedder

    return build_unsafe_random_embedder(preset, seed=SEED, batch_size=batch_size)


def random_checkpoint(directory: Path, preset: str) -> Path:
    """``random_embedder(preset)``'s state dict saved in ``directory``, once (atomically)."""
    path = directory / f"{preset}-random.pt"
    if not path.exists():
        import torch

        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        torch.save(random_embedder(preset).model.state_dict(), part)
        part.replace(path)
    return path


@dataclass(frozen=True)
class RandomModel:
    """A random checkpoint and, for ``image_encoder == "onnx"``, its image tower's export."""

    name: str
    preset: str
    weights: Path
    weights_sha256: str
    image_encoder: str
    onnx_cache: Path | None  # <cache>/onnx: <weights sha256>/image-fp32.{onnx,json}
    onnx_parity_min_cosine: float | None
    prepare_s: float

    def settings(self) -> dict[str, Any]:
        """``Settings`` fields that install the model (``OKO_CLIP_*``, ``OKO_IMAGE_ENCODER``)."""
        return {"clip_preset": self.preset, "clip_weights": self.weights,
                "image_encoder": self.image_encoder}

    def environment(self) -> dict[str, str]:
        """The same, as a worker process's environment."""
        return {"OKO_CLIP_PRESET": self.preset, "OKO_CLIP_WEIGHTS": str(self.weights),
                "OKO_IMAGE_ENCODER": self.image_encoder}

    def install_onnx(self, onnx_dir: Path) -> None:
        """Put the cached export where ``Settings.onnx_dir`` points (hard links, or copies)."""
        if self.onnx_cache is None:
            return
        source = self.onnx_cache / self.weights_sha256
        target = onnx_dir / self.weights_sha256
        target.mkdir(parents=True, exist_ok=True)
        for path in source.glob("image-*"):
            if (target / path.name).exists():
                continue
            try:
                os.link(path, target / path.name)
            except OSError:  # another filesystem
                shutil.copy2(path, target / path.name)

    def describe(self) -> dict[str, Any]:
        preset = get_preset(self.preset)
        return {"name": self.name, "preset": self.preset, "architecture": preset.architecture,
                "weights": "random (seed 0): the architecture's arithmetic, vectors "
                           "meaningless", "weights_sha256": self.weights_sha256,
                "image_encoder": self.image_encoder,
                "onnx_parity_min_cosine": self.onnx_parity_min_cosine}


def prepare_random_model(directory: Path, *, name: str,
                         image_encoder: str = "onnx") -> RandomModel:
    """The model ``name`` (a key of ``EMBEDDERS``) saved in ``directory``, built if missing.

    With ``image_encoder="onnx"`` the image tower is exported into ``directory / "onnx"``
    through ``indexer.onnx_towers.load_tower``, which reuses a stored export when it is
    intact and from these library versions. Raises ``KeyError`` for an unknown name or
    encoder, and ``OnnxExportError`` when the export misses parity.
    """
    preset = EMBEDDERS[name]
    if image_encoder not in IMAGE_ENCODERS:
        raise KeyError(image_encoder)
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    weights = random_checkpoint(directory, preset)
    sha256 = sha256_file(weights)  # what resolve_weights records for OKO_CLIP_WEIGHTS
    onnx_cache, parity = None, None
    if image_encoder == "onnx":
        from indexer.embeddings import load_embedder
        from indexer.model_store import SOURCE_ENV, WeightsSource
        from indexer.onnx_towers import load_tower

        chosen = get_preset(preset)
        source = WeightsSource(preset=chosen.name, architecture=chosen.architecture,
                               pretrained_tag=chosen.pretrained_tag or "", path=weights.resolve(),
                               sha256=sha256, source=SOURCE_ENV)
        onnx_cache = directory / "onnx"
        tower = load_tower(load_embedder(preset=preset, weights=source), "image",
                           cache_dir=onnx_cache)
        parity = tower.record.get("parity_min_cosine")
    return RandomModel(name=name, preset=preset, weights=weights, weights_sha256=sha256,
                       image_encoder=image_encoder, onnx_cache=onnx_cache,
                       onnx_parity_min_cosine=parity,
                       prepare_s=round(time.monotonic() - started, 1))


__all__ = ["EMBEDDERS", "IMAGE_ENCODERS", "RandomModel", "prepare_random_model",
           "random_checkpoint", "random_embedder"]
