"""manifests/versions.yaml is the one source of versions: its checks, the harness's defaults, the matrix CLI,
and the kind release each node image needs."""

from __future__ import annotations

import copy
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import PROJECT_ROOT
from conformance.core import version_model, versions, versions_file
from conformance.kube.validation import CRD_SOURCES, KUBERNETES_VERSION
from conformance.platform import binaries, cluster
from conformance.settings.options import MeshMode
from conformance.settings.run_settings import Settings
from tests.fakes.executables import FakeBin, FakeExecutable

RAW: dict[str, Any] = yaml.safe_load(version_model.VERSIONS_PATH.read_text(encoding="utf-8"))


def edited(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    data.update(changes)
    return data


def problems_of(data: object) -> str:
    with pytest.raises(versions_file.VersionsError) as info:
        versions_file.parse_versions(data, "versions.yaml")
    return str(info.value)


# --- the file itself ----------------------------------------------------------------------------------


def test_every_minor_has_its_schemas_and_bundle_vendored() -> None:
    for minor in versions.ISTIO_MINORS:
        assert minor.crd_path.is_file(), minor.crd_path
        assert minor.gateway_api_bundle_path.is_file(), minor.gateway_api_bundle_path


def test_supported_kubernetes_ranges_are_the_istio_projects() -> None:
    # "officially supported on Kubernetes versions ..." in each release announcement (see `source`).
    ranges = {m.minor: (m.kubernetes_oldest, m.kubernetes_newest) for m in versions.ISTIO_MINORS}
    assert ranges == {"1.29": ("1.31", "1.35"), "1.30": ("1.32", "1.36"), "1.31": ("1.32", "1.36")}
    for minor in versions.ISTIO_MINORS:
        assert f"versions {minor.kubernetes_oldest} to {minor.kubernetes_newest}" in minor.source


def test_every_node_image_belongs_to_a_pinned_kind_release_with_checksums() -> None:
    for node in versions.NODE_IMAGES:
        release = versions.kind_release_for_image(node.image)
        assert release is not None and release.version == node.kind
        assert set(release.sha256) == versions_file.KIND_PLATFORMS
        assert node.image.startswith(f"kindest/node:v{node.kubernetes}.")


def test_kubernetes_1_36_needs_kind_v0_32_and_the_default_image_the_default_release() -> None:
    newest = versions.VERSIONS.node_image_for("1.36")
    assert versions.kind_release_for_image(newest.image) == versions.KIND_RELEASES["v0.32.0"]
    assert versions.kind_release_for_image(versions.KIND.node_image) == versions.KIND
    assert versions.KIND.version == "v0.31.0"
    assert versions.kind_release_for_image("kindest/node:v1.30.0@sha256:" + "a" * 64) is None


def test_harness_defaults_come_from_the_file() -> None:
    settings = Settings()
    assert settings.istio_version == RAW["istio"]["default"] == versions.DEFAULT_ISTIO_VERSION
    default_image = next(n["image"] for n in RAW["node_images"] if n.get("default"))
    assert settings.kind_image == default_image == versions.KIND.node_image
    default_minor = versions.istio_minor(versions.DEFAULT_ISTIO_VERSION)
    assert (default_minor.crd_path, default_minor.gateway_api_bundle_path) == CRD_SOURCES[:2]
    assert KUBERNETES_VERSION == "1.35"


def test_istio_release_of_a_pinned_or_unpinned_patch() -> None:
    assert versions.istio_release("1.29.6") == versions.ISTIO_RELEASES["1.29.6"]
    assert versions.istio_release("v1.31.4").gateway_api == "v1.6.0"
    with pytest.raises(ValueError, match=r"supported minors: 1\.29, 1\.30, 1\.31"):
        versions.istio_release("1.28.3")


def test_no_istioctl_checksum_is_pinned_without_a_source() -> None:
    # Downloads fall back to the release's published .sha256 file; a pin would need istioctl_sha256_source.
    for entry in RAW["istio"]["minors"]:
        assert ("istioctl_sha256" in entry) == ("istioctl_sha256_source" in entry)


def test_mesh_modes_are_the_harness_modes() -> None:
    assert tuple(mode.value for mode in MeshMode) == version_model.MESH_MODES


# --- checks of the file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda d: d.update(kind="Version"), "apiVersion/kind"),
        (lambda d: d.update(extra=1), "unknown top-level keys ['extra']"),
        (lambda d: d["kind_releases"][0]["sha256"].update({"linux-amd64": "ABC"}), "kind_releases[0].sha256.linux"),
        (lambda d: d["kind_releases"][0]["sha256"].update({"windows-amd64": "a" * 64}), "unknown platform"),
        (lambda d: d["kind_releases"][1].update(source=" "), "kind_releases[1].source"),
        (lambda d: d["node_images"][0].update(image="kindest/node:v1.31.14"), "node_images[0].image"),
        (lambda d: d["node_images"][0].update(kubernetes="1.32"), "is Kubernetes 1.31, not 1.32"),
        (lambda d: d["node_images"][5].update(kind="v0.33.0"), "node_images[5].kind"),
        (lambda d: d["node_images"][4].pop("default"), "exactly one entry must say `default: true`"),
        (lambda d: d["istio"]["minors"][0].update(release="1.30.1"), "istio.minors[0].release"),
        (lambda d: d["istio"]["minors"][0].update(kubernetes={"oldest": "1.30", "newest": "1.35"}), "Kubernetes 1.30"),
        (lambda d: d["istio"]["minors"][1].update(kubernetes={"oldest": "1.36", "newest": "1.32"}), "is newer than"),
        (lambda d: d["istio"]["minors"][2].update(istioctl_sha256={"osx": "a" * 64}), "istioctl_sha256_source"),
        (lambda d: d["istio"].update(default="1.28.0"), "istio.default"),
    ],
)
def test_a_bad_entry_is_refused_with_its_key_named(change: Any, named: str) -> None:
    data = copy.deepcopy(RAW)
    change(data)
    assert named in problems_of(data)


