"""Export time with and without a trusted timestamp (RFC 3161), median of several runs.

A small case (two clips over one short generated original) is exported alternately
with no TSA and with the test TSA (``tests.tsa_service``: openssl ts -reply behind a
local HTTP server, so the number is Oko's own cost plus a TSA on the same machine; a
TSA across a network adds its round trips). With a TSA an export fetches two tokens:
one inside the PAdES signature of the report (-T level) and ``timestamp.tsr`` over
``signature.sig``. Prints JSON.
Run: ``.venv/bin/python benchmarks/timestamp.py [--seconds 6] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evidence import THROWAWAY_PASSPHRASE, build_case, make_footage
from evidence.exports import export_case
from evidence.keys import ensure_signing_identity
from evidence.timestamp import TimestampAuthority
from indexer.transcode import viewing_copy
from search_api.state import build_state
from storage.models.evidence import Case
from storage.settings import Settings
from tests.tsa_service import start_tsa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oko-bench-timestamp-") as work_dir:
        work = Path(work_dir)
        tsa = start_tsa(work / "tsa")
        settings = Settings(home=work / "home", environment="test",
                            key_passphrase=THROWAWAY_PASSPHRASE)
        state = build_state(settings)
        signer = ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Bench",
                                         passphrase=THROWAWAY_PASSPHRASE)
        footage = make_footage(work / "bench.mp4", seconds=args.seconds, size=args.size)
        case_id = build_case(state, footage, args.seconds)
        authority = TimestampAuthority(url=tsa.url, ca_cert_pem=tsa.ca_cert_path.read_bytes())
        times: dict[str, list[float]] = {"no_tsa": [], "with_tsa": []}
        for run in range(args.runs + 1):  # the first pair warms caches and is dropped
            for kind, timestamping in (("no_tsa", None), ("with_tsa", authority)):
                out = work / f"bundle-{kind}-{run}.zip"
                with Session(state.engine, expire_on_commit=False) as session:
                    case = session.get(Case, case_id)
                    assert case is not None
                    started = time.perf_counter()
                    export_case(session, case=case, exporter="bench", signer=signer,
                                originals=state.originals, derived=state.derived,
                                tmp_dir=settings.tmp_dir, out_path=out, organisation="Bench",
                                transcoder=viewing_copy,
                                full_original_max_bytes=settings.full_original_max_bytes,
                                timestamp_authority=timestamping)
                    elapsed = time.perf_counter() - started
                    session.rollback()  # the same custody chain for every run
                if run:
                    times[kind].append(elapsed)
        requests = tsa.requests
        tsa.stop()
        state.engine.dispose()
    no_tsa, with_tsa = (statistics.median(times[k]) for k in ("no_tsa", "with_tsa"))
    print(json.dumps({
        "runs": args.runs, "clip_source_seconds": args.seconds, "size": args.size,
        "export_s_median_no_tsa": round(no_tsa, 3),
        "export_s_median_with_tsa": round(with_tsa, 3),
        "tsa_overhead_s": round(with_tsa - no_tsa, 3),
        "tsa_requests": requests,
        "export_s_no_tsa": [round(t, 3) for t in times["no_tsa"]],
        "export_s_with_tsa": [round(t, 3) for t in times["with_tsa"]],
    }, indent=2))


if __name__ == "__main__":
    main()
