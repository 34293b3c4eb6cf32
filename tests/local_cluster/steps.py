"""What the tier's stages share: running a command with a heartbeat, timing stages, and the cache root."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    stdin: bytes | None = None,
    timeout: float = 3600.0,
    what: str | None = None,
) -> str:
    """Run ``command`` to completion, saying every 30 s that it still runs; its stdout, or TierError."""
    label = what or shlex.join(command[:3])
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=output,
            stderr=errors,
            start_new_session=True,
        )
        started = time.monotonic()
        if stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(stdin)
            process.stdin.close()
        while True:
            try:
                process.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if elapsed > timeout:
                    process.kill()
                    process.wait()
                    raise TierError(f"{label}: did not finish within {timeout:g}s") from None
                say(f"  {label}: still running ({elapsed:.0f}s)")
        output.seek(0)
        errors.seek(0)
        out = output.read().decode("utf-8", "replace")
        if process.returncode != 0:
            tail = (out + errors.read().decode("utf-8", "replace"))[-3000:]
            raise TierError(f"`{shlex.join(command)}` exited with {process.returncode}:\n{tail}")
        return out


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
