"""Where weights come from: resolution order, strict import, download failure, no model."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from sqlalchemy import event
from sqlmodel import Session, select

from indexer import model_store
from indexer.embeddings import NoModelError, resolve_weights
from indexer.model_store import (
    ModelDownloadError,
    ModelImportError,
    WeightsSource,
    download_model,
    import_model,
    installed_models,
    record_weights,
)
from search_api.state import AppState, build_state
from storage.blobstore import sha256_file
from storage.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from storage.models.search import EmbeddingModel
from storage.settings import Settings
from tests.services import DATABASE_BACKENDS, database_url_for


def _files(models_dir: Path) -> list[Path]:
    return sorted(p for p in models_dir.rglob("*") if p.is_file()) if models_dir.exists() else []


def _rows(state: AppState) -> list[EmbeddingModel]:
    with Session(state.engine) as session:
        return list(session.exec(select(EmbeddingModel)).all())


def _import(state: AppState, path: Path, preset: str = "test-tiny") -> EmbeddingModel:
    with Session(state.engine, expire_on_commit=False) as session:
        row = import_model(source_file=path, preset=preset,
                           models_dir=state.settings.models_dir, session=session)
        session.commit()
    return row


def _resolve(state: AppState, env: Path | None = None, preset: str = "test-tiny") -> WeightsSource:
    with Session(state.engine) as session:
        return resolve_weights(preset=preset, env_weights=env,
                               models_dir=state.settings.models_dir, session=session)


def test_no_model_says_how_to_install_one(state: AppState) -> None:
    with pytest.raises(NoModelError) as caught:
        _resolve(state, preset="ViT-B-32")
    message = str(caught.value)
    assert "No CLIP weights are installed for preset ViT-B-32" in message
    assert "`oko models import FILE --preset ViT-B-32`" in message
    assert "OKO_CLIP_WEIGHTS" in message
    assert message.count(".") == 1 and message.endswith(".")  # one sentence


def test_import_copies_the_file_and_records_its_hash(
    state: AppState, tiny_checkpoint: Path
) -> None:
    row = _import(state, tiny_checkpoint)

    stored = state.settings.models_dir / row.path
    assert row.weights_sha256 == sha256_file(tiny_checkpoint) == sha256_file(stored)
    assert (row.preset, row.architecture, row.source, row.dim) == (
        "test-tiny", "oko-test-tiny", "imported", 32)
    assert not Path(row.path).is_absolute()
    assert _files(state.settings.models_dir) == [stored]
    assert tiny_checkpoint.is_file()  # the user's file is copied, never moved


def test_resolution_order_env_then_imported_then_downloaded(
    state: AppState, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    models_dir = state.settings.models_dir
    # a cached download (as download_model leaves it) of other weights for the same preset
    other = tmp_path / "other.pt"
    torch.manual_seed(5)
    state_dict = torch.load(tiny_checkpoint, weights_only=True)
    torch.save({k: torch.randn_like(v) if v.is_floating_point() else v
                for k, v in state_dict.items()}, other)
    downloaded = models_dir / "downloaded" / f"{sha256_file(other)}.pt"
    downloaded.parent.mkdir(parents=True)
    shutil.copyfile(other, downloaded)
    with Session(state.engine) as session:
        session.add(EmbeddingModel(preset="test-tiny", architecture="oko-test-tiny",
                                   weights_sha256=sha256_file(other), source="downloaded",
                                   path=str(downloaded.relative_to(models_dir)), dim=32))
        session.commit()
    assert _resolve(state).source == "downloaded"

    imported = _import(state, tiny_checkpoint)
    chosen = _resolve(state)
    assert (chosen.source, chosen.sha256) == ("imported", imported.weights_sha256)

    env_file = tmp_path / "env.pt"
    shutil.copyfile(other, env_file)
    chosen = _resolve(state, env=env_file)
    assert (chosen.source, chosen.path) == ("env", env_file.resolve())

    # an imported file that vanished from disk is passed over, not used
    (models_dir / imported.path).unlink()
    assert _resolve(state).source == "downloaded"


def test_env_weights_directory_and_missing_path(
    state: AppState, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    weights_dir = tmp_path / "clip"
    weights_dir.mkdir()
    shutil.copyfile(tiny_checkpoint, weights_dir / "open_clip_pytorch_model.bin")
    assert _resolve(state, env=weights_dir).path.name == "open_clip_pytorch_model.bin"

    with pytest.raises(ConfigurationError, match=r"OKO_CLIP_WEIGHTS names .*missing\.pt, "
                                                 r"which does not exist"):
        _resolve(state, env=tmp_path / "missing.pt")


def test_env_weights_get_a_model_row_when_recorded(
    state: AppState, tiny_checkpoint: Path
) -> None:
    weights = _resolve(state, env=tiny_checkpoint)
    with Session(state.engine) as session:
        first = record_weights(weights=weights, models_dir=state.settings.models_dir,
                               session=session)
        again = record_weights(weights=weights, models_dir=state.settings.models_dir,
                               session=session)
        session.commit()
        assert first.id == again.id
        assert [m.source for m in installed_models(session=session)] == ["env"]


def test_import_of_another_architecture_is_refused_leaving_nothing(
    state: AppState, other_architecture_checkpoint: Path
) -> None:
    with pytest.raises(ModelImportError) as caught:
        _import(state, other_architecture_checkpoint)
    message = str(caught.value)
    assert message.startswith(
        "wide.pt does not load into the test-tiny architecture (oko-test-tiny): ")
    assert "2 tensors of the wrong shape (e.g. text_projection is (32, 48) instead of " \
           "(32, 32))" in message
    assert message.endswith("nothing was installed.")
    assert _files(state.settings.models_dir) == []
    assert _rows(state) == []


def test_import_with_wrong_keys_is_refused_leaving_nothing(
    state: AppState, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "renamed.pt"
    state_dict = torch.load(tiny_checkpoint, weights_only=True)
    torch.save({f"backbone.{k}": v for k, v in state_dict.items()}, renamed)
    with pytest.raises(ModelImportError, match=r"keys missing \(e.g. .*unexpected keys"):
        _import(state, renamed)
    assert _files(state.settings.models_dir) == []
    assert _rows(state) == []


def test_import_of_a_file_that_is_not_a_checkpoint_is_refused(
    state: AppState, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("these are not weights")
    with pytest.raises(ModelImportError, match="it is not a PyTorch or safetensors checkpoint"):
        _import(state, notes)
    with pytest.raises(NotFoundError, match="does not exist"):
        _import(state, tmp_path / "absent.pt")
    with pytest.raises(InvalidInputError, match="Unknown CLIP preset 'ViT-Z'; known presets"):
        _import(state, notes, preset="ViT-Z")
    assert _files(state.settings.models_dir) == []
    assert _rows(state) == []


def test_importing_the_same_weights_twice_is_a_conflict(
    state: AppState, tiny_checkpoint: Path
) -> None:
    _import(state, tiny_checkpoint)
    before = _files(state.settings.models_dir)
    with pytest.raises(ConflictError, match="already installed for preset test-tiny"):
        _import(state, tiny_checkpoint)
    assert _files(state.settings.models_dir) == before
    assert len(_rows(state)) == 1


def _serve_on_loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 in a thread; yields the base URL, then shuts down."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub_without_weights() -> Iterator[str]:
    """A local stand-in for an unreachable hub mirror: every request is answered 404."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *_args: object) -> None:
            pass

    yield from _serve_on_loopback(NotFound)


