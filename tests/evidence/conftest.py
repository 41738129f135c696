"""Evidence fixtures: real ffmpeg footage stored as an original, a case with clips, keys.

The original is stored directly in the blob store with its acquisition custody entry,
as ingest does, so these tests need rows and blobs only.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from sqlmodel import Session

from evidence.cases import add_clip, create_case
from evidence.exports import ExportResult, export_case
from evidence.keys import Signer, ensure_signing_identity
from indexer.transcode import viewing_copy
from search_api.state import AppState, build_state
from storage.blobstore import BlobExistsError
from storage.custody import append_custody_entry
from storage.models.access import Role, User
from storage.models.evidence import Case
from storage.models.media import Camera, Original
from storage.settings import Settings

RECORDING_START = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
CASE_TITLE = "Крадіжка велосипеда"


def make_footage(path: Path, *, seconds: int = 6, size: str = "160x90",
                 source: str = "testsrc2") -> Path:
    """A deterministic H.264 + AAC MP4 with a keyframe every second."""
    subprocess.run([
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"{source}=size={size}:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
        "-t", str(seconds), "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", "-fflags", "+bitexact", str(path),
    ], check=True)
    return path


def store_original(session: Session, state: AppState, footage: Path, *, camera_id: str,
                   start: datetime = RECORDING_START, seconds: float = 6.0) -> Original:
    try:
        blob = state.originals.put_file(footage)
        sha, size = blob.sha256, blob.size_bytes
    except BlobExistsError as exists:
        sha, size = exists.sha256, footage.stat().st_size
    original = Original(sha256=sha, camera_id=camera_id, filename=footage.name,
                        size_bytes=size, container="mp4", video_codec="h264", width=160,
                        height=90, fps=10.0, duration_s=seconds, recording_start_utc=start,
                        timezone="Europe/Kyiv", start_source="cli", status="ready")
    session.add(original)
    session.flush()
    append_custody_entry(session, action="acquisition", actor="ingest-test",
                         original_id=original.id,
                         details={"sha256": sha, "filename": footage.name, "size_bytes": size})
    return original


@dataclass
class EvidenceWorld:
    state: AppState
    signer: Signer
    investigator: User
    case: Case
    original: Original

    def session(self) -> Session:
        return Session(self.state.engine, expire_on_commit=False)

    def export(self, out: Path, **options: Any) -> ExportResult:
        """``export_case`` of the world's case by its investigator; ``options`` such as
        ``lang``, ``timestamp_authority`` or ``no_timestamp`` go to it."""
        with self.session() as session:
            case = session.get(Case, self.case.id)
            assert case is not None
            result = export_case(
                session, case=case, exporter="investigator-police", signer=self.signer,
                originals=self.state.originals, derived=self.state.derived,
                tmp_dir=self.state.settings.tmp_dir, out_path=out,
                organisation=self.state.settings.organisation,
                transcoder=viewing_copy,
                full_original_max_bytes=self.state.settings.full_original_max_bytes,
                **options,
            )
            session.commit()
        return result


@pytest.fixture(scope="session")
def footage_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 6 s test recording, encoded once per session (read it, never modify it)."""
    return make_footage(tmp_path_factory.mktemp("footage") / "cam1-20261124.mp4")


@pytest.fixture
def world(state: AppState, footage_file: Path) -> EvidenceWorld:
    return build_world(state, footage_file.parent, footage=footage_file)


@pytest.fixture(scope="session")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvidenceWorld]:
    """One world for read-only tests (tamper tests copy its bundle first)."""
    root = tmp_path_factory.mktemp("evidence-world")
    settings = Settings(home=root / "oko-home", environment="test",
                        key_passphrase="test-passphrase")
    app_state = build_state(settings)
    yield build_world(app_state, root)  # its own footage: independent of other fixtures
    app_state.engine.dispose()


@pytest.fixture(scope="session")
def bundle_zip(shared_world: EvidenceWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed bundle exported once per test session; never modify it in place."""
    return shared_world.export(tmp_path_factory.mktemp("bundle") / "KV-2026-001.zip").bundle_path


def build_world(state: AppState, tmp_path: Path, *,
                investigator_username: str = "investigator-police",
                footage: Path | None = None) -> EvidenceWorld:
    """A camera, an investigator, a stored original and a case with two clips."""
    settings = state.settings
    signer = ensure_signing_identity(keys_dir=settings.keys_dir,
                                     organisation=settings.organisation,
                                     passphrase=settings.key_passphrase)
    footage = footage or make_footage(tmp_path / "cam1-20261124.mp4")
    with Session(state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="cam-1", name="Хрещатик, 22", district="Shevchenkivskyi",
                           latitude=50.4474, longitude=30.5222, agency="police"))
        investigator = User(username=investigator_username, full_name="Олена Коваль",
                            agency="police", role=Role.INVESTIGATOR, password_hash="!")
        session.add(investigator)
        session.flush()
        original = store_original(session, state, footage, camera_id="cam-1")
        case = create_case(session, number="KV-2026-001", title=CASE_TITLE,
                           legal_basis="Ухвала слідчого судді № 757/1234/26",
                           investigator=investigator)
        add_clip(session, case=case, camera_id="cam-1",
                 start_utc=RECORDING_START + timedelta(seconds=1.5),
                 end_utc=RECORDING_START + timedelta(seconds=3.2), note="Підозрюваний",
                 actor=investigator_username, added_by_id=investigator.id)
        add_clip(session, case=case, camera_id="cam-1",
                 start_utc=RECORDING_START + timedelta(seconds=4),
                 end_utc=RECORDING_START + timedelta(seconds=5.5), note="search hit",
                 actor=investigator_username, added_by_id=investigator.id,
                 provenance={"query": "person with a red bicycle", "model": "ViT-B-32",
                             "weights_sha256": "ab" * 32, "score": 0.3125})
        session.commit()
    return EvidenceWorld(state=state, signer=signer, investigator=investigator, case=case,
                         original=original)


@pytest.fixture
def exported(world: EvidenceWorld, tmp_path: Path) -> Callable[[], ExportResult]:
    counter = iter(range(1000))
    return lambda: world.export(tmp_path / f"bundle-{next(counter)}.zip")
