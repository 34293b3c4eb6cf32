"""Images at other names (--image-map, --istio-hub/--istio-tag), a kind config of the user's, an extra Istio
overlay and --load-images: each validated before anything is created, each reaching what it shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.images.image_list import default_variables, load
from conformance.images.image_map import ImageMapError, load_image_map, run_images
from conformance.images.kind_loading import Commands, ImageLoadError, load_local_images
from conformance.istio.install import IstioInstaller
from conformance.settings.options import MeshMode, SettingsError
from conformance.settings.run_settings import Settings

LOCAL = MANIFESTS_DIR / "local-cluster"


def build(cli: dict[str, object] | None = None, env: dict[str, str] | None = None) -> Settings:
    return Settings.from_sources(cli or {}, env or {})


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def image_map_file(tmp_path: Path, images: dict[str, str]) -> Path:
    return write(
        tmp_path, "map.yaml", {"apiVersion": "egress-conformance/v1alpha1", "kind": "ImageMap", "images": images}
    )


# ------------------------------------------------------------------------------------------- image map


def test_the_tier_image_map_is_valid_and_covers_every_non_istio_image_of_the_list() -> None:
    mapping = load_image_map(LOCAL / "image-map.yaml", load(), default_variables())
    listed = {i.parsed.canonical for i in load().images() if i.group in ("workloads", "external-world")}
    assert set(mapping.replacements) == listed
    assert all(value.startswith("localhost/egress-conformance/") for value in mapping.replacements.values())


def test_an_image_map_rewrites_every_container_of_pods_and_templates_and_leaves_the_rest() -> None:
    mapping = load_image_map(LOCAL / "image-map.yaml", load(), default_variables())
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleep"},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "curlimages/curl:8.16.0"}],
                    "containers": [
                        {"name": "sleep", "image": "docker.io/curlimages/curl:8.16.0"},
                        {"name": "other", "image": "example.com/unmapped:1"},
                    ],
                }
            }
        },
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    rewritten, unchanged = mapping.rewrite([deployment, service])
    containers = rewritten["spec"]["template"]["spec"]
    assert containers["initContainers"][0]["image"] == "localhost/egress-conformance/curl:bookworm"
    assert containers["containers"][0]["image"] == "localhost/egress-conformance/curl:bookworm"
    assert containers["containers"][1]["image"] == "example.com/unmapped:1"
    assert unchanged == service
    # The caller's document is not changed under it.
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/curlimages/curl:8.16.0"


@pytest.mark.parametrize(
    ("images", "problem"),
    [
        ({"docker.io/library/busybox:1.36": "x/y:1"}, "'docker.io/library/busybox:1.36' is not an image of"),
        ({"docker.io/istio/pilot:1.30.3": "x/pilot:1"}, "is an Istio image: istioctl names those from --istio-hub"),
        ({"docker.io/library/nginx:1.29.3": "localhost/nginx"}, "no tag; pin an explicit version tag"),
    ],
)
def test_a_bad_image_map_entry_is_named(tmp_path: Path, images: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=r"^--image-map: ") as error:
        build({"image_map": str(image_map_file(tmp_path, images))})
    assert problem in str(error.value)


def test_an_image_map_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "map.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "images": {}})
    with pytest.raises(ImageMapError, match=r"apiVersion/kind must be egress-conformance/v1alpha1/ImageMap"):
        load_image_map(path, load(), default_variables())


def test_run_images_name_istio_images_from_the_hub_and_tag_and_map_the_rest() -> None:
    mapping = load_image_map(LOCAL / "image-map.yaml", load(), default_variables())
    images = run_images(
        load(), ["sidecar"], "1.30.3", istio_hub="registry.local/istio", istio_tag="t1", image_map=mapping
    )
    references = {image.reference for image in images}
    assert {"registry.local/istio/pilot:t1", "registry.local/istio/proxyv2:t1"} <= references
    assert "localhost/egress-conformance/curl:bookworm" in references
    assert not any(image.group == "istio-ambient" for image in images)
    ambient = run_images(load(), ["ambient"], "1.30.3", istio_hub="h/istio", istio_tag="t1")
    assert "h/istio/ztunnel:t1-distroless" in {image.reference for image in ambient}


# -------------------------------------------------------------------------------- settings, one by one


def test_istio_hub_and_tag_default_to_upstream_and_are_validated() -> None:
    settings = build()
    assert (settings.istio_hub, settings.istio_image_tag) == ("docker.io/istio", settings.istio_version)
    assert build({"istio_hub": "registry.local:5000/istio/", "istio_tag": "1.30-dev"}).istio_hub == (
        "registry.local:5000/istio"
    )
    with pytest.raises(SettingsError, match=r"^--istio-hub: 'Docker.io/Istio!'"):
        build({"istio_hub": "Docker.io/Istio!"})
    with pytest.raises(SettingsError, match=r"^--istio-tag: 'a tag'"):
        build({"istio_tag": "a tag"})


def test_a_kind_config_must_be_one_kind_cluster_config(tmp_path: Path) -> None:
    assert build({"kind_config": str(LOCAL / "kind-cluster.yaml")}).kind_config == LOCAL / "kind-cluster.yaml"
    other = write(tmp_path, "cluster.yaml", {"kind": "Config", "apiVersion": "v1"})
    with pytest.raises(SettingsError, match=r"^--kind-config: .* is not one kind config"):
        build({"kind_config": str(other)})
    with pytest.raises(SettingsError, match=r"^--kind-config: 'missing.yaml' does not exist"):
        build({"kind_config": "missing.yaml"})


def test_an_istio_overlay_must_be_one_istio_operator(tmp_path: Path) -> None:
    assert build({"istio_overlay": str(LOCAL / "istio-upstream-envoy.yaml")}).istio_overlay is not None
    other = write(tmp_path, "overlay.yaml", {"kind": "Deployment"})
    with pytest.raises(SettingsError, match=r"^--istio-overlay: .* is not one IstioOperator"):
        build({"istio_overlay": str(other)})


def test_options_of_a_harness_made_cluster_or_install_are_refused_where_nothing_is_made(tmp_path: Path) -> None:
    kubeconfig = write(
        tmp_path,
        "kubeconfig",
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": {}}],
        },
    )
    for extra in ({"load_images": True}, {"kind_config": str(LOCAL / "kind-cluster.yaml")}):
        with pytest.raises(SettingsError, match=r"^--kind-config/--load-images apply to a kind cluster"):
            build({"kubeconfig": str(kubeconfig), **extra})
    for extra in (
        {"istio_tag": "x"},
        {"istio_hub": "r.local/istio"},
        {"istio_overlay": str(LOCAL / "istio-upstream-envoy.yaml")},
    ):
        with pytest.raises(SettingsError, match=r"^--istio-hub/--istio-tag/--istio-overlay shape the Istio"):
            build({"istio": "existing", "kubeconfig": str(kubeconfig), **extra})


def test_the_environment_twins_set_them_too() -> None:
    settings = build(
        env={"EGRESS_LOAD_IMAGES": "yes", "EGRESS_ISTIO_TAG": "t2", "EGRESS_IMAGE_MAP": str(LOCAL / "image-map.yaml")}
    )
    assert settings.load_images and settings.istio_image_tag == "t2" and settings.image_map


# ------------------------------------------------------------------------------------ where they land


def test_istioctl_install_gets_the_hub_the_tag_and_the_overlay_after_the_harness_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    istioctl = tmp_path / "istioctl"
    monkeypatch.setattr("conformance.istio.install.resolve_istioctl", lambda settings: istioctl)
    overlay = str(LOCAL / "istio-upstream-envoy.yaml")
    settings = build({"istio_hub": "r.local/istio", "istio_tag": "t1", "istio_overlay": overlay})
    installer = IstioInstaller.from_settings(settings, kube=None, kubeconfig=tmp_path / "k", context=None)  # type: ignore[arg-type]
    command = installer.install_command(MeshMode.SIDECAR)
    files = [command[i + 1] for i, word in enumerate(command) if word == "-f"]
    assert files == [str(MANIFESTS_DIR / "istio" / "sidecar.yaml"), str(LOCAL / "istio-upstream-envoy.yaml")]
    sets = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    assert sets == ["hub=r.local/istio", "tag=t1"]


class RecordingCommands(Commands):
    def __init__(self, present: set[str]) -> None:
        super().__init__("docker", "kind", 10.0)
        self.present = present
        self.ran: list[list[str]] = []

    def run(self, argv, *, check=True):  # type: ignore[no-untyped-def]
        import subprocess

        self.ran.append(list(argv))
        if argv[1:3] == ["image", "inspect"]:
            return subprocess.CompletedProcess(argv, 0 if argv[-1] in self.present else 1, "[]", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_load_images_names_every_missing_image_and_loads_nothing() -> None:
    commands = RecordingCommands(present={"a/b:1"})
    with pytest.raises(ImageLoadError, match=r"2 image\(s\) .* never pulled: c/d:1, e/f:1"):
        load_local_images(["a/b:1", "c/d:1", "e/f:1"], "cluster", commands)
    assert not any(argv[1] in ("load", "pull") for argv in commands.ran)


def test_load_images_loads_all_present_images_in_one_kind_call_and_never_pulls() -> None:
    commands = RecordingCommands(present={"a/b:1", "c/d:1"})
    load_local_images(["a/b:1", "c/d:1"], "cluster", commands)
    assert commands.ran[-1] == ["kind", "load", "docker-image", "a/b:1", "c/d:1", "--name", "cluster"]
    assert not any("pull" in argv for argv in commands.ran)
