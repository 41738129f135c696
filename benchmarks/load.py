"""Load check: concurrent sign-ins and searches against a live ``oko serve`` on 127.0.0.1,
on SQLite and on PostgreSQL, quiet and while evidence exports run.

For each backend a temp data dir is prepared in-process: a signing key, a camera with
generated footage ingested (``indexer.ingest.ingest_file``) and embedded with the tiny
random test model (``test-tiny``, imported as ``oko models import`` does), so searches
really rank frames (the numbers measure the request path, not CLIP quality); ``--users``
investigators with distinct names (one password hash, computed once), and a case with
two clips over a separate original for the exports. PostgreSQL is a throwaway cluster
started with ``tests.services.start_postgres``. Then ``python -m search_api.cli serve``
runs as a subprocess, and for each of ``--runs`` rounds:

* ``signin``: ``--signins`` concurrent ``POST /api/auth/token``, one per user, right
  passwords, each from its own workstation address (``X-Forwarded-For`` through
  ``OKO_TRUSTED_PROXIES=127.0.0.1``), so no login limit refuses them;
* ``search``: ``--searches`` concurrent ``POST /api/search`` (text and a purpose);
* ``under_export``: both at once while this process runs exports of the case in a loop
  (``evidence.export_jobs.run_export_job``, the worker's path) against the same
  database. On SQLite a probe connection meanwhile takes and releases the write lock
  (``BEGIN IMMEDIATE``) every 50 ms and records its longest wait: how long the export
  kept everyone else from writing.

Prints JSON: per backend and phase the median over rounds of p50/p95/max latency (ms),
error counts by HTTP status, and whether any response or the server's log said
"database is locked".
Run: ``.venv/bin/python benchmarks/load.py [--runs 3] [--export-seconds 60]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evidence import THROWAWAY_PASSPHRASE, build_case, make_footage
from evidence.export_jobs import request_export, run_export_job
from evidence.keys import ensure_signing_identity
from indexer.embeddings import build_unsafe_random_embedder
from indexer.ingest import ingest_file
from indexer.model_store import import_model
from search_api.security import hash_password
from search_api.state import AppState, build_state
from search_api.usecases.exports import export_environment
from search_api.usecases.ingest import embed_pending, ingest_options
from storage.cameras import add_camera, validate_camera
from storage.models.access import Role, User
from storage.models.evidence import Case
from storage.settings import Settings
from tests.services import PostgresServer, free_port, start_postgres

CAMERA = "LOAD-1"
CAPTURE_START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PASSWORD = secrets.token_urlsafe(12)  # every load user's; the data dir is temporary
LOCKED = "database is locked"
QUERIES = ["red car", "white van", "person with a backpack", "bus at a stop", "cyclist"]


@dataclass
class Prepared:
    settings: Settings
    env: dict[str, str]
    usernames: list[str]
    case_id: int


@dataclass
class Phase:
    """One burst of requests: latencies (ms) and outcomes."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    locked: int = 0
    guard: threading.Lock = field(default_factory=threading.Lock)

    def add(self, began: float, status: str, body: str) -> None:
        elapsed_ms = (time.perf_counter() - began) * 1000
        with self.guard:
            self.latencies_ms.append(elapsed_ms)
            self.statuses[status] += 1
            self.locked += LOCKED in body


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 1) if values else 0.0


def index_with_test_model(state: AppState, *, footage: Path, camera_id: str,
                          start: datetime) -> None:
    """Ingest ``footage`` and embed its frames with the tiny random test model, imported
    as ``oko models import`` does (also the browser tests' data)."""
    settings = state.settings
    ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                path=footage, camera_id=camera_id, start=start,
                options=ingest_options(settings))
    checkpoint = settings.home.parent / "tiny.pt"
    torch.save(build_unsafe_random_embedder("test-tiny", seed=0).model.state_dict(), checkpoint)
    with Session(state.engine) as session:
        import_model(source_file=checkpoint, preset="test-tiny",
                     models_dir=settings.models_dir, session=session)
        session.commit()
    settings.clip_preset = "test-tiny"
    embedded = embed_pending(state)
    assert embedded.startswith("Embedded "), embedded


