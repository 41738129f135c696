"""Bottom layer of Oko: settings, database models, the write-once blob store.

The names below load on first use, so that importing a leaf such as ``storage.errors``
(as ``oko verify`` does) does not load pydantic and the settings machinery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.blobstore import BlobStore
    from storage.errors import OkoError
    from storage.settings import Settings

_EXPORTS = {"BlobStore": "storage.blobstore", "OkoError": "storage.errors",
            "Settings": "storage.settings"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = ["BlobStore", "OkoError", "Settings"]
