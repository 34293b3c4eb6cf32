"""``python -m tests.local_cluster`` — build the local cluster's parts and run the harness on them.

    python -m tests.local_cluster run -- .venv/bin/pytest -m egress --mesh-mode sidecar
    python -m tests.local_cluster up       # build or reuse everything; print the EGRESS_* settings
    python -m tests.local_cluster down     # stop a dockerd the tier started

``run`` prepares everything, runs the command with the settings in its environment (``EGRESS_REPORT_DIR``
defaults to ``reports/local-cluster``), prints the figures, fails when the command failed or when a kind
cluster, container or Docker network of the run is left behind, and stops a dockerd it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.local_cluster.engine import stop_started_engine
from tests.local_cluster.steps import REPOSITORY, Stopwatch, TierError, say
from tests.local_cluster.tier import prepare

DEFAULT_REPORT_DIR = REPOSITORY / "reports" / "local-cluster"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
KIND_NETWORK = "kind"
#: Progress lines of the harness (conformance.core.progress.step) whose durations are figures of the run.
RUN_STAGES = {
    "cluster create": re.compile(r"creating kind cluster .*: done in ([\d.]+)s"),
    "image load": re.compile(r"kind load docker-image: .*: done in ([\d.]+)s"),
    "Istio install": re.compile(r"Installing Istio .*: done in ([\d.]+)s"),
    "external world": re.compile(r"deploying the external world .*: done in ([\d.]+)s"),
    "Istio removal": re.compile(r"Removing Istio .*: done in ([\d.]+)s"),
    "cluster delete": re.compile(r"deleting kind cluster .*: done in ([\d.]+)s"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.local_cluster", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="build or reuse everything and print the harness settings")
    commands.add_parser("down", help="stop the dockerd this tier started")
    run_parser = commands.add_parser("run", help="prepare, run COMMAND with the settings, print the figures")
    run_parser.add_argument(
        "--require-passed",
        default="",
        metavar="PROFILE[,PROFILE]",
        help="fail unless the report shows a real run in which every check of these profiles passed",
    )
    run_parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            stop_started_engine()
            return 0
        if args.command == "up":
            prepared = prepare()
            _print_build_figures(prepared.stopwatch)
            for name, value in prepared.settings.items():
                print(f"export {name}={value}")
            return 0
        command = [part for part in args.cmd if part != "--"] if args.cmd[:1] == ["--"] else list(args.cmd)
        if not command:
            parser.error("run needs a command after --")
        return _run(command, [p for p in args.require_passed.split(",") if p])
    except TierError as exc:
        say(f"failed: {exc}")
        return 1


def _run(command: list[str], required_profiles: list[str]) -> int:
    network_before = _network_exists()
    watch = Stopwatch()
    try:
        prepared = prepare(watch)
        _print_build_figures(watch)
        env = {**os.environ, **prepared.settings}
        env.setdefault("EGRESS_REPORT_DIR", str(DEFAULT_REPORT_DIR))
        cluster = env.get("EGRESS_CLUSTER_NAME", "egress-conformance")
        say(f"running: {' '.join(command)}")
        sampler = MemorySampler(cluster)
        sampler.start()
        started = time.monotonic()
        stages, returncode = _run_streaming(command, env)
        total = time.monotonic() - started
        sampler.stop()
        report_dir = Path(env["EGRESS_REPORT_DIR"])
        _print_run_figures(stages, total, sampler.peak_bytes, report_dir)
        problems = _unmet_requirements(report_dir / "conformance-report.json", required_profiles)
        for problem in problems:
            say(f"not met: {problem}")
        if problems and returncode == 0:
            returncode = 1
        leftovers = _leftovers(cluster, network_before)
        if leftovers:
            say("left behind by the run: " + "; ".join(leftovers))
            return returncode or 1
        say("nothing of the run is left: no kind cluster, node container or kind network")
        return returncode
    finally:
        stop_started_engine()


def _unmet_requirements(report: Path, profiles: list[str]) -> list[str]:
    """Why the report does not show a real run in which every check of ``profiles`` passed."""
    if not profiles:
        return []
    try:
        document = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"no readable conformance report at {report} ({exc})"]
    problems = []
    if document["run"]["plan"] or not document["environment"]["observed"]:
        problems.append("the report is of a plan run, not of a real one")
    found = {profile["name"]: profile for profile in document.get("profiles", [])}
    for name in profiles:
        checks = found.get(name, {}).get("checks", [])
        if not checks:
            problems.append(f"profile {name} has no checks in the report")
        for check in checks:
            if check["result"] != "passed" and check["result"] != "not-applicable":
                problems.append(f"{name} {check['id']}: {check['result']} ({check.get('reason') or 'no reason'})")
    return problems


def _run_streaming(command: list[str], env: dict[str, str]) -> tuple[dict[str, float], int]:
    """Run ``command``, passing its output through, and pick the run's stage durations out of it."""
    stages: dict[str, float] = {}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        for name, pattern in RUN_STAGES.items():
            match = pattern.search(line)
            if match:
                stages[name] = stages.get(name, 0.0) + float(match.group(1))
    sys.stdout.flush()
    return stages, process.wait()


