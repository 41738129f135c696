"""The app the schema-fuzzing test serves with uvicorn: real settings from OKO_* plus the
random test-tiny CLIP model, so search answers instead of "no model installed" (503)."""

from __future__ import annotations

from fastapi import FastAPI

from indexer.embeddings import build_unsafe_random_embedder
from search_api.app import create_app
from search_api.state import build_state
from storage.settings import Settings


def create_fuzz_app() -> FastAPI:
    settings = Settings()
    state = build_state(settings)
    state.embedder = build_unsafe_random_embedder("test-tiny", threads=1)
    return create_app(settings, state=state)