def test_failed_download_explains_offline_install_and_leaves_nothing(
    state: AppState, hub_without_weights: str
) -> None:
    with Session(state.engine) as session, pytest.raises(ModelDownloadError) as caught:
        download_model(preset="ViT-B-32", models_dir=state.settings.models_dir,
                       session=session, endpoint=hub_without_weights)
    message = str(caught.value)
    assert message.startswith("Could not download ViT-B-32 weights from Hugging Face "
                              "(laion/CLIP-ViT-B-32-laion2B-s34B-b79K): ")
    assert message.endswith("`oko models import FILE --preset ViT-B-32`.")
    assert _files(state.settings.models_dir) == []
    assert list(state.settings.models_dir.iterdir()) == []
    assert _rows(state) == []


def test_download_while_offline_fails_at_once_leaving_nothing(state: AppState) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with Session(state.engine) as session, pytest.raises(
        ModelDownloadError, match=r"\(laion/CLIP-ViT-B-32-laion2B-s34B-b79K\): 127\.0\.0\.1 "
                                  r"cannot be reached \(Connection refused\); on an offline"
    ):
        download_model(preset="ViT-B-32", models_dir=state.settings.models_dir,
                       session=session, endpoint=closed)
    assert _files(state.settings.models_dir) == []
    assert _rows(state) == []


