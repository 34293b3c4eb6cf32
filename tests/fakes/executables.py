"""Fake executables for testing code at its process boundary.

A ``FakeExecutable`` is a small Python script installed under the name of a real tool (``kind``,
``docker``, ``istioctl``, ...) in a directory that the test puts first on PATH. Every invocation:

1. appends one JSON line to the call log: ``{"argv": [...], "env": {...}, "cwd": "...", "stdin": ...,
   "refused": ...}`` (``argv`` excludes the program name; ``env`` holds only the variables named in
   ``record_env``; ``stdin`` is captured only when ``record_stdin=True``, else null);
2. for a tool whose real command line is recorded (``kind``, ``istioctl``: ``tests/fakes/cli.py``), refuses
   an argv the real release would refuse, with its error and exit code (``refused`` holds the error);
3. picks the first rule whose argv prefix matches (rules added with ``on()``, in order; a rule with
   ``times=N`` stops matching after N uses) or else the default reply;
4. optionally sleeps ``delay`` seconds (to exercise deadlines), writes the reply's stdout and stderr and
   exits with its exit code.

Usage::

    def test_something(fake_bin):
        kind = fake_bin("kind")
        kind.on("get", "clusters", stdout="egress-conformance\\n")
        kind.on("create", "cluster", exit_code=1, stderr="boom\\n")
        ...code under test runs `kind ...`...
        assert kind.argvs() == [["get", "clusters"], ["create", "cluster", ...]]

The ``fake_bin`` fixture (re-export it from a conftest or import it into the test module) prepends its
directory to PATH for the duration of the test; ``fake_bin.isolate_path()`` makes that directory the
*only* PATH entry, so real tools on the machine (a real ``docker``, say) cannot be found. The script's
shebang is the absolute path of the running interpreter, so it works with an isolated PATH; with ``-S``
(no site-packages: the script needs the standard library only), so that it starts faster.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes.cli import recorded_spec

if TYPE_CHECKING:
    from tests.fakes.cli import CliSpec

_SCRIPT = """\
#!{python} -S
# Fake `{name}` for tests (tests/fakes/executables.py): records its call, replies as scripted.
import json, os, sys, time

CONFIG = {config!r}

def refusal(config, argv):
    # What the real tool says to this argv when it refuses it (tests/fakes/cli.py), else None.
    if config["cli"] is None:
        return None
    sys.path.insert(0, config["cli_module_dir"])
    import cli

    return cli.check(config["cli"], argv)


def main():
    with open(CONFIG, encoding="utf-8") as f:
        config = json.load(f)
    argv = sys.argv[1:]
    stdin = sys.stdin.read() if config["record_stdin"] else None
    refused = refusal(config, argv)
    record = {{
        "argv": argv,
        "env": {{k: os.environ[k] for k in config["record_env"] if k in os.environ}},
        "cwd": os.getcwd(),
        "stdin": stdin,
        "refused": refused[0] if refused else None,
    }}
    with open(config["log"], "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\\n")
    if refused is not None:
        sys.stderr.write(refused[0] + "\\n")
        sys.exit(refused[1])
    try:
        with open(config["state"], encoding="utf-8") as f:
            uses = json.load(f)
    except FileNotFoundError:
        uses = {{}}
    reply = config["default"]
    for index, rule in enumerate(config["rules"]):
        prefix = rule["prefix"]
        if argv[: len(prefix)] != prefix:
            continue
        used = uses.get(str(index), 0)
        if rule["times"] is not None and used >= rule["times"]:
            continue
        uses[str(index)] = used + 1
        with open(config["state"], "w", encoding="utf-8") as f:
            json.dump(uses, f)
        reply = rule["reply"]
        break
    if reply["delay"]:
        time.sleep(reply["delay"])
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    sys.stderr.write(reply["stderr"])
    sys.stderr.flush()
    sys.exit(reply["exit_code"])

main()
"""


@dataclass(frozen=True)
class Reply:
    """What one invocation prints and returns."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    #: Seconds to sleep before replying (to test deadlines; keep tests fast by pairing with a short one).
    delay: float = 0.0


@dataclass(frozen=True)
class Call:
    """One recorded invocation."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdin: str | None
    #: The real tool's error for an argv it would refuse; None when the argv is accepted.
    refused: str | None = None


@dataclass
class _Rule:
    prefix: list[str]
    reply: Reply
    times: int | None


@dataclass
class FakeExecutable:
    """A scripted stand-in for the executable ``name`` inside ``directory``."""

    directory: Path
    name: str
    default: Reply = field(default_factory=Reply)
    #: Environment variables whose values each call records (others are not recorded).
    record_env: tuple[str, ...] = ()
    record_stdin: bool = False
    #: The real tool's command line; an argv it refuses is refused as the real tool does.
    cli: CliSpec | None = None
    _rules: list[_Rule] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state_dir = self.directory / f".{self.name}.fake"
        state_dir.mkdir(exist_ok=True)
        self.log_path = state_dir / "calls.jsonl"
        self._config_path = state_dir / "config.json"
        self._state_path = state_dir / "uses.json"
        self.path = self.directory / self.name
        self._write_config()
        self.path.write_text(
            _SCRIPT.format(python=sys.executable, name=self.name, config=str(self._config_path)),
            encoding="utf-8",
        )
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def on(
        self,
        *argv_prefix: str,
        stdout: str = "",
        stderr: str = "",
        exit_code: int = 0,
        delay: float = 0.0,
        times: int | None = None,
    ) -> FakeExecutable:
        """Reply this way to calls whose arguments start with ``argv_prefix`` (first matching rule wins)."""
        self._rules.append(_Rule(list(argv_prefix), Reply(stdout, stderr, exit_code, delay), times))
        self._write_config()
        return self

    def calls(self) -> list[Call]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [Call(**json.loads(line)) for line in lines if line.strip()]

    def argvs(self) -> list[list[str]]:
        """The argument lists of all calls so far, in order."""
        return [call.argv for call in self.calls()]

    def reset_calls(self) -> None:
        self.log_path.unlink(missing_ok=True)

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "log": str(self.log_path),
            "state": str(self._state_path),
            "record_env": list(self.record_env),
            "record_stdin": self.record_stdin,
            "cli": self.cli,
            "cli_module_dir": str(Path(__file__).resolve().parent),
            "default": asdict(self.default),
            "rules": [
                {"prefix": rule.prefix, "reply": asdict(rule.reply), "times": rule.times} for rule in self._rules
            ],
        }
        self._config_path.write_text(json.dumps(config), encoding="utf-8")


class FakeBin:
    """Factory for fake executables in one directory that is first on PATH (see ``fake_bin``)."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = directory
        self._monkeypatch = monkeypatch
        directory.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")

    def __call__(
        self,
        name: str,
        default: Reply | None = None,
        record_env: tuple[str, ...] = (),
        record_stdin: bool = False,
    ) -> FakeExecutable:
        """A fake ``name``; for kind and istioctl it refuses what their pinned releases refuse."""
        return FakeExecutable(self.directory, name, default or Reply(), record_env, record_stdin, recorded_spec(name))

    def isolate_path(self) -> None:
        """Make the fake directory the only PATH entry: real tools on this machine become invisible."""
        self._monkeypatch.setenv("PATH", str(self.directory))


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBin]:
    """A ``FakeBin`` whose directory is prepended to PATH for this test."""
    yield FakeBin(tmp_path / "fake-bin", monkeypatch)
