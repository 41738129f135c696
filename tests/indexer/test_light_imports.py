"""Importing the domain modules does not load torch or open_clip (seconds, >1 GB).

Only ``indexer.embeddings`` and ``indexer.checkpoints`` may, and only the functions that
build a model import them. ``evidence`` and ``storage`` also stay clear of faiss, so that
``oko verify`` runs in a small process; the verifier's own modules load no array, PDF,
image or database library at all. Each import runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODEL_LIBS = ("torch", "torchvision", "open_clip")
# What an offline verifier needs none of: arrays, PDFs, images, the DB stack, settings.
NOT_FOR_VERIFY = (*HEAVY_MODEL_LIBS, "faiss", "numpy", "reportlab", "matplotlib", "PIL",
                  "sqlalchemy", "sqlmodel", "alembic", "pydantic", "pydantic_settings")
VERIFY_MODULES = ("evidence.verify", "evidence.unpack", "evidence.bundle", "evidence.keys",
                  "evidence.fonts")

LIGHT_INDEXER_MODULES = (
    "indexer.clip_presets", "indexer.model_store", "indexer.embed_queue", "indexer.reindex",
    "indexer.jobs", "indexer.ingest", "indexer.shards", "indexer.shard_files",
    "indexer.vectors", "indexer.daynight", "indexer.search.engine", "indexer.search.query",
)


def _package_modules(package: str) -> list[str]:
    modules = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue  # Alembic scripts run inside Alembic, not as imports
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _loaded_after_import(module: str, watched: tuple[str, ...]) -> list[str]:
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps([m for m in {list(watched)!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", LIGHT_INDEXER_MODULES)
def test_indexer_module_imports_without_torch(module: str) -> None:
    assert _loaded_after_import(module, HEAVY_MODEL_LIBS) == []


@pytest.mark.parametrize("module", _package_modules("evidence") + _package_modules("storage"))
def test_evidence_and_storage_import_without_torch_or_faiss(module: str) -> None:
    assert _loaded_after_import(module, (*HEAVY_MODEL_LIBS, "faiss")) == []


@pytest.mark.parametrize("module", VERIFY_MODULES)
def test_the_verifier_imports_no_array_pdf_image_or_database_library(module: str) -> None:
    assert _loaded_after_import(module, NOT_FOR_VERIFY) == []


def test_the_check_sees_a_heavy_import() -> None:
    assert _loaded_after_import("indexer.embeddings", HEAVY_MODEL_LIBS) != []


def test_the_check_sees_the_pdf_and_database_stack() -> None:
    loaded = _loaded_after_import("evidence.audit_pdf", NOT_FOR_VERIFY)
    assert "reportlab" in loaded and "sqlalchemy" in loaded
    assert "matplotlib" not in loaded  # its fonts are found without importing it
