"""Every pinned version, read from ``manifests/versions.yaml`` (the one place to bump them).

That file lists the kind releases (with the sha256 of their binaries), the kind node images by Kubernetes
minor (by digest, each with the kind release that publishes it), and the supported Istio minors (the pinned
patch release, its Gateway API bundle, its CRD schemas, and the Kubernetes minors Istio supports for it).
From it this module gives the harness its defaults, validation its schemas per minor, and the nightly
workflow its matrix: ``python -m conformance.core.versions matrix`` prints the matrix as JSON.

Checksums: a kind download must match the sha256 pinned here. istioctl archives have no pinned sha256
(unless a release's ``istioctl_sha256`` gives one): the download is verified against the ``.sha256`` file
the Istio release publishes beside the archive, fetched from the same release server over HTTPS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from conformance import DATA_API_VERSION, MANIFESTS_DIR

VERSIONS_PATH = MANIFESTS_DIR / "versions.yaml"
API_VERSION = DATA_API_VERSION
KIND_OF_FILE = "Versions"

#: Data-plane modes every supported minor is tested in (conformance.settings.options.MeshMode values).
MESH_MODES: tuple[str, ...] = ("sidecar", "ambient")
#: Platforms a kind sha256 may be pinned for (kind's asset names: kind-<platform>).
KIND_PLATFORMS = frozenset({"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"})
#: Platforms an istioctl sha256 may be pinned for (Istio's asset names: istioctl-<version>-<platform>.tar.gz).
ISTIO_PLATFORMS = frozenset({"linux-amd64", "linux-arm64", "osx", "osx-arm64"})

_ISTIO_VERSION = re.compile(r"^1\.(\d+)\.(\d+)$")
_ISTIO_MINOR = re.compile(r"^1\.\d+$")
_KUBERNETES_MINOR = re.compile(r"^1\.(\d+)$")
_RELEASE_TAG = re.compile(r"^v\d+\.\d+\.\d+$")
_NODE_IMAGE = re.compile(r"^kindest/node:v(1\.\d+)\.\d+@sha256:[0-9a-f]{64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SCHEMAS_DIR = re.compile(r"^istio-1\.\d+\.\d+(-[0-9A-Za-z.]+)?$")


class VersionsError(ValueError):
    """manifests/versions.yaml is malformed; the message lists every problem with its key."""


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


# --- loading ---------------------------------------------------------------------------------------


def parse_versions(data: object, source: str = "<versions>") -> Versions:
    """The checked content of a versions file; VersionsError lists every problem found, by key."""
    if not isinstance(data, dict):
        raise VersionsError(f"{source}: must be a mapping with apiVersion, kind, kind_releases, node_images, istio")
    problems: list[str] = []
    if data.get("apiVersion") != API_VERSION or data.get("kind") != KIND_OF_FILE:
        problems.append(f"apiVersion/kind must be {API_VERSION}/{KIND_OF_FILE}")
    unknown = set(data) - {"apiVersion", "kind", "kind_releases", "node_images", "istio"}
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}")
    releases = _kind_releases(data.get("kind_releases"), problems)
    node_images, default_image = _node_images(data.get("node_images"), releases, problems)
    default_istio, minors = _istio(data.get("istio"), {n.kubernetes for n in node_images}, problems)
    if problems or default_image is None:
        raise VersionsError(f"{source}:\n  " + "\n  ".join(problems))
    kind_releases = {
        version: replace(
            release,
            node_image=default_image.image if version == default_image.kind else _newest_image(node_images, version),
        )
        for version, release in releases.items()
    }
    return Versions(kind_releases, default_image.kind, default_image.image, node_images, default_istio, minors)


def load(path: Path = VERSIONS_PATH) -> Versions:
    """Read and check a versions file (default: manifests/versions.yaml)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise VersionsError(f"{path}: cannot read the versions file: {exc}") from exc
    return parse_versions(data, str(path))


def _kind_releases(value: object, problems: list[str]) -> dict[str, KindRelease]:
    releases: dict[str, KindRelease] = {}
    if not isinstance(value, list) or not value:
        problems.append("kind_releases: must be a non-empty list")
        return releases
    for index, entry in enumerate(value):
        where = f"kind_releases[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"version", "sha256", "source"}:
            problems.append(f"{where}: must be a mapping with exactly version, sha256 and source")
            continue
        version, source = entry["version"], entry["source"]
        if not isinstance(version, str) or not _RELEASE_TAG.match(version):
            problems.append(f"{where}.version: {version!r} is not a release tag such as v0.31.0")
            continue
        if version in releases:
            problems.append(f"{where}.version: {version} is listed twice")
        if not isinstance(source, str) or not source.strip():
            problems.append(f"{where}.source: say where the checksums come from")
            source = ""
        sha256 = _checksums(entry["sha256"], KIND_PLATFORMS, f"{where}.sha256", problems)
        releases[version] = KindRelease(version, "", sha256, source.strip())
    return releases


