"""The fake kind and istioctl refuse what the real ones refuse (recorded help: tests/data/cli/SOURCES.md).

The verdicts in the tables below were observed by running the real kind v0.31.0 and istioctl 1.30 with
the same command lines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conformance.core import versions
from conformance.core.timeouts import DEFAULT_TIMEOUTS
from conformance.istio.components import IstioError
from conformance.istio.install import IstioInstaller
from conformance.settings.options import MeshMode
from tests.fakes.cli import RECORDED, check, load_spec, recorded_spec
from tests.fakes.executables import FakeBin

KIND = load_spec(RECORDED["kind"])
ISTIOCTL = load_spec(RECORDED["istioctl"])

INVALID_INT = 'strconv.ParseInt: parsing "abc": invalid syntax'
INVALID_BOOL = 'strconv.ParseBool: parsing "maybe": invalid syntax'

#: (argv, the real tool's error or None when it accepts the command line).
KIND_VERDICTS: list[tuple[list[str], str | None]] = [
    (
        [
            "create",
            "cluster",
            "--name",
            "x",
            "--kubeconfig",
            "/k",
            "--config",
            "c.yaml",
            "--image",
            "i:1",
            "--wait",
            "300s",
        ],
        None,
    ),
    (["create", "cluster", "--wait", "5m0s", "--retain"], None),
    (
        ["create", "cluster", "--wait", "abc"],
        'ERROR: invalid argument "abc" for "--wait" flag: time: invalid duration "abc"',
    ),
    (["create", "cluster", "--wait"], "ERROR: flag needs an argument: --wait"),
    (["create", "cluster", "--bogus"], "ERROR: unknown flag: --bogus"),
    (["create", "cluster", "extra"], 'ERROR: unknown command "extra" for "kind create cluster"'),
    (["get", "clusters"], None),
    (["get", "clusters", "--name", "x"], "ERROR: unknown flag: --name"),
    (["delete", "cluster", "-n", "x"], None),
    (["delete", "cluster", "-nx", "-q", "-v", "3"], None),
    (["delete", "cluster", "--retain"], "ERROR: unknown flag: --retain"),
    (["delete", "cluster", "-v", "abc"], 'ERROR: invalid argument "abc" for "-v, --verbosity" flag: ' + INVALID_INT),
    (["export", "kubeconfig", "--name", "x", "--kubeconfig", "/k", "--internal=false"], None),
    (
        ["export", "kubeconfig", "--internal=maybe"],
        'ERROR: invalid argument "maybe" for "--internal" flag: ' + INVALID_BOOL,
    ),
    (["load", "docker-image", "a:1", "b:2", "--name", "x", "--nodes", "n1,n2"], None),
    (["load", "docker-image", "--name", "x"], "ERROR: kind load docker-image needs 1 argument(s), got []"),
    (["version"], None),
    (["version", "--short"], "ERROR: unknown flag: --short"),
    (["bogus"], 'ERROR: unknown command "bogus" for "kind"'),
]

ISTIOCTL_VERDICTS: list[tuple[list[str], str | None]] = [
    (
        [
            "install",
            "--skip-confirmation",
            "-f",
            "o.yaml",
            "--readiness-timeout",
            "300s",
            "--kubeconfig",
            "k",
            "--context",
            "c",
        ],
        None,
    ),
    (["apply", "-y", "--filename=a,b", "--dry-run", "-c", "k"], None),
    (
        ["install", "--readiness-timeout", "300"],
        'Error: invalid argument "300" for "--readiness-timeout" flag: time: missing unit in duration "300"',
    ),
    (["install", "--purge"], "Error: unknown flag: --purge"),
    (["uninstall", "--purge", "--skip-confirmation", "--kubeconfig", "k", "--context", "c"], None),
    (["uninstall", "--purge", "--readiness-timeout", "3s"], "Error: unknown flag: --readiness-timeout"),
    (["version", "--remote=false", "-o", "json"], None),
    (["version", "-ojson", "--remote=false"], None),
    (["version", "--remote=maybe"], 'Error: invalid argument "maybe" for "--remote" flag: ' + INVALID_BOOL),
    (["version", "--output"], "Error: flag needs an argument: --output"),
    (["manifest", "generate", "-f", "o.yaml", "--set", "tag=1.30.3", "--set", "hub=docker.io/istio"], None),
    (["bogus"], 'Error: unknown command "bogus" for "istioctl"'),
]


@pytest.mark.parametrize(("argv", "error"), KIND_VERDICTS, ids=[" ".join(a) for a, _ in KIND_VERDICTS])
def test_kind_command_lines(argv: list[str], error: str | None) -> None:
    refusal = check(KIND, argv)
    assert (refusal[0] if refusal else None) == error
    assert refusal is None or refusal[1] == 1


@pytest.mark.parametrize(("argv", "error"), ISTIOCTL_VERDICTS, ids=[" ".join(a) for a, _ in ISTIOCTL_VERDICTS])
def test_istioctl_command_lines(argv: list[str], error: str | None) -> None:
    refusal = check(ISTIOCTL, argv)
    assert (refusal[0] if refusal else None) == error
    assert refusal is None or refusal[1] == 64


def test_recorded_help_is_of_the_pinned_releases() -> None:
    assert RECORDED["kind"] == f"kind-{versions.KIND.version}"
    major, minor, _ = versions.parse_istio_version(versions.DEFAULT_ISTIO_VERSION)
    assert RECORDED["istioctl"] == f"istioctl-{major}.{minor}"
    assert set(KIND["commands"]["create cluster"]["flags"]) == {
        "config",
        "help",
        "image",
        "kubeconfig",
        "name",
        "retain",
        "wait",
        "quiet",
        "verbosity",
    }
    assert {"purge", "skip-confirmation", "kubeconfig", "context"} <= set(ISTIOCTL["commands"]["uninstall"]["flags"])


def test_a_fake_refuses_like_the_real_tool_and_records_the_refusal(fake_bin: FakeBin) -> None:
    kind = fake_bin("kind")
    kind.on("get", "clusters", stdout="egress-conformance\n")
    done = subprocess.run(
        [str(kind.path), "get", "clusters", "--name", "x"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "ERROR: unknown flag: --name\n")
    assert [(c.argv, c.refused) for c in kind.calls()] == [
        (["get", "clusters", "--name", "x"], "ERROR: unknown flag: --name")
    ]
    assert recorded_spec("docker") is None  # no recorded help: the fake accepts any argv


class NoObjects:
    """A cluster with nothing in it, as far as the installer asks."""

    def get(self, ref: object) -> None:
        return None


def test_a_wrong_flag_in_harness_code_fails(fake_bin: FakeBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin("istioctl")
    installer = IstioInstaller(
        istioctl=tmp_path / "fake-bin" / "istioctl",
        kube=NoObjects(),  # type: ignore[arg-type]
        kubeconfig=tmp_path / "kubeconfig",
        context=None,
        timeouts=DEFAULT_TIMEOUTS,
        cache_dir=tmp_path / "cache",
        gateway_api_version="v1.5.1",
    )
    command = installer.install_command(MeshMode.SIDECAR)
    monkeypatch.setattr(installer, "install_command", lambda mode: [*command, "--purge"])
    with pytest.raises(IstioError, match="unknown flag: --purge"):
        installer.install(MeshMode.SIDECAR)
