"""The query vector: text and/or image through the model, plus a similar frame's vector."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlmodel import Session

from indexer.embed_queue import LINKED
from indexer.search.types import (
    MAX_QUERY_IMAGE_PIXELS,
    QUERY_IMAGE_FORMATS,
    QUERY_IMAGE_SIDE,
    EmbedderFailedError,
    InvalidImageError,
    QueryEmbedder,
    QueryImageTooLargeError,
    TextEncoderInfo,
)
from indexer.shard_files import ModelMismatchError
from indexer.vectors import vector_from_bytes
from storage.errors import InvalidInputError, NotFoundError
from storage.models.media import Frame
from storage.models.search import FrameEmbedding


def decode_image(data: bytes) -> Image.Image:
    """Decode a query image within a memory bound: its header's pixel count is checked
    before any pixel is decoded, JPEGs decode at a reduced scale, and the result is at
    most ``QUERY_IMAGE_SIDE`` pixels on its longer side (CLIP sees 224 or so anyway)."""
    try:
        with Image.open(io.BytesIO(data), formats=QUERY_IMAGE_FORMATS) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_QUERY_IMAGE_PIXELS:
                raise QueryImageTooLargeError(width, height)
            image.draft("RGB", (QUERY_IMAGE_SIDE, QUERY_IMAGE_SIDE))  # JPEG: decode smaller
            image.load()
            decoded = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # a header past PIL's own bomb limit (or its warning, where warnings are errors)
        raise QueryImageTooLargeError(None, None) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError("The uploaded file is not an image Oko can read "
                                "(use JPEG, PNG or WebP).") from exc
    decoded.thumbnail((QUERY_IMAGE_SIDE, QUERY_IMAGE_SIDE))
    return decoded


def describe_text_encoder(embedder: QueryEmbedder) -> TextEncoderInfo:
    """Which text tower ``embedder`` runs: torch, or an ONNX graph (path, SHA-256, precision).

    It reads what ``indexer.embeddings.ClipEmbedder`` exposes (``text_backend``: "torch",
    "onnx-fp32" or "onnx-int8", and ``text_runner``: the ``OnnxTower``), through the query
    cache's wrapper (``inner``); an embedder without them is taken to run torch in fp32.
    """
    inner = getattr(embedder, "inner", embedder)
    backend = str(getattr(inner, "text_backend", "torch"))
    sequence = getattr(inner, "text_sequence", None)
    if not backend.startswith("onnx"):
        return TextEncoderInfo(backend="torch", precision="fp32",
                               weights_sha256=embedder.weights_sha256,
                               text_sequence=str(sequence) if sequence else None)
    runner = getattr(inner, "text_runner", None)
    path = getattr(runner, "path", None)
    record = getattr(runner, "record", None)
    recorded = record if isinstance(record, dict) else {}
    onnx_sha256 = recorded.get("onnx_sha256")
    sequence = recorded.get("text_sequence", sequence)  # what the graph was exported for
    return TextEncoderInfo(backend="onnx", precision=backend.partition("-")[2] or "fp32",
                           weights_sha256=embedder.weights_sha256,
                           onnx_path=str(path) if path is not None else None,
                           onnx_sha256=str(onnx_sha256) if onnx_sha256 else None,
                           text_sequence=str(sequence) if sequence else None)


def _encode_text(embedder: QueryEmbedder, text: str) -> tuple[np.ndarray, bool]:
    lookup = getattr(embedder, "encode_query_text", None)  # the query cache says if it hit
    if callable(lookup):
        row, cached = lookup(text)
        return np.asarray(row, dtype=np.float32), bool(cached)
    return embedder.encode_text([text])[0], False


def _encode(embedder: QueryEmbedder, *, text: str | None,
            image: Image.Image | None) -> tuple[list[np.ndarray], bool | None]:
    cached: bool | None = None
    try:
        rows = []
        if text:
            row, cached = _encode_text(embedder, text)
            rows.append(row)
        if image is not None:
            rows.append(embedder.encode_images([image])[0])
    except Exception as exc:  # any model failure must surface, never look like no results
        raise EmbedderFailedError(f"The {embedder.preset} model failed to encode the query "
                                  f"({type(exc).__name__}: {exc}); no search was run.") from exc
    return rows, cached


def similar_embedding(session: Session, frame_id: int,
                      visible: set[str] | None) -> FrameEmbedding:
    """The embedding row whose vector stands for ``frame_id`` (its own or the linked one)."""
    frame = session.get(Frame, frame_id)
    if frame is None or (visible is not None and frame.camera_id not in visible):
        raise NotFoundError(f"Frame {frame_id} does not exist.")
    row = session.get(FrameEmbedding, frame_id)
    if row is not None and row.status == LINKED and row.linked_frame_id is not None:
        row = session.get(FrameEmbedding, row.linked_frame_id)
    if row is None or row.vector is None:
        raise InvalidInputError(f"Frame {frame_id} has not been embedded yet; run `oko reindex` "
                                "and try again.")
    return row


def query_vector(embedder: QueryEmbedder, *, clip_text: str, image: Image.Image | None,
                 similar: FrameEmbedding | None,
                 similar_id: int | None) -> tuple[np.ndarray, bool | None]:
    """The L2-normalised sum of the query's parts, and whether the text's vector came from
    the query cache (None: no text). Raises ``EmbedderFailedError`` and
    ``ModelMismatchError`` (the similar frame was embedded by another model)."""
    rows, cached = _encode(embedder, text=clip_text or None, image=image)
    if similar is not None and similar.vector is not None:
        if similar.weights_sha256 != embedder.weights_sha256:
            raise ModelMismatchError(
                f"Frame {similar_id} was embedded with weights {similar.weights_sha256[:12]}, "
                f"not the search model's {embedder.weights_sha256[:12]}; run `oko reindex`.")
        rows.append(vector_from_bytes(similar.vector))
    combined: np.ndarray = np.sum(np.stack(rows).astype(np.float32), axis=0)
    norm = float(np.linalg.norm(combined))
    if not np.isfinite(norm) or norm == 0.0:
        raise EmbedderFailedError("The query vector is zero or not finite; no search was run.")
    return (combined / norm).astype(np.float32), cached


__all__ = ["decode_image", "describe_text_encoder", "query_vector", "similar_embedding"]
