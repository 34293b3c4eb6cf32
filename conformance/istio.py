"""Istio for the run: the istioctl binary, install/uninstall per data-plane mode, detection of an
existing installation, and the mesh-wide ``outboundTrafficPolicy`` switch.

istioctl is driven as a process (flags as defined in istio/istio: ``install`` in operator/cmd/mesh
install.go, ``uninstall --purge``, the global ``--kubeconfig``/``--context`` of istioctl/pkg/cli
option.go). Everything else goes through ``Kube``.

Ambient mode needs the Gateway API CRDs (waypoints are Gateway API Gateways). The bundle is the one the
Istio release was built against; it is applied unless the cluster already serves every CRD of it at
that bundle version or newer, and removed at uninstall only if this run created it.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from conformance import MANIFESTS_DIR, binaries, progress, versions
from conformance.kube import Kube, KubeError, ObjectRef
from conformance.processes import is_safe_download_url, output_tail, run_bounded, run_tool
from conformance.settings import MeshMode, Settings
from conformance.timeouts import Timeouts

ISTIO_NAMESPACE = "istio-system"
ISTIO_NAMESPACE_REF = ObjectRef("v1", "Namespace", ISTIO_NAMESPACE)
ISTIOD = "istiod"
EGRESS_GATEWAY = "istio-egressgateway"
ZTUNNEL = "ztunnel"
ISTIO_CNI = "istio-cni-node"
#: The mesh config lives in this ConfigMap, key ``mesh`` (default revision; the istio component of Istio's
#: integration-test framework, UpdateMeshConfig/PatchMeshConfig, rewrites the same key).
MESH_CONFIGMAP = "istio"
MESH_CONFIGMAP_KEY = "mesh"
#: Namespaces carrying this label are invisible to istiod (meshConfig.discoverySelectors in the overlays).
EXTERNAL_WORLD_LABEL = "egress-conformance/external-world"

OVERLAYS: Mapping[MeshMode, Path] = {
    MeshMode.SIDECAR: MANIFESTS_DIR / "istio" / "sidecar.yaml",
    MeshMode.AMBIENT: MANIFESTS_DIR / "istio" / "ambient.yaml",
}

GATEWAY_API_BUNDLE_VERSION = "gateway.networking.k8s.io/bundle-version"
GATEWAY_API_CHANNEL = "gateway.networking.k8s.io/channel"
GATEWAY_API_RELEASES_URL = "https://github.com/kubernetes-sigs/gateway-api/releases/download"
GATEWAY_API_DIR = MANIFESTS_DIR / "gateway-api"

#: Bound of one `istioctl version` probe (a local command; it never talks to the cluster).
PROBE_SECONDS = 30.0

_CRD_API_VERSION = "apiextensions.k8s.io/v1"
_BUNDLE_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")
_IMAGE_VARIANT = re.compile(r"-(distroless|debug)$")
_ISTIO_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$")
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class IstioError(RuntimeError):
    """istioctl failed, Istio is not where it should be, or a download was refused; the message says which."""


class OutboundMode(enum.StrEnum):
    """meshConfig.outboundTrafficPolicy.mode values the scenarios switch between."""

    ALLOW_ANY = "ALLOW_ANY"
    REGISTRY_ONLY = "REGISTRY_ONLY"


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    DAEMON_SET = "DaemonSet"


@dataclass(frozen=True)
class Workload:
    """An Istio component whose rollout the install waits for."""

    kind: WorkloadKind
    name: str
    namespace: str = ISTIO_NAMESPACE

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef("apps/v1", self.kind.value, self.name, self.namespace)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.namespace}/{self.name}"


#: What must be rolled out before a mode's scenarios can run.
ROLLOUTS: Mapping[MeshMode, tuple[Workload, ...]] = {
    MeshMode.SIDECAR: (
        Workload(WorkloadKind.DEPLOYMENT, ISTIOD),
        Workload(WorkloadKind.DEPLOYMENT, EGRESS_GATEWAY),
    ),
    MeshMode.AMBIENT: (
        Workload(WorkloadKind.DEPLOYMENT, ISTIOD),
        Workload(WorkloadKind.DAEMON_SET, ZTUNNEL),
        Workload(WorkloadKind.DAEMON_SET, ISTIO_CNI),
    ),
}


# --- istioctl ------------------------------------------------------------------------------------------


def istioctl_download_spec(version: str) -> binaries.DownloadSpec:
    """The istioctl release archive for ``version`` on this machine (raises BinaryError if unsupported)."""
    release = versions.istio_release(version)
    platform = binaries.current_platform("istio")
    return binaries.DownloadSpec(
        name="istioctl",
        version=release.version,
        url=release.archive_url(platform),
        sha256=release.sha256.get(platform),
        checksum_url=release.checksum_url(platform),
        archive_member="istioctl",
    )


def istioctl_client_version(istioctl: Path) -> str | None:
    """The client version ``istioctl version --remote=false -o json`` reports, or None (said why).

    The JSON is ``{"clientVersion": {"version": "1.30.3", ...}}`` (pkg/version/cobra.go).
    """
    command = [str(istioctl), "version", "--remote=false", "-o", "json"]
    try:
        result = run_bounded(command, PROBE_SECONDS)
    except (subprocess.TimeoutExpired, OSError) as exc:
        progress.info(f"`{shlex.join(command)}` failed ({exc})")
        return None
    version: object = None
    if result.returncode == 0:
        with contextlib.suppress(ValueError, AttributeError):
            version = json.loads(result.stdout).get("clientVersion", {}).get("version")
    if not isinstance(version, str) or not version:
        progress.info(f"`{shlex.join(command)}` gave no client version: {output_tail(result.stdout + result.stderr)}")
        return None
    return version


def resolve_istioctl(settings: Settings) -> Path:
    """--istioctl-bin -> istioctl on PATH if its client version is --istio-version -> pinned download."""
    wanted = settings.istio_version

    def same_version(path: Path) -> bool:
        found = istioctl_client_version(path)
        if found != wanted:
            progress.info(f"{path} is istioctl {found or '(unknown version)'}, not {wanted}")
        return found == wanted

    if settings.istioctl_bin is not None:
        found = istioctl_client_version(settings.istioctl_bin)
        if found is not None and found != wanted:
            progress.info(
                f"--istioctl-bin {settings.istioctl_bin} is istioctl {found}; it installs Istio {found}, "
                f"not the --istio-version {wanted}"
            )
        return settings.istioctl_bin
    return binaries.resolve_pinned_or_path(
        "istioctl", lambda: istioctl_download_spec(wanted), settings.cache_dir, same_version
    )


# --- Gateway API CRDs ----------------------------------------------------------------------------------


def gateway_api_bundle_url(version: str) -> str:
    return f"{GATEWAY_API_RELEASES_URL}/{version}/standard-install.yaml"


def vendored_gateway_api_bundle(version: str) -> Path | None:
    path = GATEWAY_API_DIR / version / "standard-install.yaml"
    return path if path.is_file() else None


def bundle_version_key(text: str | None) -> tuple[int, int, int, int] | None:
    """Sortable key of ``v1.5.1`` / ``v1.5.0-rc.1`` (a pre-release sorts before its release); None if
    ``text`` is no such version."""
    match = _BUNDLE_VERSION.match(text or "")
    if match is None:
        return None
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    return major, minor, patch, 0 if match.group(4) else 1


def bundle_version_at_least(found: str | None, required: str) -> bool:
    found_key, required_key = bundle_version_key(found), bundle_version_key(required)
    if required_key is None:
        raise ValueError(f"{required!r} is not a Gateway API release version such as v1.5.1")
    return found_key is not None and found_key >= required_key


def check_gateway_api_bundle(docs: Sequence[Mapping[str, Any]], version: str, source: str) -> None:
    """Refuse a bundle unless it holds CRDs and every one is the standard channel of ``version``."""
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise IstioError(f"{source}: no CustomResourceDefinition in the Gateway API bundle")
    for crd in crds:
        annotations = _annotations(crd)
        name = _name(crd)
        if annotations.get(GATEWAY_API_BUNDLE_VERSION) != version:
            raise IstioError(
                f"{source}: CRD {name} has {GATEWAY_API_BUNDLE_VERSION}="
                f"{annotations.get(GATEWAY_API_BUNDLE_VERSION)!r}, not {version!r}; refusing the bundle"
            )
        if annotations.get(GATEWAY_API_CHANNEL) != "standard":
            raise IstioError(
                f"{source}: CRD {name} has {GATEWAY_API_CHANNEL}={annotations.get(GATEWAY_API_CHANNEL)!r}, "
                "not 'standard'; refusing the bundle"
            )


def load_gateway_api_bundle(version: str, cache_dir: Path) -> list[dict[str, Any]]:
    """The standard-channel install bundle of ``version``: vendored under manifests/gateway-api/, else
    downloaded once into the cache. The release publishes no checksum, so the content is checked
    instead: every CRD must carry the requested bundle version (``check_gateway_api_bundle``)."""
    vendored = vendored_gateway_api_bundle(version)
    if vendored is not None:
        path = vendored
    else:
        path = cache_dir / "gateway-api" / version / "standard-install.yaml"
        if not path.is_file():
            _download_gateway_api_bundle(version, path)
    docs = _parse_bundle(path.read_text(encoding="utf-8"), str(path))
    check_gateway_api_bundle(docs, version, str(path))
    return docs


def ensure_gateway_api_crds(kube: Kube, version: str, cache_dir: Path, timeouts: Timeouts) -> list[ObjectRef]:
    """Apply the Gateway API bundle ``version`` where the cluster lacks it; return what this created.

    A CRD is applied when it is missing or carries an older bundle version; a newer one is left alone
    (never downgraded). When every CRD is already at ``version`` or newer nothing is applied at all.
    Other objects of the bundle (the safe-upgrades admission policy) are applied only when absent.
    """
    docs = load_gateway_api_bundle(version, cache_dir)
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    others = [doc for doc in docs if doc.get("kind") != "CustomResourceDefinition"]
    current = {_name(crd): kube.get(_ref(crd)) for crd in crds}
    outdated = [
        crd
        for crd in crds
        if not bundle_version_at_least(_annotations(current[_name(crd)] or {}).get(GATEWAY_API_BUNDLE_VERSION), version)
    ]
    if not outdated:
        progress.info(f"the cluster already serves the Gateway API CRDs at {version} or newer; not applying them")
        return []
    absent_others = [doc for doc in others if kube.get(_ref(doc)) is None]
    to_apply = outdated + absent_others
    created = [_ref(doc) for doc in outdated if current[_name(doc)] is None] + [_ref(doc) for doc in absent_others]
    names = [_name(crd) for crd in outdated]
    with progress.step(f"applying Gateway API {version} CRDs ({', '.join(names)})"):
        kube.apply(to_apply)
        kube.wait_crds_established(names, timeouts.crd_established)
    return created


# --- install / uninstall -------------------------------------------------------------------------------


@dataclass
class IstioInstaller:
    """Installs and removes Istio on one cluster with one istioctl."""

    istioctl: Path
    kube: Kube
    kubeconfig: Path
    context: str | None
    timeouts: Timeouts
    cache_dir: Path
    #: Gateway API bundle version the Istio release expects (versions.istio_release(v).gateway_api).
    gateway_api_version: str
    #: Gateway API objects this installer created, removed again by ``uninstall``.
    created_gateway_api: list[ObjectRef] = field(default_factory=list)
    #: istio-system was there before the install (e.g. a user's `cacerts` Secret): keep it at uninstall.
    istio_namespace_preexisted: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, kube: Kube, kubeconfig: Path, context: str | None) -> IstioInstaller:
        return cls(
            istioctl=resolve_istioctl(settings),
            kube=kube,
            kubeconfig=kubeconfig,
            context=context,
            timeouts=settings.timeouts,
            cache_dir=settings.cache_dir,
            gateway_api_version=versions.istio_release(settings.istio_version).gateway_api,
        )

    def install_command(self, mode: MeshMode) -> list[str]:
        # istioctl waits for each component itself (--readiness-timeout, default 300s); tie that wait to
        # the named rollout deadline so --timeout-scale stretches it too.
        readiness = f"{math.ceil(self.timeouts.rollout)}s"
        return [
            str(self.istioctl),
            "install",
            "--skip-confirmation",
            "-f",
            str(OVERLAYS[mode]),
            "--readiness-timeout",
            readiness,
            *self._cluster_flags(),
        ]

    def uninstall_command(self) -> list[str]:
        return [str(self.istioctl), "uninstall", "--purge", "--skip-confirmation", *self._cluster_flags()]

    def install(self, mode: MeshMode) -> None:
        """Install Istio for ``mode`` and wait until its components are rolled out."""
        self.istio_namespace_preexisted = self.kube.get(ISTIO_NAMESPACE_REF) is not None
        if mode is MeshMode.AMBIENT:
            created = ensure_gateway_api_crds(self.kube, self.gateway_api_version, self.cache_dir, self.timeouts)
            self.created_gateway_api.extend(ref for ref in created if ref not in self.created_gateway_api)
        with progress.step(f"istioctl install ({mode.value}, {OVERLAYS[mode].name})"):
            self._istioctl(self.install_command(mode), self.timeouts.istio_install, "istio_install")
        for workload in ROLLOUTS[mode]:
            with progress.step(f"waiting for {workload} to roll out"):
                self.kube.wait_rollout(workload.kind.value, workload.namespace, workload.name, self.timeouts.rollout)

    def uninstall(self) -> None:
        """Remove every Istio control/data-plane resource, the istio-system namespace, and the Gateway API
        objects this installer created (CRDs that were there before stay).

        Every step runs even when an earlier one failed (this is cleanup); the failures are raised
        together at the end.
        """
        failures: list[str] = []

        def attempt(description: str, action: Callable[[], None]) -> bool:
            try:
                with progress.step(description):
                    action()
            except (IstioError, KubeError) as exc:
                failures.append(f"{description}: {exc}")
                return False
            return True

        attempt(
            "istioctl uninstall --purge",
            lambda: self._istioctl(self.uninstall_command(), self.timeouts.istio_install, "istio_install"),
        )
        if not self.istio_namespace_preexisted:
            attempt(
                f"deleting namespace {ISTIO_NAMESPACE}",
                lambda: self.kube.delete([ISTIO_NAMESPACE_REF], self.timeouts.delete),
            )
        if self.created_gateway_api:
            created = list(self.created_gateway_api)
            removed = attempt(
                "removing the Gateway API objects this run created",
                lambda: self.kube.delete(created, self.timeouts.delete),
            )
            if removed:
                self.created_gateway_api.clear()
        if failures:
            raise IstioError("uninstalling Istio failed:\n" + "\n".join(failures))

    def _cluster_flags(self) -> list[str]:
        flags = ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            flags += ["--context", self.context]
        return flags

    def _istioctl(self, command: list[str], timeout: float, deadline_name: str) -> None:
        run_tool(command, timeout, error=IstioError, deadline_name=deadline_name)


# --- an existing installation --------------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledIstio:
    """What ``--istio existing`` found in the cluster."""

    version: str
    modes: frozenset[MeshMode]
    egress_gateway: bool


def version_from_image(image: str) -> str:
    """``1.30.3`` from ``docker.io/istio/pilot:1.30.3`` or ``...:1.30.3-distroless`` (a digest may follow)."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        raise IstioError(f"the istiod image {image!r} has no tag, so its Istio version is unknown")
    tag = _IMAGE_VARIANT.sub("", last.rsplit(":", 1)[1])
    match = _ISTIO_TAG.match(tag)
    if match is None:
        raise IstioError(f"the istiod image tag of {image!r} is not an Istio version such as 1.30.3")
    return match.group(1)


