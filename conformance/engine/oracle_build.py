"""Building the routing oracle (``oracle/``, a ``go test`` binary against an Istio branch) and running it:
predictions for a plan, rendered install manifests, any istioctl command line of that branch.

Build: ``go test -c`` into ``<cache_dir>/oracle/<branch>/oracle-<key>.test``; the key hashes the branch's
go.mod/go.sum, every Go source of ``oracle/`` and the Go version, so an unchanged tree reuses the binary.
``go`` missing raises ``OracleError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from conformance.core import progress
from conformance.core.processes import output_tail, run_bounded

#: The Go module of the oracle, in the repository.
ORACLE_SOURCE = Path(__file__).resolve().parent.parent.parent / "oracle"

#: The contract between plan mode and the oracle.
PLAN_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "plan.schema.json"

#: Istio branches the Go module proxy serves code of (pseudo-versions in the modfiles).
BRANCHES: Mapping[str, str] = {"1.30": "go.mod", "1.31": "go.1.31.mod"}

#: Without the symbol table and DWARF the binary is smaller; the Istio version is still read from the line
#: table (oracle_test.go, istioBranch).
BUILD_FLAGS: tuple[str, ...] = ("-ldflags=-s -w",)


class OracleError(RuntimeError):
    """The oracle could not be built or run (the message says what to fix)."""


@dataclass(frozen=True)
class OracleTimeouts:
    """Deadlines of the oracle in seconds, scaled together like ``conformance.core.timeouts.Timeouts``."""

    #: A cold ``go test -c`` of the Istio packages on two cores.
    build: float = 1800.0
    #: One run over a whole plan (a fake istiod per probe state, istioctl analyze per state).
    run: float = 900.0

    def scaled(self, factor: float) -> OracleTimeouts:
        if factor <= 0:
            raise ValueError("timeout scale must be a positive number")
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})


@dataclass(frozen=True)
class Branch:
    """The Istio code a plan is predicted with."""

    minor: str
    note: str | None = None

    @property
    def name(self) -> str:
        return f"release-{self.minor}"

    @property
    def modfile(self) -> str:
        return BRANCHES[self.minor]

    @property
    def sumfile(self) -> str:
        return self.modfile.removesuffix(".mod") + ".sum"


def branch_for(istio_version: str) -> Branch:
    """The oracle branch for a plan's ``istioVersion`` (``1.30.3``, ``v1.31.0-rc.0``, ...)."""
    found = re.match(r"v?(\d+)\.(\d+)", istio_version.strip())
    if not found:
        raise OracleError(f"plan istioVersion {istio_version!r} is not a version like 1.30.3")
    major, minor = int(found.group(1)), int(found.group(2))
    wanted = f"{major}.{minor}"
    if wanted in BRANCHES:
        return Branch(wanted)
    served = sorted(BRANCHES, key=lambda v: tuple(int(p) for p in v.split(".")))
    nearest = served[0] if (major, minor) < (1, 30) else served[-1]
    return Branch(
        nearest,
        note=f"Istio {istio_version}: the Go module proxy serves no release-{wanted} code; "
        f"predicted with release-{nearest}",
    )


# --------------------------------------------------------------------------------------------------
# Building and running the Go program


def _go_binary() -> str:
    found = shutil.which("go")
    if found is None:
        raise OracleError(
            "the routing oracle needs the Go toolchain: `go` is not on PATH (install Go >= 1.25, "
            "or run without --oracle)"
        )
    return found


def _source_files(source: Path, branch: Branch) -> list[Path]:
    missing = [name for name in (branch.modfile, branch.sumfile) if not (source / name).is_file()]
    if missing:
        raise OracleError(f"oracle source {source} lacks {', '.join(missing)}")
    # The Go sources of every package of the module (the entry points at the top, the rest under internal/).
    return [source / branch.modfile, source / branch.sumfile, *sorted(source.rglob("*.go"))]


def cache_key(source: Path, branch: Branch, go_version: str) -> str:
    """Hash of everything the binary is built from: modfile, sums, Go sources, Go version."""
    digest = hashlib.sha256(f"{branch.name}\n{go_version}\n{' '.join(BUILD_FLAGS)}\n".encode())
    for path in _source_files(source, branch):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def _go_version(go: str, timeouts: OracleTimeouts) -> str:
    result = _run([go, "env", "GOVERSION"], timeouts.run, what="go env GOVERSION")
    return result.stdout.strip()


def _run(command: list[str], timeout: float, *, what: str, heartbeat: bool = False) -> subprocess.CompletedProcess[str]:
    def still_running(seconds: float) -> None:
        progress.info(f"{what}: still running ({seconds:.0f}s)")

    try:
        return run_bounded(command, timeout, heartbeat=still_running if heartbeat else None)
    except subprocess.TimeoutExpired:
        raise OracleError(f"{what} did not finish within {timeout:g}s (stretch it with --timeout-scale)") from None
    except OSError as exc:
        raise OracleError(f"{what} could not be started: {exc}") from None


