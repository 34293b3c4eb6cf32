"""The command lines a real tool accepts, read from its recorded ``--help`` (cobra/pflag format).

``tests/data/cli/<tool>-<version>/`` holds the verbatim ``--help`` output of every command of that tool the
harness runs (``SOURCES.md`` there says how each was produced). A fake executable checks its argv against
them, so a flag the real tool would reject fails the test instead of being copied into an assertion.

This module is also imported by the fake executables' scripts, so it uses the standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLI_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "cli"

#: The recorded help of the releases the harness pins, per tool name.
RECORDED = {"kind": "kind-v0.31.0", "istioctl": "istioctl-1.30"}

# "  -n, --name string     the cluster name" / "      --retain   retain nodes" / "  -o, --output string".
_FLAG_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[\w.-]+)(?: (?P<value>[^\s\[]+)(?P<optional>\[=\S*\])?)?")
_GO_DURATION_UNIT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)"
_GO_DURATION = re.compile(rf"^(?:0|[-+]?(?:{_GO_DURATION_UNIT})+)$")
_INTEGER = re.compile(r"^[-+]?\d+$")
_BOOL_VALUES = frozenset({"1", "0", "t", "f", "T", "F", "true", "false", "TRUE", "FALSE", "True", "False"})


@dataclass(frozen=True)
class Flag:
    name: str
    #: pflag's value placeholder (``string``, ``duration``, ``int32``...); None for a boolean flag.
    value: str | None
    #: The value may be left out (pflag NoOptDefVal, shown as ``type[=default]``).
    value_optional: bool = False


@dataclass(frozen=True)
class Command:
    path: str
    flags: dict[str, Flag]
    #: Shorthand letter -> long name.
    shorthands: dict[str, str]
    #: The usage line names positional arguments (``<IMAGE> [IMAGE...]``).
    takes_arguments: bool
    #: Positional arguments the usage line requires (``<IMAGE>``).
    required_arguments: int = 0


@dataclass(frozen=True)
class Refusal:
    """The real tool's error message and exit code for a command line it refuses."""

    message: str
    exit_code: int


@dataclass
class CliSpec:
    tool: str
    source: str
    error_prefix: str
    #: Exit code of a refused flag or command (cobra's parse errors); argument-count errors exit 1.
    flag_error_exit_code: int = 1
    commands: dict[str, Command] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CliSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CliSpec:
        commands = {
            path: Command(
                path=c["path"],
                flags={name: Flag(**flag) for name, flag in c["flags"].items()},
                shorthands=c["shorthands"],
                takes_arguments=c["takes_arguments"],
                required_arguments=c["required_arguments"],
            )
            for path, c in data["commands"].items()
        }
        return cls(data["tool"], data["source"], data["error_prefix"], data["flag_error_exit_code"], commands)

    def groups(self) -> set[str]:
        """Command paths that only hold subcommands (``kind create``)."""
        return {" ".join(path.split()[:n]) for path in self.commands for n in range(len(path.split()))}

    def check(self, argv: list[str]) -> Refusal | None:
        """Why the real tool would refuse ``argv`` (its own error wording), or None when it accepts it."""
        words: list[str] = []
        for token in argv:
            if token.startswith("-"):
                break
            words.append(token)
        path = ""
        for word in words:
            candidate = f"{path} {word}".strip()
            if candidate in self.commands or candidate in self.groups():
                path = candidate
                continue
            if path in self.commands:
                break  # a positional argument of the command
            return self._error(f'unknown command "{word}" for "{self._named(path)}"')
        command = self.commands.get(path)
        if command is None and path in self.groups():
            return self._error(f"{self._named(path)}: a subcommand is required")
        if command is None:
            return self._error(
                f"{self._named(path)}: no recorded help for this command in {self.source} "
                "(record it there if the harness runs it)"
            )
        positional = words[len(path.split()) if path else 0 :]
        rest = argv[len(words) :]
        index = 0
        while index < len(rest):
            token = rest[index]
            index += 1
            if token == "--":
                positional += rest[index:]
                break
            if token.startswith("--"):
                name, has_value, value = token[2:].partition("=")
                flag = command.flags.get(name)
                if flag is None:
                    return self._error(f"unknown flag: --{name}")
                if flag.value is not None and not has_value and not flag.value_optional:
                    if index >= len(rest):
                        return self._error(f"flag needs an argument: --{name}")
                    value, has_value = rest[index], "="
                    index += 1
                problem = _value_problem(flag, value) if has_value else None
                if problem:
                    return self._error(f'invalid argument "{value}" for "--{name}" flag: {problem}')
            elif token.startswith("-") and len(token) > 1:
                letters = token[1:]
                while letters:
                    letter, letters = letters[0], letters[1:]
                    long_name = command.shorthands.get(letter)
                    if long_name is None:
                        return self._error(f"unknown shorthand flag: '{letter}' in {token}")
                    flag = command.flags[long_name]
                    if flag.value is None:
                        continue
                    value = letters.removeprefix("=")
                    if not value:
                        if index >= len(rest):
                            return self._error(f"flag needs an argument: '{letter}' in -{letter}")
                        value = rest[index]
                        index += 1
                    problem = _value_problem(flag, value)
                    if problem:
                        return self._error(f'invalid argument "{value}" for "-{letter}, --{long_name}" flag: {problem}')
                    letters = ""
            else:
                positional.append(token)
        if positional and not command.takes_arguments:
            return self._error(f'unknown command "{positional[0]}" for "{self._named(path)}"', exit_code=1)
        if len(positional) < command.required_arguments:
            wanted = command.required_arguments
            return self._error(f"{self._named(path)} needs {wanted} argument(s), got {positional}", exit_code=1)
        return None

    def _named(self, path: str) -> str:
        return f"{self.tool} {path}".strip()

    def _error(self, message: str, exit_code: int | None = None) -> Refusal:
        return Refusal(f"{self.error_prefix}{message}", self.flag_error_exit_code if exit_code is None else exit_code)