def prepare(home: Path, database_url: str | None, *, users: int,
            export_seconds: int) -> Prepared:
    settings = Settings(home=home, environment="test", key_passphrase=THROWAWAY_PASSPHRASE,
                        database_url=database_url)
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Load",
                            passphrase=THROWAWAY_PASSPHRASE)
    with Session(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id=CAMERA, name="Load street", district="Load", latitude=50.45,
            longitude=30.52, agency="police"))
        password_hash = hash_password(PASSWORD)
        usernames = [f"load-{n:03d}" for n in range(users)]
        session.add_all([User(username=name, agency="police", role=Role.INVESTIGATOR,
                              password_hash=password_hash) for name in usernames])
        session.commit()
    footage = make_footage(home.parent / f"{CAMERA}.mp4", seconds=30, size="640x360")
    index_with_test_model(state, footage=footage, camera_id=CAMERA, start=CAPTURE_START)
    export_footage = make_footage(home.parent / "export.mp4", seconds=export_seconds,
                                  size="1280x720")
    case_id = build_case(state, export_footage, export_seconds)
    state.engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
    env |= {"OKO_HOME": str(home), "OKO_ENVIRONMENT": "test", "OKO_CLIP_PRESET": "test-tiny",
            "OKO_KEY_PASSPHRASE": THROWAWAY_PASSPHRASE,
            # each simulated workstation signs in from its own address (X-Forwarded-For
            # from this loopback "proxy"), as a command post's do; one address for all
            # would meet the per-address limit, which counts tries still in flight
            "OKO_TRUSTED_PROXIES": "127.0.0.1"}
    if database_url:
        env["OKO_DATABASE_URL"] = database_url
    return Prepared(settings=settings, env=env, usernames=usernames, case_id=case_id)


class ExportLoop:
    """Exports the case again and again in a thread until stopped."""

    def __init__(self, state: AppState, case_id: int) -> None:
        self.state, self.case_id = state, case_id
        self.stop = threading.Event()
        self.durations_s: list[float] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        env = export_environment(self.state)
        while not self.stop.is_set():
            began = time.perf_counter()
            with Session(self.state.engine, expire_on_commit=False) as session:
                case = session.get(Case, self.case_id)
                assert case is not None
                job = request_export(session, case=case, requested_by=None,
                                     needs_approval=False)
                session.commit()
                assert job.id is not None
                try:
                    run_export_job(session, engine=self.state.engine, job_id=job.id, env=env,
                                   exporter_if_no_requester="load")
                    session.commit()
                except Exception as exc:  # reported with the results, not raised
                    session.rollback()
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self.durations_s.append(time.perf_counter() - began)


