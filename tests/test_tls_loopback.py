"""Real TLS on 127.0.0.1 with the generated certificates (OpenSSL through Python's ssl, strict X.509 checks).

This is what the origins (server certificate by SNI) and the mTLS ingress (client certificate required)
do in the cluster, exercised without one.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.world.external import PUBLIC_HOSTS, new_pki
from conformance.world.pki import RunPKI

TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@dataclass
class PkiFiles:
    pki: RunPKI
    files: dict[str, Path]


@pytest.fixture(scope="module")
def run_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    pki = new_pki()
    return PkiFiles(pki, pki.write(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    pki = new_pki()
    return PkiFiles(pki, pki.write(tmp_path_factory.mktemp("foreign")))


@dataclass
class ServerOutcome:
    peer_certificate: dict[str, Any] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[tuple[int, ServerOutcome]]:
    """Serve one TLS connection on 127.0.0.1: handshake, read a line, answer ``pong``."""
    outcome = ServerOutcome()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(10)
            with context.wrap_socket(raw, server_side=True) as tls:
                outcome.peer_certificate = tls.getpeercert() or None
                tls.recv(64)
                tls.sendall(b"pong\n")
        except BaseException as exc:  # recorded for the test to inspect
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, outcome
    finally:
        thread.join(timeout=10)
        listener.close()


def server_context(
    files: dict[str, Path], label: str, require_client: bool, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = version
    context.load_cert_chain(files[f"{label}.crt"], files[f"{label}.key"])
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files["ca.crt"])
    return context


def exchange(
    port: int,
    server_name: str,
    ca_file: Path,
    client: tuple[Path, Path] | None = None,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> bytes:
    """Connect with full verification (hostname + strict chain checks) and swap one line."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.maximum_version = version
    if client is not None:
        context.load_cert_chain(*client)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(b"ping\n")
        answer = tls.recv(64)
        if not answer:
            raise ConnectionError("server closed the connection without answering")
        return answer


@pytest.mark.parametrize("host", [h.name for h in PUBLIC_HOSTS])
def test_server_certificate_serves_each_public_name(run_pki: PkiFiles, host: str) -> None:
    label = next(h.frontend.value for h in PUBLIC_HOSTS if h.name == host)
    with tls_server(server_context(run_pki.files, label, require_client=False)) as (port, outcome):
        assert exchange(port, host, run_pki.files["ca.crt"]) == b"pong\n"
    assert outcome.error is None


@pytest.mark.parametrize("wrong_name", ["example.com", "test.com.evil.org"])
def test_wrong_server_name_fails_verification(run_pki: PkiFiles, wrong_name: str) -> None:
    with (
        tls_server(server_context(run_pki.files, "origins", require_client=False)) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|doesn't match"),
    ):
        exchange(port, wrong_name, run_pki.files["ca.crt"])


def test_server_from_another_ca_fails_verification(run_pki: PkiFiles, foreign_pki: PkiFiles) -> None:
    with (
        tls_server(server_context(foreign_pki.files, "origins", require_client=False)) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"),
    ):
        exchange(port, "aliyun.com", run_pki.files["ca.crt"])


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
def test_mtls_accepts_test_client(run_pki: PkiFiles, version: ssl.TLSVersion) -> None:
    client = (run_pki.files["client.crt"], run_pki.files["client.key"])
    context = server_context(run_pki.files, "mtls-ingress", require_client=True, version=version)
    with tls_server(context) as (port, outcome):
        assert exchange(port, "test.com", run_pki.files["ca.crt"], client, version) == b"pong\n"
    assert outcome.error is None
    assert outcome.peer_certificate is not None
    assert outcome.peer_certificate["subjectAltName"] == (("DNS", "test.client"),)


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
def test_mtls_refuses_a_client_without_certificate(run_pki: PkiFiles, version: ssl.TLSVersion) -> None:
    context = server_context(run_pki.files, "mtls-ingress", require_client=True, version=version)
    with tls_server(context) as (port, outcome):
        # TLS 1.2 fails in the handshake; TLS 1.3 on the first read (the server's alert comes after Finished).
        with pytest.raises((ssl.SSLError, ConnectionError)):
            exchange(port, "test.com", run_pki.files["ca.crt"], version=version)
        outcome.done.wait(10)
    assert isinstance(outcome.error, ssl.SSLError)
    assert "CERTIFICATE" in str(outcome.error).upper()


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
def test_mtls_refuses_a_client_certificate_from_another_ca(
    run_pki: PkiFiles, foreign_pki: PkiFiles, version: ssl.TLSVersion
) -> None:
    foreign_client = (foreign_pki.files["client.crt"], foreign_pki.files["client.key"])
    context = server_context(run_pki.files, "mtls-ingress", require_client=True, version=version)
    with tls_server(context) as (port, outcome):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            exchange(port, "test.com", run_pki.files["ca.crt"], foreign_client, version)
        outcome.done.wait(10)
    assert isinstance(outcome.error, ssl.SSLCertVerificationError)
