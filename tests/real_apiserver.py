"""A real Kubernetes control plane for the harness's own tests: etcd, kube-apiserver, kube-controller-manager.

The three binaries are built from the Go module in ``tests/kubernetes`` (go.mod/go.sum pin Kubernetes
and the etcd it uses) into a cache directory keyed by their versions, and reused from there. The first
build takes minutes (about 8 on 2 cores); later sessions start the control plane in seconds.

Each session starts them on loopback with free ports, its own PKI (a CA, a serving certificate, an admin
client certificate in ``system:masters``, a service-account key) and a client-certificate kubeconfig,
and stops them (their whole process groups) and removes every file at the end, also when setup fails.

The ``real_apiserver`` session fixture gives a ``RealApiServer``. Without Go the tests that use it skip,
saying so; with ``EGRESS_REQUIRE_REAL_APISERVER=1`` (CI) they fail instead, so a missing Go cannot turn
the real-server tier into silent skips. The cache directory is ``~/.cache/egress-conformance/kube-apiserver``
unless ``EGRESS_APISERVER_CACHE`` names another.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MODULE_DIR = Path(__file__).resolve().parent / "kubernetes"
CACHE_ENV = "EGRESS_APISERVER_CACHE"
REQUIRE_ENV = "EGRESS_REQUIRE_REAL_APISERVER"
DEFAULT_CACHE = Path("~/.cache/egress-conformance/kube-apiserver")

ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
APISERVER_PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
CONTROLLER_MANAGER_PACKAGE = "k8s.io/kubernetes/cmd/kube-controller-manager"
#: Packages whose version variables carry the Kubernetes release; unstamped, the server reports v0.0.0.
_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
#: Controllers the tests need: namespace deletion, default ServiceAccounts (a Pod apply needs one),
#: garbage collection of dependents, Deployments creating ReplicaSets and those creating Pods.
CONTROLLERS = (
    "namespace-controller",
    "serviceaccount-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
)

#: Whole-build bound: a cold build is about 8 minutes on 2 cores.
BUILD_TIMEOUT = 45 * 60.0
#: From start to /readyz ok (measured 3-4 s) and to the controller manager's first namespace sync.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_HEARTBEAT_SECONDS = 30.0
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


class RealApiServerError(RuntimeError):
    """Building or starting the control plane failed; the message carries the tool's own output."""


# ----------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str


def module_versions(module_dir: Path = MODULE_DIR) -> Versions:
    """The Kubernetes and etcd versions go.mod pins (the single source of them)."""
    text = (module_dir / "go.mod").read_text(encoding="utf-8")

    def version_of(module: str) -> str:
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
        if match is None:
            raise RealApiServerError(f"{module_dir / 'go.mod'} does not require {module}")
        return match.group(1)

    return Versions(kubernetes=version_of("k8s.io/kubernetes"), etcd=version_of(ETCD_PACKAGE))


