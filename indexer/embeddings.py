"""CLIP embeddings of frames and queries, through open_clip's own model, transforms and tokenizer.

``load_embedder`` builds the preset's architecture with ``create_model_and_transforms``
and loads the resolved checkpoint with open_clip's strict loader, so a stored frame
vector equals ``preprocess`` + ``encode_image`` + L2 normalisation, and a query vector
equals ``encode_text`` on the preset's tokenizer. The preset sets the transform's resize
mode to take in the whole frame (see ``indexer.clip_presets.WHOLE_FRAME``).

A query is a few tokens padded to the context length (77). CLIP's text tower is causal
(each token attends only to those before it) and pools the end-of-text token (the
largest id, ``text_pool_type == "argmax"``), so its vector depends only on the tokens up
to that one: ``encode_text`` runs the tower on ``tokens[:, :eot + 1]`` with the positional
embedding and causal mask cut to that length (``text_sequence == "eot"``), the same
vector as the full pass up to float rounding, for a tenth of the work on a short query.
A model whose text tower is not causal or pools another way keeps the full length
(``text_sequence == "full"``, ``text_sequence_note`` says why). ``torch_encode_text`` is
always open_clip's own ``encode_text`` on the full input: the reference parity is
measured against.

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
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
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
    "TEXT_EOT",
    "TEXT_FULL",
    "TORCH_BACKEND",
    "ClipEmbedder",
    "ModelImportError",
    "NoModelError",
    "TowerRunner",
    "WeightsSource",
    "build_unsafe_random_embedder",
    "encode_text_prefix",
    "eot_length",
    "import_model",
    "load_embedder",
    "resolve_weights",
    "state_dict_sha256",
    "text_sequence_mode",
]

DEFAULT_BATCH_SIZE = 32
TORCH_BACKEND = "torch"

# A tower on another runtime: its input as a numpy array -> L2-normalised float32 rows.
TowerRunner = Callable[[np.ndarray], np.ndarray]
# How much of the padded token row the text tower is run on (see the module docstring).
TEXT_EOT = "eot"
TEXT_FULL = "full"
# The text tower's blocks: (embedded tokens [batch, length, width], additive causal mask
# [length, length]) -> their output. open_clip's own transformer by default.
TextBlocks = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def text_sequence_mode(model: torch.nn.Module) -> tuple[str, str]:
    """``(TEXT_EOT, why)`` when ``model``'s text vector depends only on the tokens up to
    the end-of-text token (causal mask, argmax pooling, CLIP's own text tower), else
    ``(TEXT_FULL, why not)``."""
    missing = [name for name in ("token_embedding", "positional_embedding", "transformer",
                                 "ln_final") if getattr(model, name, None) is None]
    if missing:
        return TEXT_FULL, f"the text tower is not CLIP's own (no {', '.join(missing)})"
    mask = getattr(model, "attn_mask", None)
    if not isinstance(mask, torch.Tensor):
        return TEXT_FULL, "the text tower has no causal attention mask"
    causal = torch.full(mask.shape, float("-inf")).triu(1)
    if mask.dim() != 2 or not torch.equal(mask.float().cpu(), causal):
        return TEXT_FULL, "the text tower's attention mask is not causal"
    pool = getattr(model, "text_pool_type", None)
    if pool != "argmax":
        return TEXT_FULL, f"the text tower pools {pool!r}, not the end-of-text token"
    return TEXT_EOT, "causal mask, pooled at the end-of-text token (argmax)"


def eot_length(tokens: np.ndarray | torch.Tensor, multiple: int = 1) -> int:
    """The row length that keeps every row's end-of-text token (its largest id): the last
    such position + 1, rounded up to ``multiple``, at most the rows' own length."""
    width = int(tokens.shape[-1])
    if width == 0 or tokens.shape[0] == 0:
        return width
    last = int(tokens.argmax(-1).max()) + 1
    return min(width, -(-last // multiple) * multiple)


def encode_text_prefix(model: torch.nn.Module, tokens: torch.Tensor,
                       blocks: TextBlocks | None = None) -> torch.Tensor:
    """open_clip's ``encode_text`` (normalised) on token rows of any length up to the
    context length, with the positional embedding and causal mask cut to that length.

    Only for a model whose ``text_sequence_mode`` is ``TEXT_EOT``: rows cut after their
    end-of-text token then give the full pass's vector."""
    m = cast(Any, model)
    length = tokens.shape[1]
    cast_dtype = m.transformer.get_cast_dtype()
    x = m.token_embedding(tokens).to(cast_dtype)
    x = x + m.positional_embedding[:length].to(cast_dtype)
    mask = m.attn_mask[:length, :length]
    x = blocks(x, mask) if blocks is not None else m.transformer(x, attn_mask=mask)
    x = m.ln_final(x)
    x = text_global_pool(x, tokens, m.text_pool_type)
    if m.text_projection is not None:
        x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) \
            else x @ m.text_projection
    return F.normalize(x, dim=-1)


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
        self.text_sequence, self.text_sequence_note = text_sequence_mode(self.model)
        self.torch_text_released = False

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
            if runner is None and self.torch_text_released:
                raise RuntimeError("the torch text tower was released; it cannot run again")
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
        """open_clip's own ``encode_text`` on the full token rows (the parity reference)."""
        self._check_torch_text()
        with torch.inference_mode():
            features = self._towers.encode_text(tokens.to(self.device), normalize=True)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    def torch_encode_text_trimmed(self, tokens: torch.Tensor) -> np.ndarray:
        """The torch text tower as ``encode_text`` runs it: up to the end-of-text token
        when ``text_sequence`` allows, else the full rows."""
        if self.text_sequence != TEXT_EOT:
            return self.torch_encode_text(tokens)
        self._check_torch_text()
        with torch.inference_mode():
            trimmed = tokens[:, :eot_length(tokens)].to(self.device)
            features = encode_text_prefix(self.model, trimmed)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    def release_torch_text(self) -> None:
        """Drop the torch text tower's weights (the image tower stays): for a process whose
        text tower runs elsewhere (ONNX) for good. Raises when no runner replaces it."""
        if self._text_runner is None:
            raise RuntimeError("the torch text tower answers the queries; it cannot be released")
        model = cast(Any, self.model)
        for name in ("transformer", "token_embedding", "ln_final", "positional_embedding",
                     "text_projection", "attn_mask"):
            if hasattr(model, name):
                setattr(model, name, None)
        self.torch_text_released = True

    def _check_torch_text(self) -> None:
        if self.torch_text_released:
            raise RuntimeError("the torch text tower was released (its ONNX tower runs instead)")

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
        if self._text_runner is not None:  # an ONNX tower cuts the rows itself where it can
            return np.ascontiguousarray(self._text_runner(tokens.numpy()), dtype=np.float32)
        return self.torch_encode_text_trimmed(tokens)


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
