"""CLI start-up cost: wall time and peak RSS of light ``oko`` commands, side by side with
a bare Python start.

Builds a data dir with one camera and a signed bundle (as ``benchmarks/evidence.py``
does), then runs each command under ``/usr/bin/time -v`` several times:

- ``python -c pass`` (the floor any Python CLI pays);
- ``oko --help``;
- ``oko cameras list`` (goal: under 1 s and 300 MiB);
- ``oko verify BUNDLE`` (goal: under 200 MiB; the prosecutor's own computer);
- ``python -c "import torch, open_clip"`` for scale: what a command would pay if it
  loaded the model stack.

Prints JSON with the median wall seconds and peak RSS (MiB) of each, and the ratio of
each command's time to the bare start.
Run: ``.venv/bin/python benchmarks/cli.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session

from benchmarks.evidence import THROWAWAY_PASSPHRASE, build_case, make_footage
from evidence.exports import export_case
from evidence.keys import ensure_signing_identity
from indexer.transcode import viewing_copy
from search_api.state import build_state
from storage.models.evidence import Case
from storage.settings import Settings

GOALS: dict[str, dict[str, float]] = {"cameras list": {"max_s": 1.0, "max_rss_mib": 300},
                                     "verify": {"max_rss_mib": 200}}


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of one run, read from GNU time's report."""
    run = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True,
                         text=True, check=False)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", run.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    assert wall and rss, run.stderr[-2000:]
    hours = int(wall.group(1) or 0)
    seconds = hours * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return seconds, int(rss.group(1)) / 1024


def make_bundle(work: Path) -> tuple[Settings, Path]:
    settings = Settings(home=work / "home", environment="test",
                        key_passphrase=THROWAWAY_PASSPHRASE)
    state = build_state(settings)
    signer = ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Bench",
                                     passphrase=THROWAWAY_PASSPHRASE)
    footage = make_footage(work / "bench.mp4", seconds=20, size="640x360")
    case_id = build_case(state, footage, 20)
    out = work / "bundle.zip"
    with Session(state.engine, expire_on_commit=False) as session:
        case = session.get(Case, case_id)
        assert case is not None
        export_case(session, case=case, exporter="bench", signer=signer,
                    originals=state.originals, derived=state.derived,
                    tmp_dir=settings.tmp_dir, out_path=out, organisation="Bench",
                    transcoder=viewing_copy,
                    full_original_max_bytes=settings.full_original_max_bytes)
        session.commit()
    state.engine.dispose()
    return settings, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    oko = str(Path(sys.executable).with_name("oko"))
    with tempfile.TemporaryDirectory(prefix="oko-bench-cli-") as work_dir:
        settings, bundle = make_bundle(Path(work_dir))
        env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
        env |= {"OKO_HOME": str(settings.home), "OKO_ENVIRONMENT": "test"}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [oko, "--help"],
            "cameras list": [oko, "cameras", "list"],
            "verify": [oko, "verify", str(bundle)],
            "import torch, open_clip": [sys.executable, "-c", "import torch, open_clip"],
        }
        results: dict[str, dict[str, float]] = {}
        for name, command in commands.items():
            runs = [measure(command, env) for _ in range(args.runs)]
            results[name] = {"median_s": round(statistics.median(r[0] for r in runs), 3),
                             "peak_rss_mib": round(statistics.median(r[1] for r in runs), 1)}
    floor = results["python -c pass"]["median_s"]
    for entry in results.values():
        entry["ratio_to_bare_python"] = round(entry["median_s"] / floor, 1)
    met = {name: results[name]["median_s"] <= goal.get("max_s", math.inf)
           and results[name]["peak_rss_mib"] <= goal.get("max_rss_mib", math.inf)
           for name, goal in GOALS.items()}
    print(json.dumps({"runs": args.runs, "commands": results, "goals": GOALS,
                      "goals_met": met}, indent=2))


if __name__ == "__main__":
    main()