def istiod_present(kube: Kube) -> bool:
    """Whether an Istio control plane (default revision) runs in the cluster."""
    return kube.get(Workload(WorkloadKind.DEPLOYMENT, ISTIOD).ref) is not None


def detect_installed(kube: Kube) -> InstalledIstio:
    """Version and data-plane modes of the Istio already in the cluster (default revision)."""
    istiod = kube.get(Workload(WorkloadKind.DEPLOYMENT, ISTIOD).ref)
    if istiod is None:
        raise IstioError(
            f"--istio existing: there is no Deployment {ISTIO_NAMESPACE}/{ISTIOD} in the cluster; "
            "install Istio first (default revision) or let the harness install it with --istio install"
        )
    version = version_from_image(_istiod_image(istiod))
    modes = {MeshMode.SIDECAR}  # istiod's injector serves sidecars in every profile
    ztunnel = _daemon_set_present(kube, ZTUNNEL)
    cni = _daemon_set_present(kube, ISTIO_CNI)
    if ztunnel and cni:
        modes.add(MeshMode.AMBIENT)
    elif ztunnel:
        progress.info(f"{ZTUNNEL} is installed but {ISTIO_CNI} is not: ambient traffic capture cannot work")
    egress = kube.get(Workload(WorkloadKind.DEPLOYMENT, EGRESS_GATEWAY).ref) is not None
    return InstalledIstio(version=version, modes=frozenset(modes), egress_gateway=egress)


