"""The local-cluster tier's pieces that can be checked without building it: the capability filter runc runs
behind, and the agreement between the tier's image names and the manifests that name them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conformance import MANIFESTS_DIR
from tests.local_cluster import gobuild, images, tier
from tests.local_cluster.steps import TIER_DIR

WRAPPER = TIER_DIR / "oci-runtime-wrapper"
LOCAL = MANIFESTS_DIR / "local-cluster"
EVERY_CAPABILITY = f"{(1 << 41) - 1:x}"
WITHOUT_SYS_RESOURCE = f"{((1 << 41) - 1) & ~(1 << 24):x}"


def fake_runc(tmp_path: Path) -> Path:
    """A runc that records its arguments and the JSON it was handed."""
    script = tmp_path / "runc"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {tmp_path}/argv\n'
        f"[ -f {tmp_path}/bundle/config.json ] && cp {tmp_path}/bundle/config.json {tmp_path}/seen-config.json\n"
        "exit 0\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def wrap(tmp_path: Path, args: list[str], bounding: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EGRESS_WRAPPED_RUNC": str(fake_runc(tmp_path)), "EGRESS_CAPABILITY_BOUNDING": bounding}
    return subprocess.run([sys.executable, str(WRAPPER), *args], env=env, capture_output=True, text=True, check=True)


def privileged_process() -> dict[str, object]:
    names = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"]
    return {"capabilities": {key: list(names) for key in ("bounding", "effective", "permitted")}}


def test_create_drops_the_capabilities_the_machine_withholds_and_passes_every_argument_on(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": privileged_process()}), encoding="utf-8")
    args = ["--root", "/run/x", "--log", "l.json", "create", "--bundle", str(bundle), "--pid-file", "p", "ctr1"]
    wrap(tmp_path, args, WITHOUT_SYS_RESOURCE)
    assert (tmp_path / "argv").read_text().split() == args
    capabilities = json.loads((tmp_path / "seen-config.json").read_text())["process"]["capabilities"]
    assert capabilities["bounding"] == ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    assert capabilities["effective"] == capabilities["permitted"] == capabilities["bounding"]


def test_exec_filters_the_process_file_and_a_machine_with_every_capability_changes_nothing(tmp_path: Path) -> None:
    process = tmp_path / "process.json"
    process.write_text(json.dumps(privileged_process()), encoding="utf-8")
    wrap(tmp_path, ["exec", "--process", str(process), "--detach", "ctr1"], WITHOUT_SYS_RESOURCE)
    assert "CAP_SYS_RESOURCE" not in json.loads(process.read_text())["capabilities"]["effective"]
    process.write_text(json.dumps(privileged_process()), encoding="utf-8")
    wrap(tmp_path, ["exec", "--process", str(process), "ctr1"], EVERY_CAPABILITY)
    assert "CAP_SYS_RESOURCE" in json.loads(process.read_text())["capabilities"]["effective"]


def test_other_commands_pass_straight_through(tmp_path: Path) -> None:
    wrap(tmp_path, ["--root", "/run/x", "state", "ctr1"], WITHOUT_SYS_RESOURCE)
    assert (tmp_path / "argv").read_text().split() == ["--root", "/run/x", "state", "ctr1"]


def test_the_kind_config_names_the_repository_and_the_etcd_the_tier_builds() -> None:
    config = yaml.safe_load((LOCAL / "kind-cluster.yaml").read_text(encoding="utf-8"))
    cluster_configuration = yaml.safe_load(config["kubeadmConfigPatches"][0])
    assert cluster_configuration["imageRepository"] == images.KUBERNETES_REPOSITORY
    etcd = gobuild.required_version(gobuild.KUBERNETES_MODULE, "go.etcd.io/etcd/server/v3")
    assert cluster_configuration["etcd"]["local"]["imageTag"] == f"{etcd.removeprefix('v')}-0"


def test_the_cni_manifest_runs_the_kube_router_image_the_tier_builds_without_pulling() -> None:
    documents = list(yaml.safe_load_all((LOCAL / "default-cni.yaml").read_text(encoding="utf-8")))
    daemonset = next(d for d in documents if d["kind"] == "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    wanted = f"{images.KUBERNETES_REPOSITORY}/kube-router:{gobuild.kube_router().version}"
    for container in spec["initContainers"] + spec["containers"]:
        assert (container["image"], container["imagePullPolicy"]) == (wanted, "Never")
    assert "{{ .PodSubnet }}" in documents[0]["data"]["10-bridge.conflist"]


def test_every_mapped_image_is_one_the_tier_builds() -> None:
    mapped = yaml.safe_load(tier.IMAGE_MAP.read_text(encoding="utf-8"))["images"]
    built = {recipe.reference for recipe in tier._mapped_images({"go-httpbin": Path("b")}, Path("e"))}
    assert built == set(mapped.values())


def test_every_go_component_is_a_module_with_its_checksums() -> None:
    for component in (gobuild.kind(), gobuild.crictl(), gobuild.coredns(), gobuild.kube_router(), gobuild.go_httpbin()):
        assert (component.module_dir / "go.sum").is_file(), component.name
        assert component.version.startswith("v"), component.name
