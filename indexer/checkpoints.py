"""What only open_clip knows: its configs, and whether a checkpoint loads into an architecture.

This module imports torch and open_clip (seconds, ~1 GB), so only code that is about to
check or build a model imports it: ``indexer.embeddings``, and ``indexer.model_store``
inside the functions that install or download weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch

from indexer.clip_presets import MODEL_CONFIG_DIR, TEST_ARCHITECTURE


def register_model_configs() -> None:
    """Make Oko's own open_clip configs (the tiny test tower) known to open_clip."""
    if TEST_ARCHITECTURE not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def pretrained_config(*, architecture: str, pretrained_tag: str) -> dict[str, Any]:
    """open_clip's record for the pretrained weights (hub location, mean, std...), or {}."""
    config = open_clip.get_pretrained_cfg(architecture, pretrained_tag)
    return dict(config) if config else {}


def _describe_mismatch(found: Mapping[str, Any], expected: Mapping[str, torch.Tensor]) -> str:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong_shape = [
        f"{k} is {tuple(found[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and hasattr(found[k], "shape") and tuple(found[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors of the wrong shape (e.g. {wrong_shape[0]})")
    return "; ".join(parts)


def checkpoint_problem(*, architecture: str, path: Path) -> str | None:
    """Why the checkpoint at ``path`` does not load into ``architecture``, or None if it does.

    Acceptance is decided by open_clip's own strict loader (the same call ``load_embedder``
    makes); the reason lists missing and unexpected keys and the wrong shapes.
    """
    try:
        found = open_clip.factory.load_state_dict(str(path))
    except Exception as exc:  # torch.load / safetensors raise many types for foreign files
        return f"it is not a PyTorch or safetensors checkpoint ({type(exc).__name__})"
    if not isinstance(found, Mapping) or not all(torch.is_tensor(v) for v in found.values()):
        return "it does not hold a state dict of tensors"
    model = open_clip.create_model(architecture, pretrained=None)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except Exception as exc:
        reason = _describe_mismatch(found, model.state_dict())
        return reason or str(exc).splitlines()[0]
    return None


register_model_configs()

__all__ = ["checkpoint_problem", "pretrained_config", "register_model_configs"]
