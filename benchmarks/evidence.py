"""Evidence export and verify throughput (MB/s), side by side with ``sha256sum``.

Builds a case with clips over one generated original (stored as an original with its
acquisition entry, as ingest does), then times, over several runs:

- ``export_case`` (cut clips, copy the original, custody, provenance, PDF, sign, zip),
  in MB of bundle written per second;
- ``verify_bundle`` on the zip (safe extraction plus every check), in MB of bundle per s;
- ``sha256sum`` of the same bundle bytes, the floor any hash-checking verifier pays.

Prints JSON with medians and the ratios to ``sha256sum``.
Run: ``.venv/bin/python benchmarks/evidence.py [--seconds 60] [--size 1280x720] [--runs 3]``
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence.cases import add_clip, create_case
from evidence.exports import export_case
from evidence.keys import ensure_signing_identity
from evidence.verify import verify_bundle
from indexer.transcode import viewing_copy
from search_api.state import AppState, build_state
from storage.custody import append_custody_entry
from storage.models.access import Role, User
from storage.models.evidence import Case
from storage.models.media import Camera, Original
from storage.settings import Settings

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
THROWAWAY_PASSPHRASE = secrets.token_hex(16)  # the key lives in a temp dir only
NO_LOGIN = "!"  # not an argon2 hash: this user can never sign in


def make_footage(path: Path, *, seconds: int, size: str) -> Path:
    subprocess.run([
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M",
        "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    ], check=True)
    return path


def build_case(state: AppState, footage: Path, seconds: int) -> int:
    with Session(state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="bench", name="Bench", latitude=50.45, longitude=30.52,
                           agency="police"))
        user = User(username="bench", agency="police", role=Role.INVESTIGATOR,
                    password_hash=NO_LOGIN)
        session.add(user)
        blob = state.originals.put_file(footage)
        original = Original(sha256=blob.sha256, camera_id="bench", filename=footage.name,
                            size_bytes=blob.size_bytes, duration_s=seconds,
                            recording_start_utc=START, start_source="cli", status="ready")
        session.add(original)
        session.flush()
        append_custody_entry(session, action="acquisition", actor="bench",
                             original_id=original.id, details={"sha256": blob.sha256})
        case = create_case(session, number="BENCH-1", title="Бенчмарк",
                           legal_basis="benchmark", investigator=user)
        half = seconds / 2
        for begin, end in ((1.3, half - 0.7), (half + 0.2, seconds - 1.1)):
            add_clip(session, case=case, camera_id="bench",
                     start_utc=START + timedelta(seconds=begin),
                     end_utc=START + timedelta(seconds=end), note="", actor="bench",
                     added_by_id=user.id)
        session.commit()
        assert case.id is not None
        return case.id


def timed(func: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = func()
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oko-bench-evidence-") as work_dir:
        work = Path(work_dir)
        settings = Settings(home=work / "home", environment="test",
                            key_passphrase=THROWAWAY_PASSPHRASE)
        state = build_state(settings)
        signer = ensure_signing_identity(keys_dir=settings.keys_dir,
                                         organisation="Bench",
                                         passphrase=THROWAWAY_PASSPHRASE)
        footage = make_footage(work / "bench.mp4", seconds=args.seconds, size=args.size)
        original_mb = footage.stat().st_size / 1e6
        case_id = build_case(state, footage, args.seconds)
        export_s, verify_s, sha_s, sizes = [], [], [], []
        for run in range(args.runs):
            out = work / f"bundle-{run}.zip"
            with Session(state.engine, expire_on_commit=False) as session:
                case = session.get(Case, case_id)
                assert case is not None
                seconds, _ = timed(lambda s=session, c=case, o=out: export_case(
                    s, case=c, exporter="bench", signer=signer, originals=state.originals,
                    derived=state.derived, tmp_dir=settings.tmp_dir, out_path=o,
                    transcoder=viewing_copy,
                    organisation="Bench", full_original_max_bytes=settings.full_original_max_bytes))
                session.rollback()  # keep the custody chain the same for every run
            export_s.append(seconds)
            sizes.append(out.stat().st_size)
            seconds, report = timed(lambda o=out: verify_bundle(
                o, scratch_dir=settings.verify_scratch_dir))
            assert report.intact, report.failures
            verify_s.append(seconds)
            seconds, _ = timed(lambda o=out: subprocess.run(["sha256sum", str(o)], check=True,
                                                            capture_output=True))
            sha_s.append(seconds)
        state.engine.dispose()
    megabytes = statistics.median(sizes) / 1e6
    export_mbps = megabytes / statistics.median(export_s)
    verify_mbps = megabytes / statistics.median(verify_s)
    sha_mbps = megabytes / statistics.median(sha_s)
    print(json.dumps({
        "footage": {"seconds": args.seconds, "size": args.size,
                    "original_mb": round(original_mb, 2)},
        "runs": args.runs,
        "bundle_mb": round(megabytes, 2),
        "export": {"median_s": round(statistics.median(export_s), 3),
                   "mb_per_s": round(export_mbps, 1)},
        "verify": {"median_s": round(statistics.median(verify_s), 3),
                   "mb_per_s": round(verify_mbps, 1)},
        "sha256sum": {"median_s": round(statistics.median(sha_s), 4),
                      "mb_per_s": round(sha_mbps, 1)},
        "ratio_export_to_sha256sum": round(export_mbps / sha_mbps, 3),
        "ratio_verify_to_sha256sum": round(verify_mbps / sha_mbps, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
