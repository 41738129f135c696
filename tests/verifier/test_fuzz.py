"""The verifier under seeded random mutation: nothing crashes and nothing is VALID.

A valid, signed bundle is mutated thousands of times: bytes of the zip flipped,
inserted or cut off; zip entries dropped, duplicated, renamed or reordered; JSON values
in custody.jsonl and provenance.jsonld swapped for other types or deleted; lines of the
manifests and bag-info edited, dropped or duplicated. Half of the content mutations are
then re-signed by a stranger's key, so every hash matches and only the content checks
and trust stand in the way. Each result must be a report (never VALID, unless the
mutation left every entry's name and bytes as they were) or ``UnusableBundleError``;
any other exception fails the test with the seed that reproduces it.

``OKO_FUZZ_MUTATIONS`` sets the count (default 2,000); ``OKO_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oko_verify import (
    TrustAnchors,
    UnusableBundleError,
    Verdict,
    certificate_fingerprint,
    verify_bundle,
)

from tests.verifier.bags import finish, make_bag, zip_dir
from tests.verifier.pki import Leaf, make_root

MUTATIONS = int(os.environ.get("OKO_FUZZ_MUTATIONS", "2000"))
SEED = int(os.environ.get("OKO_FUZZ_SEED", "20261201"))
JSON_FILES = ("data/custody.jsonl", "data/provenance.jsonld")
LINE_FILES = ("manifest-sha256.txt", "tagmanifest-sha256.txt", "bag-info.txt",
              "data/custody.jsonl")

Entries = list[tuple[str, bytes]]


@dataclass
class Original:
    zip_bytes: bytes
    entries: Entries  # (name inside the bag, bytes), in zip order
    top: str
    stranger: Leaf
    anchors: TrustAnchors


def read_entries(data: bytes) -> dict[str, bytes] | None:
    """Every entry's name and bytes as zipfile reads them, or None when it cannot."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {i.filename: archive.read(i) for i in archive.infolist()}
    except Exception:  # any failure: this zip's content is not the original's
        return None


def build_zip(entries: Entries, top: str, *, rng: random.Random | None = None) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        for name, data in entries:
            method = zipfile.ZIP_STORED if rng is None or rng.random() < 0.5 \
                else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(f"{top}/{name}" if top else name), data,
                             compress_type=method)
    return buffer.getvalue()


def random_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, 0, -1, 2**70, 1.5, math.inf, "", "x" * rng.randint(1, 300),
        "\x1b[31m\n\u2028", "\ud800", [], [1, "a"], {}, {"a": {"b": []}},
        "0" * 64, "../../etc/passwd", "data/clips/clip-001-cam-1.mp4",
    ])


