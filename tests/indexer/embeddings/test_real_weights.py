"""Zero-shot top-1 on scikit-image's photos with real CLIP weights, when they are installed.

Real weights cannot be downloaded in CI, so this runs only where an operator has set
OKO_CLIP_WEIGHTS or imported a model into OKO_HOME, and is skipped (with the reason)
everywhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from indexer.embeddings import ClipEmbedder, NoModelError, load_embedder, resolve_weights
from storage.db import make_engine
from storage.settings import Settings

PHOTOS = {"astronaut": "an astronaut", "chelsea": "a cat", "coffee": "a cup of coffee",
          "rocket": "a rocket"}
DISTRACTORS = ["a dog", "a red car on a street", "a city at night"]


@pytest.fixture(scope="module")
def real_embedder() -> ClipEmbedder:
    settings = Settings()  # the operator's environment: only to find real weights
    database = settings.home / "oko.db"
    if settings.clip_weights is None and settings.database_url is None and not database.exists():
        pytest.skip("no real CLIP weights here: set OKO_CLIP_WEIGHTS or "
                    "`oko models import FILE --preset ViT-B-32` to run this test")
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            weights = resolve_weights(preset=settings.clip_preset,
                                      env_weights=settings.clip_weights,
                                      models_dir=settings.models_dir, session=session)
    except (NoModelError, SQLAlchemyError) as exc:
        pytest.skip(f"no real CLIP weights here ({type(exc).__name__}): set OKO_CLIP_WEIGHTS "
                    "or import a model to run this test")
    finally:
        engine.dispose()
    if settings.clip_preset == "test-tiny":
        pytest.skip("OKO_CLIP_PRESET is the random test preset, not real weights")
    return load_embedder(preset=settings.clip_preset, weights=weights)


def test_zero_shot_top1_on_scikit_image_photos(real_embedder: ClipEmbedder) -> None:
    labels = [*PHOTOS.values(), *DISTRACTORS]
    texts = real_embedder.encode_text([f"a photo of {label}" for label in labels])
    images = real_embedder.encode_images(
        [Image.fromarray(getattr(data, name)()) for name in PHOTOS])

    predicted = [labels[int(i)] for i in np.argmax(images @ texts.T, axis=1)]
    assert predicted == list(PHOTOS.values())
