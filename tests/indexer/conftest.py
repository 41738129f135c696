"""Fixtures the ONNX tower tests share."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder


@pytest.fixture
def embedder() -> ClipEmbedder:
    """A fresh tiny model per test: ``use_onnx_towers`` changes the embedder it is given."""
    return build_unsafe_random_embedder("test-tiny", seed=0, threads=2)


@pytest.fixture
def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = torch.onnx.export

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", counted)
    return calls
