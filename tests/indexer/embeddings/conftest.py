"""Fixtures for the embedding tests: a tiny random CLIP, its checkpoint, and real footage.

The tiny model is built once per session through the production code path; its
checkpoint file lets tests load it back exactly as a real weights file would be.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image
from sqlmodel import Session, select

from indexer.embeddings import PRESETS, ClipEmbedder, build_unsafe_random_embedder
from indexer.ingest import IngestOptions, ingest_file
from indexer.media import ffmpeg_exe
from indexer.samples import static_scene
from search_api.state import AppState, build_state
from storage.cameras import add_camera, validate_camera
from storage.models.media import Frame
from storage.settings import Settings
from tests.services import DATABASE_BACKENDS, database_url_for

CLIP_SECONDS = 12.0
BURST = (5.0, 8.0)  # seconds in which the van crosses the otherwise still street
SAMPLE_INTERVAL_S = 0.5
CAPTURE_START = datetime(2026, 1, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def tiny_embedder() -> ClipEmbedder:
    return build_unsafe_random_embedder("test-tiny", seed=0, threads=2, batch_size=8)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_embedder: ClipEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's state dict saved the way open_clip checkpoints are."""
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(tiny_embedder.model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def other_architecture_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dict of a different (still tiny) architecture: 48-d instead of 32-d."""
    path = tmp_path_factory.mktemp("weights") / "wide.pt"
    torch.save(open_clip.create_model("oko-test-tiny", embed_dim=48).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def reference_model(tiny_checkpoint: Path) -> tuple[torch.nn.Module, Callable[..., torch.Tensor],
                                                       Callable[..., torch.Tensor]]:
    """open_clip's own model, transform and tokenizer for the checkpoint, built independently."""
    model, _, preprocess = open_clip.create_model_and_transforms(
        "oko-test-tiny", pretrained=str(tiny_checkpoint),
        image_resize_mode=PRESETS["test-tiny"].image_resize_mode)
    return model.eval(), preprocess, open_clip.get_tokenizer("oko-test-tiny")


@pytest.fixture(scope="session")
def van_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still street where an orange van crosses only during ``BURST`` (ffmpeg lavfi)."""
    out = tmp_path_factory.mktemp("footage") / "CAM-EMB_20260125T120000.mp4"
    graph = static_scene(320, 180, CLIP_SECONDS, burst=BURST)
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast",
         "-g", "50", "-threads", "2", "-pix_fmt", "yuv420p", "-fflags", "+bitexact",
         "-map_metadata", "-1", str(out)],
        check=True, capture_output=True,
    )
    return out


@dataclass
class IngestedClip:
    camera_id: str
    frame_ids: list[int]


def ingest_clip(state: AppState, clip: Path, *, camera_id: str = "CAM-EMB") -> IngestedClip:
    with Session(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id=camera_id, name="Embedding test street", district="Test", latitude=50.45,
            longitude=30.52, agency="police"))
        session.commit()
    ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                path=clip, camera_id=camera_id, start=CAPTURE_START,
                options=IngestOptions(segment_seconds=6.0,
                                      sample_interval_seconds=SAMPLE_INTERVAL_S))
    with Session(state.engine) as session:
        ids = session.exec(select(Frame.id).where(Frame.camera_id == camera_id)
                           .order_by(Frame.captured_at_utc)).all()
    return IngestedClip(camera_id=camera_id, frame_ids=[int(i) for i in ids])


@pytest.fixture
def ingested(state: AppState, van_clip: Path) -> IngestedClip:
    return ingest_clip(state, van_clip)


@pytest.fixture(params=DATABASE_BACKENDS)
def any_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppState]:
    """A fresh data dir on SQLite, then on a real PostgreSQL."""
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase",
                        database_url=database_url_for(request, tmp_path))
    app_state = build_state(settings)
    yield app_state
    app_state.engine.dispose()


@pytest.fixture
def any_ingested(any_state: AppState, van_clip: Path) -> IngestedClip:
    return ingest_clip(any_state, van_clip)


def frame_image(state: AppState, frame: Frame) -> Image.Image:
    with state.derived.open(frame.thumbnail_sha256) as handle:
        image = Image.open(handle)
        image.load()
    return image
