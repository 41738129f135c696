"""From real ingest to a verified bundle, across the sample containers and codecs."""

from __future__ import annotations

import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from evidence.cases import add_clip, create_case
from evidence.exports import export_case
from evidence.keys import ensure_signing_identity
from evidence.verify import PinnedFingerprint, verify_bundle
from indexer.ingest import IngestOptions, ingest_file
from indexer.samples import generate_sample_footage
from indexer.transcode import viewing_copy
from search_api.state import AppState
from storage.cameras import import_cameras_csv
from storage.custody import acquisition_entry
from storage.models.access import Role, User


def test_ingested_footage_exports_and_verifies(state: AppState, tmp_path: Path) -> None:
    samples = generate_sample_footage(tmp_path / "samples", profile="test")
    with Session(state.engine) as session:
        import_cameras_csv(session, path=samples.cameras_csv)
        session.commit()
    wanted = {"mp4", "mkv", "avi", "ts"}
    chosen = [c for c in samples.clips if c.path.suffix.lstrip(".") in wanted
              and not c.variable_frame_rate]
    chosen = [next(c for c in chosen if c.path.suffix == f".{ext}") for ext in sorted(wanted)]
    outcomes = [ingest_file(engine=state.engine, originals=state.originals,
                            derived=state.derived, path=clip.path, camera_id=clip.camera_id,
                            start=None, options=IngestOptions(), actor="ingest-officer")
                for clip in chosen]
    signer = ensure_signing_identity(keys_dir=state.settings.keys_dir, organisation="Kyiv",
                                     passphrase="p")
    with Session(state.engine, expire_on_commit=False) as session:
        investigator = User(username="olena", agency="police", role=Role.INVESTIGATOR,
                            password_hash="!")
        session.add(investigator)
        session.flush()
        case = create_case(session, number="E2E-1", title="Крадіжка велосипеда",
                           legal_basis="ст. 185", investigator=investigator)
        for clip, outcome in zip(chosen, outcomes, strict=True):
            assert acquisition_entry(session, outcome.original_id) is not None
            add_clip(session, case=case, camera_id=clip.camera_id,
                     start_utc=clip.expected_start_utc + timedelta(seconds=2.3),
                     end_utc=clip.expected_start_utc + timedelta(seconds=4.6),
                     note=clip.description, actor="olena", added_by_id=investigator.id)
        out = tmp_path / "e2e.zip"
        export_case(session, case=case, exporter="olena", signer=signer,
                    originals=state.originals, derived=state.derived,
                    tmp_dir=state.settings.tmp_dir, out_path=out, organisation="Kyiv",
                    transcoder=viewing_copy,
                    full_original_max_bytes=state.settings.full_original_max_bytes)
        session.commit()
    report = verify_bundle(out, PinnedFingerprint(signer.fingerprint_sha256))
    assert report.ok, [f"{c.name}: {c.detail}" for c in report.failures]
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "x")
        names = archive.namelist()
    clips = [n for n in names if "/data/clips/" in n]
    viewing = [n for n in clips if n.endswith(".viewing.mp4")]
    assert len(clips) - len(viewing) == 4
    # clips that are not H.264 in MP4 (from the MKV/AVI/TS samples) come with a viewing copy
    assert all(n.removesuffix(".viewing.mp4") in {c.rsplit(".", 1)[0] for c in clips
                                                   if c not in viewing} for n in viewing)
    assert sum("/data/originals/" in n for n in names) == 4
    run = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"],
                         cwd=tmp_path / "x" / "oko-E2E-1", capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stdout
