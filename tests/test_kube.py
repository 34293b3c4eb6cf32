"""conformance.kube against a loopback fake API server: the HTTP and WebSocket requests it makes, and how
it reads the answers (exit codes, Status errors, waits)."""

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

from conformance.kube import (
    ExecResult,
    Kube,
    KubeError,
    ObjectRef,
    PodInfo,
    bypass_environment_proxy_for_loopback,
    logs_since_seconds,
    rollout_progress,
)
from tests.fake_apiserver import (
    FAKE_TOKEN,
    PROXY_VARIABLES,
    V4_CHANNEL_PROTOCOL,
    V5_CHANNEL_PROTOCOL,
    ExecOutcome,
    ExecScript,
    FakeApiServer,
    Reply,
    status_body,
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
    return make_kube(clock=clock.monotonic, sleep=clock.sleep, poll_interval=1.0, discovery_timeout=5.0)


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
        "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def deployment(
    name: str = "web",
    *,
    replicas: int = 2,
    generation: int = 2,
    observed: int = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
        },
    }


def crd(group: str = "example.com", kind: str = "Widget", plural: str = "widgets") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
            ],
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
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip

        def leaf(
            subject: x509.Name, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]
        ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
            key = _rsa_key()
            builder = (
                x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=True, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
            )  # fmt: skip
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
    assert refs == [ObjectRef("v1", "Namespace", NS)]
    assert result == ExecResult(stdout="over TLS", stderr="", exit_code=7)
    assert tls_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods/client/exec")


def test_kind_kubeconfig_with_a_certificate_from_another_ca_is_refused(
    tls_apiserver: FakeApiServer, kind_pki: KindStylePKI, tmp_path: Path
) -> None:
    other = KindStylePKI.generate()
    stranger = KindStylePKI(kind_pki.ca, kind_pki.server, kind_pki.server_key, other.client, other.client_key)
    kubeconfig = stranger.kubeconfig(tmp_path / "kubeconfig", tls_apiserver.url, "egress-conformance")
    with Kube(kubeconfig, "kind-egress-conformance") as kube, pytest.raises(KubeError, match="not reachable"):
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


# ---- apply ----------------------------------------------------------------------------------------------

SERVICE_ENTRY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {"name": "external-httpbin", "namespace": "egress-a"},
    "spec": {
        "hosts": ["httpbin.example"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "resolution": "DNS",
        "location": "MESH_EXTERNAL",
    },
}
AUTHORIZATION_POLICY = {
    "apiVersion": "security.istio.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "deny-all"},
    "spec": {},
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "client", "labels": {"app": "client"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "client"}},
        "template": {
            "metadata": {"labels": {"app": "client"}},
            "spec": {"containers": [{"name": "app", "image": "curlimages/curl"}]},
        },
    },
}


def test_apply_is_server_side_apply_with_strict_validation(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    refs = kube.apply([SERVICE_ENTRY, AUTHORIZATION_POLICY, DEPLOYMENT], default_namespace="egress-b")

    assert refs == [
        ObjectRef("networking.istio.io/v1", "ServiceEntry", "external-httpbin", "egress-a"),
        ObjectRef("security.istio.io/v1", "AuthorizationPolicy", "deny-all", "egress-b"),
        ObjectRef("apps/v1", "Deployment", "client", "egress-b"),
    ]
    patches = fake_apiserver.find("PATCH")
    assert [p.path for p in patches] == [
        "/apis/networking.istio.io/v1/namespaces/egress-a/serviceentries/external-httpbin",
        "/apis/security.istio.io/v1/namespaces/egress-b/authorizationpolicies/deny-all",
        "/apis/apps/v1/namespaces/egress-b/deployments/client",
    ]
    for patch, namespace in zip(patches, ["egress-a", "egress-b", "egress-b"], strict=True):
        assert patch.content_type == "application/apply-patch+yaml"
        # exactly once each: the query list is not shared between calls
        assert patch.query["fieldManager"] == ["egress-conformance"]
        assert patch.query["fieldValidation"] == ["Strict"]
        assert patch.query["force"] == ["true"]
        assert patch.body["metadata"]["namespace"] == namespace
    assert patches[0].body["spec"] == SERVICE_ENTRY["spec"]
    assert "namespace" not in AUTHORIZATION_POLICY["metadata"]  # the caller's document is left alone
    stored = fake_apiserver.object("apps/v1", "Deployment", "client", "egress-b")
    assert stored is not None and stored["spec"]["replicas"] == 1


def test_apply_uses_the_given_field_manager(fake_apiserver: FakeApiServer, make_kube: Callable[..., Kube]) -> None:
    make_kube(field_manager="someone-else").apply([SERVICE_ENTRY])
    assert fake_apiserver.find("PATCH")[0].query["fieldManager"] == ["someone-else"]


def test_apply_cluster_scoped_object_has_no_namespace(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    refs = kube.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "egress-x", "namespace": "y"}, "spec": {}}],
        default_namespace="ignored",
    )

    assert refs == [ObjectRef("v1", "Namespace", "egress-x", None)]
    (patch,) = fake_apiserver.find("PATCH")
    assert patch.path == "/api/v1/namespaces/egress-x"
    assert "namespace" not in patch.body["metadata"]


