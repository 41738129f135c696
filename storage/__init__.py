"""Bottom layer of Oko: settings, database models, the write-once blob store."""

from storage.blobstore import BlobStore
from storage.errors import OkoError
from storage.settings import Settings

__all__ = ["BlobStore", "OkoError", "Settings"]
