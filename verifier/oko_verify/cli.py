"""``oko-verify BUNDLE``: verify an evidence bundle offline and say what it means.

Exit codes: 0 VALID, 3 INTACT, SIGNER NOT TRUSTED, 1 INVALID, 2 unusable input or a
usage error. Errors are one sentence on stderr, never a traceback. ``oko verify`` (in
Oko's CLI) builds its anchors and prints its report with the functions below, so both
commands answer alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from oko_verify.errors import VerifierError
from oko_verify.report import VerificationReport
from oko_verify.trust import TrustAnchors, load_certificate_file, merge
from oko_verify.verify import verify_bundle

TRUST_STORE_ENV = "OKO_TRUST_STORE"
EX_SOFTWARE = 70


def build_anchors(*, fingerprints: Iterable[str] = (), trusted_certs: Iterable[Path] = (),
                  trust_store: Path | None = None) -> TrustAnchors:
    """The anchors the options name, merged. Raises ``InvalidFingerprintError`` or
    ``TrustAnchorError`` (exit 2) for a malformed fingerprint or an unreadable file."""
    parts = [TrustAnchors(fingerprints=tuple(fingerprints),
                          sources=("--fingerprint",) if fingerprints else ())]
    for path in trusted_certs:
        parts.append(TrustAnchors(certificates=tuple(load_certificate_file(path)),
                                  sources=(f"certificate {path}",)))
    if trust_store is not None:
        parts.append(TrustAnchors.from_store(trust_store))
    return merge(*parts)


def tsa_anchors(anchors: TrustAnchors, tsa_certs: Iterable[Path] = ()) -> TrustAnchors:
    """Who may vouch for a timestamp's TSA: each ``--tsa-ca`` PEM, and every certificate
    (and CRL) of ``anchors`` (a trust store may hold the TSA's CA beside the root).
    Raises ``TrustAnchorError`` (exit 2) for an unreadable file."""
    parts = [TrustAnchors(certificates=tuple(load_certificate_file(path)),
                          sources=(f"TSA CA {path}",)) for path in tsa_certs]
    return merge(*parts, TrustAnchors(certificates=anchors.certificates, crls=anchors.crls,
                                      sources=anchors.sources))


def default_trust_store(given: Path | None) -> Path | None:
    """``--trust-store``, else ``$OKO_TRUST_STORE`` when set and not empty."""
    if given is not None:
        return given
    value = os.environ.get(TRUST_STORE_ENV, "").strip()
    return Path(value) if value else None


def report_lines(report: VerificationReport) -> list[str]:
    """One unwrapped line per check (so each problem names its file in full), then the
    verdict in plain words."""
    lines = []
    for check in report.checks:
        mark = "ok  " if check.passed else ("FAIL" if check.fatal else "WARN")
        lines.append(f"{mark} {check.name}: {check.detail}")
    lines.append(report.summary)
    return lines


def print_report(report: VerificationReport, *, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write("\n".join(report_lines(report)) + "\n")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}; see oko-verify --help.\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="oko-verify",
        description="Verify an Oko evidence bundle offline. Exit 0 VALID, 3 INTACT but "
                    "signer not trusted, 1 INVALID, 2 unusable input.")
    parser.add_argument("bundle", type=Path, metavar="BUNDLE",
                        help="bundle zip or extracted bag directory")
    parser.add_argument("--fingerprint", action="append", default=[], metavar="FP",
                        help="pinned SHA-256 fingerprint of the signing certificate or its "
                             "root (repeatable)")
    parser.add_argument("--trusted-cert", action="append", default=[], type=Path,
                        metavar="PEM", help="a trusted certificate, e.g. the root "
                                            "(repeatable)")
    parser.add_argument("--trust-store", type=Path, metavar="DIR",
                        help=f"directory of trusted *.pem/*.crt and *.crl files "
                             f"(default: ${TRUST_STORE_ENV})")
    parser.add_argument("--tsa-ca", action="append", default=[], type=Path,
                        metavar="PEM", help="the CA certificate of a time-stamping "
                                            "authority you trust (repeatable; the trust "
                                            "store's certificates count too)")
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR",
                        help="where a zip is extracted (default: the system temp dir)")
    parser.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oko-verify``; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        anchors = build_anchors(fingerprints=args.fingerprint, trusted_certs=args.trusted_cert,
                                trust_store=default_trust_store(args.trust_store))
        report = verify_bundle(args.bundle, anchors, scratch_dir=args.scratch_dir,
                               tsa_anchors=tsa_anchors(anchors, args.tsa_ca))
    except VerifierError as exc:
        sys.stderr.write(f"error: {exc.diagnostics()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        return 130
    except Exception as exc:  # a bug, not the bundle's fault: still one line, no traceback
        sys.stderr.write(f"error: the verifier failed unexpectedly ({type(exc).__name__}); "
                         "please report this.\n")
        return EX_SOFTWARE
    print_report(report, as_json=args.as_json, out=sys.stdout)
    return report.exit_code


__all__ = ["build_anchors", "default_trust_store", "main", "print_report", "report_lines",
           "tsa_anchors"]
