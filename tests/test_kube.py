"""conformance.kube.api against a loopback fake API server, for what no real API server here can show: exec and
logs of running containers, TLS and proxy handling of the connection, and scripted faults (throttling, a
webhook without endpoints, a dropped connection) with the real server's bodies. What the API server does
with what the harness applies is tested against a real one in tests/test_kube_real.py."""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client as k8s

from conformance.core.timeouts import Timeouts
from conformance.kube.api import (
    ExecResult,
    Kube,
    KubeApiError,
    KubeConflictError,
    KubeError,
    KubeUnreachableError,
    ObjectRef,
    PodInfo,
    bypass_environment_proxy_for_loopback,
    logs_since_seconds,
)
from tests.fake_apiserver import (
    DROP_CONNECTION,
    FAKE_TOKEN,
    PROXY_VARIABLES,
    V4_CHANNEL_PROTOCOL,
    V5_CHANNEL_PROTOCOL,
    ExecOutcome,
    ExecScript,
    FakeApiServer,
    Reply,
    conflict_status,
    namespace_not_found_status,
    namespace_terminating_status,
    schema_error_status,
    status_body,
    too_many_requests,
    webhook_unavailable_status,
    write_kubeconfig,
)

# The fake_apiserver and fake_kubeconfig fixtures.

NS = "egress-test"


class FakeClock:
    """Monotonic clock whose sleep only moves time forward: waits run instantly and deterministically."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_kube(fake_kubeconfig: Path) -> Any:
    created: list[Kube] = []

    def make(**options: Any) -> Kube:
        kube = Kube(fake_kubeconfig, **options)
        created.append(kube)
        return kube

    yield make
    for kube in created:
        kube.close()


@pytest.fixture
def kube(make_kube: Callable[..., Kube]) -> Kube:
    return make_kube(poll_interval=0.01)


@pytest.fixture
def fast_kube(make_kube: Callable[..., Kube], clock: FakeClock) -> Kube:
    """Waits on the fake clock: a 60 s deadline runs out without real waiting."""
    return make_kube(clock=clock.monotonic, sleep=clock.sleep, poll_interval=1.0, timeouts=Timeouts(discovery=5))


def pod(
    name: str,
    labels: dict[str, str] | None = None,
    ready: bool = True,
    ip: str = "10.244.0.5",
    containers: tuple[str, ...] = ("app",),
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": {"nodeName": "kind-worker", "containers": [{"name": c, "image": "busybox"} for c in containers]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


# ---- construction ---------------------------------------------------------------------------------------


def test_kube_uses_its_own_configuration_not_the_global_default(
    fake_apiserver: FakeApiServer, make_kube: Callable[..., Kube]
) -> None:
    before = k8s.Configuration.get_default_copy().host
    kube = make_kube()
    assert kube.host == fake_apiserver.url
    assert k8s.Configuration.get_default_copy().host == before
    assert kube.server_version() == "v1.35.0"
    assert fake_apiserver.find("GET")[-1].headers["authorization"] == f"Bearer {FAKE_TOKEN}"


def test_unknown_context_is_a_kube_error(fake_kubeconfig: Path) -> None:
    with pytest.raises(KubeError, match="no-such-context"):
        Kube(fake_kubeconfig, context="no-such-context")


# ---- a kubeconfig as kind writes it: HTTPS on 127.0.0.1, client certificate, embedded data -------------


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # "BEGIN RSA PRIVATE KEY", the PKCS#1 form kubeadm writes into client-key-data.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class KindStylePKI:
    """kubeadm's layout: a cluster CA, the API server's serving certificate for 127.0.0.1 and localhost,
    and the admin client certificate (O=kubeadm:cluster-admins) that kind embeds in its kubeconfig."""

    ca: bytes
    server: bytes
    server_key: bytes
    client: bytes
    client_key: bytes

    @classmethod
    def generate(cls) -> KindStylePKI:
        now = datetime.now(UTC)
        ca_key = _rsa_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(
            subject: x509.Name, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]
        ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
            key = _rsa_key()
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=True,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            )
            if names:
                builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            return builder.sign(ca_key, hashes.SHA256()), key

        server, server_key = leaf(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        )
        client, client_key = leaf(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubeadm:cluster-admins"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin"),
                ]
            ),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
        )
        return cls(_pem(ca), _pem(server), _key_pem(server_key), _pem(client), _key_pem(client_key))

    def server_context(self, directory: Path) -> ssl.SSLContext:
        """The API server's side: serves its certificate and requires a client certificate from the CA."""
        (directory / "ca.crt").write_bytes(self.ca)
        (directory / "apiserver.crt").write_bytes(self.server)
        (directory / "apiserver.key").write_bytes(self.server_key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "apiserver.crt", directory / "apiserver.key")
        context.load_verify_locations(directory / "ca.crt")
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def kubeconfig(self, path: Path, server_url: str, cluster: str) -> Path:
        """What ``kind create cluster --kubeconfig path`` writes: context, cluster and user ``kind-<name>``."""
        name = f"kind-{cluster}"

        def data(pem: bytes) -> str:
            return base64.b64encode(pem).decode("ascii")

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {"name": name, "cluster": {"server": server_url, "certificate-authority-data": data(self.ca)}}
            ],
            "users": [
                {
                    "name": name,
                    "user": {"client-certificate-data": data(self.client), "client-key-data": data(self.client_key)},
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def kind_pki() -> KindStylePKI:
    return KindStylePKI.generate()


@pytest.fixture
def tls_apiserver(kind_pki: KindStylePKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with FakeApiServer(tls=kind_pki.server_context(tmp_path)) as server:
        yield server


def test_kind_kubeconfig_with_client_certificate_reaches_rest_and_exec(
    tls_apiserver: FakeApiServer, kind_pki: KindStylePKI, tmp_path: Path
) -> None:
    kubeconfig = kind_pki.kubeconfig(tmp_path / "kubeconfig", tls_apiserver.url, "egress-conformance")
    tls_apiserver.add_object(pod("client"))
    tls_apiserver.exec_script(NS, "client", ExecScript.exit(7, stdout="over TLS"))
    with Kube(kubeconfig, "kind-egress-conformance") as kube:
        assert kube.host.startswith("https://127.0.0.1:")
        assert kube.server_version() == "v1.35.0"
        refs = kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}])
        result = kube.exec(NS, "client", ["true"], "app", timeout=10)
    assert [a.ref for a in refs] == [ObjectRef("v1", "Namespace", NS)]
    assert result == ExecResult(stdout="over TLS", stderr="", exit_code=7)
    assert tls_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods/client/exec")