def _checksums(value: object, platforms: frozenset[str], where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        problems.append(f"{where}: must map platforms ({', '.join(sorted(platforms))}) to sha256 hex digests")
        return {}
    checksums: dict[str, str] = {}
    for platform, digest in value.items():
        if platform not in platforms:
            problems.append(f"{where}: unknown platform {platform!r} (known: {', '.join(sorted(platforms))})")
        elif not isinstance(digest, str) or not _SHA256_HEX.match(digest):
            problems.append(f"{where}.{platform}: {digest!r} is not 64 lower-case hex digits")
        else:
            checksums[platform] = digest
    return checksums


def _node_images(
    value: object, releases: Mapping[str, KindRelease], problems: list[str]
) -> tuple[tuple[NodeImage, ...], NodeImage | None]:
    if not isinstance(value, list) or not value:
        problems.append("node_images: must be a non-empty list")
        return (), None
    images: list[NodeImage] = []
    defaults: list[NodeImage] = []
    for index, entry in enumerate(value):
        where = f"node_images[{index}]"
        keys = set(entry) if isinstance(entry, dict) else set()
        if not isinstance(entry, dict) or not {"kubernetes", "image", "kind"} <= keys <= {
            "kubernetes",
            "image",
            "kind",
            "default",
        }:
            problems.append(f"{where}: must be a mapping with kubernetes, image, kind (and optionally default)")
            continue
        kubernetes, image, kind = entry["kubernetes"], entry["image"], entry["kind"]
        if not isinstance(kubernetes, str) or not _KUBERNETES_MINOR.match(kubernetes):
            problems.append(f'{where}.kubernetes: {kubernetes!r} is not a quoted Kubernetes minor such as "1.35"')
            continue
        match = _NODE_IMAGE.match(image) if isinstance(image, str) else None
        if match is None:
            problems.append(f"{where}.image: {image!r} is not kindest/node:v1.N.P@sha256:<64 hex digits>")
            continue
        if match.group(1) != kubernetes:
            problems.append(f"{where}.image: {image} is Kubernetes {match.group(1)}, not {kubernetes}")
        if kind not in releases:
            problems.append(f"{where}.kind: {kind!r} is not the version of one of kind_releases")
        if any(n.kubernetes == kubernetes for n in images):
            problems.append(f"{where}.kubernetes: {kubernetes} is listed twice")
        node = NodeImage(kubernetes, image, str(kind))
        images.append(node)
        if entry.get("default", False) is True:
            defaults.append(node)
        elif "default" in entry and entry["default"] is not False:
            problems.append(f"{where}.default: must be true or false")
    if len(defaults) != 1:
        problems.append(f"node_images: exactly one entry must say `default: true` (found {len(defaults)})")
        return tuple(images), None
    return tuple(images), defaults[0]


_MINOR_KEYS = frozenset({"minor", "release", "gateway_api", "schemas", "kubernetes", "source"})
_OPTIONAL_MINOR_KEYS = frozenset({"istioctl_sha256", "istioctl_sha256_source"})


def _istio(value: object, kubernetes_minors: set[str], problems: list[str]) -> tuple[str, tuple[IstioMinor, ...]]:
    if not isinstance(value, dict) or set(value) != {"default", "minors"}:
        problems.append("istio: must be a mapping with exactly default and minors")
        return "", ()
    entries = value["minors"]
    if not isinstance(entries, list) or not entries:
        problems.append("istio.minors: must be a non-empty list")
        entries = []
    minors: list[IstioMinor] = []
    for index, entry in enumerate(entries):
        where = f"istio.minors[{index}]"
        minor = _istio_minor(entry, where, kubernetes_minors, problems)
        if minor is None:
            continue
        if any(m.minor == minor.minor for m in minors):
            problems.append(f"{where}.minor: {minor.minor} is listed twice")
        minors.append(minor)
    default = value["default"]
    if not isinstance(default, str) or not any(m.release.version == default for m in minors):
        problems.append(f"istio.default: {default!r} is not the release of one of istio.minors")
    return str(default), tuple(minors)


def _istio_minor(entry: object, where: str, kubernetes_minors: set[str], problems: list[str]) -> IstioMinor | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    missing, unknown = _MINOR_KEYS - set(entry), set(entry) - _MINOR_KEYS - _OPTIONAL_MINOR_KEYS
    if missing or unknown:
        problems.append(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
        return None
    minor, release, gateway_api, schemas = entry["minor"], entry["release"], entry["gateway_api"], entry["schemas"]
    if not isinstance(minor, str) or not _ISTIO_MINOR.match(minor):
        problems.append(f'{where}.minor: {minor!r} is not a quoted Istio minor such as "1.30"')
        return None
    if not isinstance(release, str) or not _ISTIO_VERSION.match(release) or not release.startswith(minor + "."):
        problems.append(f'{where}.release: {release!r} is not a quoted patch release of {minor}, e.g. "{minor}.0"')
        return None
    if not isinstance(gateway_api, str) or not _RELEASE_TAG.match(gateway_api):
        problems.append(f"{where}.gateway_api: {gateway_api!r} is not a release tag such as v1.5.1")
    if not isinstance(schemas, str) or not _SCHEMAS_DIR.match(schemas):
        problems.append(f"{where}.schemas: {schemas!r} is not a folder name such as istio-1.30.3")
    bounds = entry["kubernetes"]
    if not (
        isinstance(bounds, dict)
        and set(bounds) == {"oldest", "newest"}
        and all(isinstance(v, str) and _KUBERNETES_MINOR.match(v) for v in bounds.values())
    ):
        problems.append(f'{where}.kubernetes: must be {{oldest: "1.N", newest: "1.M"}} with quoted minors')
        return None
    oldest, newest = str(bounds["oldest"]), str(bounds["newest"])
    if _minor_number(oldest) > _minor_number(newest):
        problems.append(f"{where}.kubernetes: oldest {oldest} is newer than newest {newest}")
    for bound in dict.fromkeys((oldest, newest)):
        if bound not in kubernetes_minors:
            problems.append(f"{where}.kubernetes: no node_images entry for Kubernetes {bound}")
    source = entry["source"]
    if not isinstance(source, str) or not source.strip():
        problems.append(f"{where}.source: say where the supported Kubernetes range comes from")
        source = ""
    sha256: dict[str, str] = {}
    if "istioctl_sha256" in entry:
        sha256 = _checksums(entry["istioctl_sha256"], ISTIO_PLATFORMS, f"{where}.istioctl_sha256", problems)
        cited = entry.get("istioctl_sha256_source")
        if not isinstance(cited, str) or not cited.strip():
            problems.append(f"{where}.istioctl_sha256_source: a pinned istioctl checksum needs its source")
    elif "istioctl_sha256_source" in entry:
        problems.append(f"{where}.istioctl_sha256_source: cites a checksum, but no istioctl_sha256 is given")
    return IstioMinor(
        minor=minor,
        release=IstioRelease(release, str(gateway_api), sha256),
        schemas=str(schemas),
        kubernetes_oldest=oldest,
        kubernetes_newest=newest,
        source=source.strip(),
    )


def _minor_number(kubernetes: str) -> int:
    return int(kubernetes.split(".")[1])


def _newest_image(node_images: Sequence[NodeImage], kind: str) -> str:
    published = [n for n in node_images if n.kind == kind]
    return max(published, key=lambda n: _minor_number(n.kubernetes)).image if published else ""


# --- the harness's view ----------------------------------------------------------------------------

VERSIONS = load()

#: The default kind release (the one that publishes the default node image) and that image.
KIND = VERSIONS.kind
KIND_RELEASES: Mapping[str, KindRelease] = VERSIONS.kind_releases
NODE_IMAGES: tuple[NodeImage, ...] = VERSIONS.node_images
ISTIO_MINORS: tuple[IstioMinor, ...] = VERSIONS.minors
#: The pinned release of every supported minor, by version.
ISTIO_RELEASES: dict[str, IstioRelease] = {m.release.version: m.release for m in ISTIO_MINORS}
DEFAULT_ISTIO_VERSION = VERSIONS.default_istio
#: Gateway API bundle per Istio minor, for patch releases not pinned in ISTIO_RELEASES.
GATEWAY_API_BY_MINOR: dict[str, str] = {m.minor: m.gateway_api for m in ISTIO_MINORS}


def parse_istio_version(text: str) -> tuple[int, int, int]:
    """Parse ``1.30.3`` (a leading ``v`` is tolerated); raise ValueError otherwise."""
    match = _ISTIO_VERSION.match(text.strip().removeprefix("v"))
    if not match:
        raise ValueError(f"{text!r} is not an Istio release version such as {DEFAULT_ISTIO_VERSION}")
    return 1, int(match.group(1)), int(match.group(2))


def istio_minor(version: str) -> IstioMinor:
    """The supported minor of an Istio release version; ValueError naming the supported ones otherwise."""
    _, minor, _ = parse_istio_version(version)
    try:
        return VERSIONS.minor(f"1.{minor}")
    except ValueError:
        known = ", ".join(m.minor for m in ISTIO_MINORS)
        raise ValueError(
            f"Istio {version.strip().removeprefix('v')} is not supported (supported minors: {known})"
        ) from None


def istio_release(version: str) -> IstioRelease:
    """The pinned release record for ``version``; unknown patch releases of a known minor are allowed."""
    normalized = version.strip().removeprefix("v")
    minor = istio_minor(normalized)
    if normalized in ISTIO_RELEASES:
        return ISTIO_RELEASES[normalized]
    return IstioRelease(normalized, gateway_api=minor.gateway_api)


def kind_release_for_image(image: str) -> KindRelease | None:
    """The kind release that publishes ``image`` (a listed node image), or None for any other image."""
    for node in NODE_IMAGES:
        if node.image == image:
            return KIND_RELEASES[node.kind]
    return None


# --- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.core.versions", description=__doc__.split("\n")[0])
    parser.add_argument("--versions-file", type=Path, default=VERSIONS_PATH, help="the versions file to read")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "matrix",
        help="the nightly matrix as one line of JSON, {'include': [cell, ...]}, for GitHub's fromJSON",
    )
    args = parser.parse_args(argv)
    try:
        versions = load(args.versions_file)
    except VersionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"include": [cell.as_dict() for cell in versions.matrix()]}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
