"""Running the external tools the harness drives (kind, istioctl, docker), bounded in time.

Also the one rule for where downloads may come from.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

#: How often a long command says it is still running.
HEARTBEAT_SECONDS = 30.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def run_bounded(
    command: list[str],
    timeout: float,
    *,
    heartbeat: Callable[[float], None] | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with captured output, killing its whole process group when ``timeout`` passes.

    A plain ``subprocess.run(timeout=)`` kills only the child and can then wait forever on pipes that
    grandchildren (the engine CLI kind spawns) still hold open. The child gets its own session, so an
    interrupt of the harness also ends it here rather than leaving it running. ``heartbeat``, when given,
    is called with the seconds elapsed every ``heartbeat_seconds`` while the command runs (a long build
    says it is still alive).
    Raises ``subprocess.TimeoutExpired`` on timeout and ``OSError`` when the command cannot start.
    """
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            while True:
                remaining = started + timeout - time.monotonic()
                wait = min(remaining, heartbeat_seconds) if heartbeat is not None else remaining
                try:
                    stdout, stderr = process.communicate(timeout=max(wait, 0.0))
                    break
                except subprocess.TimeoutExpired:
                    if heartbeat is None or time.monotonic() >= started + timeout:
                        raise
                    heartbeat(time.monotonic() - started)
        except BaseException:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def output_tail(text: str, lines: int = 20, limit: int = 3000) -> str:
    """The last non-blank ``lines`` of a tool's output, for an error message."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-limit:] or "(no output)"


def is_safe_download_url(url: str) -> bool:
    """Downloads use https; plain http only to the loopback address (the tests' local servers)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)


def run_tool(
    command: list[str],
    timeout: float,
    *,
    error: type[Exception],
    deadline_name: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``run_bounded`` with every failure turned into ``error``: a timeout (naming the deadline), a command
    that cannot start, and (with ``check``) a non-zero exit with the tail of its output."""
    shown = shlex.join(command)
    try:
        result = run_bounded(command, timeout)
    except subprocess.TimeoutExpired:
        deadline = f" (deadline {deadline_name}; stretch it with --timeout-scale)" if deadline_name else ""
        raise error(f"`{shown}` did not finish within {timeout:g}s{deadline}") from None
    except OSError as exc:
        raise error(f"`{shown}` could not be started: {exc}") from None
    if check and result.returncode != 0:
        said = output_tail(result.stdout + result.stderr)
        code = result.returncode
        raise error(f"`{shown}` exited with {code} (non-zero exit code {code}):\n{said}")
    return result
