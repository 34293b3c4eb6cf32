"""The mutation suite: realistic single mistakes in a check's configuration, each of which must fail the check.

Every mutant (``tests/data/mutants.json``) names a check, a file of the checkout, one exact text to replace
and why the mistake is realistic. It runs in a copy of the checkout (``conformance/``, ``scenarios/``,
``manifests/``, ``oracle/``) with the mistake made, through the same gates a user's plan run has:
``pytest -m egress --plan --oracle -k ID`` — the cross-reference rules of every step, manifest validation,
and the routing oracle (Istio's own code) against the check's expectations. A mutant the run lets pass
survived; the layer that caught a killed one is read from the mutant run's report.

A mutant only traffic can show (the external world, NetworkPolicy, a proxy's TLS) is ``"killedBy": "live"``
and carries the real local-cluster run that killed it (``liveRun``); an ambient one no tool here can judge
is ``nightly-only``. Run it::

    python -m tests.mutants            # every mutant, the kill rate per family
    python -m tests.mutants EGW-04     # the mutants of one check
    python -m tests.mutants --live     # the live mutants, each on a real local cluster (minutes each)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import PROJECT_ROOT
from conformance.harness.scenario_modules import load_scenarios
from conformance.spec.catalogue import CATALOGUE
from conformance.spec.model import Profile

MUTANTS_FILE = PROJECT_ROOT / "tests" / "data" / "mutants.json"
#: What a plan run of a mutated checkout needs (the root conftest.py serves the harness's own tests only).
COPIED = ("conformance", "scenarios", "manifests", "oracle", "pyproject.toml")
#: How a mutant is expected to die.
OFFLINE, LIVE, NIGHTLY_ONLY = "offline", "live", "nightly-only"
KILLERS = (OFFLINE, LIVE, NIGHTLY_ONLY)
#: Layers that kill a mutant offline, as the mutant run's report shows them.
CROSS_REFERENCE, VALIDATION, ORACLE, SCENARIO = "cross-reference", "manifest validation", "routing oracle", "scenario"
#: The ETP config provider's own check that its resources express the documented rule.
CONFIG_PROVIDER = "config provider"


class MutantError(ValueError):
    """The mutant data does not fit the checkout (a stale text, an unknown check)."""


@dataclass(frozen=True)
class Mutant:
    id: str
    check: str
    file: str
    old: str
    new: str
    why: str
    killed_by: str
    #: Where no offline layer can see the mistake: the layer that lets it through.
    blind_layer: str | None = None
    #: For ``live`` mutants: the real local-cluster run that killed it (date, check result, reason).
    live_run: str | None = None

    @property
    def family(self) -> str:
        return CATALOGUE[self.check].family

    @property
    def mode(self) -> str:
        record = CATALOGUE[self.check]
        return record.modes[0].value if record.modes else "sidecar"


@dataclass(frozen=True)
class Verdict:
    mutant: Mutant
    killed: bool
    layer: str | None
    detail: str

    def line(self) -> str:
        state = f"killed by {self.layer}" if self.killed else "SURVIVED"
        return f"{self.mutant.id:<40} {state}: {self.detail}"


def load(path: Path = MUTANTS_FILE) -> list[Mutant]:
    data = json.loads(path.read_text(encoding="utf-8"))
    mutants = []
    for item in data["mutants"]:
        mutant = Mutant(
            id=item["id"],
            check=item["check"],
            file=item["file"],
            old=item["old"],
            new=item["new"],
            why=item["why"],
            killed_by=item.get("killedBy", OFFLINE),
            blind_layer=item.get("blindLayer"),
            live_run=item.get("liveRun"),
        )
        problems = problems_of(mutant)
        if problems:
            raise MutantError(f"mutant {mutant.id}: {'; '.join(problems)}")
        mutants.append(mutant)
    ids = Counter(m.id for m in mutants)
    doubled = sorted(i for i, n in ids.items() if n > 1)
    if doubled:
        raise MutantError(f"mutant IDs used twice: {', '.join(doubled)}")
    return mutants


def problems_of(mutant: Mutant) -> list[str]:
    problems = []
    if mutant.check not in CATALOGUE:
        problems.append(f"check {mutant.check} is not in the catalogue")
    if mutant.killed_by not in KILLERS:
        problems.append(f"killedBy {mutant.killed_by!r} is not one of {', '.join(KILLERS)}")
    if mutant.killed_by != OFFLINE and not mutant.blind_layer:
        problems.append("a mutant no offline layer kills names the layer that lets it through (blindLayer)")
    if mutant.killed_by == LIVE and not mutant.live_run:
        problems.append("a live mutant names the real run that killed it (liveRun)")
    if mutant.old == mutant.new:
        problems.append("old and new are the same text")
    path = PROJECT_ROOT / mutant.file
    if not path.is_file():
        problems.append(f"{mutant.file} does not exist")
    else:
        count = path.read_text(encoding="utf-8").count(mutant.old)
        if count != 1:
            problems.append(f"the text to replace occurs {count} times in {mutant.file} (must be exactly once)")
    return problems


def mutated_checkout(mutant: Mutant, into: Path) -> Path:
    """A copy of the checkout's run-relevant parts with the mutant's one change made."""
    root = into / "checkout"
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.test"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    target = root / mutant.file
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace(mutant.old, mutant.new, 1), encoding="utf-8")
    return root


def judge(mutant: Mutant) -> Verdict:
    """Run the mutant's check as a plan with the oracle in a mutated copy; read who caught it."""
    with tempfile.TemporaryDirectory(prefix="egress-mutant-") as tmp:
        root = mutated_checkout(mutant, Path(tmp))
        report_dir = Path(tmp) / "reports"
        env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
        env["PYTHONPATH"] = str(root)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "egress",
            "--plan",
            "--oracle",
            "-q",
            "-p",
            "no:cacheprovider",
            "--mesh-mode",
            mutant.mode,
            "-k",
            mutant.check,
            f"--report-dir={report_dir}",
        ]
        completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        return _verdict(mutant, completed, report_dir)