def mutate_json(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """``value`` with one randomly chosen node replaced, deleted or nested deeper."""
    if isinstance(value, dict) and value and (depth < 6 and rng.random() < 0.7):
        key = rng.choice(sorted(value))
        copy = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del copy[key]
        elif roll < 0.25:
            copy[rng.choice(["details", "@graph", "entry_hash", "clips", "x"])] = \
                random_value(rng)
        else:
            copy[key] = mutate_json(value[key], rng, depth + 1)
        return copy
    if isinstance(value, list) and value and (depth < 6 and rng.random() < 0.7):
        index = rng.randrange(len(value))
        copy = list(value)
        roll = rng.random()
        if roll < 0.15:
            del copy[index]
        elif roll < 0.25:
            copy.insert(index, random_value(rng))
        else:
            copy[index] = mutate_json(value[index], rng, depth + 1)
        return copy
    return random_value(rng)


def json_mutation(data: bytes, name: str, rng: random.Random) -> bytes:
    text = data.decode("utf-8")
    if name.endswith(".jsonl"):
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        lines[index] = json.dumps(mutate_json(json.loads(lines[index]), rng))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    return json.dumps(mutate_json(json.loads(text), rng)).encode("utf-8", "surrogatepass")


def line_mutation(data: bytes, rng: random.Random) -> bytes:
    lines = data.decode("utf-8").splitlines()
    index = rng.randrange(len(lines))
    line = lines[index]
    edits: list[Callable[[], list[str]]] = [
        lambda: lines[:index] + lines[index + 1:],
        lambda: [*lines[:index], line, line, *lines[index + 1:]],
        lambda: [*lines[:index], line[: rng.randrange(len(line) + 1)], *lines[index + 1:]],
        lambda: [*lines[:index], line.replace("  ", "  ../", 1), *lines[index + 1:]],
        lambda: [*lines[:index], line.replace("  data/", "  data/x/", 1), *lines[index + 1:]],
        lambda: [*lines, f"{'ab' * 32}  data/{'n' * rng.randint(1, 300)}"],
        lambda: [*lines, rng.choice(["garbage", "", "\x00", "Oko-Signed-At: 1999-01-01T00:00Z",
                                     "Payload-Oxum: 1.1", f"{'0' * 64}  signer.pem"])],
        lambda: sorted(lines, reverse=True),
    ]
    return ("\n".join(rng.choice(edits)()) + "\n").encode("utf-8", "surrogatepass")


def entry_mutation(entries: Entries, rng: random.Random) -> Entries:
    entries = list(entries)
    index = rng.randrange(len(entries))
    name, data = entries[index]
    roll = rng.randrange(7)
    if roll == 0:
        del entries[index]
    elif roll == 1:
        entries.insert(rng.randrange(len(entries) + 1), (name, data))
    elif roll == 2:
        new = rng.choice([name.upper(), f"data/{name}", f"../{name}", f"{name}/x",
                          name.rsplit("/", 1)[0], "", f"/{name}", name + "\x00", f"a\\{name}",
                          f"data/{'d' * 120}/{'e' * 120}/{'f' * 120}"])
        entries[index] = (new, data)
    elif roll == 3:
        rng.shuffle(entries)
    elif roll == 4:
        entries.append((f"{name}/child", b"x"))
    elif roll == 5:
        entries[index] = (name, data[: rng.randrange(len(data) + 1)])
    else:
        entries.append((rng.choice(["data/extra.bin", "extra.txt", "data/clips/x.mp4"]),
                        os.urandom(rng.randint(0, 64))))
    return entries


def byte_mutation(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    roll = rng.randrange(4)
    if roll == 0:
        for _ in range(rng.randint(1, 8)):
            buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    elif roll == 1:
        return bytes(buffer[: rng.randrange(len(buffer))])
    elif roll == 2:
        at = rng.randrange(len(buffer))
        buffer[at:at] = os.urandom(rng.randint(1, 16))
    else:
        at = rng.randrange(len(buffer))
        buffer[at:at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                        b"PK\x01\x02", b"PK\x05\x06"])
    return bytes(buffer)


def resign(entries: Entries, signer: Leaf, work: Path) -> Entries:
    """Write the entries out as a bag and re-hash and re-sign it with ``signer``."""
    bag = work / "resign"
    if bag.exists():
        for path in sorted(bag.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    for name, data in entries:
        path = bag / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    finish(bag, signer)
    return [(p.relative_to(bag).as_posix(), p.read_bytes())
            for p in sorted(bag.rglob("*")) if p.is_file()]


def mutate(original: Original, rng: random.Random, work: Path) -> tuple[str, bytes]:
    """One random mutation of the original zip: a name for it and the zip's bytes."""
    kind = rng.choice(["bytes", "entries", "json", "lines"])
    if kind == "bytes":
        return kind, byte_mutation(original.zip_bytes, rng)
    entries = list(original.entries)
    if kind == "entries":
        return kind, build_zip(entry_mutation(entries, rng), original.top, rng=rng)
    names = JSON_FILES if kind == "json" else LINE_FILES
    target = rng.choice(names)
    index = next(i for i, (n, _) in enumerate(entries) if n == target)
    data = entries[index][1]
    entries[index] = (target, json_mutation(data, target, rng) if kind == "json"
                      else line_mutation(data, rng))
    if rng.random() < 0.5:
        try:
            entries = resign(entries, original.stranger, work)
            kind += "+stranger-signed"
        except (OSError, ValueError):
            pass  # a mutation the writer cannot lay out: verify it unsigned
    return kind, build_zip(entries, original.top, rng=rng)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    work = tmp_path_factory.mktemp("fuzz-original")
    root = make_root()
    bag = make_bag(work, root.issue())
    bundle = zip_dir(bag, work / "bundle.zip")
    entries = [(p.relative_to(bag).as_posix(), p.read_bytes())
               for p in sorted(bag.rglob("*")) if p.is_file()]
    anchors = TrustAnchors(fingerprints=(certificate_fingerprint(root.certificate),))
    assert verify_bundle(bundle, anchors).verdict is Verdict.VALID
    return Original(zip_bytes=bundle.read_bytes(), entries=entries, top=bag.name,
                    stranger=make_root().issue(), anchors=anchors)


def test_thousands_of_mutations_never_crash_and_never_verify(original: Original,
                                                             tmp_path: Path) -> None:
    rng = random.Random(SEED)
    reference = read_entries(original.zip_bytes)
    scratch = tmp_path / "scratch"
    outcomes: dict[str, int] = {}
    crashes: list[str] = []
    bundle = tmp_path / "mutant.zip"
    for number in range(MUTATIONS):
        kind, data = mutate(original, rng, tmp_path)
        bundle.write_bytes(data)
        try:
            report = verify_bundle(bundle, original.anchors, scratch_dir=scratch)
        except UnusableBundleError as exc:
            assert str(exc) and "\n" not in str(exc)
            outcome = "unusable"
        except Exception as exc:  # the point of the test: name the mutation that crashed
            crashes.append(f"#{number} {kind}: {type(exc).__name__}: {exc}")
            continue
        else:
            outcome = report.verdict.value
            if report.verdict is Verdict.VALID and read_entries(data) != reference:
                crashes.append(f"#{number} {kind}: VALID although the content changed")
        outcomes[f"{kind}: {outcome}"] = outcomes.get(f"{kind}: {outcome}", 0) + 1
    print(f"\n{MUTATIONS} mutations (seed {SEED}):", json.dumps(outcomes, indent=1,
                                                               sort_keys=True))
    assert not crashes, "\n".join(crashes[:20])
    assert sum(outcomes.values()) == MUTATIONS
    invalid = sum(n for k, n in outcomes.items() if k.endswith(": INVALID"))
    unusable = sum(n for k, n in outcomes.items() if k.endswith(": unusable"))
    assert invalid > MUTATIONS // 4 and unusable > MUTATIONS // 20  # both paths exercised
    assert any(k.startswith("json+stranger-signed") for k in outcomes)
    assert list(scratch.iterdir()) == [] if scratch.exists() else True
