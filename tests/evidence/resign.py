"""Re-sign an extracted bag: what someone holding a key (ours or a stranger's) can do.

The payload and every tag file stay as they are except ``bag-info.txt`` (its
``Oko-Signed-At``) and ``signer.pem``; the tag manifest is recomputed and signed, so
every hash and the signature check out and only the chain decides.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import datetime
from pathlib import Path

from evidence.bundle import SIGNED_AT, signed_at_text
from evidence.keys import Signer


def extract(bundle_zip: Path, into: Path) -> Path:
    """The bag directory of a bundle zip, extracted under ``into``."""
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(into)
    (bag,) = [p for p in into.iterdir() if p.is_dir()]
    return bag


def resign(bag: Path, signer: Signer, *, signed_at: datetime | None = None) -> None:
    info = (bag / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    if signed_at is not None:
        info = [line for line in info if not line.startswith(f"{SIGNED_AT}:")]
        info.append(f"{SIGNED_AT}: {signed_at_text(signed_at)}")
    (bag / "bag-info.txt").write_text("".join(f"{line}\n" for line in info), encoding="utf-8")
    (bag / "signer.pem").write_bytes(signer.chain_pem)
    names = [line.split("  ", 1)[1] for line in
             (bag / "tagmanifest-sha256.txt").read_text(encoding="utf-8").splitlines()]
    tags = "".join(f"{hashlib.sha256((bag / n).read_bytes()).hexdigest()}  {n}\n"
                   for n in names).encode()
    (bag / "tagmanifest-sha256.txt").write_bytes(tags)
    (bag / "signature.sig").write_bytes(signer.sign(tags))


def zip_dir(bag: Path, out: Path) -> Path:
    """``bag`` zipped under its own name, as the exporter lays a bundle out."""
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(p for p in bag.rglob("*") if p.is_file()):
            archive.write(path, f"{bag.name}/{path.relative_to(bag).as_posix()}")
    return out
