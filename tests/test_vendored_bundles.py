"""The vendored upstream files (Istio CRDs, Gateway API bundles) are the ones their SOURCES.md records, and
every Gateway API bundle passes the check the harness runs before applying it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from conformance import MANIFESTS_DIR
from conformance.core import version_model, versions
from conformance.istio import gateway_api

VENDORED_DIRS = (MANIFESTS_DIR / "schemas", MANIFESTS_DIR / "gateway-api")
_TABLE_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| .* \| `(?P<sha256>[0-9a-f]{64})` \|$", re.M)
_FILE_HEADER = re.compile(r"^---\n#\n# config/crd/standard/(?P<name>[^\n]+)\n#\n", re.M)


def recorded_checksums(folder: Path) -> dict[str, str]:
    text = (folder / "SOURCES.md").read_text(encoding="utf-8")
    return {m.group("file"): m.group("sha256") for m in _TABLE_ROW.finditer(text)}


@pytest.mark.parametrize("folder", VENDORED_DIRS, ids=lambda p: p.name)
def test_sources_md_records_every_vendored_file_with_its_sha256(folder: Path) -> None:
    files = {str(p.relative_to(folder)): p for p in folder.rglob("*.yaml")}
    recorded = recorded_checksums(folder)
    assert set(recorded) == set(files)
    actual = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    assert actual == recorded


def test_every_supported_minor_uses_vendored_files() -> None:
    vendored = set(recorded_checksums(MANIFESTS_DIR / "schemas")) | {
        f"gateway-api/{name}" for name in recorded_checksums(MANIFESTS_DIR / "gateway-api")
    }
    for minor in versions.ISTIO_MINORS:
        assert f"{minor.schemas}/crd-all.gen.yaml" in vendored
        assert f"gateway-api/{minor.gateway_api}/standard-install.yaml" in vendored


@pytest.mark.parametrize("minor", versions.ISTIO_MINORS, ids=lambda m: f"istio-{m.minor}")
def test_the_bundle_of_each_minor_passes_the_pre_apply_check(minor: version_model.IstioMinor, tmp_path: Path) -> None:
    # Vendored, so nothing is downloaded into the cache; the standard-channel / bundle-version check runs.
    docs = gateway_api.load_gateway_api_bundle(minor.gateway_api, tmp_path)
    assert not any(tmp_path.iterdir())
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert {d["metadata"]["name"] for d in crds} >= {
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "gatewayclasses.gateway.networking.k8s.io",
    }


@pytest.mark.parametrize(
    "bundle", sorted((MANIFESTS_DIR / "gateway-api").glob("*/standard-install.yaml")), ids=lambda p: p.parent.name
)
def test_bundle_is_assembled_like_the_release_asset(bundle: Path) -> None:
    # hack/build-install-yaml.sh: header, then every config/crd/standard/gateway*.yaml in name order, each
    # after `---` and a comment naming it.
    text = bundle.read_text(encoding="utf-8")
    assert "\n#\n# Gateway API Standard channel install\n#\n---\n" in text
    names = [m.group("name") for m in _FILE_HEADER.finditer(text)]
    assert names and names == sorted(names)
    assert all(name.startswith("gateway.networking.k8s.io_") and name.endswith(".yaml") for name in names)
    assert text.count("\nkind: CustomResourceDefinition\n") == sum("vap_" not in name for name in names)
