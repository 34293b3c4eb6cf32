"""The kind wrapper at its process boundary: fake `kind` and `docker` executables record their argv."""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from pathlib import Path

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import versions
from conformance.core.timeouts import Timeouts
from conformance.platform import binaries, cluster
from conformance.platform.cluster import ClusterError, ClusterHandle, KindCluster, KindVersion, provide_cluster
from conformance.settings.run_settings import Settings
from tests.fakes.executables import FakeBin, FakeExecutable

NAME = "egress-conformance"
KIND_CONFIG = MANIFESTS_DIR / "kind" / "cluster.yaml"
DOCKER_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"


@pytest.fixture(autouse=True)
def _no_provider_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)


@pytest.fixture
def progress_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="conformance")
    return caplog


@pytest.fixture
def docker(fake_bin: FakeBin) -> FakeExecutable:
    fake_bin.isolate_path()  # the machine's own docker (if any) must not answer
    return fake_bin("docker").on("info", stdout="Server Version: 28.1.1\n")


@pytest.fixture
def kind(fake_bin: FakeBin) -> FakeExecutable:
    return fake_bin("kind", record_env=("KIND_EXPERIMENTAL_PROVIDER",))


def make_settings(tmp_path: Path, kind: FakeExecutable, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "cache_dir": tmp_path / "cache",
        "kind_bin": kind.path,
        "timeouts": Timeouts(cluster_create=42.5, delete=30.0),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def kubeconfig_of(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "kubeconfig" / NAME


def create_argv(tmp_path: Path, settings: Settings) -> list[str]:
    return [
        "create",
        "cluster",
        "--name",
        NAME,
        "--kubeconfig",
        str(kubeconfig_of(tmp_path)),
        "--config",
        str(KIND_CONFIG),
        "--image",
        settings.kind_image,
        "--wait",
        "43s",
    ]


def delete_argv(tmp_path: Path) -> list[str]:
    return ["delete", "cluster", "--name", NAME, "--kubeconfig", str(kubeconfig_of(tmp_path))]


def no_clusters(kind: FakeExecutable) -> None:
    kind.on("get", "clusters", stderr="No kind clusters found.\n")


# --- provide_cluster ----------------------------------------------------------------------------------------


def test_creates_then_deletes_a_new_cluster(tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable) -> None:
    no_clusters(kind)
    settings = make_settings(tmp_path, kind)

    with provide_cluster(settings) as handle:
        assert handle == ClusterHandle(
            name=NAME, kubeconfig=kubeconfig_of(tmp_path), context=f"kind-{NAME}", created=True, managed=True
        )
        assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings)]

    assert kind.argvs()[2:] == [delete_argv(tmp_path)]
    assert docker.argvs() == [["info"]]


def test_create_passes_the_node_image_option(tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable) -> None:
    no_clusters(kind)
    image = "kindest/node:v1.34.0@sha256:" + "7" * 64
    settings = make_settings(tmp_path, kind, kind_image=image, keep_cluster=True)

    with provide_cluster(settings):
        pass

    assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings)]
    assert create_argv(tmp_path, settings)[-3] == image


def test_deletes_when_the_body_raises(tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable) -> None:
    no_clusters(kind)

    with (
        pytest.raises(RuntimeError, match="scenario blew up"),
        provide_cluster(make_settings(tmp_path, kind)),
    ):
        raise RuntimeError("scenario blew up")

    assert kind.argvs()[-1] == delete_argv(tmp_path)


def test_failed_delete_does_not_hide_the_body_error(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable, progress_lines: pytest.LogCaptureFixture
) -> None:
    no_clusters(kind)
    kind.on("delete", "cluster", exit_code=1, stderr="ERROR: failed to delete cluster\n")

    with (
        pytest.raises(RuntimeError, match="scenario blew up"),
        provide_cluster(make_settings(tmp_path, kind)),
    ):
        raise RuntimeError("scenario blew up")

    assert kind.argvs()[-1] == delete_argv(tmp_path)
    assert "could not delete kind cluster" in progress_lines.text


