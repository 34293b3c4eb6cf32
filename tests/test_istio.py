"""Istio install/uninstall, detection and the outboundTrafficPolicy switch, at their boundaries: a fake
``istioctl`` on PATH (argv recorded), a recording stand-in for ``Kube``, and a loopback HTTP server for
downloads. Also pins the install overlays and the vendored Gateway API bundle the harness relies on."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import version_model, versions
from conformance.core.timeouts import DEFAULT_TIMEOUTS
from conformance.istio import gateway_api
from conformance.istio.components import EGRESS_GATEWAY, IstioError
from conformance.istio.detection import InstalledIstio, detect_installed, version_from_image
from conformance.istio.install import OVERLAYS, IstioInstaller
from conformance.istio.istioctl import istioctl_client_version, resolve_istioctl
from conformance.istio.mesh_config import OutboundMode, outbound_traffic_policy
from conformance.kube.api import KubeError, ObjectRef
from conformance.platform import binaries
from conformance.settings.options import MeshMode
from conformance.settings.run_settings import Settings
from conformance.world.external import EXTERNAL_WORLD_LABEL
from tests.fake_apiserver import merge_patch
from tests.fakes.executables import FakeBin, FakeExecutable

SIDECAR_OVERLAY = MANIFESTS_DIR / "istio" / "sidecar.yaml"
AMBIENT_OVERLAY = MANIFESTS_DIR / "istio" / "ambient.yaml"
BUNDLE = MANIFESTS_DIR / "gateway-api" / "v1.5.1" / "standard-install.yaml"
CRD = "CustomResourceDefinition"
BUNDLE_VERSION = gateway_api.GATEWAY_API_BUNDLE_VERSION
MESH_REF = ObjectRef("v1", "ConfigMap", "istio", "istio-system")


# --- stand-ins -----------------------------------------------------------------------------------------


def ref_of(doc: Mapping[str, Any]) -> ObjectRef:
    meta = doc["metadata"]
    return ObjectRef(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace"))


class RecordingKube:
    """Implements the ``Kube`` methods the Istio modules call, over an in-memory set of objects."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self.objects: dict[ObjectRef, dict[str, Any]] = {ref_of(o): copy.deepcopy(dict(o)) for o in objects}
        self.calls: list[tuple[Any, ...]] = []
        self.fail_apply = False

    def named(self, verb: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == verb]

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls.append(("get", ref))
        found = self.objects.get(ref)
        return copy.deepcopy(found) if found is not None else None

    def apply(self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None) -> list[ObjectRef]:
        docs = list(docs)
        refs = [ref_of(doc) for doc in docs]
        self.calls.append(("apply", refs))
        if self.fail_apply:
            raise KubeError("apply refused")
        for ref, doc in zip(refs, docs, strict=True):
            self.objects[ref] = copy.deepcopy(dict(doc))
        return refs

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("merge_patch", ref, copy.deepcopy(dict(patch))))
        self.objects[ref] = merge_patch(self.objects[ref], patch)
        return copy.deepcopy(self.objects[ref])

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None:
        refs = list(refs)
        self.calls.append(("delete", refs))
        for ref in refs:
            self.objects.pop(ref, None)

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None:
        self.calls.append(("wait_rollout", kind, namespace, name))

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None:
        self.calls.append(("wait_crds_established", sorted(names)))


class Server:
    """Loopback HTTP server answering GET from a path -> bytes table, counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    running = Server()
    yield running
    running.close()


@pytest.fixture(scope="module")
def bundle_docs() -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(BUNDLE.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if doc]


def crds_of(docs: Iterable[Mapping[str, Any]], bundle_version: str) -> list[dict[str, Any]]:
    """The bundle's CRDs as the cluster would serve them, annotated with ``bundle_version``."""
    out = []
    for doc in docs:
        if doc["kind"] == CRD:
            crd = copy.deepcopy(dict(doc))
            crd["metadata"]["annotations"][gateway_api.GATEWAY_API_BUNDLE_VERSION] = bundle_version
            out.append(crd)
    return out


