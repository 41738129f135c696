"""CLIP model presets: the one place that names architectures and pretrained weights.

A preset maps an Oko name to an open_clip architecture and, for real presets, the
open_clip pretrained tag whose Hugging Face repository ``oko models download`` fetches.
The ``test-tiny`` preset is a registered open_clip config with very small towers; it
has no weights anywhere and is only ever randomly initialised, in tests.

This module does not import open_clip (which imports torch): listing presets or sizing
an index must stay light. ``indexer.checkpoints`` registers the test config with
open_clip, and a test checks each preset's ``dim`` against open_clip's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidInputError

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
TEST_ARCHITECTURE = "oko-test-tiny"


# open_clip's default inference transform resizes the short side and centre-crops, which
# drops the left and right 22% of a 16:9 CCTV frame: a car entering the picture would
# never be embedded. Squashing the whole frame to the model's square input keeps it.
WHOLE_FRAME = "squash"


@dataclass(frozen=True)
class ClipPreset:
    name: str
    architecture: str
    pretrained_tag: str | None
    dim: int  # the architecture's embed_dim in its open_clip config
    description: str
    test_only: bool = False
    image_resize_mode: str = WHOLE_FRAME


DEFAULT_PRESET = "ViT-B-32"
TEST_PRESET = "test-tiny"

PRESETS: dict[str, ClipPreset] = {
    preset.name: preset
    for preset in (
        ClipPreset(
            name="ViT-B-32",
            architecture="ViT-B-32",
            pretrained_tag="laion2b_s34b_b79k",
            dim=512,
            description="OpenCLIP ViT-B/32 trained on LAION-2B; 512-d, fast on CPU",
        ),
        ClipPreset(
            name="ViT-B-16",
            architecture="ViT-B-16",
            pretrained_tag="laion2b_s34b_b88k",
            dim=512,
            description="OpenCLIP ViT-B/16 trained on LAION-2B; 512-d, finer detail, ~4x slower",
        ),
        ClipPreset(
            name=TEST_PRESET,
            architecture=TEST_ARCHITECTURE,
            pretrained_tag=None,
            dim=32,
            description="tiny random model for tests only; its vectors mean nothing",
            test_only=True,
        ),
    )
}


def get_preset(name: str) -> ClipPreset:
    """The preset called ``name``; raises ``InvalidInputError`` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise InvalidInputError(f"Unknown CLIP preset '{name}'; known presets: {known}.") from None


def preset_dim(preset: ClipPreset) -> int:
    """Embedding dimension of the preset's architecture."""
    return preset.dim
