"""The records of the pinned versions: kind releases, node images, Istio releases and minors, the
nightly matrix's cells, and the whole of ``manifests/versions.yaml`` as one value."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conformance import MANIFESTS_DIR

#: The versions file; defined beside the records because a Versions names it when a lookup fails.
VERSIONS_PATH = MANIFESTS_DIR / "versions.yaml"
#: Data-plane modes every supported minor is tested in (conformance.settings.options.MeshMode values).
MESH_MODES: tuple[str, ...] = ("sidecar", "ambient")


@dataclass(frozen=True)
class KindRelease:
    version: str
    #: The node image used with this release by default (for the default release: the run's default).
    node_image: str
    #: sha256 per platform ("linux-amd64", "darwin-arm64", ...) of the kind binary.
    sha256: dict[str, str] = field(default_factory=dict)
    #: Where the checksums come from.
    source: str = ""

    def binary_url(self, platform: str) -> str:
        return f"https://github.com/kubernetes-sigs/kind/releases/download/{self.version}/kind-{platform}"

    def checksum_url(self, platform: str) -> str:
        return self.binary_url(platform) + ".sha256sum"


@dataclass(frozen=True)
class NodeImage:
    """A kind node image for one Kubernetes minor, and the kind release that publishes it."""

    kubernetes: str
    image: str
    kind: str


@dataclass(frozen=True)
class IstioRelease:
    version: str
    #: Gateway API CRD bundle the release was built and tested against (its go.mod).
    gateway_api: str
    #: sha256 per platform of istioctl-<version>-<platform>.tar.gz; empty: the release's .sha256 file is used.
    sha256: dict[str, str] = field(default_factory=dict)

    def archive_name(self, platform: str) -> str:
        return f"istioctl-{self.version}-{platform}.tar.gz"

    def archive_url(self, platform: str) -> str:
        return f"https://github.com/istio/istio/releases/download/{self.version}/{self.archive_name(platform)}"

    def checksum_url(self, platform: str) -> str:
        return self.archive_url(platform) + ".sha256"


@dataclass(frozen=True)
class IstioMinor:
    """One supported Istio minor."""

    minor: str
    #: The pinned patch release (installed by the nightly matrix).
    release: IstioRelease
    #: Folder under manifests/schemas/ holding the minor's Istio CRDs (crd-all.gen.yaml): those of a release of
    #: the minor, the pinned one where vendored.
    schemas: str
    #: Oldest and newest Kubernetes minors the Istio project supports for this minor.
    kubernetes_oldest: str
    kubernetes_newest: str
    source: str

    @property
    def gateway_api(self) -> str:
        return self.release.gateway_api

    @property
    def crd_path(self) -> Path:
        return MANIFESTS_DIR / "schemas" / self.schemas / "crd-all.gen.yaml"

    @property
    def gateway_api_bundle_path(self) -> Path:
        return MANIFESTS_DIR / "gateway-api" / self.gateway_api / "standard-install.yaml"

    @property
    def kubernetes_bounds(self) -> tuple[str, ...]:
        """The Kubernetes minors the nightly matrix runs this minor on: the oldest and the newest supported."""
        return tuple(dict.fromkeys((self.kubernetes_oldest, self.kubernetes_newest)))


@dataclass(frozen=True)
class MatrixCell:
    """One nightly job: an Istio release in one data-plane mode on one node image."""

    istio: str
    minor: str
    mode: str
    kubernetes: str
    node_image: str
    kind: str

    @property
    def name(self) -> str:
        """Unique, path- and artifact-safe: ``istio-1.30.3-sidecar-k8s-1.35``."""
        return f"istio-{self.istio}-{self.mode}-k8s-{self.kubernetes}"

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "istio": self.istio,
            "minor": self.minor,
            "mode": self.mode,
            "kubernetes": self.kubernetes,
            "node_image": self.node_image,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Versions:
    kind_releases: Mapping[str, KindRelease]
    default_kind_release: str
    default_node_image: str
    node_images: tuple[NodeImage, ...]
    default_istio: str
    minors: tuple[IstioMinor, ...]

    @property
    def kind(self) -> KindRelease:
        return self.kind_releases[self.default_kind_release]

    @property
    def default_node(self) -> NodeImage:
        return next(node for node in self.node_images if node.image == self.default_node_image)

    def node_image_for(self, kubernetes: str) -> NodeImage:
        for node in self.node_images:
            if node.kubernetes == kubernetes:
                return node
        raise KeyError(f"no kind node image for Kubernetes {kubernetes} in {VERSIONS_PATH.name}")

    def minor(self, minor: str) -> IstioMinor:
        for entry in self.minors:
            if entry.minor == minor:
                return entry
        known = ", ".join(m.minor for m in self.minors)
        raise ValueError(f"Istio {minor} is not supported (supported minors: {known})")

    def matrix(self) -> list[MatrixCell]:
        """Every supported minor x every mode x its oldest and newest Kubernetes."""
        cells: list[MatrixCell] = []
        for minor, mode in itertools.product(self.minors, MESH_MODES):
            for kubernetes in minor.kubernetes_bounds:
                node = self.node_image_for(kubernetes)
                cells.append(MatrixCell(minor.release.version, minor.minor, mode, kubernetes, node.image, node.kind))
        return cells
