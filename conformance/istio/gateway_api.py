"""The Gateway API CRDs ambient mode needs (waypoints are Gateway API Gateways).

The bundle is the standard-channel ``standard-install.yaml`` of the release the Istio release was built
against: vendored under ``manifests/gateway-api/`` or downloaded once into the cache and checked. It is
applied unless the cluster already serves every CRD of it at that bundle version or newer; what this
created is returned, so that uninstalling removes only that.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import progress
from conformance.core.processes import is_safe_download_url
from conformance.core.timeouts import Timeouts
from conformance.istio.components import IstioError, ObjectReader
from conformance.kube.api import ObjectRef
from conformance.platform import binaries

GATEWAY_API_BUNDLE_VERSION = "gateway.networking.k8s.io/bundle-version"
GATEWAY_API_CHANNEL = "gateway.networking.k8s.io/channel"
GATEWAY_API_RELEASES_URL = "https://github.com/kubernetes-sigs/gateway-api/releases/download"
GATEWAY_API_DIR = MANIFESTS_DIR / "gateway-api"

_BUNDLE_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CrdKube(ObjectReader, Protocol):
    """The part of ``conformance.kube.api.Kube`` that applying CRDs needs (what apply returns is not used)."""

    def apply(self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None) -> object: ...

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None: ...


def gateway_api_bundle_url(version: str) -> str:
    return f"{GATEWAY_API_RELEASES_URL}/{version}/standard-install.yaml"


def vendored_gateway_api_bundle(version: str) -> Path | None:
    path = GATEWAY_API_DIR / version / "standard-install.yaml"
    return path if path.is_file() else None


def bundle_version_key(text: str | None) -> tuple[int, int, int, int] | None:
    """Sortable key of ``v1.5.1`` / ``v1.5.0-rc.1`` (a pre-release sorts before its release); None if
    ``text`` is no such version."""
    match = _BUNDLE_VERSION.match(text or "")
    if match is None:
        return None
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    return major, minor, patch, 0 if match.group(4) else 1


def bundle_version_at_least(found: str | None, required: str) -> bool:
    found_key, required_key = bundle_version_key(found), bundle_version_key(required)
    if required_key is None:
        raise ValueError(f"{required!r} is not a Gateway API release version such as v1.5.1")
    return found_key is not None and found_key >= required_key


def check_gateway_api_bundle(docs: Sequence[Mapping[str, Any]], version: str, source: str) -> None:
    """Refuse a bundle unless it holds CRDs and every one is the standard channel of ``version``."""
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise IstioError(f"{source}: no CustomResourceDefinition in the Gateway API bundle")
    for crd in crds:
        annotations = _annotations(crd)
        name = _name(crd)
        if annotations.get(GATEWAY_API_BUNDLE_VERSION) != version:
            raise IstioError(
                f"{source}: CRD {name} has {GATEWAY_API_BUNDLE_VERSION}="
                f"{annotations.get(GATEWAY_API_BUNDLE_VERSION)!r}, not {version!r}; refusing the bundle"
            )
        if annotations.get(GATEWAY_API_CHANNEL) != "standard":
            raise IstioError(
                f"{source}: CRD {name} has {GATEWAY_API_CHANNEL}={annotations.get(GATEWAY_API_CHANNEL)!r}, "
                "not 'standard'; refusing the bundle"
            )


def load_gateway_api_bundle(version: str, cache_dir: Path) -> list[dict[str, Any]]:
    """The standard-channel install bundle of ``version``: vendored under manifests/gateway-api/, else
    downloaded once into the cache. The release publishes no checksum, so the content is checked
    instead: every CRD must carry the requested bundle version (``check_gateway_api_bundle``)."""
    vendored = vendored_gateway_api_bundle(version)
    if vendored is not None:
        path = vendored
    else:
        path = cache_dir / "gateway-api" / version / "standard-install.yaml"
        if not path.is_file():
            _download_gateway_api_bundle(version, path)
    docs = _parse_bundle(path.read_text(encoding="utf-8"), str(path))
    check_gateway_api_bundle(docs, version, str(path))
    return docs


def ensure_gateway_api_crds(kube: CrdKube, version: str, cache_dir: Path, timeouts: Timeouts) -> list[ObjectRef]:
    """Apply the Gateway API bundle ``version`` where the cluster lacks it; return what this created.

    A CRD is applied when it is missing or carries an older bundle version; a newer one is left alone
    (never downgraded). When every CRD is already at ``version`` or newer nothing is applied at all.
    Other objects of the bundle (the safe-upgrades admission policy) are applied only when absent.
    """
    docs = load_gateway_api_bundle(version, cache_dir)
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    others = [doc for doc in docs if doc.get("kind") != "CustomResourceDefinition"]
    current = {_name(crd): kube.get(_ref(crd)) for crd in crds}
    outdated = [
        crd
        for crd in crds
        if not bundle_version_at_least(_annotations(current[_name(crd)] or {}).get(GATEWAY_API_BUNDLE_VERSION), version)
    ]
    if not outdated:
        progress.info(f"the cluster already serves the Gateway API CRDs at {version} or newer; not applying them")
        return []
    absent_others = [doc for doc in others if kube.get(_ref(doc)) is None]
    to_apply = outdated + absent_others
    created = [_ref(doc) for doc in outdated if current[_name(doc)] is None] + [_ref(doc) for doc in absent_others]
    names = [_name(crd) for crd in outdated]
    with progress.step(f"applying Gateway API {version} CRDs ({', '.join(names)})"):
        kube.apply(to_apply)
        kube.wait_crds_established(names, timeouts.crd_established)
    return created


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in annotations.items()}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    metadata = doc.get("metadata") or {}
    return ObjectRef(str(doc["apiVersion"]), str(doc["kind"]), str(metadata["name"]), metadata.get("namespace"))


def _parse_bundle(text: str, source: str) -> list[dict[str, Any]]:
    # The C loader parses the ~1 MB bundle in well under a second (the pure-Python one takes ~1s).
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=_YAML_LOADER) if doc is not None]
    except yaml.YAMLError as exc:
        raise IstioError(f"{source}: invalid YAML: {exc}") from None
    if not all(isinstance(doc, dict) for doc in docs):
        raise IstioError(f"{source}: a document of the Gateway API bundle is not a mapping")
    return docs


def _require_safe_url(url: str) -> None:
    if not is_safe_download_url(url):
        raise IstioError(f"refusing to download {url}: only https:// URLs are used")


def _download_gateway_api_bundle(version: str, target: Path) -> None:
    url = gateway_api_bundle_url(version)
    with progress.step(f"downloading the Gateway API {version} bundle from {url}"):
        _require_safe_url(url)
        try:
            response = requests.get(url, timeout=binaries.HTTP_TIMEOUT)
            _require_safe_url(response.url)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise IstioError(f"download of {url} failed ({exc})") from None
        # Checked before caching, so a wrong bundle never lands in the cache.
        check_gateway_api_bundle(_parse_bundle(response.text, url), version, url)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=".standard-install-", suffix=".part")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(response.text)
            os.replace(name, target)
        finally:
            Path(name).unlink(missing_ok=True)
