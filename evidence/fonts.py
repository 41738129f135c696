"""The DejaVu TrueType files that Oko's PDFs embed, so that Ukrainian text renders.

They come from the installed matplotlib package, which ships them in
``mpl-data/fonts/ttf``. The package is located with ``importlib.util.find_spec`` and
never imported: importing matplotlib costs tens of MB and builds a font cache.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from storage.errors import ConfigurationError

DEJAVU_SANS = "DejaVuSans.ttf"
DEJAVU_SANS_BOLD = "DejaVuSans-Bold.ttf"
DEJAVU_SANS_MONO = "DejaVuSansMono.ttf"


def font_path(filename: str) -> Path:
    """The path of ``filename`` (e.g. ``DejaVuSans.ttf``) among matplotlib's fonts.

    Raises ``ConfigurationError`` when matplotlib is not installed or lacks the file.
    """
    spec = find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "mpl-data" / "fonts" / "ttf" / filename
        if candidate.is_file():
            return candidate
    raise ConfigurationError(f"The font {filename} was not found in matplotlib's "
                             "mpl-data/fonts/ttf, so no PDF can be rendered; install "
                             "matplotlib (it ships the DejaVu fonts).")


__all__ = ["DEJAVU_SANS", "DEJAVU_SANS_BOLD", "DEJAVU_SANS_MONO", "font_path"]