def _istiod_image(deployment: Mapping[str, Any]) -> str:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else None)
    image = chosen.get("image") if isinstance(chosen, dict) else None
    if not isinstance(image, str) or not image:
        raise IstioError(f"Deployment {ISTIO_NAMESPACE}/{ISTIOD} names no container image")
    return image


def _daemon_set_present(kube: Kube, name: str) -> bool:
    # GKE puts node agents in kube-system (operator/pkg/render/manifest.go clusterSpecificSettings).
    return any(
        kube.get(Workload(WorkloadKind.DAEMON_SET, name, namespace).ref) is not None
        for namespace in (ISTIO_NAMESPACE, "kube-system")
    )


# --- outboundTrafficPolicy -----------------------------------------------------------------------------


@contextlib.contextmanager
def outbound_traffic_policy(kube: Kube, mode: OutboundMode) -> Iterator[None]:
    """Set meshConfig.outboundTrafficPolicy.mode for the body; afterwards (also when it raises) put the
    original mesh config text back exactly as it was.

    The mesh config is the YAML text under key ``mesh`` of ConfigMap istio-system/istio, which istiod
    watches; this is how Istio's own integration tests change it at run time.
    """
    ref = ObjectRef("v1", "ConfigMap", MESH_CONFIGMAP, ISTIO_NAMESPACE)
    configmap = kube.get(ref)
    if configmap is None:
        raise IstioError(f"ConfigMap {ISTIO_NAMESPACE}/{MESH_CONFIGMAP} not found: is Istio installed?")
    original = (configmap.get("data") or {}).get(MESH_CONFIGMAP_KEY)
    if not isinstance(original, str):
        raise IstioError(f"ConfigMap {ISTIO_NAMESPACE}/{MESH_CONFIGMAP} has no {MESH_CONFIGMAP_KEY!r} key")
    updated = with_outbound_mode(original, mode)
    try:
        kube.merge_patch(ref, {"data": {MESH_CONFIGMAP_KEY: updated}})
        progress.info(f"mesh outboundTrafficPolicy.mode set to {mode.value}")
        yield
    finally:
        kube.merge_patch(ref, {"data": {MESH_CONFIGMAP_KEY: original}})
        progress.info("mesh config restored")