def test_every_problem_is_reported_at_once() -> None:
    data = edited(kind="Version")
    data["node_images"][0]["kind"] = "v9.9.9"
    message = problems_of(data)
    assert "apiVersion/kind" in message and "node_images[0].kind" in message


def test_the_checked_in_file_loads() -> None:
    assert versions_file.load() == versions.VERSIONS


# --- the matrix ----------------------------------------------------------------------------------------


def expected_cells() -> list[tuple[str, str, str]]:
    """(Istio release, mode, Kubernetes minor) of every cell, straight from the YAML."""
    cells = []
    for minor in RAW["istio"]["minors"]:
        for mode in ("sidecar", "ambient"):
            for kubernetes in dict.fromkeys((minor["kubernetes"]["oldest"], minor["kubernetes"]["newest"])):
                cells.append((minor["release"], mode, kubernetes))
    return cells


def test_matrix_is_every_minor_by_mode_by_oldest_and_newest_kubernetes() -> None:
    cells = versions.VERSIONS.matrix()
    assert [(c.istio, c.mode, c.kubernetes) for c in cells] == expected_cells()
    assert len(cells) == 12
    images = {n["kubernetes"]: (n["image"], n["kind"]) for n in RAW["node_images"]}
    assert all((c.node_image, c.kind) == images[c.kubernetes] for c in cells)
    assert len({c.name for c in cells}) == len(cells)


def test_matrix_command_prints_one_line_of_json_for_from_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.core.versions", "matrix"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.count("\n") == 1
    matrix = json.loads(result.stdout)
    assert matrix == {"include": [cell.as_dict() for cell in versions.VERSIONS.matrix()]}
    assert [(c["istio"], c["mode"], c["kubernetes"]) for c in matrix["include"]] == expected_cells()