def test_failed_delete_after_a_clean_run_is_an_error(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable
) -> None:
    no_clusters(kind)
    kind.on("delete", "cluster", exit_code=1, stderr="ERROR: failed to delete cluster\n")

    with (
        pytest.raises(ClusterError, match="failed to delete cluster"),
        provide_cluster(make_settings(tmp_path, kind)),
    ):
        pass


def test_half_created_cluster_is_deleted(tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable) -> None:
    no_clusters(kind)
    kind.on("create", "cluster", exit_code=1, stderr="Creating cluster ...\nERROR: failed to create cluster: x\n")
    settings = make_settings(tmp_path, kind)

    with pytest.raises(ClusterError) as raised, provide_cluster(settings):
        pytest.fail("the body must not run when creation failed")

    message = str(raised.value)
    assert f"{kind.path} create cluster --name {NAME}" in message
    assert "exit code 1" in message
    assert "ERROR: failed to create cluster: x" in message
    assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings), delete_argv(tmp_path)]


def test_half_created_cluster_is_kept_with_keep_cluster(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable
) -> None:
    no_clusters(kind)
    kind.on("create", "cluster", exit_code=1, stderr="ERROR: failed to create cluster\n")

    with pytest.raises(ClusterError), provide_cluster(make_settings(tmp_path, kind, keep_cluster=True)):
        pass

    assert [argv[0] for argv in kind.argvs()] == ["get", "create"]


def test_keep_cluster_skips_delete_and_says_how_to_reach_it(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable, progress_lines: pytest.LogCaptureFixture
) -> None:
    no_clusters(kind)
    settings = make_settings(tmp_path, kind, keep_cluster=True)

    with provide_cluster(settings) as handle:
        assert handle.created and handle.managed

    assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings)]
    assert f"--kubeconfig {kubeconfig_of(tmp_path)} --context kind-{NAME}" in progress_lines.text
    assert f"{kind.path} delete cluster --name {NAME}" in progress_lines.text


def test_a_failed_check_kept_for_inspection_keeps_the_cluster(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable, progress_lines: pytest.LogCaptureFixture
) -> None:
    no_clusters(kind)
    settings = make_settings(tmp_path, kind)
    decided: list[str | None] = [None]

    with provide_cluster(settings, kept=lambda: decided[0]):
        # Asked on exit, not on entry: the failure happens while the cluster is in use.
        decided[0] = "--keep-on-failure: EGW-02 (sidecar) failed"

    assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings)]
    assert "kept (--keep-on-failure: EGW-02 (sidecar) failed)" in progress_lines.text
    assert f"{kind.path} delete cluster --name {NAME}" in progress_lines.text


def test_reuses_an_existing_cluster_with_reuse_cluster(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable, progress_lines: pytest.LogCaptureFixture
) -> None:
    kind.on("get", "clusters", stdout=f"other\n{NAME}\n")

    with provide_cluster(make_settings(tmp_path, kind, reuse_cluster=True)) as handle:
        assert handle == ClusterHandle(
            name=NAME, kubeconfig=kubeconfig_of(tmp_path), context=f"kind-{NAME}", created=False, managed=True
        )

    assert kind.argvs() == [
        ["get", "clusters"],
        ["export", "kubeconfig", "--name", NAME, "--kubeconfig", str(kubeconfig_of(tmp_path))],
    ]
    assert "left in place (reused)" in progress_lines.text


def test_reuse_cluster_creates_when_absent_and_keeps_it(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable
) -> None:
    kind.on("get", "clusters", stdout="someone-else\n")
    settings = make_settings(tmp_path, kind, reuse_cluster=True)

    with provide_cluster(settings) as handle:
        assert handle.created

    assert kind.argvs() == [["get", "clusters"], create_argv(tmp_path, settings)]


