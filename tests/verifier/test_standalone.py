"""The prosecutor's install: ``oko_verify`` runs with nothing but the standard library,
the verifier's own folder, ``cryptography`` (with what cryptography itself needs) and
``asn1crypto`` (pure Python, for RFC 3161 timestamp tokens).

The check runs ``python -I -S``: no site-packages at all, only a folder holding links to
cryptography's distribution and its requirements, so an import of anything else fails
instead of being quietly found in Oko's virtual environment.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from oko_verify import certificate_fingerprint

from tests.verifier.bags import make_zip
from tests.verifier.pki import make_root

VERIFIER_DIR = Path(__file__).resolve().parents[2] / "verifier"
NEVER = ("torch", "numpy", "sqlalchemy", "sqlmodel", "fastapi", "pydantic", "typer",
         "evidence", "storage", "search_api", "indexer", "PIL", "reportlab")
PROBE = """
import json, sys
sys.path[:0] = [{verifier!r}, {deps!r}]
from pathlib import Path
from oko_verify import TrustAnchors, verify_bundle
from oko_verify.cli import main
report = verify_bundle(Path({bundle!r}), TrustAnchors(fingerprints=({pin!r},)))
code = main([{bundle!r}, "--fingerprint", {pin!r}])
print(json.dumps({{"verdict": report.verdict.value, "cli": code,
                  "modules": sorted({{m.partition(".")[0] for m in sys.modules}}
                                    - set(sys.stdlib_module_names))}}))
"""


def requirement_closure(name: str) -> set[str]:
    """``name`` and every distribution it requires (markers for extras skipped)."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current.lower() in seen:
            continue
        seen.add(current.lower())
        for requirement in metadata.requires(current) or []:
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
            if match:
                pending.append(match.group(0))
    return seen


def link_distributions(names: set[str], target: Path) -> None:
    """Links to the top-level files of each installed distribution in ``names``."""
    target.mkdir()
    for name in names:
        distribution = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or []}
        for top in tops:
            source = Path(str(distribution.locate_file(top)))
            if top.endswith((".dist-info", ".pth")) or top in ("..", "__pycache__") \
                    or not source.exists() or (target / top).exists():
                continue
            (target / top).symlink_to(source)


def test_verifies_with_only_the_standard_library_and_cryptography(tmp_path: Path) -> None:
    root = make_root()
    bundle = make_zip(tmp_path, root.issue())
    deps = tmp_path / "deps"
    closure = requirement_closure("cryptography") | requirement_closure("asn1crypto")
    link_distributions(closure, deps)
    code = PROBE.format(verifier=str(VERIFIER_DIR), deps=str(deps), bundle=str(bundle),
                        pin=certificate_fingerprint(root.certificate))
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["verdict"] == "VALID" and result["cli"] == 0
    assert not set(result["modules"]) & set(NEVER)
    assert set(result["modules"]) <= {"__main__", "oko_verify", "cryptography", "cffi",
                                      "_cffi_backend", "_openssl",  # cryptography's own
                                      "pycparser", "asn1crypto"}, result["modules"]
    assert {"cryptography", "cffi"} <= closure  # the links were really needed


def test_without_cryptography_it_fails_to_import(tmp_path: Path) -> None:
    """The isolation is real: with the links folder empty, cryptography is not found."""
    (tmp_path / "deps").mkdir()
    code = f"import sys; sys.path[:0] = [{str(VERIFIER_DIR)!r}, {str(tmp_path / 'deps')!r}]\n" \
           "from oko_verify import verify_bundle"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode != 0 and "No module named 'cryptography'" in done.stderr