def cache_root(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    return Path(environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def version_ldflags(kubernetes: str) -> str:
    major, minor = kubernetes.lstrip("v").split(".")[:2]
    stamps = []
    for package in _VERSION_PACKAGES:
        stamps += [f"-X {package}.gitVersion={kubernetes}", f"-X {package}.gitMajor={major}"]
        stamps += [f"-X {package}.gitMinor={minor}", f"-X {package}.gitTreeState=clean"]
    return " ".join(["-s", "-w", *stamps])


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


def _module_digest(module_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir / name).read_bytes())
    return digest.hexdigest()


def build_commands(go: str, versions: Versions, out_dir: Path) -> list[tuple[str, list[str]]]:
    ldflags = version_ldflags(versions.kubernetes)
    return [
        ("etcd", [go, "build", "-ldflags", "-s -w", "-o", str(out_dir / "etcd"), ETCD_PACKAGE]),
        (
            "kube-apiserver",
            [go, "build", "-ldflags", ldflags, "-o", str(out_dir / "kube-apiserver"), APISERVER_PACKAGE],
        ),
        (
            "kube-controller-manager",
            [
                go,
                "build",
                "-ldflags",
                ldflags,
                "-o",
                str(out_dir / "kube-controller-manager"),
                CONTROLLER_MANAGER_PACKAGE,
            ],
        ),
    ]


def ensure_binaries(
    go: str,
    *,
    module_dir: Path = MODULE_DIR,
    cache: Path | None = None,
    report: Callable[[str], None] = print,
) -> Binaries:
    """The cached binaries for go.mod's versions, built first when missing (or built from another go.sum).

    A lock file serialises concurrent sessions; the build goes to a scratch directory that is renamed
    into place, so an interrupted build never leaves half a cache entry.
    """
    versions = module_versions(module_dir)
    root = cache if cache is not None else cache_root()
    target = root / f"kubernetes-{versions.kubernetes}-etcd-{versions.etcd}"
    stamp = {"kubernetes": versions.kubernetes, "etcd": versions.etcd, "module": _module_digest(module_dir)}
    binaries = Binaries(target / "etcd", target / "kube-apiserver", target / "kube-controller-manager")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp_matches(target / "build.json", stamp):
            return binaries
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            _build(go, module_dir, versions, scratch, report)
            (scratch / "build.json").write_text(json.dumps(stamp, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return binaries


def _stamp_matches(path: Path, stamp: dict[str, str]) -> bool:
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(recorded == stamp and all((path.parent / n).is_file() for n in ("etcd", "kube-apiserver")))


def _build(go: str, module_dir: Path, versions: Versions, out_dir: Path, report: Callable[[str], None]) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=readonly"}
    started = time.monotonic()
    report(
        f"building etcd {versions.etcd}, kube-apiserver and kube-controller-manager {versions.kubernetes} "
        f"into {out_dir.parent} (first time only; about 8 minutes on 2 cores)"
    )
    for name, command in build_commands(go, versions, out_dir):
        step_started = time.monotonic()
        report(f"  go build {name} ...")
        _run_with_heartbeat(command, module_dir, env, name, report)
        report(f"  go build {name}: done in {time.monotonic() - step_started:.0f}s")
    report(f"built the control plane in {time.monotonic() - started:.0f}s")


def _run_with_heartbeat(
    command: list[str], cwd: Path, env: dict[str, str], name: str, report: Callable[[str], None]
) -> None:
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
        started = time.monotonic()
        try:
            while True:
                try:
                    process.wait(timeout=_HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > BUILD_TIMEOUT:
                        raise RealApiServerError(f"go build {name} did not finish within {BUILD_TIMEOUT:g}s") from None
                    report(f"  go build {name}: still compiling ({elapsed:.0f}s)")
        finally:
            if process.returncode is None:
                _kill_group(process)
        if process.returncode != 0:
            output.seek(0)
            tail = output.read().decode("utf-8", "replace")[-4000:]
            raise RealApiServerError(f"`{' '.join(command)}` in {cwd} exited with {process.returncode}:\n{tail}")


def _kill_group(process: subprocess.Popen[bytes], grace: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, SIGKILL it when it lingers; reaps the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Children that outlived the leader (none expected) go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------------- PKI


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ips or dns:
        names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.DNSName(name) for name in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public: Path


def write_pki(directory: Path) -> Pki:
    """A CA, the API server's serving certificate, an admin client certificate and a service-account key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _ec_key()
    ca_name = _name("egress-conformance-test-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    serving_key = _ec_key()
    serving = _certificate(
        _name("kube-apiserver"),
        serving_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        ips=("127.0.0.1", "10.96.0.1"),
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
    )
    admin_key = _ec_key()
    admin = _certificate(
        _name("egress-conformance-admin", "system:masters"),
        admin_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pki = Pki(
        ca=directory / "ca.crt",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        service_account_key=directory / "sa.key",
        service_account_public=directory / "sa.pub",
    )
    files = {
        pki.ca: _cert_pem(ca),
        pki.serving_cert: _cert_pem(serving),
        pki.serving_key: _key_pem(serving_key),
        pki.admin_cert: _cert_pem(admin),
        pki.admin_key: _key_pem(admin_key),
        pki.service_account_key: _key_pem(sa_key),
        pki.service_account_public: sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for path, data in files.items():
        path.write_bytes(data)
        path.chmod(0o600)
    return pki


def write_kubeconfig(path: Path, server: str, pki: Pki, context: str = "real-apiserver") -> Path:
    """A kubeconfig with the admin client certificate embedded, as kind writes one."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca)}}],
        "users": [
            {
                "name": context,
                "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


# ----------------------------------------------------------------------------------------------- start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook making the child get SIGKILL when the test process dies without stopping it (Linux
    PR_SET_PDEATHSIG). Looked up here, in the parent: the hook itself only makes the one system call."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    set_parent_death_signal, sigkill = 1, int(signal.SIGKILL)

    def hook() -> None:
        prctl(set_parent_death_signal, sigkill)

    return hook


_DIE_WITH_PARENT = _parent_death_signal()


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-limit:]
        except OSError:
            return "(no log)"


class RealApiServer:
    """etcd + kube-apiserver + kube-controller-manager on loopback; ``start()``, then ``stop()``."""

    def __init__(self, binaries: Binaries, workdir: Path | None = None, *, controller_manager: bool = True) -> None:
        """``controller_manager=False`` leaves out kube-controller-manager: namespaces then never finish
        terminating and no ServiceAccount appears, which checks that only apply and read do not need."""
        self.binaries = binaries
        self.controller_manager = controller_manager
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="egress-real-apiserver-"))
        self.processes: list[_Process] = []
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self._ssl: ssl.SSLContext | None = None
        self.pki: Pki | None = None

    def __enter__(self) -> RealApiServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        pki = self.pki = write_pki(self.workdir / "pki")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_until("etcd /health", deadline, lambda: self._etcd_healthy(etcd_url))
        self.url = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_public}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                # Webhooks and aggregated APIs reach their Service through its EndpointSlices, as on many
                # managed clusters (there is no kube-proxy here to route a ClusterIP); a Service without
                # endpoints then gives the real 500 "no endpoints available for service".
                "--enable-aggregator-routing=true",
            ],
        )
        write_kubeconfig(self.kubeconfig, self.url, pki)
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._ssl = context
        self._wait_until("kube-apiserver /readyz", deadline, lambda: self._get("/readyz") == (200, "ok"))
        if not self.controller_manager:
            return
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
            ],
        )

    def stop(self) -> None:
        """Kill every process group (newest first), reap the processes, remove the working directory.

        SIGKILL at once: everything they hold is thrown away, so a graceful shutdown (seconds for the API
        server) would only cost time.
        """
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=STOP_TIMEOUT)
        self.processes.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` as the admin, for checks of the server itself."""
        return self._get(path)

    def request(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """One request as the admin, bypassing the harness's client: sets up situations (another field
        manager, a status written by a "controller") and reads raw answers. Returns (status, JSON or text)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        request.add_header("Accept", "application/json")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl)
        )
        try:
            with opener.open(request, timeout=30) as response:
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, raw = int(exc.code), exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # -- internals

    def _spawn(self, name: str, command: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        # The control plane talks only to loopback and to Services it resolves itself: an HTTP(S)_PROXY of
        # the test machine must not carry its webhook calls.
        env = {key: value for key, value in os.environ.items() if key.lower() not in _PROXY_VARIABLES}
        with open(log, "wb") as output:
            popen = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_DIE_WITH_PARENT,
            )
        self.processes.append(_Process(name, popen, log))

    def _wait_until(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            for process in self.processes:
                if process.popen.poll() is not None:
                    raise RealApiServerError(
                        f"{process.name} exited with {process.popen.returncode} while waiting for {what}:\n"
                        f"{process.tail()}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}:\n{p.tail(1500)}" for p in self.processes)
                raise RealApiServerError(f"{what} not ready within {START_TIMEOUT:g}s\n{tails}")
            time.sleep(0.1)

    @staticmethod
    def _etcd_healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _get(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"{self.url}{path}")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl)
        )
        try:
            with opener.open(request, timeout=5) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")
        except OSError:
            return 0, ""


# --------------------------------------------------------------------------------------------- fixture


def _terminal(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines straight to the terminal, past pytest's output capture."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def report(line: str) -> None:
        context = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with context:
            print(f"[real-apiserver] {line}", file=sys.stderr, flush=True)

    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_apiserver: uses the real control plane (Go builds it once); -m 'not real_apiserver' leaves it out",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the fixture, so a quick run can leave the whole tier out."""
    for item in items:
        if "real_apiserver" in getattr(item, "fixturenames", ()):
            item.add_marker("real_apiserver")


@pytest.fixture(scope="session")
def real_apiserver(pytestconfig: pytest.Config) -> Iterator[RealApiServer]:
    """A real control plane for the session; skips without Go unless EGRESS_REQUIRE_REAL_APISERVER=1."""
    go = shutil.which("go")
    if go is None:
        reason = (
            "Go is not installed (go not on PATH): the real kube-apiserver tests need it to build the control plane"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires them to run", pytrace=False)
        pytest.skip(reason)
    report = _terminal(pytestconfig)
    binaries = ensure_binaries(go, report=report)
    with RealApiServer(binaries) as server:
        yield server


if __name__ == "__main__":  # `python tests/real_apiserver.py build`: warm the cache ahead of a test run
    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python tests/real_apiserver.py build")
    found = shutil.which("go")
    if found is None:
        raise SystemExit("go is not on PATH")
    print(ensure_binaries(found))