def _value_problem(flag: Flag, value: str) -> str | None:
    kind = flag.value
    if kind is None:
        return None if value in _BOOL_VALUES else f'strconv.ParseBool: parsing "{value}": invalid syntax'
    if kind == "duration" and not _GO_DURATION.match(value):
        missing_unit = _INTEGER.match(value) and value.strip("+-0")
        return f'time: {"missing unit in duration" if missing_unit else "invalid duration"} "{value}"'
    if kind in ("int", "int32", "int64", "uint", "uint32") and not _INTEGER.match(value):
        return f'strconv.ParseInt: parsing "{value}": invalid syntax'
    return None


def parse_help(tool: str, path: str, text: str) -> Command:
    """One command's flags (its own and the global ones) and whether it takes arguments, from its --help."""
    flags: dict[str, Flag] = {}
    shorthands: dict[str, str] = {}
    section = ""
    usage_lines: list[str] = []
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
            continue
        if section == "Usage":
            usage_lines.append(line.strip())
        elif section in ("Flags", "Global Flags"):
            found = _FLAG_LINE.match(line)
            if found is None:
                continue
            name = found.group("long")
            flags[name] = Flag(name, found.group("value"), bool(found.group("optional")))
            if found.group("short"):
                shorthands[found.group("short")] = name
    prefix = f"{tool} {path}".strip()
    usage = next((u for u in usage_lines if u.startswith(prefix) and not u.endswith("[command]")), None)
    if not flags or usage is None:
        raise ValueError(f"{prefix!r}: no flags or no usage line found; is this cobra's --help output?")
    arguments = usage.removeprefix(prefix).replace("[flags]", "")
    required = len(re.findall(r"(?<!\[)<[^>]+>", arguments))
    return Command(path, flags, shorthands, bool(arguments.strip()), required)


def recorded_spec(tool: str) -> CliSpec | None:
    """The recorded CLI of the pinned release of ``tool``, or None for a tool without one."""
    name = RECORDED.get(tool)
    return load_spec(name) if name is not None else None


def load_spec(name: str) -> CliSpec:
    """The recorded CLI in ``tests/data/cli/<name>/``: ``spec.json`` maps each command to its help file."""
    directory = CLI_DATA_DIR / name
    meta = json.loads((directory / "spec.json").read_text(encoding="utf-8"))
    tool = meta["tool"]
    spec = CliSpec(tool, f"tests/data/cli/{name}", meta["error_prefix"], meta["flag_error_exit_code"])
    for path, help_file in meta["commands"].items():
        text = (directory / help_file).read_text(encoding="utf-8")
        command = parse_help(tool, path, text)
        spec.commands[path] = command
        parent = path.rsplit(" ", 1)[0] if " " in path else ""
        for alias in _aliases(text):
            spec.commands.setdefault(f"{parent} {alias}".strip(), command)
    return spec


def _aliases(text: str) -> list[str]:
    """The names under cobra's ``Aliases:`` heading (``install, apply``)."""
    found = re.search(r"^Aliases:\n\s+(.+)$", text, re.M)
    return [name.strip() for name in found.group(1).split(",")] if found else []
