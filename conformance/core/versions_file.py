"""Reading and checking ``manifests/versions.yaml``: a malformed file stops the run with every problem
named by its key."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from conformance import DATA_API_VERSION
from conformance.core.version_model import VERSIONS_PATH, IstioMinor, IstioRelease, KindRelease, NodeImage, Versions

API_VERSION = DATA_API_VERSION
KIND_OF_FILE = "Versions"
#: Platforms a kind sha256 may be pinned for (kind's asset names: kind-<platform>).
KIND_PLATFORMS = frozenset({"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"})
#: Platforms an istioctl sha256 may be pinned for (Istio's asset names: istioctl-<version>-<platform>.tar.gz).
ISTIO_PLATFORMS = frozenset({"linux-amd64", "linux-arm64", "osx", "osx-arm64"})

#: An Istio release version, 1.<minor>.<patch> (conformance.core.versions parses it with this too).
ISTIO_VERSION_PATTERN = re.compile(r"^1\.(\d+)\.(\d+)$")
_ISTIO_MINOR = re.compile(r"^1\.\d+$")
_KUBERNETES_MINOR = re.compile(r"^1\.(\d+)$")
_RELEASE_TAG = re.compile(r"^v\d+\.\d+\.\d+$")
_NODE_IMAGE = re.compile(r"^kindest/node:v(1\.\d+)\.\d+@sha256:[0-9a-f]{64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SCHEMAS_DIR = re.compile(r"^istio-1\.\d+\.\d+(-[0-9A-Za-z.]+)?$")


class VersionsError(ValueError):
    """manifests/versions.yaml is malformed; the message lists every problem with its key."""


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
    if not isinstance(release, str) or not ISTIO_VERSION_PATTERN.match(release) or not release.startswith(minor + "."):
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