def test_kind_kubeconfig_with_a_certificate_from_another_ca_is_refused(
    tls_apiserver: FakeApiServer, kind_pki: KindStylePKI, tmp_path: Path
) -> None:
    other = KindStylePKI.generate()
    stranger = KindStylePKI(kind_pki.ca, kind_pki.server, kind_pki.server_key, other.client, other.client_key)
    kubeconfig = stranger.kubeconfig(tmp_path / "kubeconfig", tls_apiserver.url, "egress-conformance")
    with (
        Kube(kubeconfig, "kind-egress-conformance") as kube,
        pytest.raises(KubeUnreachableError, match=r"cannot be reached.*SSL"),
    ):
        kube.server_version()


# ---- HTTP(S)_PROXY from the environment and a loopback API server ---------------------------------------


@pytest.fixture
def dead_proxy_url() -> str:
    """A proxy address nothing listens on: any request sent through it fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_environment_proxy_is_bypassed_for_a_loopback_api_server(
    fake_apiserver: FakeApiServer, fake_kubeconfig: Path, dead_proxy_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kubectl, kind and istioctl (Go) never proxy 127.0.0.1; the Python client would, for REST and exec.
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, dead_proxy_url)
    monkeypatch.setenv("NO_PROXY", "registry.example.com")
    monkeypatch.setenv("no_proxy", "registry.example.com")
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.success(stdout="direct"))
    with Kube(fake_kubeconfig) as kube:
        assert kube.server_version() == "v1.35.0"
        assert kube.exec(NS, "client", ["true"], "app", timeout=10).stdout == "direct"


def _configuration(host: str, proxy: str | None, no_proxy: str | None = None) -> k8s.Configuration:
    configuration = k8s.Configuration(host=host)
    configuration.proxy = proxy
    configuration.no_proxy = no_proxy
    return configuration


@pytest.mark.parametrize("host", ["https://127.0.0.1:6443", "https://[::1]:6443", "https://localhost:6443"])
def test_loopback_hosts_join_no_proxy_keeping_the_existing_entries(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    configuration = _configuration(host, "http://proxy.corp:3128", "corp.example")
    bypass_environment_proxy_for_loopback(configuration)
    assert configuration.no_proxy == "corp.example,127.0.0.0/8,::1,localhost"


def test_remote_api_server_keeps_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    configuration = _configuration("https://10.1.2.3:6443", "http://proxy.corp:3128", "corp.example")
    bypass_environment_proxy_for_loopback(configuration)
    assert configuration.no_proxy == "corp.example"


def test_proxy_url_from_the_kubeconfig_is_kept_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    configuration = _configuration("https://127.0.0.1:6443", "http://tunnel.local:8080")
    bypass_environment_proxy_for_loopback(configuration)
    assert configuration.no_proxy is None


# ---- exec -----------------------------------------------------------------------------------------------

CHECK = "\N{CHECK MARK}".encode()  # 3 bytes in UTF-8


def test_exec_keeps_stdout_and_stderr_apart_across_frames(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(
        NS,
        "client",
        ExecScript(
            frames=(
                (1, b"line 1\n"),
                (2, b"warning 1\n"),
                (1, "h\N{LATIN SMALL LETTER E WITH ACUTE}llo ".encode() + CHECK[:1]),  # a character split over frames
                (1, CHECK[1:] + b"\n"),
                (2, "\N{SNOWMAN} warning 2\n".encode()),
            )
        ),
    )

    result = kube.exec(NS, "client", ["sh", "-c", "echo hi"], "app", timeout=10)

    assert result == ExecResult(
        stdout="line 1\nh\u00e9llo \u2713\n", stderr="warning 1\n\u2603 warning 2\n", exit_code=0
    )


def test_exec_request_and_negotiated_subprotocol(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))

    kube.exec(NS, "client", ["curl", "-sS", "-o", "/dev/null", "http://a b/?x=1&y=2"], "app", timeout=10)

    (request,) = fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods/client/exec")
    assert request.query["command"] == ["curl", "-sS", "-o", "/dev/null", "http://a b/?x=1&y=2"]
    assert request.query["container"] == ["app"]
    assert request.query["stdout"] == ["true"]
    assert request.query["stderr"] == ["true"]
    assert request.query["stdin"] == ["false"]
    assert request.query["tty"] == ["false"]
    assert request.headers["upgrade"].lower() == "websocket"
    assert request.headers["sec-websocket-protocol"] == f"{V5_CHANNEL_PROTOCOL},{V4_CHANNEL_PROTOCOL}"
    assert request.subprotocol == V5_CHANNEL_PROTOCOL
    assert request.headers["authorization"] == f"Bearer {FAKE_TOKEN}"


def test_exec_without_container_leaves_the_choice_to_the_server(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    kube.exec(NS, "client", ["true"], None, timeout=10)
    (request,) = fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods/client/exec")
    assert "container" not in request.query


@pytest.mark.parametrize("code", [1, 7, 28, 255])
def test_exec_non_zero_exit_code_is_a_result(fake_apiserver: FakeApiServer, kube: Kube, code: int) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.exit(code, stdout="partial", stderr="curl: (7) failed"))

    result = kube.exec(NS, "client", ["curl", "http://x"], "app", timeout=10)

    assert result == ExecResult(stdout="partial", stderr="curl: (7) failed", exit_code=code)


def test_exec_with_a_v4_only_server_reads_the_same_status(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.exec_subprotocols = (V4_CHANNEL_PROTOCOL,)
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.exit(3, stdout="out"))

    assert kube.exec(NS, "client", ["false"], None, timeout=10) == ExecResult("out", "", 3)
    assert fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods/client/exec")[0].subprotocol == "v4.channel.k8s.io"


def test_exec_failure_other_than_an_exit_code_raises(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.error('container "app" is not running'))

    with pytest.raises(KubeError) as caught:
        kube.exec(NS, "client", ["true"], "app", timeout=10)

    message = str(caught.value)
    assert "InternalError" in message
    assert 'container "app" is not running' in message
    assert f"pod {NS}/client" in message


def test_exec_refused_upgrade_raises_with_the_api_message(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.reject("container nope is not valid for pod client"))

    with pytest.raises(KubeError, match="HTTP 400: container nope is not valid for pod client"):
        kube.exec(NS, "client", ["true"], "nope", timeout=10)


def test_exec_connection_lost_without_status_raises(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.drop(stdout="half"))

    with pytest.raises(KubeError, match="without an exit status"):
        kube.exec(NS, "client", ["true"], None, timeout=10)


def test_exec_returns_once_the_status_arrived_even_if_the_connection_stays_open(
    fake_apiserver: FakeApiServer, kube: Kube
) -> None:
    fake_apiserver.add_object(pod("client"))
    kube.exec(NS, "client", ["true"], None, timeout=10)  # first call pays the client's one-off setup
    fake_apiserver.exec_script(
        NS,
        "client",
        ExecScript(frames=((1, b"done"),), outcome=ExecOutcome.NON_ZERO_EXIT, exit_code=2, close_after_status=False),
    )
    started = time.monotonic()

    assert kube.exec(NS, "client", ["false"], None, timeout=10) == ExecResult("done", "", 2)
    assert time.monotonic() - started < 2


def test_exec_large_and_many_frames(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    big = b"x" * 200_000  # 64-bit frame length
    medium = b"y" * 1_000  # 16-bit frame length
    frames = ((1, big), *((2, medium) for _ in range(50)), (1, b"end"))
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript(frames=frames))

    result = kube.exec(NS, "client", ["cat"], None, timeout=10)

    assert result.stdout == big.decode() + "end"
    assert result.stderr == medium.decode() * 50
    assert result.exit_code == 0


def test_exec_timeout_raises_soon_after_the_deadline(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    kube.exec(NS, "client", ["true"], None, timeout=10)  # first call pays the client's one-off setup
    fake_apiserver.exec_script(NS, "client", ExecScript.hang(stdout="started"))

    started = time.monotonic()
    with pytest.raises(KubeError, match=r"no exit status within the exec deadline of 0\.5s"):
        kube.exec(NS, "client", ["sleep", "3600"], None, timeout=0.5)
    elapsed = time.monotonic() - started

    assert 0.5 <= elapsed < 1.5


def test_exec_handshake_that_never_answers_times_out(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("client"))
    fake_apiserver.exec_script(NS, "client", ExecScript.hang_handshake())

    started = time.monotonic()
    with pytest.raises(KubeError, match=r"did not open within the exec deadline of 0\.5s"):
        kube.exec(NS, "client", ["true"], None, timeout=0.5)

    assert time.monotonic() - started < 1.5


# ---- scripted faults: what only a stand-in can make the API server say ------------------------------------
# Their bodies are the real server's (tests/test_kube_real.py checks the canned ones against it).

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
CONFIGMAP_PATH = f"/api/v1/namespaces/{NS}/configmaps/settings"


@pytest.fixture
def retrying_kube(make_kube: Callable[..., Kube], clock: FakeClock, fake_apiserver: FakeApiServer) -> Kube:
    """Retries and waits on the fake clock; the namespace NS exists."""
    fake_apiserver.add_object(namespace(NS))
    return make_kube(clock=clock.monotonic, sleep=clock.sleep, poll_interval=1.0, timeouts=Timeouts(apply=30))


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            Reply(500, webhook_unavailable_status("rev.validation.istio.io", "istiod", "istio-system", "/validate")),
            id="webhook-without-endpoints",
        ),
        pytest.param(too_many_requests(), id="throttled"),
        pytest.param(
            Reply(403, namespace_terminating_status("configmaps", "settings", NS)), id="namespace-terminating"
        ),
        pytest.param(
            Reply(503, status_body(503, "etcdserver: leader changed", "ServiceUnavailable")), id="unavailable"
        ),
    ],
)
def test_apply_retries_transient_answers(
    fake_apiserver: FakeApiServer, retrying_kube: Kube, clock: FakeClock, fault: Reply
) -> None:
    fake_apiserver.respond("PATCH", CONFIGMAP_PATH, fault, fault)

    (applied,) = retrying_kube.apply([CONFIGMAP], default_namespace=NS)

    assert applied.created
    assert len(fake_apiserver.find("PATCH", CONFIGMAP_PATH)) == 3
    assert clock.sleeps == [1.0, 1.0]


def test_apply_retries_when_the_connection_drops_without_an_answer(
    fake_apiserver: FakeApiServer, retrying_kube: Kube
) -> None:
    # An API server restarting (or a load balancer resetting) mid-request: no HTTP answer at all.
    fake_apiserver.respond("PATCH", CONFIGMAP_PATH, DROP_CONNECTION)

    (applied,) = retrying_kube.apply([CONFIGMAP], default_namespace=NS)

    assert applied.created
    assert len(fake_apiserver.find("PATCH", CONFIGMAP_PATH)) == 2


def test_apply_gives_up_at_the_apply_deadline_with_the_last_answer(
    fake_apiserver: FakeApiServer, retrying_kube: Kube, clock: FakeClock
) -> None:
    webhook = webhook_unavailable_status("rev.validation.istio.io", "istiod", "istio-system", "/validate")
    fake_apiserver.respond("PATCH", CONFIGMAP_PATH, *[Reply(500, webhook)] * 100)
    started = clock.now

    with pytest.raises(KubeApiError) as caught:
        retrying_kube.apply([CONFIGMAP], default_namespace=NS)

    assert caught.value.status == 500
    message = str(caught.value)
    assert f"apply ConfigMap {NS}/settings: HTTP 500" in message
    assert 'no endpoints available for service "istiod"' in message
    assert "still failing after 31 attempts within the apply deadline of 30s" in message
    assert clock.now - started == 30


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(Reply(500, schema_error_status(f"{NS}/settings", "/v1, Kind=ConfigMap", ".datas")), id="schema"),
        pytest.param(Reply(409, conflict_status("istio-operator", ".data.a")), id="conflict"),
        pytest.param(
            Reply(422, status_body(422, 'ConfigMap "settings" is invalid: data: Invalid value', "Invalid")),
            id="invalid",
        ),
        pytest.param(Reply(404, namespace_not_found_status(NS)), id="no-namespace"),
        pytest.param(
            Reply(403, status_body(403, 'configmaps "settings" is forbidden: User "ci" cannot patch', "Forbidden")),
            id="rbac",
        ),
    ],
)
def test_apply_never_retries_a_refusal(fake_apiserver: FakeApiServer, retrying_kube: Kube, refusal: Reply) -> None:
    fake_apiserver.respond("PATCH", CONFIGMAP_PATH, refusal)

    with pytest.raises(KubeApiError) as caught:
        retrying_kube.apply([CONFIGMAP], default_namespace=NS)

    assert caught.value.status == refusal.status
    assert len(fake_apiserver.find("PATCH", CONFIGMAP_PATH)) == 1


def test_a_conflict_is_a_conflict_error_naming_the_owner(fake_apiserver: FakeApiServer, retrying_kube: Kube) -> None:
    fake_apiserver.respond("PATCH", CONFIGMAP_PATH, Reply(409, conflict_status("istio-operator", ".data.a")))

    with pytest.raises(KubeConflictError) as caught:
        retrying_kube.apply([CONFIGMAP], default_namespace=NS)

    assert caught.value.managers == ("istio-operator",)
    assert ".data.a (istio-operator)" in str(caught.value)


def test_apply_sends_server_side_apply_without_force(fake_apiserver: FakeApiServer, retrying_kube: Kube) -> None:
    retrying_kube.apply([CONFIGMAP], default_namespace=NS)
    retrying_kube.apply([CONFIGMAP], default_namespace=NS, dry_run=True)

    first, dry = fake_apiserver.find("PATCH", CONFIGMAP_PATH)
    assert first.content_type == "application/apply-patch+yaml"
    assert first.query == {"fieldManager": ["egress-conformance"], "fieldValidation": ["Strict"]}
    assert dry.query == {"fieldManager": ["egress-conformance"], "fieldValidation": ["Strict"], "dryRun": ["All"]}
    assert first.body["metadata"]["namespace"] == NS
    assert "namespace" not in CONFIGMAP["metadata"]  # the caller's document is left alone


def test_apply_of_a_namespaced_object_without_any_namespace_raises(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    with pytest.raises(KubeError, match=r"ConfigMap settings.*namespaced"):
        kube.apply([CONFIGMAP])
    assert fake_apiserver.find("PATCH") == []


def test_apply_document_without_name_raises(kube: Kube) -> None:
    with pytest.raises(KubeError, match=r"lacks metadata\.name"):
        kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}], default_namespace=NS)


def test_apply_manifest_renders_then_applies(fake_apiserver: FakeApiServer, kube: Kube, tmp_path: Path) -> None:
    fake_apiserver.add_object(namespace("egress-c"))
    manifest = tmp_path / "config.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "${NS}"},
                "data": {"host": "${HOST}"},
            }
        ),
        encoding="utf-8",
    )

    (applied,) = kube.apply_manifest(manifest, {"NS": "egress-c", "HOST": "api.example"})

    assert applied.ref == ObjectRef("v1", "ConfigMap", "settings", "egress-c")
    (patch,) = fake_apiserver.find("PATCH")
    assert patch.body["data"] == {"host": "api.example"}


def test_get_other_errors_raise(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.respond("GET", f"/api/v1/namespaces/{NS}/pods/p1", Reply(403, status_body(403, "forbidden!")))
    with pytest.raises(KubeError, match=r"HTTP 403.*forbidden!"):
        kube.get(ObjectRef("v1", "Pod", "p1", NS))


def deployment(name: str = "web", *, available: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": available},
    }


def test_waits_ride_out_transient_answers(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(deployment())
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    fake_apiserver.respond("GET", path, Reply(503, status_body(503, "etcdserver: leader changed")), too_many_requests())
    fast_kube.wait_rollout("Deployment", NS, "web", timeout=60)
    assert len(fake_apiserver.find("GET", path)) == 3


def test_waits_stop_at_a_refusal(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(deployment(available=1))
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    fake_apiserver.respond("GET", path, Reply(403, status_body(403, 'deployments.apps "web" is forbidden')))
    with pytest.raises(KubeApiError, match="is forbidden"):
        fast_kube.wait_rollout("Deployment", NS, "web", timeout=60)
    assert len(fake_apiserver.find("GET", path)) == 1


def test_wait_rollout_rejects_other_kinds(fast_kube: Kube) -> None:
    with pytest.raises(KubeError, match="not Job"):
        fast_kube.wait_rollout("Job", NS, "x", timeout=1)


# ---- reachability ----------------------------------------------------------------------------------------


def test_an_unreachable_api_server_is_one_clear_error_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", context="kind-egress")
    with Kube(kubeconfig, "kind-egress") as kube:
        started = time.monotonic()
        with pytest.raises(KubeUnreachableError) as caught:
            kube.check_reachable()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "https://127.0.0.1:1" in message
    assert f"kubeconfig {kubeconfig}" in message
    assert "context 'kind-egress'" in message
    assert "Connection refused" in message
    assert "\n" not in message and "Traceback" not in message


def test_a_server_that_accepts_but_never_answers_is_unreachable_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        with Kube(kubeconfig) as kube:
            started = time.monotonic()
            with pytest.raises(KubeUnreachableError, match=f"{url} cannot be reached.*timed out"):
                kube.check_reachable()
    assert time.monotonic() - started < 8


def test_a_reachable_server_that_refuses_names_itself(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.respond("GET", "/version/", Reply(401, status_body(401, "Unauthorized")))
    with pytest.raises(KubeApiError, match=rf"{fake_apiserver.url} .*refused GET /version: .*HTTP 401") as caught:
        kube.check_reachable()
    assert not isinstance(caught.value, KubeUnreachableError)


# ---- pods and logs --------------------------------------------------------------------------------------


def test_pods_by_selector_leave_out_terminating_pods(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("b-client", {"app": "client"}, ready=False, containers=("app", "istio-proxy")))
    fake_apiserver.add_object(pod("a-client", {"app": "client"}, ip="10.244.0.9"))
    leaving = pod("0-client", {"app": "client"}, ip="10.244.0.3")  # still Ready while it shuts down
    leaving["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    fake_apiserver.add_object(leaving)
    fake_apiserver.add_object(pod("server", {"app": "server"}))

    pods = kube.pods(NS, "app=client")

    assert pods == [
        PodInfo(NS, "a-client", "10.244.0.9", "Running", True, ("app",), {"app": "client"}),
        PodInfo(NS, "b-client", "10.244.0.5", "Running", False, ("app", "istio-proxy"), {"app": "client"}),
    ]
    (listing,) = fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods")
    assert listing.query["labelSelector"] == ["app=client"]
    by_name = kube.pod(NS, "0-client")
    assert by_name is not None
    assert (by_name.terminating, by_name.ip, by_name.ready) == (True, "10.244.0.3", True)


def test_logs_of_every_pod_since_a_moment(fake_apiserver: FakeApiServer, make_kube: Callable[..., Kube]) -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    kube = make_kube(wall_clock=lambda: now)
    for name in ("egress-1", "egress-2"):
        fake_apiserver.add_object(pod(name, {"istio": "egressgateway"}, containers=("istio-proxy",)))
    fake_apiserver.add_object(pod("other", {"istio": "ingressgateway"}))
    fake_apiserver.set_pod_log(
        NS, "egress-1", '[2026-05-01T11:59:30Z] "GET / HTTP/1.1" 200 caf\u00e9\n', container="istio-proxy"
    )
    fake_apiserver.set_pod_log(NS, "egress-2", "", container="istio-proxy")

    texts = kube.logs(NS, "istio=egressgateway", "istio-proxy", since=now - timedelta(seconds=42.3))

    assert texts == {"egress-1": '[2026-05-01T11:59:30Z] "GET / HTTP/1.1" 200 caf\u00e9\n', "egress-2": ""}
    log_requests = [r for r in fake_apiserver.requests if r.path.endswith("/log")]
    assert sorted(r.path for r in log_requests) == [
        f"/api/v1/namespaces/{NS}/pods/egress-1/log",
        f"/api/v1/namespaces/{NS}/pods/egress-2/log",
    ]
    for request in log_requests:
        assert request.query["sinceSeconds"] == ["44"]  # ceil(42.3) + 1
        assert request.query["container"] == ["istio-proxy"]


def test_logs_error_names_the_pod(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("p1", {"app": "x"}))
    fake_apiserver.respond(
        "GET",
        f"/api/v1/namespaces/{NS}/pods/p1/log",
        Reply(400, status_body(400, 'container "app" in pod "p1" is waiting to start')),
    )
    with pytest.raises(KubeError, match=r"logs of pod egress-test/p1.*is waiting to start"):
        kube.logs(NS, "app=x", None, since=datetime.now(UTC))


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, 1), (0.2, 2), (1.0, 2), (59.01, 61), (-30.0, 1)],
)
def test_logs_since_seconds(elapsed: float, expected: int) -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert logs_since_seconds(now - timedelta(seconds=elapsed), now) == expected


def test_logs_since_seconds_accepts_naive_local_time() -> None:
    now = datetime.now(UTC)
    naive_local = (now - timedelta(seconds=10)).astimezone().replace(tzinfo=None)
    assert logs_since_seconds(naive_local, now) == 11