class LockProbe:
    """On SQLite: the longest wait (ms) to take and release the write lock, every 50 ms."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.stop = threading.Event()
        self.waits_ms: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = sqlite3.connect(self.db_path, timeout=120, isolation_level=None)
        try:
            while not self.stop.wait(0.05):
                began = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                self.waits_ms.append((time.perf_counter() - began) * 1000)
        finally:
            conn.close()


def workstation_address(username: str) -> str:
    """A distinct private address per simulated user (``load-007`` -> 10.0.0.7)."""
    number = int(username.rsplit("-", 1)[-1])
    return f"10.0.{number // 250}.{number % 250 + 1}"


def sign_in(client: httpx.Client, username: str, phase: Phase) -> str | None:
    began = time.perf_counter()
    try:
        response = client.post("/api/auth/token",
                               data={"username": username, "password": PASSWORD},
                               headers={"X-Forwarded-For": workstation_address(username)})
    except httpx.HTTPError as exc:
        phase.add(began, type(exc).__name__, str(exc))
        return None
    phase.add(began, str(response.status_code), response.text)
    return str(response.json()["access_token"]) if response.status_code == 200 else None


def search(client: httpx.Client, token: str, query: str, phase: Phase) -> None:
    began = time.perf_counter()
    try:
        response = client.post("/api/search", json={"text": query, "purpose": "LOAD-1"},
                               headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        phase.add(began, type(exc).__name__, str(exc))
        return
    phase.add(began, str(response.status_code), response.text)


def burst(client: httpx.Client, *, signins: list[str], searches: list[str]) -> dict[str, Phase]:
    """All the sign-ins and searches at once, one thread each."""
    phases = {"signin": Phase(), "search": Phase()}
    with ThreadPoolExecutor(max_workers=len(signins) + len(searches)) as pool:
        futures = [pool.submit(sign_in, client, name, phases["signin"]) for name in signins]
        futures += [pool.submit(search, client, token, QUERIES[n % len(QUERIES)],
                                phases["search"]) for n, token in enumerate(searches)]
        for future in futures:
            future.result()
    return phases


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"oko serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/api/auth/me", timeout=2).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"oko serve did not answer in 120 s: {log.read_text()[-2000:]}")


def summarise(rounds: list[Phase]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    for phase in rounds:
        statuses.update(phase.statuses)
    return {
        "requests_per_round": len(rounds[0].latencies_ms),
        "p50_ms": round(statistics.median(_percentile(p.latencies_ms, 50) for p in rounds), 1),
        "p95_ms": round(statistics.median(_percentile(p.latencies_ms, 95) for p in rounds), 1),
        "max_ms": round(max(max(p.latencies_ms, default=0.0) for p in rounds), 1),
        "statuses": dict(sorted(statuses.items())),
        "errors": sum(count for status, count in statuses.items() if status != "200"),
        "database_is_locked": sum(p.locked for p in rounds),
    }


def run_backend(prepared: Prepared, *, runs: int, signins: int, searches: int,
                work: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / f"serve-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "search_api.cli", "serve", "--port",
                                   str(port)], env=prepared.env, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)
    results: dict[str, list[Phase]] = {"signin": [], "search": [], "signin_under_export": [],
                                       "search_under_export": []}
    exports: dict[str, Any] = {}
    try:
        wait_until_up(base, server, log)
        limits = httpx.Limits(max_connections=signins + searches,
                              max_keepalive_connections=signins + searches)
        with httpx.Client(base_url=base, timeout=300, limits=limits) as client:
            names = prepared.usernames[:signins]
            tokens = [t for t in (sign_in(client, n, Phase()) for n in names[:searches]) if t]
            burst(client, signins=names[:5], searches=tokens[:5])  # warm-up (model load)
            for _ in range(runs):
                quiet = burst(client, signins=names, searches=[])
                results["signin"].append(quiet["signin"])
                quiet = burst(client, signins=[], searches=tokens)
                results["search"].append(quiet["search"])
            state = build_state(prepared.settings)
            exporter = ExportLoop(state, prepared.case_id)
            probe = LockProbe(prepared.settings.home / "oko.db") \
                if prepared.settings.database_url is None else None
            exporter.thread.start()
            if probe:
                probe.thread.start()
            time.sleep(1.0)  # let the first export get going
            for _ in range(runs):
                loaded = burst(client, signins=names, searches=tokens)
                results["signin_under_export"].append(loaded["signin"])
                results["search_under_export"].append(loaded["search"])
            exporter.stop.set()
            exporter.thread.join()
            if probe:
                probe.stop.set()
                probe.thread.join()
            state.engine.dispose()
            exports = {"exports_run": len(exporter.durations_s),
                       "export_median_s": round(statistics.median(exporter.durations_s), 2),
                       "export_errors": exporter.errors[:5]}
            if probe:
                exports |= {"write_lock_wait_max_ms": round(max(probe.waits_ms), 1),
                            "write_lock_wait_p95_ms": _percentile(probe.waits_ms, 95)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    server_log = log.read_text(errors="replace")
    return {"phases": {name: summarise(rounds) for name, rounds in results.items()},
            "exports": exports,
            "server_log_database_is_locked": server_log.count(LOCKED),
            "server_log_exceptions": dict(Counter(re.findall(
                r"^([\w.]+(?:Error|Exception|TimeoutError)): ", server_log, re.MULTILINE)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signins", type=int, default=200)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--export-seconds", type=int, default=60,
                        help="length of the exported case's 1280x720 original")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    report: dict[str, Any] = {"runs": args.runs, "signins": args.signins,
                              "searches": args.searches, "export_seconds": args.export_seconds,
                              "embedder": "test-tiny (random weights)", "backends": {}}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"oko-bench-load-{backend}-") as work_dir:
            work = Path(work_dir)
            postgres: PostgresServer | None = None
            try:
                url = None
                if backend == "postgres":
                    postgres = start_postgres()
                    url = postgres.create_database()
                prepared = prepare(work / "home", url, users=max(args.signins, args.searches),
                                   export_seconds=args.export_seconds)
                report["backends"][backend] = run_backend(
                    prepared, runs=args.runs, signins=args.signins, searches=args.searches,
                    work=work)
            finally:
                if postgres is not None:
                    postgres.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