def test_test_preset_cannot_be_downloaded(state: AppState) -> None:
    with Session(state.engine) as session, pytest.raises(
        InvalidInputError, match="Preset test-tiny has no downloadable weights"
    ):
        download_model(preset="test-tiny", models_dir=state.settings.models_dir,
                       session=session)


@pytest.fixture
def hub_serving(tiny_checkpoint: Path) -> Iterator[str]:
    """A local Hugging Face-compatible endpoint serving the tiny checkpoint by name."""
    payload = tiny_checkpoint.read_bytes()
    etag = '"' + sha256_file(tiny_checkpoint) + '"'

    class Hub(BaseHTTPRequestHandler):
        def _headers(self) -> bool:
            if not self.path.endswith("/resolve/main/open_clip_pytorch_model.bin"):
                self.send_error(404)
                return False
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("ETag", etag)
            self.send_header("X-Repo-Commit", "0" * 40)
            self.end_headers()
            return True

        def do_HEAD(self) -> None:
            self._headers()

        def do_GET(self) -> None:
            if self._headers():
                self.wfile.write(payload)

        def log_message(self, *_args: object) -> None:
            pass

    yield from _serve_on_loopback(Hub)


def test_download_installs_a_checked_cached_copy(
    state: AppState, tiny_checkpoint: Path, hub_serving: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tiny preset has no real repository; point it at the local hub for this test
    monkeypatch.setattr(model_store, "_hub_location", lambda preset: (
        "oko/test-tiny", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]))
    with Session(state.engine, expire_on_commit=False) as session:
        row = download_model(preset="test-tiny", models_dir=state.settings.models_dir,
                             session=session, endpoint=hub_serving)
        session.commit()

    models_dir = state.settings.models_dir
    assert (row.source, row.path) == ("downloaded", f"downloaded/{row.weights_sha256}.bin")
    assert row.weights_sha256 == sha256_file(tiny_checkpoint)
    assert _files(models_dir) == [models_dir / row.path]  # no temp dir or hub cache left
    chosen = _resolve(state)
    assert (chosen.source, chosen.sha256) == ("downloaded", row.weights_sha256)


@pytest.fixture(params=DATABASE_BACKENDS)
def racing_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase",
                        database_url=database_url_for(request, tmp_path, migrated=True))
    built = build_state(settings)
    yield built
    built.engine.dispose()


def test_two_workers_recording_the_same_weights_at_once_share_one_row(
    racing_state: AppState, tiny_checkpoint: Path
) -> None:
    """Two workers start together: both find no row, the other one inserts it first."""
    weights = _resolve(racing_state, env=tiny_checkpoint)
    models_dir = racing_state.settings.models_dir

    def the_other_worker_records_it_first(session: Session, *_args: object) -> None:
        with Session(racing_state.engine) as other:
            record_weights(weights=weights, models_dir=models_dir, session=other)
            other.commit()

    with Session(racing_state.engine) as session:
        event.listen(session, "before_flush", the_other_worker_records_it_first, once=True)
        row = record_weights(weights=weights, models_dir=models_dir, session=session)
        session.commit()
        assert row.weights_sha256 == weights.sha256 and row.id is not None
        assert [m.weights_sha256 for m in session.exec(select(EmbeddingModel))] == [
            weights.sha256]
