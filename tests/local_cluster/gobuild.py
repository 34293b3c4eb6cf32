"""Go components of the cluster, built from the Go module proxy and cached by their inputs.

Each component is a Go module of this repository (go.mod and go.sum pin the upstream release): the
Kubernetes binaries come from ``tests/kubernetes`` (the module the real-API-server tier builds from too, with
the same flags, so the two share Go's build cache), Istio's from ``oracle`` (the release branch the routing
oracle judges, built like the oracle so they share it too), the rest from ``tests/local_cluster/go/``. A
component's binaries land in ``<cache>/go/<name>-<key>/``; the key hashes the module's files, the flags and
the Go version, so a changed input builds again and an unchanged one is reused in milliseconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.local_cluster.steps import REPOSITORY, TIER_DIR, TierError, cache_root, run, say
from tests.real_apiserver import version_ldflags

GO_MODULES = TIER_DIR / "go"
KUBERNETES_MODULE = REPOSITORY / "tests" / "kubernetes"
ISTIO_MODULE = REPOSITORY / "oracle"
#: The flags real_apiserver builds the control plane with: the same compile actions, one build cache.
STATIC = {"CGO_ENABLED": "0"}
GOFLAGS = "-buildvcs=false -mod=readonly"


def required_version(module_dir: Path, module: str) -> str:
    """The version ``module_dir``'s go.mod requires of ``module``."""
    text = (module_dir / "go.mod").read_text(encoding="utf-8")
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise TierError(f"{module_dir / 'go.mod'} does not require {module}")
    return match.group(1)


def module_directory(module_dir: Path, module: str) -> Path:
    """Where the Go module cache holds ``module`` at the version ``module_dir`` requires (downloaded first)."""
    out = run(["go", "mod", "download", "-json", module], cwd=module_dir, what=f"go mod download {module}")
    return Path(json.loads(out)["Dir"])


@dataclass(frozen=True)
class GoComponent:
    name: str
    module_dir: Path
    #: Output file name -> package path.
    packages: Mapping[str, str]
    version: str
    #: Output file name -> -ldflags (default: ``-s -w``).
    ldflags: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=lambda: dict(STATIC))

    def flags_of(self, output: str) -> str:
        return self.ldflags.get(output, "-s -w")

    def key(self, go_version: str) -> str:
        digest = hashlib.sha256(go_version.encode())
        for path in sorted(self.module_dir.glob("*")):
            if path.is_file() and (path.suffix == ".go" or path.name.startswith("go.")):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        digest.update(json.dumps([self.packages, dict(self.ldflags), dict(self.env)], sort_keys=True).encode())
        return digest.hexdigest()[:16]


def kubernetes() -> GoComponent:
    version = required_version(KUBERNETES_MODULE, "k8s.io/kubernetes")
    stamped = version_ldflags(version)
    commands = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubeadm", "kubelet")
    packages = {"etcd": "go.etcd.io/etcd/server/v3", "kubectl": "k8s.io/kubernetes/cmd/kubectl"}
    packages |= {name: f"k8s.io/kubernetes/cmd/{name}" for name in commands}
    return GoComponent(
        "kubernetes",
        KUBERNETES_MODULE,
        packages,
        version,
        ldflags={name: stamped for name in packages if name != "etcd"},
    )


def istio() -> GoComponent:
    """pilot-discovery, pilot-agent and istioctl from the release branch the oracle's go.mod pins, stamped
    with the version Istio's own Makefile gives a build of that branch (``<VERSION file>-dev``)."""
    pseudo = required_version(ISTIO_MODULE, "istio.io/istio")
    revision = pseudo.rsplit("-", 1)[-1]
    version = f"{istio_branch_version()}-dev"
    stamp = "istio.io/istio/pkg/version"
    ldflags = (
        f"-s -w -X {stamp}.buildVersion={version} -X {stamp}.buildGitRevision={revision} "
        f"-X {stamp}.buildStatus=Clean -X {stamp}.buildTag={version}"
    )
    packages = {
        "pilot-discovery": "istio.io/istio/pilot/cmd/pilot-discovery",
        "pilot-agent": "istio.io/istio/pilot/cmd/pilot-agent",
        "istioctl": "istio.io/istio/istioctl/cmd/istioctl",
    }
    # CGO as the oracle builds (Go's default): the oracle's compiled Istio packages are reused.
    return GoComponent(
        "istio", ISTIO_MODULE, packages, f"{version}+{revision}", {name: ldflags for name in packages}, env={}
    )


def istio_branch_version() -> str:
    """``1.30``: the VERSION file of the istio.io/istio version the oracle's go.mod pins."""
    return (module_directory(ISTIO_MODULE, "istio.io/istio") / "VERSION").read_text(encoding="utf-8").strip()


def _simple(name: str, module: str, package: str, output: str, version_variable: str | None = None) -> GoComponent:
    module_dir = GO_MODULES / name
    version = required_version(module_dir, module)
    ldflags = {output: f"-s -w -X {version_variable}={version}"} if version_variable else {}
    return GoComponent(name, module_dir, {output: package}, version, ldflags)


def kind() -> GoComponent:
    return _simple("kind", "sigs.k8s.io/kind", "sigs.k8s.io/kind", "kind")


def crictl() -> GoComponent:
    return _simple(
        "cri-tools",
        "sigs.k8s.io/cri-tools",
        "sigs.k8s.io/cri-tools/cmd/crictl",
        "crictl",
        "sigs.k8s.io/cri-tools/pkg/version.Version",
    )


def coredns() -> GoComponent:
    module_dir = GO_MODULES / "coredns"
    version = required_version(module_dir, "github.com/coredns/coredns")
    return GoComponent("coredns", module_dir, {"coredns": "egress-conformance/tests/local_cluster/go/coredns"}, version)


def kube_router() -> GoComponent:
    return _simple(
        "kube-router",
        "github.com/cloudnativelabs/kube-router/v2",
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
        "kube-router",
        "github.com/cloudnativelabs/kube-router/v2/pkg/version.Version",
    )


def go_httpbin() -> GoComponent:
    return _simple(
        "go-httpbin",
        "github.com/mccutchen/go-httpbin/v2",
        "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin",
        "go-httpbin",
    )


def go_version() -> str:
    if shutil.which("go") is None:
        raise TierError("Go is not on PATH: the tier builds kind, Kubernetes, CoreDNS and Istio with it")
    return run(["go", "env", "GOVERSION"], what="go env GOVERSION").strip()


def ensure_built(component: GoComponent) -> tuple[Path, bool]:
    """The directory holding the component's binaries, and whether they were built just now."""
    version = go_version()
    key = component.key(version)
    root = cache_root() / "go"
    target = root / f"{component.name}-{component.version}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((target / output).is_file() for output in component.packages):
            return target, False
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            env = {**os.environ, "GOFLAGS": GOFLAGS, **component.env}
            for output, package in component.packages.items():
                say(f"  go build {package} ({component.version})")
                command = ["go", "build", "-ldflags", component.flags_of(output), "-o", str(scratch / output), package]
                run(command, cwd=component.module_dir, env=env, what=f"go build {output}")
            (scratch / "build.json").write_text(
                json.dumps({"version": component.version, "go": version, "key": key}, indent=2), encoding="utf-8"
            )
            for stale in root.glob(f"{component.name}-*"):
                if stale != target:
                    shutil.rmtree(stale, ignore_errors=True)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target, True
