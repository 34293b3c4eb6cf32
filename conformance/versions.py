"""Pinned versions of everything the harness installs or downloads.

One place to bump: the kind release and its node image (by digest), the Istio releases the harness knows,
and the Gateway API CRD bundle each Istio minor expects.

Checksums: a sha256 listed here is compared with the download. Where none is listed for a platform, the
release's own published checksum file (``<asset>.sha256sum`` for kind, ``<asset>.sha256`` for Istio) is
fetched over HTTPS beside the asset and the download must match it; a mismatch is always fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KindRelease:
    version: str
    #: Default node image for this release, pinned by digest (kind release notes).
    node_image: str
    #: sha256 per platform ("linux-amd64", "darwin-arm64", ...) of the kind binary.
    sha256: dict[str, str] = field(default_factory=dict)

    def binary_url(self, platform: str) -> str:
        return f"https://github.com/kubernetes-sigs/kind/releases/download/{self.version}/kind-{platform}"

    def checksum_url(self, platform: str) -> str:
        return self.binary_url(platform) + ".sha256sum"


@dataclass(frozen=True)
class IstioRelease:
    version: str
    #: Gateway API CRD bundle the release was built and tested against (its go.mod / test CRDs).
    gateway_api: str
    #: sha256 per platform of istioctl-<version>-<platform>.tar.gz.
    sha256: dict[str, str] = field(default_factory=dict)

    def archive_name(self, platform: str) -> str:
        return f"istioctl-{self.version}-{platform}.tar.gz"

    def archive_url(self, platform: str) -> str:
        return f"https://github.com/istio/istio/releases/download/{self.version}/{self.archive_name(platform)}"

    def checksum_url(self, platform: str) -> str:
        return self.archive_url(platform) + ".sha256"


# kind >= v0.24 enforces NetworkPolicy (kindnetd embeds kube-network-policies), which NSD-06 / AMB-02 need.
# v0.31.0 builds Kubernetes 1.35 nodes: inside the 1.32-1.36 range Istio 1.30/1.31 support, and the
# version Istio's own kind CI uses.
KIND = KindRelease(
    version="v0.31.0",
    node_image="kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f",
    # The release's kind-<platform>.sha256sum files, as pinned identically by many independent projects.
    sha256={
        "linux-amd64": "eb244cbafcc157dff60cf68693c14c9a75c4e6e6fedaf9cd71c58117cb93e3fa",
        "linux-arm64": "8e1014e87c34901cc422a1445866835d1e666f2a61301c27e722bdeab5a1f7e4",
        "darwin-amd64": "a8b3cf77b2ad77aec5bf710d1a2589d9117576132af812885cad41e9dede4d4e",
        "darwin-arm64": "88bf554fe9da6311c9f8c2d082613c002911a476f6b5090e9420b35d84e70c5c",
    },
)

# No citable istioctl checksum was found for these releases: downloads are verified against the
# release's published ``.sha256`` file (format ``<hex> <archive name>``).
ISTIO_RELEASES: dict[str, IstioRelease] = {
    r.version: r
    for r in (
        IstioRelease("1.29.6", gateway_api="v1.4.1"),
        IstioRelease("1.30.3", gateway_api="v1.5.1"),
        IstioRelease("1.31.1", gateway_api="v1.6.0"),
    )
}

DEFAULT_ISTIO_VERSION = "1.30.3"

#: Gateway API bundle per Istio minor, for versions not listed in ISTIO_RELEASES.
GATEWAY_API_BY_MINOR: dict[str, str] = {"1.29": "v1.4.1", "1.30": "v1.5.1", "1.31": "v1.6.0"}

_ISTIO_VERSION = re.compile(r"^1\.(\d+)\.(\d+)$")


def parse_istio_version(text: str) -> tuple[int, int, int]:
    """Parse ``1.30.3`` (a leading ``v`` is tolerated); raise ValueError otherwise."""
    match = _ISTIO_VERSION.match(text.strip().removeprefix("v"))
    if not match:
        raise ValueError(f"{text!r} is not an Istio release version such as {DEFAULT_ISTIO_VERSION}")
    return 1, int(match.group(1)), int(match.group(2))


def istio_release(version: str) -> IstioRelease:
    """The pinned release record for ``version``; unknown patch releases of a known minor are allowed."""
    _, minor, _ = parse_istio_version(version)
    normalized = version.strip().removeprefix("v")
    if normalized in ISTIO_RELEASES:
        return ISTIO_RELEASES[normalized]
    gateway_api = GATEWAY_API_BY_MINOR.get(f"1.{minor}")
    if gateway_api is None:
        known = ", ".join(sorted(GATEWAY_API_BY_MINOR))
        raise ValueError(f"Istio {normalized} is not supported (supported minors: {known})")
    return IstioRelease(normalized, gateway_api=gateway_api)