def test_matrix_command_names_the_problem_of_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "versions.yaml"
    bad.write_text(yaml.safe_dump(edited(istio={"default": "1.30.3"})), encoding="utf-8")
    assert versions.main(["--versions-file", str(bad), "matrix"]) == 1
    assert "istio: must be a mapping with exactly default and minors" in capsys.readouterr().err


# --- the kind release of a node image ------------------------------------------------------------------


@pytest.fixture
def kind(fake_bin: FakeBin) -> FakeExecutable:
    fake_bin.isolate_path()  # only the fake kind is on PATH
    return fake_bin("kind")


@pytest.fixture
def linux_amd64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")


def resolve_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: FakeExecutable, image: str
) -> tuple[Path, list[binaries.DownloadSpec]]:
    downloads: list[binaries.DownloadSpec] = []

    def ensure_download(spec: binaries.DownloadSpec, cache_dir: Path) -> Path:
        downloads.append(spec)
        return cache_dir / spec.version / "kind"

    monkeypatch.setattr(binaries, "ensure_download", ensure_download)
    settings = Settings(kind_image=image, cache_dir=tmp_path / "cache")
    return cluster.resolve_kind(settings), downloads


@pytest.mark.usefixtures("linux_amd64")
def test_a_1_36_node_image_gets_kind_v0_32_with_its_pinned_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: FakeExecutable
) -> None:
    kind.on("version", stdout="kind v0.31.0 go1.25.5 linux/amd64\n")
    image = versions.VERSIONS.node_image_for("1.36").image

    resolved, downloads = resolve_with(tmp_path, monkeypatch, kind, image)

    assert resolved == tmp_path / "cache" / "v0.32.0" / "kind"
    (spec,) = downloads
    assert spec.url == "https://github.com/kubernetes-sigs/kind/releases/download/v0.32.0/kind-linux-amd64"
    assert spec.sha256 == "50030de23cf40a18505f20426f6a8506bedf13c6e509244bd1fa9463721b0f54"


@pytest.mark.usefixtures("linux_amd64")
def test_kind_on_path_of_the_images_release_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: FakeExecutable
) -> None:
    kind.on("version", stdout="kind v0.32.0 go1.26.1 linux/amd64\n")
    image = versions.VERSIONS.node_image_for("1.36").image

    resolved, downloads = resolve_with(tmp_path, monkeypatch, kind, image)

    assert (resolved, downloads) == (kind.path, [])


@pytest.mark.usefixtures("linux_amd64")
def test_the_oldest_node_image_keeps_the_default_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: FakeExecutable
) -> None:
    kind.on("version", stdout="kind v0.32.0 go1.26.1 linux/amd64\n")
    image = versions.VERSIONS.node_image_for("1.31").image

    resolved, downloads = resolve_with(tmp_path, monkeypatch, kind, image)

    assert resolved == tmp_path / "cache" / "v0.31.0" / "kind"
    assert [spec.sha256 for spec in downloads] == [versions.KIND.sha256["linux-amd64"]]


def test_readme_says_where_each_download_checksum_comes_from() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "pinned and checksum-verified" not in readme
    assert "checked against the sha256 pinned in\n`manifests/versions.yaml`" in readme
    if not any(minor.release.sha256 for minor in versions.ISTIO_MINORS):
        assert "the `.sha256` file the Istio\nrelease publishes beside the archive" in readme


def test_a_pinned_istioctl_checksum_with_its_source_is_used_for_that_release() -> None:
    data = copy.deepcopy(RAW)
    data["istio"]["minors"][1]["istioctl_sha256"] = {"linux-amd64": "c" * 64}
    data["istio"]["minors"][1]["istioctl_sha256_source"] = "the release's istioctl-1.30.3-linux-amd64.tar.gz.sha256"
    parsed = versions_file.parse_versions(data)
    assert parsed.minor("1.30").release.sha256 == {"linux-amd64": "c" * 64}
    assert parsed.minor("1.31").release.sha256 == {}
