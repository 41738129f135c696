"""Opening an untrusted bundle safely: Oko's names for ``oko_verify.unpack``.

The extraction itself (name checks, limits relative to the zip's size, the scratch
dir) lives in the standalone verifier; this module gives its errors Oko's hierarchy, so
``UnusableBundleError`` is both an ``InvalidInputError`` (exit 2, HTTP 422) and the
verifier's own ``oko_verify.UnusableBundleError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import oko_verify
from oko_verify.unpack import BundleLimits, ExtractionStats
from oko_verify.unpack import open_bundle as _open_bundle

from storage.errors import InvalidInputError


class UnusableBundleError(InvalidInputError, oko_verify.UnusableBundleError):
    """The input is not a bundle that can be checked at all (exit code 2)."""

    exit_code = 2
    http_status = 422


@contextmanager
def open_bundle(path: Path, *, limits: BundleLimits | None = None,
                scratch_dir: Path | None = None) -> Iterator[Path]:
    """``oko_verify.unpack.open_bundle`` raising this module's ``UnusableBundleError``."""
    try:
        with _open_bundle(path, limits=limits, scratch_dir=scratch_dir) as root:
            yield root
    except oko_verify.UnusableBundleError as exc:
        if isinstance(exc, UnusableBundleError):
            raise
        raise UnusableBundleError(exc.message, details=exc.details) from exc


__all__ = ["BundleLimits", "ExtractionStats", "UnusableBundleError", "open_bundle"]
