"""Settings: command line beats environment beats default; bad values stop the run with a named option."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.core import versions
from conformance.settings.options import OPTIONS, EtpProvider, IstioSource, MeshMode, SettingsError
from conformance.settings.run_settings import Settings
from conformance.settings.value_checks import check_writable_directory


def build(cli: dict[str, object] | None = None, env: dict[str, str] | None = None) -> Settings:
    return Settings.from_sources(cli or {}, env or {})


def kubeconfig(tmp_path: Path, current: str | None = "kind-x") -> Path:
    path = tmp_path / "kubeconfig"
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
        "users: [{name: u, user: {}}]",
        "contexts: [{name: kind-x, context: {cluster: c, user: u}}, {name: other, context: {cluster: c, user: u}}]",
    ]
    if current:
        lines.append(f"current-context: {current}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_defaults() -> None:
    s = build()
    assert s.mesh_modes == (MeshMode.SIDECAR, MeshMode.AMBIENT)
    assert s.istio_version == versions.DEFAULT_ISTIO_VERSION
    assert s.istio_source is IstioSource.INSTALL
    assert s.kubeconfig is None and not s.uses_existing_cluster
    assert s.cluster_name == "egress-conformance"
    assert s.kind_image == versions.KIND.node_image
    assert not s.keeps_cluster
    assert s.timeouts.converge == 120.0


def test_every_option_has_an_environment_twin() -> None:
    assert all(opt.env.startswith("EGRESS_") for opt in OPTIONS)
    assert len({opt.env for opt in OPTIONS}) == len(OPTIONS)
    flags = {opt.flag for opt in OPTIONS}
    for familiar in ("--cluster-name", "--keep-cluster", "--kubeconfig", "--kind-image", "--kind-bin"):
        assert familiar in flags


def test_cli_beats_environment_beats_default() -> None:
    assert build(env={"EGRESS_MESH_MODE": "ambient"}).mesh_modes == (MeshMode.AMBIENT,)
    s = build(cli={"mesh_mode": "sidecar"}, env={"EGRESS_MESH_MODE": "ambient"})
    assert s.mesh_modes == (MeshMode.SIDECAR,)


def test_flags_from_environment() -> None:
    assert build(env={"EGRESS_KEEP_CLUSTER": "yes"}).keep_cluster
    assert build(env={"EGRESS_REUSE_CLUSTER": "1"}).keeps_cluster
    assert not build(env={"EGRESS_KEEP_CLUSTER": "0"}).keep_cluster
    with pytest.raises(SettingsError, match=r"EGRESS_KEEP_CLUSTER.*--keep-cluster"):
        build(env={"EGRESS_KEEP_CLUSTER": "maybe"})


def test_timeout_scale_scales_every_deadline_but_the_poll_interval() -> None:
    s = build(cli={"timeout_scale": "2.5"})
    assert s.timeouts.converge == 300.0
    assert s.timeouts.cluster_create == 750.0
    assert s.timeouts.poll_interval == 1.0


@pytest.mark.parametrize(
    "cli, message",
    [
        ({"mesh_mode": "hybrid"}, r"--mesh-mode: 'hybrid' is not one of sidecar, ambient, both"),
        ({"istio_version": "latest"}, r"--istio-version: 'latest' is not an Istio release version"),
        ({"istio_version": "1.12.0"}, r"--istio-version: Istio 1.12.0 is not supported \(supported minors"),
        ({"istio": "helm"}, r"--istio: 'helm' is not one of install, existing"),
        ({"cluster_name": "Egress_Test"}, r"--cluster-name: 'Egress_Test' is not a valid kind cluster name"),
        ({"kind_image": "kindest/node"}, r"--kind-image: .* with a tag"),
        ({"timeout_scale": "0"}, r"--timeout-scale: '0' is not a number from 0.1 to 100"),
        ({"timeout_scale": "1e-300"}, r"--timeout-scale: '1e-300' is not a number from 0.1 to 100"),
        ({"timeout_scale": "0.09"}, r"--timeout-scale: '0.09'"),
        ({"timeout_scale": "100.5"}, r"--timeout-scale: '100.5'"),
        ({"timeout_scale": "nan"}, r"--timeout-scale: 'nan'"),
        ({"timeout_scale": "inf"}, r"--timeout-scale: 'inf'"),
        ({"timeout_scale": "fast"}, r"--timeout-scale: 'fast'"),
        ({"kubeconfig": "/nonexistent/kubeconfig"}, r"--kubeconfig: '/nonexistent/kubeconfig' does not exist"),
        ({"kind_bin": "/nonexistent/kind"}, r"--kind-bin: '/nonexistent/kind' is neither an executable"),
        ({"istioctl_bin": "no-such-istioctl-here"}, r"--istioctl-bin: 'no-such-istioctl-here'"),
        ({"etp_provider": "asm"}, r"--etp-provider: 'asm' is not one of native, vendor"),
    ],
)
def test_bad_values_name_the_option_and_accepted_values(cli: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build(cli=cli)


def test_timeout_scale_range_ends_are_accepted() -> None:
    assert build(cli={"timeout_scale": "0.1"}).timeouts.request == pytest.approx(1.5)
    assert build(cli={"timeout_scale": "100"}).timeout_scale == 100.0


def test_report_dir_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    regular = tmp_path / "notes.txt"
    regular.write_text("")
    with pytest.raises(
        SettingsError, match=r"--report-dir: '.*notes.txt/reports' lies under .*notes.txt, which is not"
    ):
        build(cli={"report_dir": str(regular / "reports")})
    with pytest.raises(SettingsError, match=r"--report-dir: '.*notes.txt' is not a directory"):
        build(cli={"report_dir": str(regular)})
    assert list(tmp_path.iterdir()) == [regular]


def test_report_dir_that_cannot_be_created_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    # /proc refuses new directories even to root, whose access() checks always pass.
    with pytest.raises(SettingsError, match=r"--report-dir: '/proc/egress-reports' cannot be created or written"):
        check_writable_directory("--report-dir", Path("/proc/egress-reports"))
    wanted = tmp_path / "a" / "b"
    check_writable_directory("--report-dir", wanted)
    assert list(tmp_path.iterdir()) == []


def test_etp_provider_is_native_unless_chosen() -> None:
    assert build().etp_provider is EtpProvider.NATIVE
    assert build(env={"EGRESS_ETP_PROVIDER": "Vendor"}).etp_provider is EtpProvider.VENDOR
    assert (
        build(cli={"etp_provider": "native"}, env={"EGRESS_ETP_PROVIDER": "vendor"}).etp_provider is EtpProvider.NATIVE
    )


def test_istio_version_tolerates_v_prefix_and_unknown_patch_of_known_minor() -> None:
    assert build(cli={"istio_version": "v1.30.3"}).istio_version == "1.30.3"
    assert build(cli={"istio_version": "1.30.9"}).istio_version == "1.30.9"


def test_existing_cluster_kubeconfig_is_checked(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path)
    s = build(cli={"kubeconfig": str(path)})
    assert s.uses_existing_cluster and s.kubeconfig == path.resolve()
    with pytest.raises(SettingsError, match=r"--kube-context: 'nope' is not a context"):
        build(cli={"kubeconfig": str(path), "kube_context": "nope"})
    assert build(cli={"kubeconfig": str(path), "kube_context": "other"}).kube_context == "other"


def test_kubeconfig_without_current_context_needs_kube_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, current=None)
    with pytest.raises(SettingsError, match="no current-context; pass --kube-context"):
        build(cli={"kubeconfig": str(path)})


def test_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(SettingsError, match="is not a readable YAML kubeconfig"):
        build(cli={"kubeconfig": str(path)})


def test_keep_or_reuse_make_no_sense_with_an_existing_cluster(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="nothing is created or deleted"):
        build(cli={"kubeconfig": str(kubeconfig(tmp_path)), "keep_cluster": True})


IMPLEMENTATION = """\
organization: example.com
project: example-mesh
url: https://example.com/mesh
version: "2.4.1"
contact: ["@example/mesh-maintainers"]
"""


def test_implementation_file_from_option_or_environment(tmp_path: Path) -> None:
    path = tmp_path / "implementation.yaml"
    path.write_text(IMPLEMENTATION)
    from_cli = build(cli={"implementation_file": str(path)}).implementation
    assert from_cli is not None
    assert (from_cli.organization, from_cli.project, from_cli.version) == ("example.com", "example-mesh", "2.4.1")
    assert from_cli.contact == ("@example/mesh-maintainers",)
    assert build(env={"EGRESS_IMPLEMENTATION_FILE": str(path)}).implementation == from_cli
    assert build().implementation is None


@pytest.mark.parametrize(
    "text, message",
    [
        (IMPLEMENTATION.replace('version: "2.4.1"', "version: 2.4"), r"version must be a non-empty string \(quote it"),
        (
            IMPLEMENTATION.replace('contact: ["@example/mesh-maintainers"]', "contact: []"),
            "contact must be a non-empty",
        ),
        (IMPLEMENTATION.replace("url: https://example.com/mesh", "url: example.com"), "is not an http"),
        (IMPLEMENTATION.replace("organization: example.com\n", ""), "missing field.*organization"),
        (IMPLEMENTATION + "vendor: x\n", "unknown field.*vendor"),
        ("- a list\n", "must be a mapping"),
        ("organization: [unclosed\n", "is not YAML"),
    ],
)
def test_bad_implementation_file_names_the_option(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "implementation.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=r"^--implementation-file: .*" + message):
        build(cli={"implementation_file": str(path)})


def test_missing_implementation_file_names_the_option() -> None:
    with pytest.raises(SettingsError, match=r"--implementation-file: '/nonexistent.yaml' does not exist"):
        build(env={"EGRESS_IMPLEMENTATION_FILE": "/nonexistent.yaml"})


def test_keep_on_failure_from_option_or_environment_and_not_with_a_plan() -> None:
    assert not build().keep_on_failure
    assert build(cli={"keep_on_failure": True}).keep_on_failure
    assert build(env={"EGRESS_KEEP_ON_FAILURE": "1"}).keep_on_failure
    with pytest.raises(SettingsError, match=r"--keep-on-failure .* a --plan run creates none"):
        build(cli={"keep_on_failure": True, "plan": True})
