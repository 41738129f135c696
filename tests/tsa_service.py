"""A real RFC 3161 time-stamping service for tests, on 127.0.0.1 at a random port.

``start_tsa(root)`` generates a test TSA CA and a TSA certificate it issues (RSA-2048,
the critical extendedKeyUsage timeStamping RFC 3161 requires), writes an ``openssl ts``
config, and serves HTTP: each POST of ``application/timestamp-query`` is answered by
``openssl ts -reply -queryfile … -config … -inkey … -signer …`` as
``application/timestamp-reply``. Nothing in the client is mocked.

``TsaService.stop()`` closes the port (a TSA that is down); ``start()`` opens it again
on the same port.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
POLICY_OID = "1.3.6.1.4.1.99999.3161.1"
MAX_QUERY_BYTES = 64 * 1024

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Oko test TSA")])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, content_commitment=not ca,
                         key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_tsa_pki(directory: Path, *, label: str) -> None:
    """``ca.pem``, ``tsa.pem`` and ``tsa.key`` (unencrypted) for a fresh test TSA."""
    now = datetime.now(UTC).replace(microsecond=0)
    not_before, not_after = now - timedelta(days=1), now + timedelta(days=365)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256()))
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label)).issuer_name(ca_cert.subject)
        .public_key(tsa_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(_pem(ca_cert))
    (directory / "tsa.pem").write_bytes(_pem(tsa_cert))
    (directory / "tsa.key").write_bytes(tsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@dataclass
class TsaService:
    """One running (or stopped) test TSA; ``url`` stays the same across stop/start."""

    root: Path
    port: int = 0
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    @property
    def ca_cert_path(self) -> Path:
        """PEM of the CA that issued the TSA's certificate (the trust anchor)."""
        return self.root / "ca.pem"

    @property
    def tsa_cert_path(self) -> Path:
        return self.root / "tsa.pem"

    @property
    def config_path(self) -> Path:
        return self.root / "openssl-ts.cnf"

    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp ``openssl ts -reply`` gives for a DER query."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.root) as scratch:
            query_path, reply_path = Path(scratch) / "query.tsq", Path(scratch) / "reply.tsr"
            query_path.write_bytes(query)
            subprocess.run(
                ["openssl", "ts", "-reply", "-queryfile", str(query_path),
                 "-config", str(self.config_path), "-inkey", str(self.root / "tsa.key"),
                 "-signer", str(self.tsa_cert_path), "-chain", str(self.ca_cert_path),
                 "-out", str(reply_path)],
                check=True, capture_output=True, timeout=30)
            self.requests += 1
            return reply_path.read_bytes()

    def start(self) -> None:
        """Serve on ``port`` (a random free one the first time)."""
        if self._server is not None:
            return
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                kind = self.headers.get("Content-Type", "")
                if kind != QUERY_TYPE or not 0 < length <= MAX_QUERY_BYTES:
                    self._answer(415, "text/plain", b"expected application/timestamp-query")
                    return
                try:
                    body = service.reply(self.rfile.read(length))
                except subprocess.CalledProcessError as exc:
                    self._answer(400, "text/plain", exc.stderr[-500:])
                    return
                self._answer(200, REPLY_TYPE, body)

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        name=f"test-tsa-{self.port}")
        self._thread.start()

    def stop(self) -> None:
        """Close the port: connections are refused until ``start()``."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None


def start_tsa(root: Path, *, label: str = "Oko test TSA") -> TsaService:
    """Generate a TSA PKI under ``root`` and start serving; the caller stops it."""
    root.mkdir(parents=True, exist_ok=True)
    write_tsa_pki(root, label=label)
    (root / "serial").write_text("01\n", encoding="ascii")
    service = TsaService(root=root)
    service.config_path.write_text(
        _CONFIG.format(dir=root, policy=POLICY_OID), encoding="utf-8")
    service.start()
    return service


__all__ = ["POLICY_OID", "QUERY_TYPE", "REPLY_TYPE", "TsaService", "start_tsa",
           "write_tsa_pki"]
