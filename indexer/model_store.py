"""Where CLIP weights come from: OKO_CLIP_WEIGHTS, an imported file, or a cached download.

Weights are identified by the SHA-256 of their checkpoint file and recorded in
``EmbeddingModel``. Imported and downloaded files live in the data dir under
``models/imported`` and ``models/downloaded``; their rows store paths relative to the
models dir, so a data dir can be moved. A file is only kept after it has loaded into
its preset's architecture with open_clip's own strict loader (``indexer.checkpoints``,
imported only by the functions that install weights, so that listing or resolving
models does not load torch).

Functions that take a ``session`` flush and leave the commit to the caller.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from indexer.clip_presets import ClipPreset, get_preset, preset_dim
from storage.atomic import PendingFile, pending_file
from storage.blobstore import CHUNK_BYTES
from storage.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OkoError,
)
from storage.models.search import EmbeddingModel

SOURCE_ENV = "env"
SOURCE_IMPORTED = "imported"
SOURCE_DOWNLOADED = "downloaded"

# The file names open_clip itself looks for in a weights directory, best first.
CHECKPOINT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


class NoModelError(OkoError):
    """No CLIP weights are installed for the preset; embedding and search must wait."""

    exit_code = 4
    http_status = 503

    def __init__(self, preset: str) -> None:
        super().__init__(
            f"No CLIP weights are installed for preset {preset}, so new frames wait in the "
            f"embedding queue and search is unavailable; install them with "
            f"`oko models import FILE --preset {preset}` or set OKO_CLIP_WEIGHTS to a "
            f"checkpoint file, then run `oko reindex`."
        )
        self.preset = preset


class ModelImportError(InvalidInputError):
    """A weights file was refused because it does not fit the preset's architecture."""


class ModelDownloadError(OkoError):
    """Downloading weights failed (offline, repository missing); nothing was installed."""

    exit_code = 3
    http_status = 503


@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint file that loads into ``architecture``, and where it came from."""

    preset: str
    architecture: str
    pretrained_tag: str
    path: Path
    sha256: str
    source: str


def _sha256_and_copy(source: Path, destination: BinaryIO | None) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src:
        for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            if destination is not None:
                destination.write(chunk)
    return digest.hexdigest()


def find_checkpoint(path: Path) -> Path:
    """The checkpoint file at ``path``: the file itself, or the best one in a directory.

    Raises ``ConfigurationError`` when nothing usable is there.
    """
    if path.is_file():
        return path
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        candidates = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if len(candidates) == 1:
            return candidates[0]
        raise ConfigurationError(
            f"CLIP weights directory {path} holds {len(candidates)} checkpoint files instead "
            f"of one of {', '.join(CHECKPOINT_NAMES[:3])}; point OKO_CLIP_WEIGHTS at the file."
        )
    raise ConfigurationError(f"OKO_CLIP_WEIGHTS names {path}, which does not exist.")


def _relative_or_absolute(path: Path, models_dir: Path) -> str:
    try:
        return str(path.relative_to(models_dir))
    except ValueError:
        return str(path)


def model_file(row: EmbeddingModel, models_dir: Path) -> Path:
    """Absolute path of an installed model's checkpoint (rows store it relative to models_dir)."""
    path = Path(row.path)
    return path if path.is_absolute() else models_dir / path