def _verdict(mutant: Mutant, completed: subprocess.CompletedProcess[str], report_dir: Path) -> Verdict:
    report_path = report_dir / "conformance-report.json"
    entry = _entry(report_path, mutant.check) if report_path.is_file() else None
    if entry is None:
        # No verdict on the check at all: an error of the suite (or of the data), never a kill.
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise MutantError(f"mutant {mutant.id}: the run gave no report entry for {mutant.check}:\n{tail}")
    reason = str(entry.get("reason", ""))
    if entry.get("result") == "failed":
        lowered = reason.lower()
        if "cross-reference" in lowered or "crossreferenceerror" in lowered:
            layer = CROSS_REFERENCE
        elif "policyerror" in lowered:
            layer = CONFIG_PROVIDER
        elif "schema" in lowered or "validat" in lowered:
            layer = VALIDATION
        else:
            layer = SCENARIO
        return Verdict(mutant, True, layer, _first_line(reason))
    oracle = entry.get("oracle") or {}
    if oracle.get("oracle") == "disagrees":
        reasons = [
            r
            for probe in oracle.get("probes", [])
            if probe.get("oracle") == "disagrees"
            for r in probe.get("reasons", [])
            if "outside the oracle" not in r
        ]
        return Verdict(mutant, True, ORACLE, _first_line(reasons[0] if reasons else "disagrees"))
    if completed.returncode != 0:
        return Verdict(mutant, True, SCENARIO, _first_line(completed.stdout.strip().splitlines()[-1]))
    predicted = oracle.get("oracle", "no verdict")
    return Verdict(mutant, False, None, f"plan passed, oracle {predicted}")


def _entry(report_path: Path, check_id: str) -> dict[str, Any] | None:
    report = json.loads(report_path.read_text(encoding="utf-8"))
    for profile in report.get("profiles", []):
        for entry in profile.get("checks", []):
            if entry.get("id") == check_id and entry.get("result") in ("planned", "passed", "failed"):
                found: dict[str, Any] = entry
                return found
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:240]