class MemorySampler:
    """Peak memory of the kind node container while the command runs (its cgroup's own peak when the
    kernel keeps one, else the highest of samples every two seconds)."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            for container in _containers(self.cluster):
                self.peak_bytes = max(self.peak_bytes, _memory_peak(container))


def _memory_peak(container_id: str) -> int:
    candidates = (
        f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak",
        f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes",
    )
    for path in candidates:
        try:
            return int(Path(path).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
    return 0


def _docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=60)
    return result.stdout if result.returncode == 0 else ""


def _containers(cluster: str) -> list[str]:
    return _docker("ps", "-a", "-q", "--no-trunc", "--filter", f"label={KIND_CLUSTER_LABEL}={cluster}").split()


def _network_exists() -> bool:
    return KIND_NETWORK in _docker("network", "ls", "--format", "{{.Name}}").split()


def _leftovers(cluster: str, network_before: bool) -> list[str]:
    found = []
    if _containers(cluster):
        found.append(f"containers of kind cluster {cluster!r}")
    if not network_before and _network_exists():
        # kind creates the network with the first cluster and never deletes it: the tier does, when the
        # run made it and no container is on it any more.
        if _docker("network", "inspect", KIND_NETWORK, "--format", "{{len .Containers}}").strip() == "0":
            _docker("network", "rm", KIND_NETWORK)
        if _network_exists():
            found.append(f"docker network {KIND_NETWORK!r}")
    return found


def _print_build_figures(watch: Stopwatch) -> None:
    say("build stages (cold: built; warm: cached):")
    for stage in watch.stages:
        say(f"  {stage.name:<48} {stage.outcome:<16} {stage.seconds:8.1f}s")
    say(f"  {'all stages':<48} {'':<16} {sum(s.seconds for s in watch.stages):8.1f}s")


def _print_run_figures(stages: dict[str, float], total: float, peak_bytes: int, report_dir: Path) -> None:
    say("the run:")
    for name, seconds in stages.items():
        say(f"  {name:<48} {seconds:8.1f}s")
    say(f"  {'whole command':<48} {total:8.1f}s")
    say(f"  {'peak memory of the kind node':<48} {peak_bytes / 2**20:8.0f} MiB")
    report = report_dir / "conformance-report.json"
    try:
        document = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        say(f"  (no conformance report at {report})")
        return
    say("  check                 result   seconds  probes (until: converged after s)")
    for profile in document.get("profiles", []):
        for check in profile.get("checks", []):
            if check.get("result") in ("skipped", "not-selected", "not-applicable"):
                continue
            probes = ", ".join(
                f"{p['id']} {p['until']}"
                + (f" {p['convergedAfterSeconds']:.1f}" if p.get("convergedAfterSeconds") is not None else "")
                for p in check.get("probes", [])
            )
            seconds = check.get("durationSeconds") or 0.0
            say(f"  {check['id']:<10} {check.get('mode') or '-':<8} {check['result']:<8} {seconds:7.1f}  {probes}")


if __name__ == "__main__":
    sys.exit(main())
