"""The run's settings: one validated object built from the command-line options and their environment twins.

Validation happens before anything is created, and every error names the option and what it accepts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conformance.core import versions
from conformance.core.timeouts import DEFAULT_TIMEOUTS, TIMEOUT_SCALE_MAX, TIMEOUT_SCALE_MIN, Timeouts
from conformance.images.image_map import NO_IMAGE_MAP, ImageMap
from conformance.settings.implementation import Implementation
from conformance.settings.options import OPTIONS, EtpProvider, IstioSource, MeshMode, PlanGateway, SettingsError
from conformance.settings.value_checks import (
    ISTIOCTL_OUTPUT,
    KIND_VERSION_OUTPUT,
    check_kubeconfig,
    choice,
    directory_path,
    existing_file,
    image_map_file,
    implementation_file,
    istio_overlay_file,
    kind_config_file,
    parse_bool,
    tool_binary,
)

# kind cluster names become Docker container names and kubeconfig contexts.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_IMAGE = re.compile(r"^[\w.\-/:]+(@sha256:[0-9a-f]{64})?$")
_IMAGE_HUB = re.compile(r"^[a-zA-Z0-9][\w.\-]*(:\d+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DEFAULT_ISTIO_HUB = "docker.io/istio"


@dataclass(frozen=True)
class Settings:
    mesh_modes: tuple[MeshMode, ...] = (MeshMode.SIDECAR, MeshMode.AMBIENT)
    istio_version: str = versions.DEFAULT_ISTIO_VERSION
    istio_source: IstioSource = IstioSource.INSTALL
    kubeconfig: Path | None = None
    kube_context: str | None = None
    cluster_name: str = "egress-conformance"
    keep_cluster: bool = False
    reuse_cluster: bool = False
    kind_image: str = versions.KIND.node_image
    kind_bin: Path | None = None
    istioctl_bin: Path | None = None
    report_dir: Path = Path("reports")
    cache_dir: Path = field(default_factory=lambda: Path("~/.cache/egress-conformance").expanduser())
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    timeout_scale: float = 1.0
    #: Plan mode: no cluster; every check is walked and recorded, nothing is carried out.
    plan: bool = False
    etp_provider: EtpProvider = EtpProvider.NATIVE
    #: With ``plan``: judge the plan with the routing oracle.
    oracle: bool = False
    #: With ``plan``: the egress gateway the plan assumes.
    plan_gateway: PlanGateway = PlanGateway.UPSTREAM
    #: The vendor's description of the Istio under test (``--implementation-file``); None when not given.
    implementation: Implementation | None = None
    #: Stop at the first failed check and leave everything in place for inspection.
    keep_on_failure: bool = False
    #: kind config of a cluster the harness creates (None: manifests/kind/cluster.yaml).
    kind_config: Path | None = None
    #: Load the run's images from the local container engine into the managed kind cluster.
    load_images: bool = False
    image_map: ImageMap = NO_IMAGE_MAP
    istio_hub: str = DEFAULT_ISTIO_HUB
    #: None: the Istio release's own tag (--istio-version).
    istio_tag: str | None = None
    istio_overlay: Path | None = None

    @property
    def istio_image_tag(self) -> str:
        return self.istio_tag or self.istio_version

    @property
    def uses_existing_cluster(self) -> bool:
        return self.kubeconfig is not None

    @property
    def keeps_cluster(self) -> bool:
        """A created cluster is deleted at the end unless kept; a reused one is kept by definition."""
        return self.keep_cluster or self.reuse_cluster

    @classmethod
    def from_sources(cls, cli: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Settings:
        """Build from parsed CLI values (``dest -> value``, None when not given) and the environment.

        The command line wins over the environment, which wins over the default.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, str | None] = {}
        for opt in OPTIONS:
            value = cli.get(opt.dest)
            if opt.is_flag:
                if value:
                    raw[opt.dest] = "true"
                elif opt.env in env:
                    raw[opt.dest] = parse_bool(opt, env[opt.env])
                else:
                    raw[opt.dest] = "false"
            elif value is not None:
                raw[opt.dest] = str(value)
            else:
                raw[opt.dest] = env.get(opt.env, opt.default)
        given = {
            opt.dest
            for opt in OPTIONS
            if (cli.get(opt.dest) if not opt.is_flag else bool(cli.get(opt.dest))) or opt.env in env
        }
        return cls._validated(raw, given)

    @classmethod
    def _validated(cls, raw: Mapping[str, str | None], given: frozenset[str] | set[str] = frozenset()) -> Settings:
        def need(dest: str) -> str:
            value = raw.get(dest)
            assert value is not None, dest
            return value

        modes = choice("--mesh-mode", need("mesh_mode"), ("sidecar", "ambient", "both"))
        mesh_modes = (MeshMode.SIDECAR, MeshMode.AMBIENT) if modes == "both" else (MeshMode(modes),)

        istio_version = need("istio_version").strip().removeprefix("v")
        try:
            versions.istio_release(istio_version)
        except ValueError as exc:
            raise SettingsError(f"--istio-version: {exc}") from None

        istio_source = IstioSource(choice("--istio", need("istio"), tuple(s.value for s in IstioSource)))

        kubeconfig = existing_file("--kubeconfig", raw.get("kubeconfig"))
        if kubeconfig is not None:
            check_kubeconfig(kubeconfig, raw.get("kube_context"))
        elif raw.get("kube_context"):
            raise SettingsError(
                "--kube-context names a context of --kubeconfig, which is not given: add --kubeconfig PATH "
                "(a kind cluster the harness creates has one context of its own)"
            )

        cluster_name = need("cluster_name")
        if not _CLUSTER_NAME.match(cluster_name):
            raise SettingsError(
                f"--cluster-name: {cluster_name!r} is not a valid kind cluster name "
                "(lower-case letters, digits and '-', at most 32 characters, starting and ending alphanumeric)"
            )

        keep = need("keep_cluster") == "true"
        reuse = need("reuse_cluster") == "true"
        if kubeconfig is not None and (keep or reuse):
            raise SettingsError(
                "--keep-cluster/--reuse-cluster apply to a kind cluster the harness manages; "
                "with --kubeconfig nothing is created or deleted, so drop them"
            )

        kind_image = need("kind_image")
        if not _IMAGE.match(kind_image) or ":" not in kind_image.split("@")[0].rsplit("/", 1)[-1]:
            raise SettingsError(
                f"--kind-image: {kind_image!r} is not an image reference with a tag "
                "(e.g. kindest/node:v1.35.0@sha256:<digest>)"
            )

        timeout_scale_text = need("timeout_scale")
        try:
            timeout_scale = float(timeout_scale_text)
            if not TIMEOUT_SCALE_MIN <= timeout_scale <= TIMEOUT_SCALE_MAX:
                raise ValueError
        except ValueError:
            raise SettingsError(
                f"--timeout-scale: {timeout_scale_text!r} is not a number from {TIMEOUT_SCALE_MIN:g} "
                f"to {TIMEOUT_SCALE_MAX:g}"
            ) from None

        plan = need("plan") == "true"
        if plan and kubeconfig is not None:
            raise SettingsError(
                "--kubeconfig: a --plan run walks the checks without any cluster and would ignore it; "
                "drop --kubeconfig to plan, or --plan to run on that cluster"
            )
        if istio_source is IstioSource.EXISTING and kubeconfig is None and need("reuse_cluster") != "true" and not plan:
            raise SettingsError(
                "--istio existing tests the Istio installed on a cluster, and the kind cluster the harness would "
                "create has none: pass --kubeconfig (or --reuse-cluster for a kind cluster with Istio installed)"
            )
        if "plan_gateway" in given and not plan:
            raise SettingsError(
                "--plan-gateway says which egress gateway a plan assumes; without --plan the run reads the "
                "installed one: add --plan or drop --plan-gateway"
            )
        implementation = implementation_file(raw.get("implementation_file"))
        keep_on_failure = need("keep_on_failure") == "true"
        oracle = need("oracle") == "true"
        if oracle and not plan:
            raise SettingsError("--oracle judges the plan of a run: add --plan")
        if oracle and shutil.which("go") is None:
            raise SettingsError(
                "--oracle builds the routing oracle from Istio's source with Go (>= 1.25), which is not on PATH; "
                "install it from https://go.dev/dl/ or drop --oracle"
            )
        plan_gateway = PlanGateway(choice("--plan-gateway", need("plan_gateway"), tuple(g.value for g in PlanGateway)))
        if keep_on_failure and plan:
            raise SettingsError(
                "--keep-on-failure keeps a failed check's resources on the cluster; a --plan run creates none, "
                "so drop one of them"
            )

        kind_config = kind_config_file(raw.get("kind_config"))
        load_images = need("load_images") == "true"
        if kubeconfig is not None and (kind_config is not None or load_images):
            raise SettingsError(
                "--kind-config/--load-images apply to a kind cluster the harness manages; with --kubeconfig "
                "nothing is created, so drop them (load images into that cluster your own way)"
            )
        istio_hub = need("istio_hub").strip().rstrip("/")
        if not _IMAGE_HUB.match(istio_hub):
            raise SettingsError(f"--istio-hub: {istio_hub!r} is not a registry path (e.g. docker.io/istio)")
        istio_tag = (raw.get("istio_tag") or "").strip() or None
        if istio_tag is not None and not _IMAGE_TAG.match(istio_tag):
            raise SettingsError(f"--istio-tag: {istio_tag!r} is not an image tag (letters, digits, '_', '.', '-')")
        istio_overlay = istio_overlay_file(raw.get("istio_overlay"))
        if istio_source is IstioSource.EXISTING and (
            istio_overlay is not None or istio_tag is not None or istio_hub != DEFAULT_ISTIO_HUB
        ):
            raise SettingsError(
                "--istio-hub/--istio-tag/--istio-overlay shape the Istio the harness installs; with "
                "--istio existing nothing is installed, so drop them"
            )
        image_map = image_map_file(raw.get("image_map"), istio_version)

        return cls(
            mesh_modes=mesh_modes,
            istio_version=istio_version,
            istio_source=istio_source,
            kubeconfig=kubeconfig,
            kube_context=raw.get("kube_context") or None,
            cluster_name=cluster_name,
            keep_cluster=keep,
            reuse_cluster=reuse,
            kind_image=kind_image,
            kind_bin=tool_binary("--kind-bin", raw.get("kind_bin"), ["version"], KIND_VERSION_OUTPUT, "kind"),
            istioctl_bin=tool_binary(
                "--istioctl-bin", raw.get("istioctl_bin"), ["version", "--remote=false"], ISTIOCTL_OUTPUT, "istioctl"
            ),
            report_dir=directory_path("--report-dir", need("report_dir")),
            cache_dir=Path(need("cache_dir")).expanduser(),
            timeouts=DEFAULT_TIMEOUTS.scaled(timeout_scale),
            timeout_scale=timeout_scale,
            etp_provider=EtpProvider(
                choice("--etp-provider", need("etp_provider"), tuple(p.value for p in EtpProvider))
            ),
            plan=plan,
            implementation=implementation,
            keep_on_failure=keep_on_failure,
            oracle=oracle,
            plan_gateway=plan_gateway,
            kind_config=kind_config,
            load_images=load_images,
            image_map=image_map,
            istio_hub=istio_hub,
            istio_tag=istio_tag,
            istio_overlay=istio_overlay,
        )
