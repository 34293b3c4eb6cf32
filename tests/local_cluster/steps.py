"""What the tier's stages share: running a command with a heartbeat, timing stages, and the cache root."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.core.processes import run_bounded

CACHE_ENV = "EGRESS_LOCAL_CLUSTER_CACHE"
DEFAULT_CACHE = Path("~/.cache/egress-conformance/local-cluster")
HEARTBEAT_SECONDS = 30.0
TIER_DIR = Path(__file__).resolve().parent
REPOSITORY = TIER_DIR.parent.parent


class TierError(RuntimeError):
    """A stage of the tier failed; the message names the command and carries its output's tail."""


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def say(message: str) -> None:
    print(f"[local-cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
    what: str | None = None,
) -> str:
    """Run ``command`` to completion, saying every 30 s that it still runs; its stdout, or TierError."""
    label = what or shlex.join(command[:3])
    try:
        completed = run_bounded(
            list(command),
            timeout,
            heartbeat=lambda seconds: say(f"  {label}: still running ({seconds:.0f}s)"),
            heartbeat_seconds=HEARTBEAT_SECONDS,
            cwd=cwd,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise TierError(f"{label}: did not finish within {timeout:g}s") from None
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-3000:]
        raise TierError(f"`{shlex.join(command)}` exited with {completed.returncode}:\n{tail}")
    return completed.stdout


@dataclass
class Stage:
    name: str
    seconds: float
    #: "built" when the stage did work, "cached" when it found everything in place.
    outcome: str


@dataclass
class Stopwatch:
    """The duration and outcome of every stage, for the figures the tier prints."""

    stages: list[Stage] = field(default_factory=list)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        entry = Stage(name, 0.0, "cached")
        started = time.monotonic()
        try:
            yield entry
        finally:
            entry.seconds = time.monotonic() - started
            self.stages.append(entry)
            say(f"{name}: {entry.outcome} in {entry.seconds:.1f}s")