def test_refuses_an_existing_cluster_without_reuse(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable
) -> None:
    kind.on("get", "clusters", stdout=f"{NAME}\n")

    with (
        pytest.raises(ClusterError, match="--reuse-cluster") as raised,
        provide_cluster(make_settings(tmp_path, kind)),
    ):
        pytest.fail("the body must not run")

    assert "--cluster-name" in str(raised.value)
    assert str(raised.value).endswith(f"delete it with `{kind.path} delete cluster --name {NAME}`")
    assert kind.argvs() == [["get", "clusters"]]


def test_existing_kubeconfig_never_calls_kind_or_docker(
    tmp_path: Path, docker: FakeExecutable, kind: FakeExecutable
) -> None:
    kubeconfig = tmp_path / "vendor.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "vendor", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "contexts": [{"name": "vendor-admin", "context": {"cluster": "vendor", "user": "admin"}}],
                "users": [{"name": "admin", "user": {}}],
                "current-context": "vendor-admin",
            }
        )
    )

    with provide_cluster(make_settings(tmp_path, kind, kubeconfig=kubeconfig)) as handle:
        assert handle == ClusterHandle(
            name="vendor-admin", kubeconfig=kubeconfig, context=None, created=False, managed=False
        )

    assert kind.argvs() == []
    assert docker.argvs() == []


def test_existing_kubeconfig_keeps_the_chosen_context(tmp_path: Path, kind: FakeExecutable) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("current-context: a\n")

    with provide_cluster(make_settings(tmp_path, kind, kubeconfig=kubeconfig, kube_context="b")) as handle:
        assert (handle.name, handle.context, handle.managed) == ("b", "b", False)
    assert kind.argvs() == []


def test_no_container_engine_stops_before_kind(tmp_path: Path, fake_bin: FakeBin, kind: FakeExecutable) -> None:
    fake_bin.isolate_path()

    with (
        pytest.raises(ClusterError, match="no container engine"),
        provide_cluster(make_settings(tmp_path, kind)),
    ):
        pass

    assert kind.argvs() == []


def test_kind_runs_with_the_callers_provider_setting(
    tmp_path: Path, fake_bin: FakeBin, kind: FakeExecutable, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin.isolate_path()
    podman = fake_bin("podman").on("info")
    monkeypatch.setenv("KIND_EXPERIMENTAL_PROVIDER", "podman")
    no_clusters(kind)

    with provide_cluster(make_settings(tmp_path, kind)):
        pass

    assert podman.argvs() == [["info"]]
    assert {call.env.get("KIND_EXPERIMENTAL_PROVIDER") for call in kind.calls()} == {"podman"}


# --- KindCluster ------------------------------------------------------------------------------------------


def kind_cluster(tmp_path: Path, kind: FakeExecutable, timeouts: Timeouts | None = None) -> KindCluster:
    return KindCluster(
        name=NAME,
        kind_bin=kind.path,
        kubeconfig_path=kubeconfig_of(tmp_path),
        config_path=KIND_CONFIG,
        node_image=versions.KIND.node_image,
        timeouts=timeouts or Timeouts(),
    )


@pytest.mark.parametrize(
    ("stdout", "exists"),
    [("", False), (f"{NAME}\n", True), (f"{NAME}-2\nkind\n", False), (f"kind\n{NAME}\n", True)],
)
def test_exists_matches_whole_names(tmp_path: Path, kind: FakeExecutable, stdout: str, exists: bool) -> None:
    kind.on("get", "clusters", stdout=stdout)

    assert kind_cluster(tmp_path, kind).exists() is exists
    assert kind.argvs() == [["get", "clusters"]]


def test_kind_command_past_its_deadline_is_killed(tmp_path: Path, kind: FakeExecutable) -> None:
    kind.on("get", "clusters", delay=30)
    started = time.monotonic()

    with pytest.raises(ClusterError, match=r"did not finish within 0\.2s \(deadline delete"):
        kind_cluster(tmp_path, kind, Timeouts(delete=0.2)).exists()
    assert time.monotonic() - started < 5


# --- kind binary ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "parsed", "recent"),
    [
        ("kind v0.31.0 go1.25.5 linux/amd64\n", KindVersion(0, 31, 0), True),
        ("kind v0.24.0 go1.22.6 darwin/arm64\n", KindVersion(0, 24, 0), True),
        ("kind v0.23.0 go1.22.2 linux/amd64\n", KindVersion(0, 23, 0), False),
        ("kind v0.24.0-alpha+1a2b3c go1.22 linux/amd64\n", KindVersion(0, 24, 0, "-alpha+1a2b3c"), False),
        ("kind v0.32.0-alpha.12+abc go1.26 linux/amd64\n", KindVersion(0, 32, 0, "-alpha.12+abc"), True),
        ("kind v1.0.0 go1.27 linux/amd64\n", KindVersion(1, 0, 0), True),
    ],
)
def test_kind_version(output: str, parsed: KindVersion, recent: bool) -> None:
    version = KindVersion.parse(output)
    assert version == parsed
    assert version.at_least(cluster.KIND_MIN_VERSION) is recent


