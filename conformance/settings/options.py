"""The command-line options of a run (and their environment twins), and the choices they take."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.core import versions
from conformance.core.timeouts import TIMEOUT_SCALE_MAX, TIMEOUT_SCALE_MIN


class MeshMode(enum.StrEnum):
    SIDECAR = "sidecar"
    AMBIENT = "ambient"


class IstioSource(enum.StrEnum):
    #: The harness installs Istio (and removes it afterwards on a cluster it created or reuses).
    INSTALL = "install"
    #: Istio is already installed; detect version and mode, install nothing.
    EXISTING = "existing"


class PlanGateway(enum.StrEnum):
    """The egress gateway a plan run assumes (a real run reads the installed one)."""

    #: As upstream's chart installs it: pods without ``security.istio.io/tlsMode``.
    UPSTREAM = "upstream"
    #: Pods labelled ``security.istio.io/tlsMode=istio``, as some managed meshes have it.
    LABELLED = "labelled"


class EtpProvider(enum.StrEnum):
    """Who turns seed 001's egress traffic policies into configuration (the ETP checks' config provider)."""

    #: Upstream Istio resources (ServiceEntry, Gateway, VirtualService, DestinationRule, Sidecar).
    NATIVE = "native"
    #: The vendor's own ``ASMEgressTrafficPolicy`` resource, for meshes that serve that CRD.
    VENDOR = "vendor"


class SettingsError(ValueError):
    """A bad option value; the message names the option and the accepted values."""


@dataclass(frozen=True)
class Option:
    """One command-line option and its environment-variable twin."""

    flag: str
    env: str
    help: str
    default: str | None = None
    is_flag: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--mesh-mode", "EGRESS_MESH_MODE", "data-plane mode(s) to test: sidecar, ambient or both", "both"),
    Option("--istio-version", "EGRESS_ISTIO_VERSION", "Istio release to install", versions.DEFAULT_ISTIO_VERSION),
    Option(
        "--istio", "EGRESS_ISTIO", "install: the harness installs Istio; existing: use the installed one", "install"
    ),
    Option(
        "--kubeconfig",
        "EGRESS_KUBECONFIG",
        "run against the existing cluster of this kubeconfig (nothing is created or deleted)",
    ),
    Option("--kube-context", "EGRESS_KUBE_CONTEXT", "context of --kubeconfig to use (default: current)"),
    Option("--cluster-name", "EGRESS_CLUSTER_NAME", "name of the kind cluster", "egress-conformance"),
    Option("--keep-cluster", "EGRESS_KEEP_CLUSTER", "keep the kind cluster after the run", is_flag=True),
    Option(
        "--reuse-cluster",
        "EGRESS_REUSE_CLUSTER",
        "reuse a kind cluster of the same name if it exists (implies keeping it)",
        is_flag=True,
    ),
    Option("--kind-image", "EGRESS_KIND_IMAGE", "kind node image", versions.KIND.node_image),
    Option("--kind-bin", "EGRESS_KIND_BIN", "kind executable to use (default: PATH, else pinned download)"),
    Option(
        "--kind-config",
        "EGRESS_KIND_CONFIG",
        "kind config file for the cluster the harness creates (default: manifests/kind/cluster.yaml)",
    ),
    Option(
        "--load-images",
        "EGRESS_LOAD_IMAGES",
        "load every image the run deploys from the local container engine into the kind cluster the harness "
        "manages (kind load docker-image), never pulling: for air-gapped runs and locally built images",
        is_flag=True,
    ),
    Option(
        "--image-map",
        "EGRESS_IMAGE_MAP",
        "YAML file mapping images of manifests/images.yaml to the references to run instead (private mirror, "
        "locally built images)",
    ),
    Option(
        "--istio-hub", "EGRESS_ISTIO_HUB", "registry and path of Istio's images (istioctl's hub)", "docker.io/istio"
    ),
    Option("--istio-tag", "EGRESS_ISTIO_TAG", "tag of Istio's images (istioctl's tag; default: --istio-version)"),
    Option(
        "--istio-overlay",
        "EGRESS_ISTIO_OVERLAY",
        "extra IstioOperator file istioctl install merges over the harness's own (changes Istio's defaults: the "
        "run is then not certifiable)",
    ),
    Option(
        "--istioctl-bin",
        "EGRESS_ISTIOCTL_BIN",
        "istioctl executable to use (default: PATH if the version matches, else pinned download)",
    ),
    Option("--report-dir", "EGRESS_REPORT_DIR", "directory for the conformance report", "reports"),
    Option(
        "--timeout-scale",
        "EGRESS_TIMEOUT_SCALE",
        f"multiply every named deadline by this factor ({TIMEOUT_SCALE_MIN:g} to {TIMEOUT_SCALE_MAX:g})",
        "1",
    ),
    Option(
        "--cache-dir",
        "EGRESS_CACHE_DIR",
        "where downloaded binaries are cached",
        str(Path("~/.cache/egress-conformance")),
    ),
    Option(
        "--oracle",
        "EGRESS_ORACLE",
        "with --plan: predict every probe's path with Istio's own code (the routing oracle, built with Go on first "
        "use) and compare it with each check's expectation",
        is_flag=True,
    ),
    Option(
        "--plan-gateway",
        "EGRESS_PLAN_GATEWAY",
        "with --plan: the egress gateway to plan for: upstream (as Istio's chart installs it) or labelled (pods "
        "labelled security.istio.io/tlsMode=istio, as some managed meshes have it)",
        PlanGateway.UPSTREAM.value,
    ),
    Option(
        "--etp-provider",
        "EGRESS_ETP_PROVIDER",
        "what expresses the ETP checks' egress traffic policies: native (Istio resources) or vendor (the "
        "ASMEgressTrafficPolicy resource of seed 001, for meshes that serve it)",
        EtpProvider.NATIVE.value,
    ),
    Option(
        "--plan",
        "EGRESS_PLAN",
        "walk the selected checks without a cluster: print what a run would do and write plan.json",
        is_flag=True,
    ),
    Option(
        "--implementation-file",
        "EGRESS_IMPLEMENTATION_FILE",
        "YAML file describing the Istio under test for the conformance report: organization, project, url, "
        "version, contact",
    ),
    Option(
        "--keep-on-failure",
        "EGRESS_KEEP_ON_FAILURE",
        "stop at the first failed check and leave its resources (and the cluster) in place for inspection",
        is_flag=True,
    ),
)


def option_values(getter: Callable[[str], object]) -> dict[str, object]:
    """Collect raw CLI values for every option through ``getter(dest)`` (pytest's ``config.getoption``)."""
    return {opt.dest: getter(opt.dest) for opt in OPTIONS}