def test_apply_namespaced_object_without_any_namespace_raises(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    with pytest.raises(KubeError, match=r"AuthorizationPolicy deny-all.*namespaced"):
        kube.apply([AUTHORIZATION_POLICY])
    assert fake_apiserver.find("PATCH") == []


@pytest.mark.parametrize("status", [400, 422])
def test_apply_strict_rejection_shows_the_api_message(fake_apiserver: FakeApiServer, kube: Kube, status: int) -> None:
    message = (
        'ServiceEntry in version "v1" cannot be handled as a ServiceEntry: strict decoding error: '
        'unknown field "spec.hostz"'
    )
    path = "/apis/networking.istio.io/v1/namespaces/egress-a/serviceentries/external-httpbin"
    fake_apiserver.respond("PATCH", path, Reply(status, status_body(status, message, "BadRequest")))

    with pytest.raises(KubeError) as caught:
        kube.apply([SERVICE_ENTRY, DEPLOYMENT], default_namespace="egress-b")

    text = str(caught.value)
    assert "apply ServiceEntry egress-a/external-httpbin" in text
    assert 'unknown field "spec.hostz"' in text
    assert f"HTTP {status}" in text
    assert len(fake_apiserver.find("PATCH")) == 1  # stops at the first failure


def test_apply_document_without_name_raises(kube: Kube) -> None:
    with pytest.raises(KubeError, match=r"lacks metadata\.name"):
        kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}], default_namespace=NS)


def test_apply_crd_then_its_custom_resource_waits_for_established_and_discovery(
    fake_apiserver: FakeApiServer, fast_kube: Kube
) -> None:
    fake_apiserver.crd_gets_until_established = 2
    fake_apiserver.crd_discovery_lag = 1
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {}}

    refs = fast_kube.apply([crd(), widget], default_namespace=NS)

    assert refs[1] == ObjectRef("example.com/v1", "Widget", "w1", NS)
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
    crd_gets = fake_apiserver.find("GET", crd_path)
    assert len(crd_gets) == 3  # False, False, True
    widget_patch = fake_apiserver.find("PATCH", f"/apis/example.com/v1/namespaces/{NS}/widgets/w1")
    assert len(widget_patch) == 1
    order = fake_apiserver.requests
    assert order.index(widget_patch[0]) > order.index(crd_gets[-1])


