"""Peak scratch disk use while the verifier refuses expansion bombs.

Each case is a hand-built zip (one deflated block reused for every entry):

- ``zeros_9000x1MiB``: 9,000 entries of 1 MiB of zeros, about 10 MB, 9.4 GB expanded
  (the attack from issue 9, which used to write 9 GB before being refused);
- ``zeros_9000x60KiB``: entries small enough for the per-entry allowance, so only the
  total limit relative to the zip's size stops them.

Both are refused from the sizes the zip declares, which ``zipfile`` enforces while
reading (an entry cannot yield more than its declared size), before a byte is written;
the count of bytes actually written is a second line of defence behind that.

A thread samples the scratch dir's allocated blocks every millisecond while the
verifier runs; the peak is reported with the bytes the verifier says it wrote.
Prints JSON. Run: ``.venv/bin/python benchmarks/hostile.py``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from oko_verify import BundleLimits, ExtractionStats, UnusableBundleError, verify_bundle

from tests.verifier.bombs import MIB, zeros_bomb


def _allocated(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def measure(bomb: Path, scratch: Path, limits: BundleLimits) -> dict[str, Any]:
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _allocated(scratch))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stats = ExtractionStats()
    started = time.perf_counter()
    try:
        verify_bundle(bomb, limits=limits, scratch_dir=scratch, stats=stats)
        outcome = "not refused"
    except UnusableBundleError as exc:
        outcome = str(exc)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    size = bomb.stat().st_size
    return {"zip_bytes": size, "allowed_total_bytes": limits.total_allowed(size),
            "refused": outcome, "seconds": round(seconds, 4),
            "bytes_written": stats.bytes_written, "files_written": stats.files_written,
            "peak_scratch_bytes_on_disk": peak,
            "left_in_scratch": len(list(scratch.rglob("*")))}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="oko-hostile-") as work:
        root = Path(work)
        scratch = root / "scratch"
        scratch.mkdir()
        big = zeros_bomb(root / "big.zip")
        small = zeros_bomb(root / "small.zip", entry_bytes=60 * 1024)
        results = {
            "zeros_9000x1MiB": measure(big, scratch, BundleLimits()),
            "zeros_9000x60KiB": measure(small, scratch, BundleLimits()),
        }
        results["zeros_9000x1MiB"]["declared_expansion_bytes"] = 9000 * MIB
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
