"""A signed Oko bag built directly (no database, no ffmpeg), laid out as the exporter
lays it out: custody chain, provenance JSON-LD, clips, stills, report, tag files and an
Ed25519 signature by a test PKI's signing certificate."""

from __future__ import annotations

import hashlib
import json
import os
import random
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from oko_verify.bag import (
    BAGIT_TXT,
    PAYLOAD_MANIFEST,
    SIGNATURE,
    SIGNER_CERT,
    TAG_FILES,
    TAG_MANIFEST,
    evidence_digest,
    manifest_text,
    sha256_file,
)
from oko_verify.custody import GENESIS_HASH, compute_entry_hash

from tests.verifier.pki import EPOCH, Leaf

CASE = "KV-2026-001"
TOP = f"oko-{CASE}"
SIGNED_AT = EPOCH + timedelta(days=300, hours=14, seconds=5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(chain: str, seq: int, prev: str, action: str, details: dict[str, Any], *,
           case_id: int | None = 1, original_id: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "chain": chain, "seq": seq, "prev_hash": prev, "action": action,
        "actor": "investigator-police", "case_id": case_id, "original_id": original_id,
        "recorded_at": f"2026-10-2{seq}T10:00:00.000000Z", "details": details}
    entry["entry_hash"] = compute_entry_hash(entry)
    return entry


def _file_node(node_id: str, path: str | None, sha: str) -> dict[str, Any]:
    facet: dict[str, Any] = {"@type": "uco-observable:FileFacet",
                             "uco-observable:fileName": Path(path or node_id).name}
    if path is not None:
        facet["uco-observable:filePath"] = path
    return {"@id": node_id, "@type": "uco-observable:File", "uco-core:hasFacet": [
        facet, {"@type": "uco-observable:ContentDataFacet", "uco-observable:hash": [{
            "@type": "uco-types:Hash", "uco-types:hashMethod": "SHA256",
            "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": sha}}]}]}


def write_payload(bag: Path, *, seed: int = 1) -> None:
    """``data/``: an original, two clips with stills, the report, custody, provenance."""
    rng = random.Random(seed)
    files = {
        "data/originals/cam1.mp4": rng.randbytes(3000),
        "data/clips/clip-001-cam-1.mp4": rng.randbytes(1500),
        "data/clips/clip-002-cam-1.mp4": rng.randbytes(1200),
        "data/stills/clip-001-cam-1.jpg": rng.randbytes(400),
        "data/stills/clip-002-cam-1.jpg": rng.randbytes(300),
        "data/report.pdf": b"%PDF-1.7\n" + rng.randbytes(800),
    }
    for rel, data in files.items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    original_sha = _sha(files["data/originals/cam1.mp4"])
    acquisition = _entry(f"original:{original_sha[:12]}", 0, GENESIS_HASH, "acquisition",
                         {"sha256": original_sha, "filename": "cam1.mp4"},
                         case_id=None, original_id=7)
    clip = _entry(f"case:{CASE}", 0, GENESIS_HASH, "clip",
                  {"acquisition_entry_hash": acquisition["entry_hash"], "camera_id": "cam-1"})
    clips = [{"path": f"data/clips/clip-00{n}-cam-1.mp4",
              "sha256": _sha(files[f"data/clips/clip-00{n}-cam-1.mp4"]),
              "still_path": f"data/stills/clip-00{n}-cam-1.jpg",
              "still_sha256": _sha(files[f"data/stills/clip-00{n}-cam-1.jpg"])}
             for n in (1, 2)]
    export = _entry(f"case:{CASE}", 1, clip["entry_hash"], "export",
                    {"clips": clips, "note": "Крадіжка велосипеда"})
    (bag / "data" / "custody.jsonl").write_text(
        "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                for r in (acquisition, clip, export)), encoding="utf-8")
    graph: list[dict[str, Any]] = [{"@id": f"kb:investigation-{CASE}",
                                    "@type": "case-investigation:Investigation"}]
    graph.append(_file_node(f"kb:original-{original_sha}", "data/originals/cam1.mp4",
                            original_sha))
    for item in clips:
        graph.append(_file_node(f"kb:clip-{item['sha256']}", item["path"], item["sha256"]))
        graph.append(_file_node(f"kb:still-{item['still_sha256']}", item["still_path"],
                                item["still_sha256"]))
    graph.append({"@id": "kb:custody-x", "@type": "case-investigation:InvestigativeAction",
                  "uco-core:name": "custody: export"})
    document = {"@context": {"kb": "urn:oko:kb:"}, "@graph": graph}
    (bag / "data" / "provenance.jsonld").write_text(
        json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8")


def finish(bag: Path, signer: Leaf, *, signed_at: datetime | None = SIGNED_AT,
           extra_info: tuple[tuple[str, str], ...] = ()) -> None:
    """Manifests, tag files and the signature, in the exporter's order."""
    payload = {p.relative_to(bag).as_posix(): sha256_file(p)
               for p in sorted((bag / "data").rglob("*")) if p.is_file()}
    (bag / PAYLOAD_MANIFEST).write_text(manifest_text(payload.items()), encoding="utf-8")
    octets = sum((bag / p).stat().st_size for p in payload)
    info = [("Bagging-Date", f"{(signed_at or SIGNED_AT):%Y-%m-%d}"),
            ("Oko-Case-Number", CASE), ("Oko-Evidence-Digest", evidence_digest(payload)),
            ("Payload-Oxum", f"{octets}.{len(payload)}"), *extra_info]
    if signed_at is not None:
        info.append(("Oko-Signed-At", f"{signed_at:%Y-%m-%dT%H:%M:%SZ}"))
    (bag / "bagit.txt").write_bytes(BAGIT_TXT)
    (bag / "bag-info.txt").write_text("".join(f"{k}: {v}\n" for k, v in info),
                                      encoding="utf-8")
    (bag / "VERIFY.txt").write_text("oko-verify this bundle\n", encoding="utf-8")
    (bag / SIGNER_CERT).write_bytes(signer.chain_pem)
    resign(bag, signer)


def resign(bag: Path, signer: Leaf) -> None:
    """Rewrite the tag manifest over the tag files as they are now, and sign it."""
    tags = manifest_text((n, sha256_file(bag / n)) for n in TAG_FILES).encode("utf-8")
    (bag / TAG_MANIFEST).write_bytes(tags)
    (bag / SIGNATURE).write_bytes(signer.sign(tags))


def make_bag(directory: Path, signer: Leaf, *, signed_at: datetime | None = SIGNED_AT,
             seed: int = 1) -> Path:
    bag = directory / TOP
    bag.mkdir(parents=True)
    write_payload(bag, seed=seed)
    finish(bag, signer, signed_at=signed_at)
    return bag


def zip_dir(bag: Path, out: Path) -> Path:
    """Zip a bag under its folder name, deterministically (text deflated, media stored)."""
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(p for p in bag.rglob("*") if p.is_file()):
            rel = path.relative_to(bag).as_posix()
            info = zipfile.ZipInfo(f"{bag.name}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            info.compress_type = (zipfile.ZIP_STORED if rel.endswith((".mp4", ".jpg", ".pdf"))
                                  else zipfile.ZIP_DEFLATED)
            archive.writestr(info, path.read_bytes())
    return out


def make_zip(directory: Path, signer: Leaf, **kwargs: Any) -> Path:
    bag = make_bag(directory / "bag", signer, **kwargs)
    return zip_dir(bag, directory / f"{CASE}.zip")


def tree_size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in path.rglob("*") if p.is_file()) \
        if path.exists() else 0
