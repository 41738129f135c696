"""CLIP embeddings of frames and queries, through open_clip's own model, transforms and tokenizer.

``load_embedder`` builds the preset's architecture with ``create_model_and_transforms``
and loads the resolved checkpoint with open_clip's strict loader, so a stored frame
vector equals ``preprocess`` + ``encode_image`` + L2 normalisation, and a query vector
equals ``encode_text`` on the preset's tokenizer. The preset sets the transform's resize
mode to take in the whole frame (see ``indexer.clip_presets.WHOLE_FRAME``).

There is no fallback: without weights ``resolve_weights`` raises ``NoModelError``. Only
tests and benchmarks call ``build_unsafe_random_embedder``, which goes through the same
code path with random initialisation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import numpy as np
import open_clip
import torch
from PIL import Image

from indexer.checkpoints import checkpoint_problem, pretrained_config
from indexer.clip_presets import (
    DEFAULT_PRESET,
    PRESETS,
    TEST_PRESET,
    ClipPreset,
    get_preset,
    preset_dim,
)
from indexer.model_store import (
    ModelImportError,
    NoModelError,
    WeightsSource,
    import_model,
    resolve_weights,
)

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "TEST_PRESET",
    "TORCH_BACKEND",
    "ClipEmbedder",
    "ModelImportError",
    "NoModelError",
    "TowerRunner",
    "WeightsSource",
    "build_unsafe_random_embedder",
    "import_model",
    "load_embedder",
    "resolve_weights",
    "state_dict_sha256",
]

DEFAULT_BATCH_SIZE = 32
TORCH_BACKEND = "torch"

# A tower on another runtime: its input as a numpy array -> L2-normalised float32 rows.
TowerRunner = Callable[[np.ndarray], np.ndarray]


class _ClipTowers(Protocol):
    """The two calls made on an open_clip model (an untyped ``nn.Module`` to mypy)."""

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...


class ClipEmbedder:
    """An open_clip model in eval mode with its inference transform and tokenizer."""

    def __init__(
        self, *, preset: ClipPreset, model: torch.nn.Module,
        preprocess: Callable[[Image.Image], torch.Tensor], tokenizer: Any,
        weights_sha256: str, device: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._preset = preset
        self.model = model.eval()
        self._towers = cast(_ClipTowers, self.model)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.dim = preset_dim(preset)
        # "torch", or what ``use_runner`` was given (an ONNX Runtime session, see
        # ``indexer.onnx_towers``); the torch model stays loaded either way
        self.text_backend = TORCH_BACKEND
        self.image_backend = TORCH_BACKEND
        self._text_runner: TowerRunner | None = None
        self._image_runner: TowerRunner | None = None

    @property
    def preset(self) -> str:
        return self._preset.name

    @property
    def architecture(self) -> str:
        return self._preset.architecture

    @property
    def text_runner(self) -> TowerRunner | None:
        """What runs the text tower instead of torch (an ``OnnxTower``), or None."""
        return self._text_runner

    def use_runner(self, tower: str, runner: TowerRunner | None, backend: str) -> None:
        """Run ``tower`` ("text" or "image") through ``runner`` instead of torch.

        ``runner`` maps the tower's input (token ids, or preprocessed pixels) to its
        L2-normalised output; ``None`` goes back to torch. ``backend`` names it in
        ``text_backend`` / ``image_backend`` (e.g. "onnx-fp32").
        """
        if tower == "text":
            self._text_runner, self.text_backend = runner, backend if runner else TORCH_BACKEND
        elif tower == "image":
            self._image_runner, self.image_backend = runner, backend if runner else TORCH_BACKEND
        else:
            raise ValueError(f"unknown tower {tower!r}")

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The image tower's input for ``images``: one preprocessed RGB tensor each."""
        return torch.stack([self.preprocess(image.convert("RGB")) for image in images])

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """The text tower's input for ``texts``: the preset's token ids, one row each."""
        tokens: torch.Tensor = self.tokenizer(list(texts))
        return tokens

    def torch_encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            features = self._towers.encode_image(pixels.to(self.device), normalize=True)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    def torch_encode_text(self, tokens: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            features = self._towers.encode_text(tokens.to(self.device), normalize=True)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One L2-normalised float32 row per image, computed in batches of ``batch_size``."""
        rows: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocess_batch(images[start:start + self.batch_size])
            rows.append(self._image_runner(pixels.numpy()) if self._image_runner
                        else self.torch_encode_images(pixels))
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, tokenized with the preset's tokenizer."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenize(texts)
        if self._text_runner is not None:
            return np.ascontiguousarray(self._text_runner(tokens.numpy()), dtype=np.float32)
        return self.torch_encode_text(tokens)


def _use_all_cores(threads: int | None) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def _preprocess_overrides(preset: ClipPreset) -> dict[str, Any]:
    """The preset's resize mode, plus the mean, std and interpolation its weights expect."""
    overrides: dict[str, Any] = {"image_resize_mode": preset.image_resize_mode}
    if preset.pretrained_tag:
        config = pretrained_config(architecture=preset.architecture,
                                   pretrained_tag=preset.pretrained_tag)
        keys = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation"}
        overrides.update({arg: config[key] for key, arg in keys.items() if key in config})
    return overrides


def load_embedder(
    *, preset: str, weights: WeightsSource, device: str = "cpu", threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ClipEmbedder:
    """Build the preset's model with ``weights`` loaded strictly.

    Raises ``ModelImportError`` naming the missing keys or wrong shapes when the
    checkpoint does not fit the preset's architecture.
    """
    chosen = get_preset(preset)
    _use_all_cores(threads)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            chosen.architecture, pretrained=str(weights.path), device=device,
            **_preprocess_overrides(chosen),
        )
    except Exception as exc:  # open_clip's loaders raise RuntimeError, AssertionError, OSError...
        problem = checkpoint_problem(architecture=chosen.architecture, path=weights.path) \
            or str(exc).splitlines()[0]
        raise ModelImportError(
            f"CLIP weights {weights.path} do not load into the {chosen.name} architecture "
            f"({chosen.architecture}): {problem}."
        ) from exc
    return ClipEmbedder(
        preset=chosen, model=model, preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(chosen.architecture),
        weights_sha256=weights.sha256, device=device, batch_size=batch_size,
    )


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over a model's tensors (names, dtypes, shapes and bytes), in key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_unsafe_random_embedder(
    preset: str = TEST_PRESET, seed: int = 0, *, threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ClipEmbedder:
    """TESTS AND BENCHMARKS ONLY: a randomly initialised model; its vectors mean nothing.

    It is built through the same ``create_model_and_transforms`` / ``get_tokenizer`` path
    as real weights, and its ``weights_sha256`` is the hash of its state dict, so shards
    and provenance treat it like any other model.
    """
    chosen = get_preset(preset)
    _use_all_cores(threads)
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(
        chosen.architecture, pretrained=None, **_preprocess_overrides(chosen),
    )
    return ClipEmbedder(
        preset=chosen, model=model, preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(chosen.architecture),
        weights_sha256=state_dict_sha256(model), batch_size=batch_size,
    )
