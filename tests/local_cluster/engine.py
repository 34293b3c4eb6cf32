"""The container engine: the one that answers, or Debian's docker.io started with the capability filter.

An engine that answers ``docker info`` is used as it is and never stopped. Otherwise ``docker.io`` is
installed if missing and ``dockerd`` is started with a config file of the tier's own (never
``/etc/docker/daemon.json``) that makes ``oci-runtime-wrapper`` the default runtime: on a VM that withholds
a capability from every process, docker's ``--privileged`` (which kind needs) otherwise fails. A daemon the
tier started is recorded in the cache directory and stopped by :func:`stop_started_engine`, and only then.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.local_cluster.steps import TIER_DIR, TierError, cache_root, run, say

RUNTIME_WRAPPER = TIER_DIR / "oci-runtime-wrapper"
RUNTIME_NAME = "capability-filter"
START_SECONDS = 60.0
STOP_SECONDS = 30.0
INFO_SECONDS = 15.0


@dataclass(frozen=True)
class Engine:
    #: True when this tier started the daemon (and so stops it).
    started: bool
    server_version: str


def _state_file() -> Path:
    return cache_root() / "engine.json"


def docker_answers() -> str | None:
    """The server version when ``docker info`` answers, else None."""
    if shutil.which("docker") is None:
        return None
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=INFO_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def _as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


def _install_docker() -> None:
    say("dockerd is not installed: installing Debian's docker.io")
    run(_as_root(["apt-get", "update"]), what="apt-get update")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(_as_root(["apt-get", "install", "-y", "docker.io"]), env=env, what="apt-get install docker.io")


def ensure_engine() -> Engine:
    """An engine that answers; started (and recorded) here only when none did."""
    version = docker_answers()
    if version is not None:
        say(f"container engine: Docker {version} already answers; using it as it is")
        return Engine(started=False, server_version=version)
    if shutil.which("dockerd") is None:
        _install_docker()
    state_dir = cache_root()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "dockerd.json"
    config.write_text(
        json.dumps({"runtimes": {RUNTIME_NAME: {"path": str(RUNTIME_WRAPPER)}}, "default-runtime": RUNTIME_NAME}),
        encoding="utf-8",
    )
    log = state_dir / "dockerd.log"
    say(f"starting dockerd with the {RUNTIME_NAME} runtime ({RUNTIME_WRAPPER.name}); log: {log}")
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            _as_root(["dockerd", "--config-file", str(config)]),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    _state_file().write_text(json.dumps({"pid": process.pid}), encoding="utf-8")
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        version = docker_answers()
        if version is not None:
            return Engine(started=True, server_version=version)
        if process.poll() is not None:
            break
        time.sleep(1.0)
    stop_started_engine()
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise TierError(f"dockerd did not answer within {START_SECONDS:g}s:\n{tail}")


def stop_started_engine() -> bool:
    """Stop the daemon this tier started (nothing else); True when there was one."""
    state = _state_file()
    try:
        pid = int(json.loads(state.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError):
        return False
    say(f"stopping the dockerd this tier started (pid {pid})")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.5)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    state.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone once reaped.
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    return True