def test_explicit_kind_bin_is_used_as_is(tmp_path: Path, kind: FakeExecutable) -> None:
    assert cluster.resolve_kind(make_settings(tmp_path, kind)) == kind.path
    assert kind.argvs() == []


def test_recent_kind_on_path_is_used(tmp_path: Path, kind: FakeExecutable) -> None:
    kind.on("version", stdout="kind v0.31.0 go1.25.5 linux/amd64\n")

    assert cluster.resolve_kind(make_settings(tmp_path, kind, kind_bin=None)) == kind.path
    assert kind.argvs() == [["version"]]


@pytest.mark.parametrize(
    "reply",
    [
        {"stdout": "kind v0.23.0 go1.22.2 linux/amd64\n"},
        {"stdout": "something else\n"},
        {"exit_code": 2, "stderr": "unknown command\n"},
    ],
)
def test_old_or_unknown_kind_on_path_falls_back_to_the_pinned_release(
    tmp_path: Path,
    kind: FakeExecutable,
    monkeypatch: pytest.MonkeyPatch,
    progress_lines: pytest.LogCaptureFixture,
    reply: dict[str, object],
) -> None:
    kind.on("version", **reply)  # type: ignore[arg-type]
    downloads: list[tuple[binaries.DownloadSpec, Path]] = []

    def fake_download(spec: binaries.DownloadSpec, cache_dir: Path) -> Path:
        downloads.append((spec, cache_dir))
        return cache_dir / "kind" / spec.version / "kind"

    monkeypatch.setattr(binaries, "ensure_download", fake_download)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")

    resolved = cluster.resolve_kind(make_settings(tmp_path, kind, kind_bin=None))

    assert resolved == tmp_path / "cache" / "kind" / versions.KIND.version / "kind"
    [(spec, cache_dir)] = downloads
    assert cache_dir == tmp_path / "cache"
    assert spec.url == (
        f"https://github.com/kubernetes-sigs/kind/releases/download/{versions.KIND.version}/kind-linux-amd64"
    )
    assert spec.checksum_url == spec.url + ".sha256sum"
    assert f"pinned kind {versions.KIND.version}" in progress_lines.text


# --- container engine -------------------------------------------------------------------------------------


def test_engine_ok(docker: FakeExecutable) -> None:
    assert cluster.container_engine_problem() is None
    assert docker.argvs() == [["info"]]


def test_engine_missing_is_reported_at_once(fake_bin: FakeBin) -> None:
    fake_bin.isolate_path()
    started = time.monotonic()

    problem = cluster.container_engine_problem()

    assert time.monotonic() - started < 1
    assert problem is not None
    assert problem.startswith("no container engine: install Docker")
    assert "KIND_EXPERIMENTAL_PROVIDER=podman" in problem
    assert "--kubeconfig PATH" in problem


def test_engine_failing_shows_what_it_said(fake_bin: FakeBin) -> None:
    fake_bin.isolate_path()
    docker = fake_bin("docker").on("info", exit_code=1, stderr=DOCKER_DOWN)

    problem = cluster.container_engine_problem()

    assert problem is not None
    assert problem.startswith("no container engine: `docker info` failed (exit code 1: Cannot connect to the")
    assert "--kubeconfig PATH" in problem
    assert docker.argvs() == [["info"]]


