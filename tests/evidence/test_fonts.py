"""The PDFs' DejaVu fonts are found in matplotlib's package without importing it."""

from __future__ import annotations

from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from evidence import fonts
from evidence.fonts import DEJAVU_SANS, DEJAVU_SANS_BOLD, DEJAVU_SANS_MONO, font_path
from storage.errors import ConfigurationError


@pytest.mark.parametrize("filename", [DEJAVU_SANS, DEJAVU_SANS_BOLD, DEJAVU_SANS_MONO])
def test_each_font_is_a_truetype_file_in_mpl_data(filename: str) -> None:
    path = font_path(filename)
    assert path.parts[-4:] == ("mpl-data", "fonts", "ttf", filename)
    assert path.read_bytes()[:4] == b"\x00\x01\x00\x00"  # TrueType outlines


def test_a_missing_font_names_the_file_and_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"NoSuchFont\.ttf .*install matplotlib"):
        font_path("NoSuchFont.ttf")


def test_without_matplotlib_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match=r"DejaVuSans\.ttf was not found"):
        font_path(DEJAVU_SANS)


def test_a_package_without_mpl_data_is_reported(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    spec = ModuleSpec("matplotlib", loader=None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(fonts, "find_spec", lambda name: spec)
    with pytest.raises(ConfigurationError, match="mpl-data/fonts/ttf"):
        font_path(DEJAVU_SANS)
