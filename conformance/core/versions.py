"""Every pinned version, read from ``manifests/versions.yaml`` (the one place to bump them).

That file lists the kind releases (with the sha256 of their binaries), the kind node images by Kubernetes
minor (by digest, each with the kind release that publishes it), and the supported Istio minors (the pinned
patch release, its Gateway API bundle, its CRD schemas, and the Kubernetes minors Istio supports for it).
From it (``conformance.core.versions_file`` reads and checks it into the records of
``conformance.core.version_model``) this module gives the harness its defaults, validation its schemas per
minor, and the nightly workflow its matrix: ``python -m conformance.core.versions matrix`` prints the matrix as JSON.

Checksums: a kind download must match the sha256 pinned here. istioctl archives have no pinned sha256
(unless a release's ``istioctl_sha256`` gives one): the download is verified against the ``.sha256`` file
the Istio release publishes beside the archive, fetched from the same release server over HTTPS.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from conformance.core.version_model import VERSIONS_PATH, IstioMinor, IstioRelease, KindRelease, NodeImage
from conformance.core.versions_file import ISTIO_VERSION_PATTERN, VersionsError, load

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
    match = ISTIO_VERSION_PATTERN.match(text.strip().removeprefix("v"))
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