def installer(istioctl: Path, kube: RecordingKube, tmp_path: Path, context: str | None = "kind-ec") -> IstioInstaller:
    return IstioInstaller(
        istioctl=istioctl,
        kube=kube,
        kubeconfig=tmp_path / "kubeconfig",
        context=context,
        timeouts=DEFAULT_TIMEOUTS,
        cache_dir=tmp_path / "cache",
        gateway_api_version="v1.5.1",
    )


def cluster_flags(tmp_path: Path, context: str | None = "kind-ec") -> list[str]:
    flags = ["--kubeconfig", str(tmp_path / "kubeconfig")]
    return [*flags, "--context", context] if context else flags


# --- install / uninstall -------------------------------------------------------------------------------


def test_sidecar_install_argv_and_waits(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    kube = RecordingKube()
    installer(istioctl.path, kube, tmp_path).install(MeshMode.SIDECAR)

    assert istioctl.argvs() == [
        [
            "install",
            "--skip-confirmation",
            "-f",
            str(SIDECAR_OVERLAY),
            "--readiness-timeout",
            "300s",
            *cluster_flags(tmp_path),
        ],
    ]
    assert kube.named("wait_rollout") == [
        ("Deployment", "istio-system", "istiod"),
        ("Deployment", "istio-system", "istio-egressgateway"),
    ]
    assert kube.named("apply") == []  # no Gateway API for sidecars


def test_ambient_install_applies_gateway_api_then_installs_and_waits(
    fake_bin: FakeBin, tmp_path: Path, bundle_docs: list[dict[str, Any]]
) -> None:
    istioctl = fake_bin("istioctl")
    kube = RecordingKube()
    installer(istioctl.path, kube, tmp_path, context=None).install(MeshMode.AMBIENT)

    assert istioctl.argvs() == [
        [
            "install",
            "--skip-confirmation",
            "-f",
            str(AMBIENT_OVERLAY),
            "--readiness-timeout",
            "300s",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
        ],
    ]
    (applied,) = kube.named("apply")
    assert applied[0] == [ref_of(doc) for doc in bundle_docs]
    crd_names = sorted(doc["metadata"]["name"] for doc in bundle_docs if doc["kind"] == CRD)
    assert kube.named("wait_crds_established") == [(crd_names,)]
    assert {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"} <= set(crd_names)
    assert kube.named("wait_rollout") == [
        ("Deployment", "istio-system", "istiod"),
        ("DaemonSet", "istio-system", "ztunnel"),
        ("DaemonSet", "istio-system", "istio-cni-node"),
    ]


def test_gateway_api_goes_in_before_istioctl_runs(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    kube = RecordingKube()
    kube.fail_apply = True
    with pytest.raises(KubeError):
        installer(istioctl.path, kube, tmp_path).install(MeshMode.AMBIENT)
    assert istioctl.argvs() == []


def test_ambient_skips_gateway_api_when_the_cluster_has_a_newer_bundle(
    fake_bin: FakeBin, tmp_path: Path, bundle_docs: list[dict[str, Any]]
) -> None:
    istioctl = fake_bin("istioctl")
    kube = RecordingKube(crds_of(bundle_docs, "v1.6.0"))
    setup = installer(istioctl.path, kube, tmp_path)
    setup.install(MeshMode.AMBIENT)
    assert kube.named("apply") == []
    assert kube.named("wait_crds_established") == []

    setup.uninstall()
    assert kube.named("delete") == [([ObjectRef("v1", "Namespace", "istio-system")],)]


def test_same_bundle_version_counts_as_installed(
    fake_bin: FakeBin, tmp_path: Path, bundle_docs: list[dict[str, Any]]
) -> None:
    kube = RecordingKube(crds_of(bundle_docs, "v1.5.1"))
    installer(fake_bin("istioctl").path, kube, tmp_path).install(MeshMode.AMBIENT)
    assert kube.named("apply") == []


def test_older_crds_are_upgraded_newer_ones_never_downgraded_and_preexisting_ones_kept(
    fake_bin: FakeBin, tmp_path: Path, bundle_docs: list[dict[str, Any]]
) -> None:
    existing = crds_of(bundle_docs, "v1.4.0")
    newer = next(crd for crd in existing if crd["metadata"]["name"] == "gateways.gateway.networking.k8s.io")
    newer["metadata"]["annotations"][gateway_api.GATEWAY_API_BUNDLE_VERSION] = "v1.6.0"
    kube = RecordingKube(existing)
    setup = installer(fake_bin("istioctl").path, kube, tmp_path)
    setup.install(MeshMode.AMBIENT)

    (applied,) = kube.named("apply")
    applied_names = {ref.name for ref in applied[0]}
    assert "gateways.gateway.networking.k8s.io" not in applied_names
    assert "httproutes.gateway.networking.k8s.io" in applied_names
    assert "safe-upgrades.gateway.networking.k8s.io" in applied_names  # the absent admission policy

    kube.calls.clear()
    setup.uninstall()
    deleted = [ref for (refs,) in kube.named("delete") for ref in refs]
    assert ObjectRef("v1", "Namespace", "istio-system") in deleted
    assert not any(ref.kind == CRD for ref in deleted)  # they were there before this run
    assert {ref.kind for ref in deleted} >= {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def test_uninstall_argv_and_removal_of_what_the_install_created(
    fake_bin: FakeBin, tmp_path: Path, bundle_docs: list[dict[str, Any]]
) -> None:
    istioctl = fake_bin("istioctl")
    kube = RecordingKube()
    setup = installer(istioctl.path, kube, tmp_path)
    setup.install(MeshMode.AMBIENT)
    istioctl.reset_calls()
    kube.calls.clear()

    setup.uninstall()
    assert istioctl.argvs() == [["uninstall", "--purge", "--skip-confirmation", *cluster_flags(tmp_path)]]
    assert kube.named("delete") == [
        ([ObjectRef("v1", "Namespace", "istio-system")],),
        ([ref_of(doc) for doc in bundle_docs],),
    ]
    kube.calls.clear()
    setup.uninstall()  # nothing of the Gateway API is left to remove
    assert kube.named("delete") == [([ObjectRef("v1", "Namespace", "istio-system")],)]


def test_failed_install_reports_istioctl_output_and_waits_for_nothing(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    istioctl.on("install", exit_code=1, stderr="Error: failed to install manifests: boom\n")
    kube = RecordingKube()
    with pytest.raises(IstioError, match="boom") as failure:
        installer(istioctl.path, kube, tmp_path).install(MeshMode.SIDECAR)
    assert "exited with 1" in str(failure.value)
    assert kube.named("wait_rollout") == []


def test_uninstall_still_deletes_the_namespace_when_istioctl_fails(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    istioctl.on("uninstall", exit_code=1, stderr="Error: cannot reach the cluster\n")
    kube = RecordingKube()
    with pytest.raises(IstioError, match="cannot reach the cluster"):
        installer(istioctl.path, kube, tmp_path).uninstall()
    assert kube.named("delete") == [([ObjectRef("v1", "Namespace", "istio-system")],)]


def test_a_hanging_istioctl_is_bounded(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    istioctl.on("install", delay=30)
    setup = installer(istioctl.path, RecordingKube(), tmp_path)
    setup.timeouts = DEFAULT_TIMEOUTS.scaled(0.2 / DEFAULT_TIMEOUTS.istio_install)
    with pytest.raises(IstioError, match="deadline istio_install"):
        setup.install(MeshMode.SIDECAR)


# --- resolving istioctl --------------------------------------------------------------------------------


def version_json(version: str) -> str:
    return (
        json.dumps(
            {
                "clientVersion": {
                    "version": version,
                    "revision": "0" * 40,
                    "golang_version": "go1.25",
                    "status": "Clean",
                    "tag": version,
                }
            },
            indent=2,
        )
        + "\n"
    )


def fake_istioctl(fake_bin: FakeBin, version: str) -> FakeExecutable:
    istioctl = fake_bin("istioctl")
    istioctl.on("version", "--remote=false", "-o", "json", stdout=version_json(version))
    return istioctl


@dataclass(frozen=True)
class LoopbackRelease(version_model.IstioRelease):
    base: str = ""

    def archive_url(self, platform: str) -> str:
        return f"{self.base}/{self.archive_name(platform)}"


def serve_istioctl_release(server: Server, monkeypatch: pytest.MonkeyPatch, executable: bytes) -> None:
    release = LoopbackRelease("1.30.3", gateway_api="v1.5.1", base=server.base)
    monkeypatch.setattr(versions, "istio_release", lambda version: release)
    archive_name = release.archive_name(binaries.current_platform("istio"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo("istioctl")
        member.size = len(executable)
        member.mode = 0o755
        tar.addfile(member, io.BytesIO(executable))
    archive = buffer.getvalue()
    server.files[f"/{archive_name}"] = archive
    server.files[f"/{archive_name}.sha256"] = f"{hashlib.sha256(archive).hexdigest()} {archive_name}\n".encode()


def test_istioctl_on_path_with_the_wanted_version_is_used(fake_bin: FakeBin, tmp_path: Path, server: Server) -> None:
    fake_bin.isolate_path()
    istioctl = fake_istioctl(fake_bin, "1.30.3")
    found = resolve_istioctl(Settings(istio_version="1.30.3", cache_dir=tmp_path / "cache"))
    assert found == istioctl.path
    assert istioctl.argvs() == [["version", "--remote=false", "-o", "json"]]
    assert server.requests == []


def test_istioctl_on_path_with_another_version_falls_back_to_the_pinned_download(
    fake_bin: FakeBin, tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin.isolate_path()
    fake_istioctl(fake_bin, "1.29.6")
    serve_istioctl_release(server, monkeypatch, b"#!/bin/sh\necho downloaded istioctl\n")
    found = resolve_istioctl(Settings(istio_version="1.30.3", cache_dir=tmp_path / "cache"))
    assert found == tmp_path / "cache" / "istioctl" / "1.30.3" / "istioctl"
    assert found.read_bytes() == b"#!/bin/sh\necho downloaded istioctl\n"
    assert len(server.requests) == 2  # the archive and its published .sha256


def test_explicit_istioctl_is_used_as_is(fake_bin: FakeBin, tmp_path: Path, server: Server) -> None:
    istioctl = fake_istioctl(fake_bin, "1.29.6")
    settings = Settings(istio_version="1.30.3", istioctl_bin=istioctl.path, cache_dir=tmp_path / "cache")
    assert resolve_istioctl(settings) == istioctl.path
    assert server.requests == []


def test_unreadable_version_output_means_no_version(fake_bin: FakeBin) -> None:
    istioctl = fake_bin("istioctl")
    istioctl.on("version", stdout="1.30.3\n")  # not JSON
    assert istioctl_client_version(istioctl.path) is None


# --- Gateway API bundle --------------------------------------------------------------------------------


def test_vendored_bundle_is_the_standard_channel_of_v1_5_1(bundle_docs: list[dict[str, Any]]) -> None:
    crds = [doc for doc in bundle_docs if doc["kind"] == CRD]
    for crd in crds:
        annotations = crd["metadata"]["annotations"]
        assert annotations[gateway_api.GATEWAY_API_BUNDLE_VERSION] == "v1.5.1", crd["metadata"]["name"]
        assert annotations[gateway_api.GATEWAY_API_CHANNEL] == "standard", crd["metadata"]["name"]
    group = ".gateway.networking.k8s.io"
    assert {crd["metadata"]["name"].removesuffix(group) for crd in crds} == {
        "backendtlspolicies",
        "gatewayclasses",
        "gateways",
        "grpcroutes",
        "httproutes",
        "listenersets",
        "referencegrants",
        "tlsroutes",
    }
    assert [doc["kind"] for doc in bundle_docs if doc["kind"] != CRD] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert BUNDLE.read_text(encoding="utf-8").startswith("# Copyright The Kubernetes Authors.\n")
    gateway_api.check_gateway_api_bundle(bundle_docs, "v1.5.1", str(BUNDLE))


def test_istio_release_bundle_is_vendored() -> None:
    wanted = versions.istio_release(versions.DEFAULT_ISTIO_VERSION).gateway_api
    assert gateway_api.vendored_gateway_api_bundle(wanted) == BUNDLE


@pytest.mark.parametrize(
    "found, required, at_least",
    [
        ("v1.5.1", "v1.5.1", True),
        ("v1.6.0", "v1.5.1", True),
        ("v1.10.0", "v1.5.1", True),
        ("v1.5.0", "v1.5.1", False),
        ("v1.5.1-rc.1", "v1.5.1", False),
        ("v1.5.0-dev", "v1.5.0", False),
        (None, "v1.5.1", False),
        ("garbage", "v1.5.1", False),
    ],
)
def test_bundle_version_order(found: str | None, required: str, at_least: bool) -> None:
    assert gateway_api.bundle_version_at_least(found, required) is at_least


def small_bundle(version: str, channel: str = "standard") -> bytes:
    docs = [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": CRD,
            "metadata": {
                "name": f"{plural}.gateway.networking.k8s.io",
                "annotations": {BUNDLE_VERSION: version, gateway_api.GATEWAY_API_CHANNEL: channel},
            },
            "spec": {"group": "gateway.networking.k8s.io"},
        }
        for plural in ("gateways", "httproutes")
    ]
    return yaml.safe_dump_all(docs).encode()


def test_unvendored_bundle_is_downloaded_checked_and_cached(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_api, "GATEWAY_API_RELEASES_URL", server.base)
    server.files["/v9.9.9/standard-install.yaml"] = small_bundle("v9.9.9")
    docs = gateway_api.load_gateway_api_bundle("v9.9.9", tmp_path)
    assert [doc["metadata"]["name"] for doc in docs] == [
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
    ]
    assert (tmp_path / "gateway-api" / "v9.9.9" / "standard-install.yaml").is_file()
    gateway_api.load_gateway_api_bundle("v9.9.9", tmp_path)
    assert server.requests == ["/v9.9.9/standard-install.yaml"]  # the second load used the cache


@pytest.mark.parametrize("served", [small_bundle("v9.9.8"), small_bundle("v9.9.9", channel="experimental")])
def test_downloaded_bundle_of_another_version_or_channel_is_refused(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch, served: bytes
) -> None:
    monkeypatch.setattr(gateway_api, "GATEWAY_API_RELEASES_URL", server.base)
    server.files["/v9.9.9/standard-install.yaml"] = served
    with pytest.raises(IstioError, match="refusing the bundle"):
        gateway_api.load_gateway_api_bundle("v9.9.9", tmp_path)
    assert not (tmp_path / "gateway-api" / "v9.9.9").exists() or not any(
        (tmp_path / "gateway-api" / "v9.9.9").iterdir()
    )


def test_bundle_download_over_plain_http_to_a_remote_host_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_api, "GATEWAY_API_RELEASES_URL", "http://example.com/releases")
    with pytest.raises(IstioError, match="only https"):
        gateway_api.load_gateway_api_bundle("v9.9.9", tmp_path)


# --- outboundTrafficPolicy -----------------------------------------------------------------------------

MESH_TEXT = """\
# written by istioctl
accessLogFile: /dev/stdout
accessLogEncoding: JSON
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
discoverySelectors:
- matchExpressions:
  - {key: egress-conformance/external-world, operator: DoesNotExist}
"""


def mesh_configmap(text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": text, "meshNetworks": "networks: {}"},
    }


def patched_mesh(kube: RecordingKube, index: int) -> dict[str, Any]:
    ref, patch = kube.named("merge_patch")[index]
    assert ref == MESH_REF
    assert set(patch) == {"data"} and set(patch["data"]) == {"mesh"}
    loaded = yaml.safe_load(patch["data"]["mesh"])
    assert isinstance(loaded, dict)
    return loaded


def test_registry_only_is_patched_in_and_the_original_text_restored() -> None:
    kube = RecordingKube([mesh_configmap(MESH_TEXT)])
    with outbound_traffic_policy(kube, OutboundMode.REGISTRY_ONLY):
        during = patched_mesh(kube, 0)
        assert during["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
        assert during["accessLogEncoding"] == "JSON"  # the rest of the mesh config is kept
        assert during["discoverySelectors"] == yaml.safe_load(MESH_TEXT)["discoverySelectors"]
        assert kube.objects[MESH_REF]["data"]["mesh"] != MESH_TEXT
    assert len(kube.named("merge_patch")) == 2
    assert kube.named("merge_patch")[1] == (MESH_REF, {"data": {"mesh": MESH_TEXT}})
    assert kube.objects[MESH_REF]["data"] == {"mesh": MESH_TEXT, "meshNetworks": "networks: {}"}


def test_original_text_is_restored_when_the_body_raises() -> None:
    kube = RecordingKube([mesh_configmap(MESH_TEXT)])
    with pytest.raises(RuntimeError, match="check failed"), outbound_traffic_policy(kube, OutboundMode.REGISTRY_ONLY):
        raise RuntimeError("check failed")
    assert kube.objects[MESH_REF]["data"]["mesh"] == MESH_TEXT


def test_existing_policy_keeps_its_other_fields_and_is_restored() -> None:
    text = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n  egressProxy: {host: proxy.example, port: {number: 3128}}\n"
    kube = RecordingKube([mesh_configmap(text)])
    with outbound_traffic_policy(kube, OutboundMode.ALLOW_ANY):
        policy = patched_mesh(kube, 0)["outboundTrafficPolicy"]
        assert policy == {"mode": "ALLOW_ANY", "egressProxy": {"host": "proxy.example", "port": {"number": 3128}}}
    assert kube.objects[MESH_REF]["data"]["mesh"] == text


def test_same_mode_is_still_restored_exactly() -> None:
    text = "outboundTrafficPolicy: {mode: REGISTRY_ONLY}   # odd but valid formatting\n"
    kube = RecordingKube([mesh_configmap(text)])
    with outbound_traffic_policy(kube, OutboundMode.REGISTRY_ONLY):
        assert patched_mesh(kube, 0)["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert kube.objects[MESH_REF]["data"]["mesh"] == text


def test_empty_mesh_config_gets_a_policy_and_is_restored_empty() -> None:
    kube = RecordingKube([mesh_configmap("")])
    with outbound_traffic_policy(kube, OutboundMode.REGISTRY_ONLY):
        assert patched_mesh(kube, 0) == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    assert kube.objects[MESH_REF]["data"]["mesh"] == ""


def test_missing_mesh_configmap_is_a_clear_error() -> None:
    kube = RecordingKube()
    with (
        pytest.raises(IstioError, match="istio-system/istio not found"),
        outbound_traffic_policy(kube, OutboundMode.REGISTRY_ONLY),
    ):
        pass
    assert kube.named("merge_patch") == []


# --- detecting an existing installation ----------------------------------------------------------------


def deployment(name: str, image: str = "docker.io/istio/proxyv2:1.30.3") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "istio-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}},
    }


def daemon_set(name: str, namespace: str = "istio-system") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace}}


@pytest.mark.parametrize(
    "image, version",
    [
        ("docker.io/istio/pilot:1.30.3", "1.30.3"),
        ("docker.io/istio/pilot:1.30.3-distroless", "1.30.3"),
        ("registry.local:5000/istio/pilot:1.31.1-debug", "1.31.1"),
        ("docker.io/istio/pilot:1.30.3@sha256:" + "a" * 64, "1.30.3"),
        ("gcr.io/istio-testing/pilot:1.31.0-rc.0-distroless", "1.31.0-rc.0"),
    ],
)
def test_version_from_istiod_image(image: str, version: str) -> None:
    assert version_from_image(image) == version


@pytest.mark.parametrize("image", ["docker.io/istio/pilot", "docker.io/istio/pilot:latest", "pilot@sha256:" + "a" * 64])
def test_istiod_image_without_a_version_is_refused(image: str) -> None:
    with pytest.raises(IstioError, match="version"):
        version_from_image(image)


def test_sidecar_installation_with_egress_gateway() -> None:
    kube = RecordingKube([deployment("istiod", "docker.io/istio/pilot:1.30.3"), deployment("istio-egressgateway")])
    found = detect_installed(kube)
    assert found == InstalledIstio("1.30.3", frozenset({MeshMode.SIDECAR}), egress_gateway=True)


def test_ambient_is_detected_by_ztunnel_and_the_cni_node_agent() -> None:
    kube = RecordingKube(
        [
            deployment("istiod", "docker.io/istio/pilot:1.30.3-distroless"),
            daemon_set("ztunnel"),
            daemon_set("istio-cni-node", namespace="kube-system"),
        ]
    )
    found = detect_installed(kube)
    assert found == InstalledIstio("1.30.3", frozenset({MeshMode.SIDECAR, MeshMode.AMBIENT}), egress_gateway=False)


def test_ztunnel_without_cni_is_not_ambient() -> None:
    kube = RecordingKube([deployment("istiod", "docker.io/istio/pilot:1.30.3"), daemon_set("ztunnel")])
    assert detect_installed(kube).modes == frozenset({MeshMode.SIDECAR})


def test_missing_istiod_is_a_clear_error() -> None:
    kube = RecordingKube([daemon_set("ztunnel")])
    with pytest.raises(IstioError, match="no Deployment istio-system/istiod"):
        detect_installed(kube)


# --- the overlays the harness relies on ----------------------------------------------------------------


def overlay(path: Path) -> dict[str, Any]:
    (doc,) = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert doc["apiVersion"] == "install.istio.io/v1alpha1" and doc["kind"] == "IstioOperator"
    return dict(doc["spec"])


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


@pytest.mark.parametrize("path", [SIDECAR_OVERLAY, AMBIENT_OVERLAY], ids=["sidecar", "ambient"])
def test_overlay_mesh_config(path: Path) -> None:
    mesh = overlay(path)["meshConfig"]
    assert mesh["accessLogFile"] == "/dev/stdout"
    assert mesh["accessLogEncoding"] == "JSON"
    selectors = mesh["discoverySelectors"]

    def discovered(labels: Mapping[str, str]) -> bool:  # selectors are OR-ed
        return any(selects(selector, labels) for selector in selectors)

    assert not discovered({EXTERNAL_WORLD_LABEL: "true", "kubernetes.io/metadata.name": "external"})
    assert discovered({"kubernetes.io/metadata.name": "istio-system"})
    assert discovered({"kubernetes.io/metadata.name": "mytest", "istio-injection": "enabled"})
    assert discovered({"istio.io/dataplane-mode": "ambient"})


def test_ambient_overlay_uses_the_ambient_profile_without_gateways() -> None:
    spec = overlay(AMBIENT_OVERLAY)
    assert spec["profile"] == "ambient"
    assert "egressGateways" not in spec.get("components", {})


def test_sidecar_overlay_egress_gateway() -> None:
    spec = overlay(SIDECAR_OVERLAY)
    assert spec["profile"] == "default"
    components = spec["components"]
    assert components["ingressGateways"] == [{"name": "istio-ingressgateway", "enabled": False}]
    (gateway,) = components["egressGateways"]
    assert gateway["name"] == EGRESS_GATEWAY == "istio-egressgateway"
    assert gateway["enabled"] is True
    ports = {p["port"]: (p["targetPort"], p["name"], p["protocol"]) for p in gateway["k8s"]["service"]["ports"]}
    assert ports == {
        80: (8080, "http2", "TCP"),
        443: (8443, "https", "TCP"),
        444: (8444, "https-444", "TCP"),
    }


def test_overlay_per_mode() -> None:
    assert OVERLAYS == {MeshMode.SIDECAR: SIDECAR_OVERLAY, MeshMode.AMBIENT: AMBIENT_OVERLAY}
    assert all(path.is_file() for path in OVERLAYS.values())


def test_uninstall_keeps_an_istio_system_namespace_that_was_there_before(fake_bin: FakeBin, tmp_path: Path) -> None:
    istioctl = fake_bin("istioctl")
    # A user's own istio-system (say, holding a `cacerts` Secret) with no control plane in it.
    kube = RecordingKube([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}])
    setup = installer(istioctl.path, kube, tmp_path)
    setup.install(MeshMode.SIDECAR)
    kube.calls.clear()
    setup.uninstall()
    assert istioctl.argvs()[-1][:2] == ["uninstall", "--purge"]
    assert kube.named("delete") == []
