"""Air-gapped runs: make every listed image present in Docker (``docker pull``, by digest when pinned)
and load it into a kind cluster (``kind load docker-image``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.core import progress, versions
from conformance.core.processes import run_tool
from conformance.images.image_list import Image


class ImageLoadError(RuntimeError):
    """Pulling or loading an image failed, or docker/kind are missing; the message says what to do."""


class LoadAction(enum.StrEnum):
    ALREADY_PRESENT = "already present"
    PULLED = "pulled"


@dataclass(frozen=True)
class LoadResult:
    image: Image
    action: LoadAction
    loaded_into_kind: bool


class Commands:
    """Runs docker and kind, turning failures into :class:`ImageLoadError`."""

    def __init__(self, docker: str, kind: str, timeout: float) -> None:
        self.docker = docker
        self.kind = kind
        self.timeout = timeout

    def run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_tool(list(argv), self.timeout, error=ImageLoadError, check=check)


def find_tools(kind_bin: Path | str | None) -> tuple[str, str]:
    """docker and kind executables, or an error saying what to install."""
    docker = shutil.which("docker")
    if docker is None:
        raise ImageLoadError(
            "docker was not found on PATH: `load` needs Docker to pull and save images "
            "(install Docker, or mirror the images listed by `python -m conformance.images list`)"
        )
    if kind_bin is not None:
        kind = shutil.which(str(kind_bin))
        if kind is None:
            raise ImageLoadError(f"--kind-bin {kind_bin}: not an executable file or a command on PATH")
    else:
        found = shutil.which("kind")
        if found is None:
            raise ImageLoadError(f"kind was not found on PATH: install kind {versions.KIND.version} or pass --kind-bin")
        kind = found
    return docker, kind


def check_cluster(commands: Commands, cluster_name: str) -> None:
    """kind answers and knows ``cluster_name``; ImageLoadError saying what to do otherwise."""
    try:
        listed = commands.run([commands.kind, "get", "clusters"])
    except ImageLoadError as exc:
        raise ImageLoadError(
            f"{commands.kind} does not work as kind ({exc}): install kind or pass --kind-bin"
        ) from None
    if cluster_name not in listed.stdout.split():
        raise ImageLoadError(
            f"--cluster-name: kind knows no cluster {cluster_name!r} (clusters: {listed.stdout.split() or 'none'}); "
            "create it first (`kind create cluster --name ...` or `pytest -m egress --keep-cluster`), then load"
        )


def _present_locally(commands: Commands, image: Image) -> bool:
    """The image is in the local Docker store (and, when a digest is pinned, it is that digest)."""
    inspected = commands.run(
        [commands.docker, "image", "inspect", "--format", "{{json .RepoDigests}}", image.name], check=False
    )
    if inspected.returncode != 0:
        return False
    if image.digest is None:
        return True
    with contextlib.suppress(ValueError):
        repo_digests = json.loads(inspected.stdout.strip() or "[]")
        return any(str(entry).endswith("@" + image.digest) for entry in repo_digests or [])
    return False


def load_into_kind(images: Sequence[Image], cluster_name: str, commands: Commands) -> list[LoadResult]:
    """Make every image present in Docker (pulled by digest when pinned) and load it into the cluster."""
    results: list[LoadResult] = []
    for number, image in enumerate(images, start=1):
        counter = f"[{number}/{len(images)}]"
        if _present_locally(commands, image):
            action = LoadAction.ALREADY_PRESENT
            progress.info(f"{counter} {image.reference}: already present in Docker")
        else:
            with progress.step(f"{counter} docker pull {image.reference}"):
                if image.digest:
                    by_digest = f"{image.parsed.repository_reference}@{image.digest}"
                    commands.run([commands.docker, "pull", by_digest])
                    # Pods name the tag, so the node must know the image under its tag too.
                    commands.run([commands.docker, "tag", by_digest, image.name])
                else:
                    commands.run([commands.docker, "pull", image.name])
            action = LoadAction.PULLED
        if image.kind_load:
            with progress.step(f"{counter} kind load docker-image {image.name} --name {cluster_name}"):
                commands.run([commands.kind, "load", "docker-image", image.name, "--name", cluster_name])
        results.append(LoadResult(image, action, image.kind_load))
    return results


def load_local_images(references: Sequence[str], cluster_name: str, commands: Commands) -> None:
    """Load images from the local Docker image store into the kind cluster, never pulling.

    Every missing image is named before anything is loaded: a run with ``--load-images`` uses only what
    was built or pulled beforehand."""
    missing = [ref for ref in references if not _present_locally(commands, _local(ref))]
    if missing:
        raise ImageLoadError(
            f"--load-images: {len(missing)} image(s) the run deploys are not in the local Docker image store "
            f"and are never pulled: {', '.join(missing)}. Build or pull them first, or map them to images you "
            "have with --image-map (Istio's: --istio-hub/--istio-tag)"
        )
    with progress.step(f"kind load docker-image: {len(references)} image(s) into kind cluster {cluster_name}"):
        commands.run([commands.kind, "load", "docker-image", *references, "--name", cluster_name])


def _local(reference: str) -> Image:
    return Image(reference, "local", ())
