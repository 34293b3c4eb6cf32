"""Images at other names than their public ones (``--image-map FILE``): private mirrors and air-gapped runs.

The file maps images of the image list (``manifests/images.yaml``) to the references the cluster should run
instead::

    apiVersion: egress-conformance/v1alpha1
    kind: ImageMap
    images:
      docker.io/curlimages/curl:8.16.0: mirror.example.com/curlimages/curl:8.16.0

Every object the harness applies passes through :meth:`ImageMap.rewrite`, which replaces the image of every
container of a Pod or a Pod template that names a mapped image. Istio's own images are not mapped here:
``istioctl`` names them from a hub and a tag (``--istio-hub`` / ``--istio-tag``). A key that is not an
image of the list, an Istio image, or a value that is not a tagged reference is refused before anything is
created, so a typo never silently leaves a public image in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from conformance import DATA_API_VERSION
from conformance.images.image_list import CONTAINER_LISTS, ImageList
from conformance.images.references import parse_reference, reference_problems

IMAGE_MAP_KIND = "ImageMap"
#: Image-list groups whose images istioctl names from a hub and a tag.
ISTIO_GROUPS = frozenset({"istio-sidecar", "istio-ambient"})
#: Where a Pod spec sits in each kind of workload object.
_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Pod": ("spec",),
        "Deployment": ("spec", "template", "spec"),
        "DaemonSet": ("spec", "template", "spec"),
        "StatefulSet": ("spec", "template", "spec"),
        "ReplicaSet": ("spec", "template", "spec"),
        "Job": ("spec", "template", "spec"),
        "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    }
)


class ImageMapError(ValueError):
    """The image map file is malformed; the message names every problem."""


@dataclass(frozen=True)
class ImageMap:
    """Canonical public reference -> the reference to run instead."""

    replacements: Mapping[str, str] = field(default_factory=dict)
    #: The file it was read from (for the report); None for the empty map.
    source: Path | None = None

    def __bool__(self) -> bool:
        return bool(self.replacements)

    def image_for(self, image: str) -> str:
        """The reference to run for ``image`` (``image`` itself when it is not mapped)."""
        return self.replacements.get(parse_reference(image).canonical, image)

    def rewrite(self, documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Copies of ``documents`` with every mapped container image replaced."""
        return [self._rewrite_one(dict(document)) for document in documents]

    def record(self) -> dict[str, str]:
        """For the report: public reference -> replacement."""
        return dict(sorted(self.replacements.items()))

    def _rewrite_one(self, document: dict[str, Any]) -> dict[str, Any]:
        path = _POD_SPEC_PATHS.get(str(document.get("kind") or ""))
        if not self.replacements or path is None:
            return document
        rewritten = yaml.safe_load(yaml.safe_dump(document))  # a deep copy the caller's object never shares
        spec: Any = rewritten
        for key in path:
            spec = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(spec, dict):
            for list_name in CONTAINER_LISTS:
                for container in spec.get(list_name) or []:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        container["image"] = self.image_for(container["image"])
        return rewritten  # type: ignore[no-any-return]  # a mapping, as dumped


NO_IMAGE_MAP = ImageMap()


def load_image_map(path: Path, image_list: ImageList, variables: Mapping[str, str]) -> ImageMap:
    """Read and check an image map against the image list rendered for ``variables``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ImageMapError(f"{path} is not a readable YAML file ({exc})") from None
    problems = _shape_problems(data)
    if problems:
        raise ImageMapError(f"{path}: " + "; ".join(problems))
    listed = {image.parsed.canonical: image for image in image_list.images(variables)}
    replacements: dict[str, str] = {}
    for public, replacement in data["images"].items():
        canonical = parse_reference(public).canonical if not reference_problems(public) else None
        image = listed.get(canonical) if canonical else None
        if image is None:
            problems.append(f"{public!r} is not an image of manifests/images.yaml")
        elif image.group in ISTIO_GROUPS:
            problems.append(f"{public!r} is an Istio image: istioctl names those from --istio-hub and --istio-tag")
        problems += [f"{replacement!r} (for {public}): {p}" for p in reference_problems(replacement)]
        if canonical is not None:
            replacements[canonical] = replacement
    if problems:
        raise ImageMapError(f"{path}: " + "; ".join(problems))
    return ImageMap(MappingProxyType(replacements), path)


def _shape_problems(data: object) -> list[str]:
    if not isinstance(data, dict):
        return [f"expected a mapping with apiVersion {DATA_API_VERSION}, kind {IMAGE_MAP_KIND} and images"]
    problems = []
    if data.get("apiVersion") != DATA_API_VERSION or data.get("kind") != IMAGE_MAP_KIND:
        problems.append(f"apiVersion/kind must be {DATA_API_VERSION}/{IMAGE_MAP_KIND}")
    unknown = set(data) - {"apiVersion", "kind", "images"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (allowed: apiVersion, kind, images)")
    images = data.get("images")
    if not isinstance(images, dict) or not images:
        problems.append("`images` must map public image references to their replacements")
    elif not all(isinstance(k, str) and isinstance(v, str) for k, v in images.items()):
        problems.append("every key and value of `images` must be an image reference (a string)")
    return problems


#: Image-list groups each data-plane mode deploys, besides the workloads and the external world.
MODE_GROUPS: Mapping[str, str] = MappingProxyType({"sidecar": "istio-sidecar", "ambient": "istio-ambient"})
_SHARED_GROUPS = ("workloads", "external-world")
_ISTIO_TEMPLATE_HUB = "docker.io/istio/"
_ISTIO_TEMPLATE_TAG = "${ISTIO_VERSION}"


@dataclass(frozen=True)
class RunImage:
    """An image a run deploys, at the reference the cluster runs it under."""

    reference: str
    #: The image list's own reference for it (what the manifests name).
    listed: str
    group: str


def run_images(
    image_list: ImageList,
    modes: Iterable[str],
    istio_version: str,
    *,
    istio_hub: str,
    istio_tag: str,
    image_map: ImageMap = NO_IMAGE_MAP,
) -> list[RunImage]:
    """Every image a run of ``modes`` deploys (kind's node image aside), mapped and named as it will run."""
    groups = [*_SHARED_GROUPS, *(MODE_GROUPS[mode] for mode in modes)]
    found: dict[str, RunImage] = {}
    for entry in image_list.entries:
        if entry.group not in groups or not entry.kind_load:
            continue
        listed = entry.render({"ISTIO_VERSION": istio_version}).name
        if entry.group in ISTIO_GROUPS:
            reference = _istio_reference(entry.image, istio_hub, istio_tag)
        else:
            reference = image_map.image_for(listed)
        found.setdefault(reference, RunImage(reference, listed, entry.group))
    return list(found.values())


def _istio_reference(template: str, hub: str, tag: str) -> str:
    """``docker.io/istio/pilot:${ISTIO_VERSION}-distroless`` -> ``<hub>/pilot:<tag>-distroless``, the name
    Istio's charts give the image from the hub and tag values."""
    if not template.startswith(_ISTIO_TEMPLATE_HUB) or _ISTIO_TEMPLATE_TAG not in template:
        raise ImageMapError(
            f"{template}: an Istio image of the list must be {_ISTIO_TEMPLATE_HUB}NAME:${{ISTIO_VERSION}}"
        )
    return f"{hub}/{template.removeprefix(_ISTIO_TEMPLATE_HUB)}".replace(_ISTIO_TEMPLATE_TAG, tag)