def with_outbound_mode(mesh_text: str, mode: OutboundMode) -> str:
    """The mesh config YAML with outboundTrafficPolicy.mode set; other settings are kept."""
    try:
        mesh = yaml.safe_load(mesh_text) or {}
    except yaml.YAMLError as exc:
        raise IstioError(f"the mesh config is not YAML: {exc}") from None
    if not isinstance(mesh, dict):
        raise IstioError("the mesh config is not a YAML mapping")
    policy = mesh.get("outboundTrafficPolicy")
    mesh["outboundTrafficPolicy"] = {**(policy if isinstance(policy, dict) else {}), "mode": mode.value}
    return yaml.safe_dump(mesh, sort_keys=False, default_flow_style=False)


# --- internals -----------------------------------------------------------------------------------------


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in annotations.items()}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    metadata = doc.get("metadata") or {}
    return ObjectRef(str(doc["apiVersion"]), str(doc["kind"]), str(metadata["name"]), metadata.get("namespace"))


def _parse_bundle(text: str, source: str) -> list[dict[str, Any]]:
    # The C loader parses the ~1 MB bundle in well under a second (the pure-Python one takes ~1s).
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=_YAML_LOADER) if doc is not None]
    except yaml.YAMLError as exc:
        raise IstioError(f"{source}: invalid YAML: {exc}") from None
    if not all(isinstance(doc, dict) for doc in docs):
        raise IstioError(f"{source}: a document of the Gateway API bundle is not a mapping")
    return docs


def _require_safe_url(url: str) -> None:
    if not is_safe_download_url(url):
        raise IstioError(f"refusing to download {url}: only https:// URLs are used")


def _download_gateway_api_bundle(version: str, target: Path) -> None:
    url = gateway_api_bundle_url(version)
    with progress.step(f"downloading the Gateway API {version} bundle from {url}"):
        _require_safe_url(url)
        try:
            response = requests.get(url, timeout=binaries.HTTP_TIMEOUT)
            _require_safe_url(response.url)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise IstioError(f"download of {url} failed ({exc})") from None
        # Checked before caching, so a wrong bundle never lands in the cache.
        check_gateway_api_bundle(_parse_bundle(response.text, url), version, url)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=".standard-install-", suffix=".part")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(response.text)
            os.replace(name, target)
        finally:
            Path(name).unlink(missing_ok=True)