def test_apply_unknown_kind_raises_after_the_discovery_deadline(
    fake_apiserver: FakeApiServer, fast_kube: Kube, clock: FakeClock
) -> None:
    started = clock.now
    with pytest.raises(KubeError, match=r"Gizmo \(example.com/v1\) is not served"):
        fast_kube.apply([{"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}], NS)
    assert clock.now - started >= 5.0
    assert len(fake_apiserver.find("GET", "/apis")) > 2  # discovery read again while waiting


def test_apply_manifest_renders_then_applies(fake_apiserver: FakeApiServer, kube: Kube, tmp_path: Path) -> None:
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

    refs = kube.apply_manifest(manifest, {"NS": "egress-c", "HOST": "api.example"})

    assert refs == [ObjectRef("v1", "ConfigMap", "settings", "egress-c")]
    (patch,) = fake_apiserver.find("PATCH")
    assert patch.body["data"] == {"host": "api.example"}


# ---- get / merge patch / delete ---------------------------------------------------------------------------


def test_get_returns_the_object_or_none(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("p1"))
    got = kube.get(ObjectRef("v1", "Pod", "p1", NS))
    assert got is not None and got["metadata"]["name"] == "p1"
    assert kube.get(ObjectRef("v1", "Pod", "missing", NS)) is None
    assert kube.get(ObjectRef("example.com/v1", "NotServed", "x", NS)) is None


def test_get_other_errors_raise(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.respond("GET", f"/api/v1/namespaces/{NS}/pods/p1", Reply(403, status_body(403, "forbidden!")))
    with pytest.raises(KubeError, match=r"HTTP 403.*forbidden!"):
        kube.get(ObjectRef("v1", "Pod", "p1", NS))


def test_merge_patch(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": NS},
            "data": {"a": "1", "b": "2"},
        }
    )

    updated = kube.merge_patch(ObjectRef("v1", "ConfigMap", "c", NS), {"data": {"b": None, "c": "3"}})

    assert updated["data"] == {"a": "1", "c": "3"}
    (patch,) = fake_apiserver.find("PATCH")
    assert patch.path == f"/api/v1/namespaces/{NS}/configmaps/c"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"data": {"b": None, "c": "3"}}


def test_delete_reverse_order_background_and_waits_until_gone(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    refs = fast_kube.apply([SERVICE_ENTRY, DEPLOYMENT], default_namespace="egress-b")
    deployment_path = "/apis/apps/v1/namespaces/egress-b/deployments/client"
    lingering = fake_apiserver.object("apps/v1", "Deployment", "client", "egress-b")
    # still there twice (finalizers, graceful termination), then gone
    fake_apiserver.respond("GET", deployment_path, Reply(200, lingering), Reply(200, lingering))

    fast_kube.delete(refs, timeout=60)

    deletes = fake_apiserver.find("DELETE")
    assert [d.path for d in deletes] == [
        deployment_path,
        "/apis/networking.istio.io/v1/namespaces/egress-a/serviceentries/external-httpbin",
    ]
    assert all(d.query["propagationPolicy"] == ["Background"] for d in deletes)
    assert len(fake_apiserver.find("GET", deployment_path)) == 3
    assert fake_apiserver.object("apps/v1", "Deployment", "client", "egress-b") is None


def test_delete_of_missing_objects_is_fine(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fast_kube.delete(
        [ObjectRef("v1", "ConfigMap", "gone", NS), ObjectRef("example.com/v1", "Widget", "w", NS)], timeout=10
    )
    assert len(fake_apiserver.find("DELETE")) == 1  # the Widget kind is not served: nothing to delete
    assert fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/configmaps/gone") == []


def test_delete_without_wait_does_not_poll(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    refs = fast_kube.apply([DEPLOYMENT], default_namespace=NS)
    fast_kube.delete(refs, timeout=10, wait=False)
    assert fake_apiserver.find("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/client") == []


def test_delete_wait_times_out_naming_the_object(
    fake_apiserver: FakeApiServer, fast_kube: Kube, clock: FakeClock
) -> None:
    refs = fast_kube.apply([DEPLOYMENT], default_namespace=NS)
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/client"
    stuck = fake_apiserver.object("apps/v1", "Deployment", "client", NS)
    fake_apiserver.respond("GET", path, *[Reply(200, stuck)] * 100)
    started = clock.now

    with pytest.raises(KubeError, match=r"delete deadline of 10s.*Deployment egress-test/client still exists"):
        fast_kube.delete(refs, timeout=10)
    assert 10 <= clock.now - started <= 11


# ---- waits ----------------------------------------------------------------------------------------------


def test_wait_rollout_converges(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(deployment())
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    fake_apiserver.respond("GET", path, Reply(200, deployment(observed=1)), Reply(200, deployment(available=1)))

    fast_kube.wait_rollout("Deployment", NS, "web", timeout=60)

    assert len(fake_apiserver.find("GET", path)) == 3


def test_wait_rollout_times_out_with_the_last_state(
    fake_apiserver: FakeApiServer, fast_kube: Kube, clock: FakeClock
) -> None:
    fake_apiserver.add_object(deployment(available=1))
    started = clock.now

    with pytest.raises(KubeError, match=r"rollout deadline of 30s.*1 of 2 updated replicas available"):
        fast_kube.wait_rollout("deployment", NS, "web", timeout=30)
    assert 30 <= clock.now - started <= 31


def test_wait_rollout_missing_object_keeps_waiting(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    with pytest.raises(KubeError, match="not found"):
        fast_kube.wait_rollout("DaemonSet", NS, "ztunnel", timeout=3)
    assert len(fake_apiserver.find("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/ztunnel")) >= 3


def test_wait_rollout_tolerates_transient_errors(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(deployment())
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    fake_apiserver.respond("GET", path, Reply(503, status_body(503, "etcd leader changed")))
    fast_kube.wait_rollout("Deployment", NS, "web", timeout=60)
    assert len(fake_apiserver.find("GET", path)) == 2


def test_wait_rollout_rejects_other_kinds(fast_kube: Kube) -> None:
    with pytest.raises(KubeError, match="not Job"):
        fast_kube.wait_rollout("Job", NS, "x", timeout=1)


@pytest.mark.parametrize(
    ("kind", "obj", "done"),
    [
        ("Deployment", deployment(), True),
        ("Deployment", deployment(observed=1), False),
        ("Deployment", deployment(updated=1), False),
        ("Deployment", deployment(total=3), False),  # an old replica still terminating
        ("Deployment", deployment(available=1), False),
        (
            "DaemonSet",
            {
                "metadata": {"name": "d", "generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                },
            },
            True,
        ),
        (
            "DaemonSet",
            {
                "metadata": {"name": "d", "generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 2,
                },
            },
            False,
        ),
        (
            "DaemonSet",
            {"metadata": {"name": "d", "generation": 2}, "spec": {}, "status": {"observedGeneration": 1}},
            False,
        ),
        (
            "StatefulSet",
            {
                "metadata": {"name": "s", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "readyReplicas": 2,
                    "updateRevision": "r1",
                    "currentRevision": "r1",
                },
            },
            True,
        ),
        (
            "StatefulSet",
            {
                "metadata": {"name": "s", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "readyReplicas": 2,
                    "updateRevision": "r2",
                    "currentRevision": "r1",
                },
            },
            False,
        ),
        (
            "StatefulSet",
            {"metadata": {"name": "s", "generation": 1}, "spec": {"replicas": 2}, "status": {"readyReplicas": 2}},
            False,
        ),  # observedGeneration 0
    ],
)
def test_rollout_progress_follows_kubectl(kind: str, obj: dict[str, Any], done: bool) -> None:
    assert rollout_progress(kind, obj).done is done


def test_rollout_progress_deadline_exceeded_fails_fast() -> None:
    stuck = deployment(available=0)
    stuck["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    with pytest.raises(KubeError, match="exceeded its progress deadline"):
        rollout_progress("Deployment", stuck)


def test_wait_crds_established(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.crd_gets_until_established = 3
    fake_apiserver.add_object(crd())
    fake_apiserver.add_object(crd(kind="Gadget", plural="gadgets"))

    fast_kube.wait_crds_established(["widgets.example.com", "gadgets.example.com"], timeout=60)

    for name in ("widgets.example.com", "gadgets.example.com"):
        gets = fake_apiserver.find("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        assert len(gets) == 4


def test_wait_crds_established_times_out(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.crd_gets_until_established = 1_000
    fake_apiserver.add_object(crd())
    with pytest.raises(KubeError, match=r"crd_established deadline of 5s.*widgets.example.com: .*Established=False"):
        fast_kube.wait_crds_established(["widgets.example.com", "missing.example.com"], timeout=5)


def gateway(programmed: str, observed_generation: int = 1, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "egress", "namespace": NS, "generation": generation},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
        "status": {
            "conditions": [
                {
                    "type": "Programmed",
                    "status": programmed,
                    "reason": "Programmed",
                    "observedGeneration": observed_generation,
                }
            ]
        },
    }


def test_wait_gateway_programmed(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(gateway("True"))
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/gateways/egress"
    fake_apiserver.respond(
        "GET", path, Reply(404, status_body(404, "not yet", "NotFound")), Reply(200, gateway("False"))
    )

    fast_kube.wait_gateway_programmed(NS, "egress", timeout=60)

    assert len(fake_apiserver.find("GET", path)) == 3
    assert fake_apiserver.find("GET", f"/apis/networking.istio.io/v1/namespaces/{NS}/gateways/egress") == []


def test_wait_gateway_programmed_ignores_a_stale_generation(fake_apiserver: FakeApiServer, fast_kube: Kube) -> None:
    fake_apiserver.add_object(gateway("True", observed_generation=1, generation=2))
    with pytest.raises(KubeError, match="gateway_programmed deadline of 4s"):
        fast_kube.wait_gateway_programmed(NS, "egress", timeout=4)


# ---- pods and logs --------------------------------------------------------------------------------------


def test_pods_by_selector(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("b-client", {"app": "client"}, ready=False, containers=("app", "istio-proxy")))
    fake_apiserver.add_object(pod("a-client", {"app": "client"}, ip="10.244.0.9"))
    fake_apiserver.add_object(pod("server", {"app": "server"}))

    pods = kube.pods(NS, "app=client")

    assert pods == [
        PodInfo(NS, "a-client", "10.244.0.9", "Running", True, ("app",), {"app": "client"}),
        PodInfo(NS, "b-client", "10.244.0.5", "Running", False, ("app", "istio-proxy"), {"app": "client"}),
    ]
    (listing,) = fake_apiserver.find("GET", f"/api/v1/namespaces/{NS}/pods")
    assert listing.query["labelSelector"] == ["app=client"]


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