def judge_live(mutant: Mutant) -> str:
    """Run the mutant's check for real on a local cluster of its own (``python -m tests.local_cluster run``):
    the line its ``liveRun`` records — the check's result and the reason the real run gave."""
    with tempfile.TemporaryDirectory(prefix="egress-mutant-live-") as tmp:
        root = mutated_checkout(mutant, Path(tmp))
        report_dir = Path(tmp) / "reports"
        # From inside the copy: ``python -m`` puts the working directory first on sys.path.
        check_run = [
            "env",
            "-C",
            str(root),
            f"PYTHONPATH={root}",
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "egress",
            "-p",
            "no:cacheprovider",
            "--mesh-mode",
            mutant.mode,
            "-k",
            mutant.check,
            f"--report-dir={report_dir}",
            f"--rootdir={root}",
            "-c",
            str(root / "pyproject.toml"),
            str(root / "scenarios"),
        ]
        command = [sys.executable, "-m", "tests.local_cluster", "run", "--", *check_run]
        completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=3600)
        report_path = report_dir / "conformance-report.json"
        entry = _entry(report_path, mutant.check) if report_path.is_file() else None
        if entry is None:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-20:])
            raise MutantError(f"mutant {mutant.id}: the real run gave no report entry for {mutant.check}:\n{tail}")
        day = time.strftime("%Y-%m-%d")
        return f"{day}, local cluster: {mutant.check} {entry['result']}: {_first_line(str(entry.get('reason', '')))}"


def judge_all(mutants: Sequence[Mutant], workers: int = 2) -> list[Verdict]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(judge, mutants))


def kill_table(verdicts: Iterable[Verdict]) -> str:
    """Kill rate per family: offline kills, live kills (by the real run), nightly-only, survivors."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    survivors = []
    for verdict in verdicts:
        mutant = verdict.mutant
        counts = rows[mutant.family]
        counts["total"] += 1
        if verdict.killed:
            counts["offline"] += 1
        elif mutant.killed_by == LIVE:
            counts["live"] += 1
            survivors.append(f"  {mutant.id}: offline blind ({mutant.blind_layer}); killed live: {mutant.live_run}")
        elif mutant.killed_by == NIGHTLY_ONLY:
            counts["nightly-only"] += 1
            survivors.append(f"  {mutant.id}: nightly-only ({mutant.blind_layer})")
        else:
            counts["survived"] += 1
            survivors.append(f"  {mutant.id}: SURVIVED ({verdict.detail})")
    header = ("family", "mutants", "offline", "live", "nightly", "survived", "kill rate")
    lines = ["{:<8} {:>7} {:>8} {:>5} {:>8} {:>9} {:>10}".format(*header)]
    for family in sorted(rows):
        c = rows[family]
        killed = c["offline"] + c["live"]
        rate = f"{100 * killed / c['total']:.0f} %"
        lines.append(
            f"{family:<8} {c['total']:>7} {c['offline']:>8} {c['live']:>5} {c['nightly-only']:>8} "
            f"{c['survived']:>9} {rate:>10}"
        )
    if survivors:
        lines += ["not killed offline:", *survivors]
    return "\n".join(lines)


def sidecar_profile(mutant: Mutant) -> bool:
    return CATALOGUE[mutant.check].profile is not Profile.EGRESS_AMBIENT


def main(argv: Sequence[str]) -> int:
    load_scenarios()  # the catalogue the mutants name (pytest's plugin loads it on its own)
    mutants = load()
    if argv and argv[0] == "--live":
        # The mutants no offline layer kills, each on a real cluster of its own (minutes each).
        chosen = [m for m in mutants if m.killed_by == LIVE and (not argv[1:] or m.id in argv[1:])]
        survived = 0
        for mutant in chosen:
            line = judge_live(mutant)
            survived += f"{mutant.check} failed" not in line
            print(f"{mutant.id}: {line}", flush=True)
        return 1 if survived else 0
    if argv:
        mutants = [m for m in mutants if m.check in argv or m.id in argv]
    verdicts = judge_all(mutants)
    for verdict in verdicts:
        print(verdict.line())
    print(kill_table(verdicts))
    unexpected = [v for v in verdicts if v.killed != (v.mutant.killed_by == OFFLINE)]
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