def test_engine_hanging_is_cut_off(fake_bin: FakeBin) -> None:
    fake_bin.isolate_path()
    fake_bin("docker").on("info", delay=30)
    started = time.monotonic()

    problem = cluster.container_engine_problem(timeout=0.2)

    assert time.monotonic() - started < 5
    assert problem is not None
    assert problem.startswith("no container engine: `docker info` did not answer within 0.2s")


def test_engine_hanging_with_a_child_holding_its_output_is_cut_off(fake_bin: FakeBin) -> None:
    # Killing only the direct child would leave `sleep` holding the output pipe open until it exits.
    fake_bin.isolate_path()
    docker = fake_bin.directory / "docker"
    docker.write_text("#!/bin/sh\n/bin/sleep 30 &\nwait\n")
    docker.chmod(0o755)
    started = time.monotonic()

    problem = cluster.container_engine_problem(timeout=0.2)

    assert time.monotonic() - started < 5
    assert problem is not None
    assert problem.startswith("no container engine: `docker info` did not answer within 0.2s")


def test_engine_follows_kind_provider_override(fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin.isolate_path()
    docker = fake_bin("docker").on("info", exit_code=1, stderr=DOCKER_DOWN)
    podman = fake_bin("podman").on("info")
    monkeypatch.setenv("KIND_EXPERIMENTAL_PROVIDER", "podman")

    assert cluster.container_engine_problem() is None
    assert podman.argvs() == [["info"]]
    assert docker.argvs() == []


def test_engine_override_to_a_missing_engine(fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin.isolate_path()
    fake_bin("docker").on("info")
    monkeypatch.setenv("KIND_EXPERIMENTAL_PROVIDER", "nerdctl")

    problem = cluster.container_engine_problem()

    assert problem is not None
    assert problem.startswith("no container engine: KIND_EXPERIMENTAL_PROVIDER=nerdctl but `nerdctl` is not on")


def test_engine_autodetects_like_kind(fake_bin: FakeBin) -> None:
    fake_bin.isolate_path()
    podman = fake_bin("podman").on("info")

    assert cluster.container_engine_problem() is None
    assert podman.argvs() == [["info"]]


# --- kind config ----------------------------------------------------------------------------------------


def test_kind_config_is_a_single_node_with_the_pinned_image() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text(encoding="utf-8"))

    assert cluster.KIND_CONFIG == KIND_CONFIG
    assert (config["apiVersion"], config["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    assert config["nodes"] == [{"role": "control-plane", "image": versions.KIND.node_image}]
    assert Settings().kind_image == versions.KIND.node_image


def test_kind_config_keeps_the_default_cni() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text(encoding="utf-8"))

    assert config.get("networking", {}).get("disableDefaultCNI", False) is False
    assert config.get("networking", {}).get("kubeProxyMode", "iptables") != "none"


@pytest.mark.parametrize(
    "node_image, accepted",
    [
        (versions.KIND.node_image, False),  # the default image is built for the pinned kind release only
        ("kindest/node:v1.31.0@sha256:" + "b" * 64, True),  # the user chose an image for their kind
    ],
)
def test_other_kind_release_on_path_is_used_only_with_a_chosen_node_image(
    tmp_path: Path, kind: FakeExecutable, monkeypatch: pytest.MonkeyPatch, node_image: str, accepted: bool
) -> None:
    kind.on("version", stdout="kind v0.24.0 go1.22.6 linux/amd64\n")
    monkeypatch.setattr(binaries, "ensure_download", lambda spec, cache_dir: cache_dir / "pinned-kind")
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    settings = dataclasses.replace(make_settings(tmp_path, kind, kind_bin=None), kind_image=node_image)
    resolved = cluster.resolve_kind(settings)
    assert resolved == (kind.path if accepted else tmp_path / "cache" / "pinned-kind")