def _install_file(
    *, candidate: PendingFile, sha256: str, preset: ClipPreset, source: str, models_dir: Path,
    session: Session, original_name: str,
) -> EmbeddingModel:
    """Validate ``candidate`` (a temp file in models_dir) and move it into place with a row."""
    from indexer.checkpoints import checkpoint_problem  # torch: only when installing

    candidate.sync()  # open_clip reads it by path
    problem = checkpoint_problem(architecture=preset.architecture, path=candidate.path)
    if problem is not None:
        raise ModelImportError(
            f"{original_name} does not load into the {preset.name} architecture "
            f"({preset.architecture}): {problem}; nothing was installed."
        )
    suffix = Path(original_name).suffix if Path(original_name).suffix in CHECKPOINT_SUFFIXES \
        else ".pt"
    final = models_dir / source / f"{sha256}{suffix}"
    candidate.commit(final, overwrite=True, mode=stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    row = EmbeddingModel(
        preset=preset.name, architecture=preset.architecture,
        pretrained_tag=preset.pretrained_tag or "", weights_sha256=sha256, source=source,
        path=_relative_or_absolute(final, models_dir), dim=preset_dim(preset),
    )
    try:
        session.add(row)
        session.flush()
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    return row


def _refuse_duplicate(session: Session, sha256: str) -> None:
    existing = session.exec(
        select(EmbeddingModel).where(EmbeddingModel.weights_sha256 == sha256)
    ).first()
    if existing is not None:
        raise ConflictError(
            f"These weights (SHA-256 {sha256[:12]}…) are already installed for preset "
            f"{existing.preset} ({existing.source})."
        )


def import_model(
    *, source_file: Path, preset: str, models_dir: Path, session: Session
) -> EmbeddingModel:
    """Copy a checkpoint into the data dir and record it, after checking that it loads.

    Raises ``NotFoundError`` for a missing file, ``ConflictError`` when the same weights
    are already installed and ``ModelImportError`` (with the keys or shapes that differ)
    when the file does not fit the preset; in every case nothing is left behind.
    """
    chosen = get_preset(preset)
    if not source_file.is_file():
        raise NotFoundError(f"Weights file {source_file} does not exist.")
    with pending_file(models_dir, prefix=".import-") as candidate:
        sha256 = _sha256_and_copy(source_file, candidate.handle)
        _refuse_duplicate(session, sha256)
        return _install_file(
            candidate=candidate, sha256=sha256, preset=chosen, source=SOURCE_IMPORTED,
            models_dir=models_dir, session=session, original_name=source_file.name,
        )


def _hub_location(preset: ClipPreset) -> tuple[str, list[str]]:
    from indexer.checkpoints import pretrained_config  # torch: only when downloading

    config = pretrained_config(architecture=preset.architecture,
                               pretrained_tag=preset.pretrained_tag or "")
    hub = str(config.get("hf_hub", ""))
    if preset.test_only or not hub:
        raise InvalidInputError(f"Preset {preset.name} has no downloadable weights.")
    repo_id, filename = hub.rstrip("/"), ""
    if not hub.endswith("/"):
        repo_id, filename = os.path.split(hub)
    names = [filename] if filename else list(CHECKPOINT_NAMES[:3:2])
    return repo_id, names


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def _unreachable_reason(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be reached (DNS, refused, timeout), or None when it answers.

    Uses the hub client's own HTTP session, so proxy settings apply, but without retries.
    """
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=10)
    except Exception as exc:  # the HTTP client's transport errors have no common base here
        text = re.sub(r"^\[Errno -?\d+\] ", "", _first_line(exc))
        return f"{urlsplit(endpoint).hostname} cannot be reached ({text})"
    return None


def download_model(
    *, preset: str, models_dir: Path, session: Session, endpoint: str | None = None
) -> EmbeddingModel:
    """Download the preset's weights from Hugging Face (tqdm progress bar) and record them.

    The file is fetched into a temp dir inside ``models_dir`` and only moved into
    ``models/downloaded`` once it loads. Raises ``ModelDownloadError`` when the hub
    cannot be reached or lacks the file, leaving nothing behind.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    chosen = get_preset(preset)
    repo_id, names = _hub_location(chosen)

    def failed(reason: str) -> ModelDownloadError:
        return ModelDownloadError(
            f"Could not download {chosen.name} weights from Hugging Face ({repo_id}): "
            f"{reason}; on an offline machine copy the checkpoint over and run "
            f"`oko models import FILE --preset {chosen.name}`."
        )

    # Fail in seconds when offline, instead of after the hub client's retries.
    unreachable = _unreachable_reason(endpoint or constants.ENDPOINT)
    if unreachable is not None:
        raise failed(unreachable)
    models_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=models_dir, prefix=".download-"))
    try:
        fetched: Path | None = None
        reason = ""
        for name in names:
            try:
                fetched = Path(hf_hub_download(
                    repo_id=repo_id, filename=name, local_dir=workdir, endpoint=endpoint,
                ))
                break
            except EntryNotFoundError as exc:  # a failed lookup of this name: try the next
                reason = _first_line(exc.__cause__ or exc)
            except Exception as exc:  # HTTP and hub errors all mean "no file"
                reason = _first_line(exc)
                break
        if fetched is None:
            raise failed(reason)
        with pending_file(workdir, prefix="candidate-") as candidate:
            sha256 = _sha256_and_copy(fetched, candidate.handle)
            _refuse_duplicate(session, sha256)
            return _install_file(
                candidate=candidate, sha256=sha256, preset=chosen, source=SOURCE_DOWNLOADED,
                models_dir=models_dir, session=session, original_name=fetched.name,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def installed_models(*, session: Session, preset: str | None = None) -> list[EmbeddingModel]:
    """Recorded models, newest first (optionally of one preset)."""
    query = select(EmbeddingModel).order_by(col(EmbeddingModel.installed_at).desc())
    if preset is not None:
        query = query.where(EmbeddingModel.preset == preset)
    return list(session.exec(query).all())


def resolve_weights(
    *, preset: str, env_weights: Path | None, models_dir: Path, session: Session
) -> WeightsSource:
    """The weights to use for ``preset``, in this order:

    1. the file or directory named by OKO_CLIP_WEIGHTS (``env_weights``);
    2. the newest model imported with ``oko models import`` for this preset;
    3. the newest cached download for this preset.

    Raises ``NoModelError`` when there are none; never falls back to random weights.
    """
    chosen = get_preset(preset)
    if env_weights is not None:
        checkpoint = find_checkpoint(env_weights)
        return WeightsSource(
            preset=chosen.name, architecture=chosen.architecture,
            pretrained_tag=chosen.pretrained_tag or "", path=checkpoint.resolve(),
            sha256=_sha256_and_copy(checkpoint, None), source=SOURCE_ENV,
        )
    rows = [r for r in installed_models(session=session, preset=chosen.name)
            if r.source in (SOURCE_IMPORTED, SOURCE_DOWNLOADED)]
    rows.sort(key=lambda r: r.source != SOURCE_IMPORTED)  # stable: newest first within a source
    for row in rows:
        path = model_file(row, models_dir)
        if path.is_file():
            return WeightsSource(
                preset=chosen.name, architecture=row.architecture,
                pretrained_tag=row.pretrained_tag, path=path, sha256=row.weights_sha256,
                source=row.source,
            )
    raise NoModelError(chosen.name)


def record_weights(*, weights: WeightsSource, models_dir: Path, session: Session) -> EmbeddingModel:
    """The ``EmbeddingModel`` row for ``weights``, added (and flushed) when it is new.

    Weights from OKO_CLIP_WEIGHTS get a row the first time they embed frames, so every
    stored vector's weights hash names a recorded model. Two workers starting together
    both find no row and both insert it: the insert runs in a savepoint, and the one
    that loses the unique key takes the winner's row instead of failing its task.
    """
    query = select(EmbeddingModel).where(EmbeddingModel.weights_sha256 == weights.sha256)
    existing = session.exec(query).first()
    if existing is not None:
        return existing
    row = EmbeddingModel(
        preset=weights.preset, architecture=weights.architecture,
        pretrained_tag=weights.pretrained_tag, weights_sha256=weights.sha256,
        source=weights.source, path=_relative_or_absolute(weights.path, models_dir),
        dim=preset_dim(get_preset(weights.preset)),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # recorded by another process since the query above
        recorded = session.exec(query).first()
        if recorded is None:
            raise
        return recorded
    return row