def build_oracle(
    branch: Branch,
    *,
    cache_dir: Path,
    timeouts: OracleTimeouts,
    source: Path = ORACLE_SOURCE,
) -> Path:
    """The oracle test binary for ``branch``: reused from the cache, or built (progress shown)."""
    go = _go_binary()
    key = cache_key(source, branch, _go_version(go, timeouts))
    target_dir = cache_dir.expanduser() / "oracle" / branch.name
    target = target_dir / f"oracle-{key}.test"
    if target.is_file() and os.access(target, os.X_OK):
        progress.info(f"routing oracle ({branch.name}): reusing {target}")
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with (
        progress.step(f"building the routing oracle against Istio {branch.name} (a cold build takes minutes)"),
        tempfile.TemporaryDirectory(dir=target_dir, prefix=".build-") as scratch,
    ):
        partial = Path(scratch) / "oracle.test"
        result = _run(
            # Without the symbol table and DWARF the binary is a third smaller; the Istio version is still
            # read from the line table (oracle_test.go istioBranch).
            [
                go,
                "-C",
                str(source),
                "test",
                "-c",
                f"-modfile={branch.modfile}",
                "-ldflags=-s -w",
                "-o",
                str(partial),
                ".",
            ],
            timeouts.build,
            what=f"go test -c (oracle, {branch.name})",
            heartbeat=True,
        )
        if result.returncode != 0 or not partial.is_file():
            raise OracleError(
                f"building the oracle ({branch.name}) failed with exit code {result.returncode}:\n"
                + output_tail(result.stdout + result.stderr)
            )
        partial.replace(target)
    for stale in target_dir.glob("oracle-*.test"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _run_test_binary(binary: Path, test: str, args: Sequence[str], timeout: float, out: Path) -> dict[str, Any]:
    result = _run(
        [str(binary), "-test.run", f"^{test}$", *args],
        timeout,
        what=f"oracle {test}",
    )
    if not out.is_file():
        raise OracleError(
            f"oracle {test} exited with {result.returncode} and wrote no output:\n"
            + output_tail(result.stdout + result.stderr)
        )
    data: dict[str, Any] = json.loads(out.read_text())
    if result.returncode != 0:
        data.setdefault("runErrors", []).append(output_tail(result.stdout + result.stderr))
    return data


def run_predictions(binary: Path, plan_path: Path, *, timeouts: OracleTimeouts, analyze: bool = True) -> dict[str, Any]:
    """Raw predictions.json of the oracle for a plan."""
    with tempfile.TemporaryDirectory(prefix="egress-oracle-") as scratch:
        out = Path(scratch) / "predictions.json"
        with progress.step(f"routing oracle: predicting {plan_path.name}"):
            return _run_test_binary(
                binary,
                "TestPredict",
                [
                    f"-oracle.plan={plan_path.resolve()}",
                    f"-oracle.out={out}",
                    f"-oracle.analyze={'true' if analyze else 'false'}",
                ],
                timeouts.run,
                out,
            )


def run_manifest_generate(
    binary: Path,
    manifests_dir: Path,
    *,
    timeouts: OracleTimeouts,
    plan_path: Path | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """``istioctl manifest generate`` of manifests/istio/{sidecar,ambient}.yaml with the oracle's istioctl,
    with its assertions (ports, labels, mesh access log, discoverySelectors, ambient components); the
    summary lists every failed assertion under ``overlays[].failures``."""
    with tempfile.TemporaryDirectory(prefix="egress-oracle-") as scratch:
        out = Path(scratch) / "manifests.json"
        args = [f"-oracle.manifests={manifests_dir.resolve()}", f"-oracle.manifest-out={out}"]
        if plan_path is not None:
            args.append(f"-oracle.plan={plan_path.resolve()}")
        if tag:
            args.append(f"-oracle.tag={tag}")
        return _run_test_binary(binary, "TestManifestGenerate", args, timeouts.run, out)


@dataclass(frozen=True)
class IstioctlResult:
    stdout: str
    stderr: str
    exit_code: int


def run_istioctl(binary: Path, args: Sequence[str], *, timeouts: OracleTimeouts) -> IstioctlResult:
    """One istioctl command line run by the oracle binary's own istioctl (the same code as the istioctl
    of its Istio branch), e.g. ``analyze`` against a live API server."""
    with tempfile.TemporaryDirectory(prefix="egress-oracle-") as scratch:
        out = Path(scratch) / "istioctl.json"
        flags = [f"-oracle.istioctl={json.dumps(list(args))}", f"-oracle.istioctl-out={out}"]
        result = _run_test_binary(binary, "TestIstioctl", flags, timeouts.run, out)
    return IstioctlResult(str(result.get("stdout", "")), str(result.get("stderr", "")), int(result["exitCode"]))
