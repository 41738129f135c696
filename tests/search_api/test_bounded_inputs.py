"""Inputs past their bounds get one sentence and a 4xx, never a 500 (issue 10, finding 7).

A query image whose header claims too many pixels is refused before it is decoded, a
search time with no UTC equivalent is refused, and a non-ASCII CSRF header is a wrong one.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from indexer.search.engine import QUERY_IMAGE_SIDE
from search_api.security import CSRF_HEADER, check_csrf
from search_api.state import AppState
from storage.errors import PermissionDeniedError
from storage.models.access import Role
from storage.models.media import Camera
from tests.search_api.access_helpers import PASSWORD, add_user

PURPOSE = {"purpose": "case 2026/117: hit and run"}
CSRF_SENTENCE = "Missing or wrong X-CSRF-Token header; reload the page and try again."


class RecordingEmbedder:
    """Stands in for CLIP: remembers the images it was given, answers unit vectors."""

    preset, weights_sha256, dim = "test-tiny", "0" * 64, 4

    def __init__(self) -> None:
        self.images: list[Image.Image] = []

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (len(texts), 1))

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        self.images.extend(images)
        return np.tile(np.array([0, 1, 0, 0], dtype=np.float32), (len(images), 1))


@pytest.fixture
def embedder(state: AppState) -> Iterator[RecordingEmbedder]:
    recording = RecordingEmbedder()
    state.embedder = recording
    yield recording
    state.embedder = None


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.INVESTIGATOR, agency="police")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def claimed_png(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width`` x ``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def _upload(client: TestClient, data: bytes, name: str = "q.png",
            content_type: str = "image/png") -> tuple[int, str]:
    response = client.post("/api/search/image", files={"image": (name, data, content_type)},
                           data=PURPOSE)
    return response.status_code, response.json().get("detail", "")


@pytest.mark.parametrize(("width", "height"), [
    (20000, 20000),  # past PIL's own DecompressionBombError limit
    (8000, 8000),    # under PIL's limit, over Oko's 40 million
    (40_000, 1000),  # exactly 40 million: decoded, and its missing pixel data found out
])
def test_an_image_that_claims_too_many_pixels_is_refused_before_decoding(
        investigator: TestClient, embedder: RecordingEmbedder, width: int, height: int) -> None:
    data = claimed_png(width, height)
    assert len(data) < 1000
    status, detail = _upload(investigator, data)
    if width * height <= 40_000_000:
        assert status == 415, detail
        assert detail == ("The uploaded file is not an image Oko can read "
                          "(use JPEG, PNG or WebP).")
        return
    assert status == 413, detail
    assert detail.startswith("The uploaded image")
    assert "has more than 40 million pixels; send a smaller picture." in detail
    assert embedder.images == []


def test_a_large_but_allowed_image_is_shrunk_before_embedding(
        investigator: TestClient, embedder: RecordingEmbedder) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(buffer, "JPEG", quality=50)
    status, detail = _upload(investigator, buffer.getvalue(), "big.jpg", "image/jpeg")
    assert status == 200, detail
    (image,) = embedder.images
    assert image.mode == "RGB" and max(image.size) <= QUERY_IMAGE_SIDE
    assert image.size[0] > image.size[1]  # the aspect ratio is kept


def test_an_image_in_another_format_is_not_read(investigator: TestClient,
                                                embedder: RecordingEmbedder) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "TIFF")
    status, detail = _upload(investigator, buffer.getvalue(), "q.tiff", "image/tiff")
    assert status == 415
    assert detail == "The uploaded file is not an image Oko can read (use JPEG, PNG or WebP)."
    assert embedder.images == []


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+05:00",   # before the year 1 in UTC: OverflowError today
    "9999-12-31T23:59:59-05:00",   # after the year 9999 in UTC
    "0001-01-01T00:00:00",          # naive: read in the cameras' zone
    "1800-01-01T00:00:00Z",         # representable, but outside the years searched
    "9999-12-31T23:59:59.999999Z",
])
def test_search_times_out_of_range_get_one_sentence(
        investigator: TestClient, embedder: RecordingEmbedder, state: AppState,
        field: str, value: str) -> None:
    with Session(state.engine) as session:  # naive times are read in this camera's zone
        session.add(Camera(id="cam-1", name="Майдан", latitude=50.45, longitude=30.52,
                           agency="police", timezone="America/New_York"))
        session.commit()
    response = investigator.post("/api/search", json={**PURPOSE, "text": "car", field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        f"'{field}' ({datetime.fromisoformat(value).isoformat()}) is outside the years "
        "1900 to 2999.")


def test_image_search_times_out_of_range_get_one_sentence(
        investigator: TestClient, embedder: RecordingEmbedder) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "PNG")
    response = investigator.post(
        "/api/search/image", files={"image": ("q.png", buffer.getvalue(), "image/png")},
        data={**PURPOSE, "to": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "'to' (0001-01-01T00:00:00+05:00) is outside the years 1900 to 2999.")


@pytest.mark.parametrize("path", ["/api/audit/events", "/api/audit/export"])
def test_audit_times_out_of_range_get_one_sentence(client_as: Callable[..., TestClient],
                                                   path: str) -> None:
    auditor = client_as(Role.AUDITOR, agency="police")
    response = auditor.get(path, params={"from": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "'from' (0001-01-01T00:00:00+05:00) is outside the years 1900 to 2999.")


@pytest.mark.parametrize("header", ["ключ", "é" * 43, "\x00"])
def test_check_csrf_compares_any_text(header: str) -> None:
    with pytest.raises(PermissionDeniedError, match="Missing or wrong X-CSRF-Token"):
        check_csrf(claims={"csrf": "a" * 43}, header_value=header)
    check_csrf(claims={"csrf": "ключ"}, header_value="ключ")  # equal text passes


def test_a_non_ascii_csrf_header_is_a_wrong_one(state: AppState, app: FastAPI) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    with TestClient(app, base_url="https://testserver") as client:
        login = client.post("/api/auth/login", json={"username": "ivan", "password": PASSWORD})
        assert login.status_code == 200, login.text
        for raw in ("é".encode("latin-1"), "ключ".encode(), b"\xff" * 43):
            refused = client.post("/api/auth/logout", headers={CSRF_HEADER.encode(): raw})
            assert refused.status_code == 403, refused.text
            assert refused.json()["detail"] == CSRF_SENTENCE
        assert client.get("/api/auth/me").status_code == 200  # still signed in
