"""The evidence authority: the certificates it issues, revocation in its CRL (bundles
signed after it INVALID, before it VALID), publishing the trust store, and VERIFY.txt's
openssl commands run for real."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from oko_verify import TrustAnchors, Verdict, verify_bundle

from evidence.authority import LEAF_VALIDITY, ROOT_VALIDITY, RevokedEntry, build_crl
from evidence.keys import (
    certificate_fingerprint,
    ensure_signing_identity,
    export_trust_store,
    installation_anchors,
    load_crl,
    load_signer,
    revoke_signing_certificate,
    root_certificate,
    rotate_signing_identity,
)
from search_api.state import AppState
from storage.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from tests.evidence.conftest import EvidenceWorld, build_world
from tests.evidence.resign import extract, resign
from tests.evidence.test_keys import make_legacy_identity

PASSPHRASE = "test-passphrase"
TOOLS = ("sha256sum", "openssl", "awk", "grep")


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_root_and_the_signing_certificate_have_the_right_extensions(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="Kyiv", passphrase="p")
    root = root_certificate(tmp_path)
    assert root is not None
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    validity = root.not_valid_after_utc - root.not_valid_before_utc
    assert ROOT_VALIDITY <= validity <= ROOT_VALIDITY + timedelta(minutes=10)

    leaf = signer.certificate
    assert isinstance(leaf.public_key(), Ed25519PublicKey)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (leaf_usage.digital_signature, leaf_usage.content_commitment) == (True, True)
    assert not (leaf_usage.key_cert_sign or leaf_usage.crl_sign or leaf_usage.key_encipherment
                or leaf_usage.data_encipherment or leaf_usage.key_agreement)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert leaf.issuer == root.subject
    assert LEAF_VALIDITY <= leaf.not_valid_after_utc - leaf.not_valid_before_utc \
        <= LEAF_VALIDITY + timedelta(minutes=10)
    crl = load_crl(tmp_path)
    assert crl is not None and list(crl) == [] and crl.issuer == root.subject


def test_revocation_fails_later_signatures_and_keeps_earlier_ones_valid(
    world: EvidenceWorld, tmp_path: Path,
) -> None:
    keys_dir = world.state.settings.keys_dir
    revoked_signer = world.signer
    before = world.export(tmp_path / "before.zip").bundle_path
    anchors = installation_anchors(keys_dir)
    assert verify_bundle(before, anchors).verdict is Verdict.VALID

    revocation = revoke_signing_certificate(
        keys_dir=keys_dir, fingerprint=revoked_signer.fingerprint_sha256,
        reason="key_compromise", organisation="Kyiv", passphrase=PASSPHRASE)
    assert revocation.reason == "key-compromise"
    replacement = revocation.replacement
    assert replacement is not None  # the current certificate was replaced first
    assert load_signer(keys_dir=keys_dir, passphrase=PASSPHRASE).fingerprint_sha256 == \
        replacement.fingerprint_sha256
    assert world.state.signer().fingerprint_sha256 == replacement.fingerprint_sha256
    crl = load_crl(keys_dir)
    assert crl is not None
    entry = crl.get_revoked_certificate_by_serial_number(
        revoked_signer.certificate.serial_number)
    assert entry is not None and entry.revocation_date_utc == revocation.revoked_at
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        is x509.ReasonFlags.key_compromise

    anchors = installation_anchors(keys_dir)
    earlier = verify_bundle(before, anchors)
    assert earlier.verdict is Verdict.VALID, earlier.summary
    after = extract(before, tmp_path / "after")
    resign(after, revoked_signer, signed_at=revocation.revoked_at + timedelta(minutes=1))
    later = verify_bundle(after, anchors)
    assert later.verdict is Verdict.INVALID
    assert any("revoked" in c.detail for c in later.failures), later.summary
    # without the CRL nobody can tell: the chain itself is fine
    assert verify_bundle(after, TrustAnchors(certificates=anchors.certificates)).verdict \
        is Verdict.VALID
    world.signer = replacement
    fresh = world.export(tmp_path / "fresh.zip").bundle_path
    assert verify_bundle(fresh, anchors).verdict is Verdict.VALID
    openssl = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CRLfile", str(keys_dir / "crl.pem"), "-CAfile",
         str(keys_dir / "root.pem"), str(keys_dir / "certs" /
                                         f"{revoked_signer.fingerprint_sha256}.pem")],
        capture_output=True, text=True, check=False)
    assert openssl.returncode != 0 and "certificate revoked" in openssl.stdout + openssl.stderr


def test_revoking_an_older_certificate_keeps_the_current_one(tmp_path: Path) -> None:
    old = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    current = rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    revocation = revoke_signing_certificate(keys_dir=tmp_path, fingerprint=old.fingerprint_sha256,
                                            reason="superseded", organisation="o",
                                            passphrase="p")
    assert revocation.replacement is None
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        current.fingerprint_sha256
    crl = load_crl(tmp_path)
    assert crl is not None and [r.serial_number for r in crl] == [old.certificate.serial_number]
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == 2  # the empty CRL of oko init was number 1


def test_a_revoked_current_certificate_is_refused_until_rotated(tmp_path: Path) -> None:
    signer = ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    root = root_certificate(tmp_path)
    root_key = serialization.load_pem_private_key((tmp_path / "root-key.pem").read_bytes(),
                                                  password=b"p")
    assert root is not None and isinstance(root_key, ec.EllipticCurvePrivateKey)
    when = signer.certificate.not_valid_before_utc + timedelta(minutes=6)
    crl = build_crl(root_key, root, [RevokedEntry(signer.certificate.serial_number, when,
                                                  "key-compromise")], number=2)
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigurationError) as caught:
        load_signer(keys_dir=tmp_path, passphrase="p")
    assert str(caught.value) == (
        f"The signing certificate {signer.fingerprint_sha256} was revoked on "
        f"{when:%Y-%m-%d %H:%M} UTC; run `oko keys rotate` before signing again.")
    new = rotate_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    assert load_signer(keys_dir=tmp_path, passphrase="p").fingerprint_sha256 == \
        new.fingerprint_sha256


def test_a_crl_not_signed_by_the_root_is_refused(tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=tmp_path, organisation="o", passphrase="p")
    ensure_signing_identity(keys_dir=tmp_path / "other", organisation="o", passphrase="p")
    shutil.copy(tmp_path / "other" / "crl.pem", tmp_path / "crl.pem")
    with pytest.raises(ConfigurationError, match=r"is not signed by the root in root\.pem"):
        load_signer(keys_dir=tmp_path, passphrase="p")


@pytest.mark.parametrize(("case", "error", "message"), [
    ("malformed", InvalidInputError, "'abc' is not a SHA-256 certificate fingerprint."),
    ("unknown", NotFoundError, "No signing certificate {unknown} was used by this "
                               "installation."),
    ("root", InvalidInputError, "The root certificate cannot be revoked by its own CRL; a new "
                                "root means a new evidence authority."),
    ("reason", InvalidInputError, "'because' is not a revocation reason; use one of "
                                  "unspecified, key-compromise, affiliation-changed, "
                                  "superseded, cessation-of-operation, privilege-withdrawn."),
    ("passphrase", ConfigurationError, "The evidence authority's root key could not be "
                                       "decrypted; check OKO_KEY_PASSPHRASE."),
    ("offline", ConfigurationError, "The evidence authority's root key (root-key.pem) is not "
                                    "in {keys}; bring it back from where it is kept offline, "
                                    "then run the command again."),
    ("twice", ConflictError, "Certificate {old} was already revoked on {when} UTC."),
    ("legacy", InvalidInputError, "Certificate {legacy} is self-signed, from before the "
                                  "evidence authority; a CRL cannot revoke it (run `oko keys "
                                  "rotate` to stop signing with it)."),
])
def test_bad_revocations_are_refused_and_write_nothing(
    tmp_path: Path, case: str, error: type[Exception], message: str,
) -> None:
    keys = tmp_path / "keys"
    legacy = make_legacy_identity(keys, organisation="o", passphrase="p")
    old = rotate_signing_identity(keys_dir=keys, organisation="o", passphrase="p")
    rotate_signing_identity(keys_dir=keys, organisation="o", passphrase="p")
    first = revoke_signing_certificate(keys_dir=keys, fingerprint=old.fingerprint_sha256,
                                       reason="superseded", organisation="o", passphrase="p")
    root = root_certificate(keys)
    assert root is not None
    fingerprint = {"malformed": "abc", "unknown": "0f" * 32,
                   "root": certificate_fingerprint(root), "legacy": legacy}.get(
                       case, old.fingerprint_sha256 if case == "twice"
                       else load_signer(keys_dir=keys, passphrase="p").fingerprint_sha256)
    if case == "offline":
        (keys / "root-key.pem").rename(tmp_path / "root-key.pem")
    before = snapshot(keys)
    with pytest.raises(error) as caught:
        revoke_signing_certificate(keys_dir=keys, fingerprint=fingerprint,
                                   reason="because" if case == "reason" else "superseded",
                                   organisation="o",
                                   passphrase="wrong" if case == "passphrase" else "p")
    assert str(caught.value) == message.format(
        unknown="0f" * 32, keys=keys, old=old.fingerprint_sha256, legacy=legacy,
        when=f"{first.revoked_at:%Y-%m-%d %H:%M}")
    assert snapshot(keys) == before


def test_the_published_trust_store_is_what_the_verifier_reads(world: EvidenceWorld,
                                                              tmp_path: Path) -> None:
    keys_dir = world.state.settings.keys_dir
    bundle = world.export(tmp_path / "b.zip").bundle_path
    store = tmp_path / "trust"
    written = export_trust_store(keys_dir, store)
    assert [p.name for p in written] == ["evidence-authority-root.pem", "evidence-authority.crl"]
    anchors = TrustAnchors.from_store(store)
    assert anchors.certificates == (root_certificate(keys_dir),) and len(anchors.crls) == 1
    report = verify_bundle(bundle, anchors)
    assert report.verdict is Verdict.VALID and report.root_fingerprint == \
        world.signer.root_fingerprint_sha256
    # a stranger's authority, same organisation name: intact, but nobody vouches for it
    stranger = ensure_signing_identity(keys_dir=tmp_path / "mallory",
                                       organisation=world.state.settings.organisation,
                                       passphrase="p")
    forged = extract(bundle, tmp_path / "forged")
    resign(forged, stranger)
    assert verify_bundle(forged, anchors).verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    with pytest.raises(NotFoundError, match="run `oko init` first"):
        export_trust_store(tmp_path / "empty", tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def _commands(verify_text: str) -> list[str]:
    """The shell commands VERIFY.txt prints (indented five spaces), continuations joined."""
    commands: list[str] = []
    pending = ""
    for line in verify_text.splitlines():
        if not line.startswith("     ") and not pending:
            continue
        text = line.strip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        command, pending = pending + text, ""
        if command.split(" ", 1)[0] in TOOLS:
            commands.append(command)
    return commands


def _run_all(bag: Path) -> list[subprocess.CompletedProcess[str]]:
    return [subprocess.run(["bash", "-c", command], cwd=bag, capture_output=True, text=True,
                           check=False)
            for command in _commands((bag / "VERIFY.txt").read_text(encoding="utf-8"))]


def test_verify_txt_commands_work_with_real_openssl(world: EvidenceWorld,
                                                    tmp_path: Path) -> None:
    keys_dir = world.state.settings.keys_dir
    bundle = world.export(tmp_path / "b.zip").bundle_path
    bag = extract(bundle, tmp_path / "unzipped")
    export_trust_store(keys_dir, bag.parent)  # the CRL VERIFY.txt names, next to the bag
    text = (bag / "VERIFY.txt").read_text(encoding="utf-8")
    assert f"oko-verify BUNDLE.zip --fingerprint {world.signer.root_fingerprint_sha256}" in text
    assert "pip install ./verifier" in text
    commands = _commands(text)
    assert [c.split(" ", 2)[:2] for c in commands] == [
        ["sha256sum", "-c"], ["sha256sum", "-c"], ["openssl", "x509"], ["openssl", "pkeyutl"],
        ["awk", "'/-BEGIN"], ["openssl", "x509"], ["openssl", "verify"], ["openssl", "verify"],
        ["openssl", "verify"], ["grep", "-v"]]
    before = snapshot(bag)
    results = _run_all(bag)
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert snapshot(bag) == before  # helper files went to ../, the bag is as signed
    outputs = [r.stdout for r in results]
    assert outputs[0].count(": OK") == len((bag / "manifest-sha256.txt").read_text()
                                           .splitlines())
    assert "Signature Verified Successfully" in outputs[3]
    assert outputs[5].strip().lower().replace(":", "").endswith(
        f"={world.signer.root_fingerprint_sha256}")
    assert [o.strip() for o in outputs[6:9]] == ["signer.pem: OK"] * 3
    digest = outputs[9].split()[0]
    assert f"Oko-Evidence-Digest: {digest}" in (bag / "bag-info.txt").read_text()

    # Re-signed by a stranger's authority: openssl accepts the stranger's own root, so
    # the root's fingerprint is what tells; against the real root the chain fails.
    stranger = ensure_signing_identity(keys_dir=tmp_path / "mallory", organisation="Kyiv",
                                       passphrase="p")
    resign(bag, stranger)
    results = _run_all(bag)
    assert results[5].stdout.strip().lower().replace(":", "").endswith(
        f"={stranger.root_fingerprint_sha256}")
    real_root = subprocess.run(
        ["openssl", "verify", "-CAfile", str(keys_dir / "root.pem"), "signer.pem"], cwd=bag,
        capture_output=True, text=True, check=False)
    assert real_root.returncode != 0


def test_verify_txt_of_an_old_self_signed_installation_names_the_signer(tmp_path: Path) -> None:
    from evidence.exports import verify_instructions

    text = verify_instructions(fingerprint="ab" * 32, top_dir="oko-X")
    assert "openssl x509 -in signer.pem -noout -fingerprint -sha256" in text
    assert f"Expected at export time: {'ab' * 32}" in text
    assert f"oko-verify BUNDLE.zip --fingerprint {'ab' * 32}" in text
    assert "root.pem" not in text


def test_bundles_of_an_old_self_signed_installation_stay_valid_after_rotation(
    state: AppState, footage_file: Path, tmp_path: Path,
) -> None:
    keys_dir = state.settings.keys_dir
    legacy = make_legacy_identity(keys_dir, organisation="Old", passphrase=PASSPHRASE)
    world = build_world(state, tmp_path, footage=footage_file)
    assert world.signer.fingerprint_sha256 == legacy and world.signer.issuers == ()
    old = world.export(tmp_path / "old.zip").bundle_path
    with zipfile.ZipFile(old) as archive:
        text = archive.read("oko-KV-2026-001/VERIFY.txt").decode()
    assert f"oko-verify BUNDLE.zip --fingerprint {legacy}" in text
    assert verify_bundle(old, installation_anchors(keys_dir)).verdict is Verdict.VALID
    world.signer = rotate_signing_identity(keys_dir=keys_dir, organisation="Old",
                                           passphrase=PASSPHRASE)
    new = world.export(tmp_path / "new.zip").bundle_path
    anchors = installation_anchors(keys_dir)
    for bundle in (old, new):
        report = verify_bundle(bundle, anchors)
        assert report.verdict is Verdict.VALID, report.summary
    # a prosecutor who imported only the new root: the old bundle needs its old pin
    root_only = TrustAnchors(certificates=(root_certificate(keys_dir),))  # type: ignore[arg-type]
    assert verify_bundle(old, root_only).verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED
    assert verify_bundle(old, TrustAnchors(fingerprints=(legacy,))).verdict is Verdict.VALID
