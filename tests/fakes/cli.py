"""The command lines a real tool accepts, read from its recorded ``--help`` (cobra/pflag format).

``tests/data/cli/<tool>-<version>/`` holds the verbatim ``--help`` output of every command of that tool the
harness runs (``SOURCES.md`` there says how each was produced). A fake executable checks its argv against
them, so a flag the real tool would reject fails the test instead of being copied into an assertion.

The fake executables import this module on every call: it is plain data (JSON-ready dicts) and needs only
``json`` and ``re`` at run time, so that a fake starts in a few milliseconds.
"""

from __future__ import annotations

import json
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

    class Flag(TypedDict):
        #: pflag's value placeholder (``string``, ``duration``, ``int32``...); None for a boolean flag.
        value: str | None
        #: The value may be left out (pflag NoOptDefVal, shown as ``type[=default]``).
        optional: bool

    class Command(TypedDict):
        flags: dict[str, Flag]
        #: Shorthand letter -> long name.
        shorthands: dict[str, str]
        #: The usage line names positional arguments (``<IMAGE> [IMAGE...]``).
        takes_arguments: bool
        #: Positional arguments the usage line requires (``<IMAGE>``).
        required_arguments: int

    class CliSpec(TypedDict):
        tool: str
        source: str
        error_prefix: str
        #: Exit code of a refused flag or command (cobra's parse errors); argument-count errors exit 1.
        flag_error_exit_code: int
        commands: dict[str, Command]


CLI_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "cli")

#: The recorded help of the releases the harness pins, per tool name.
RECORDED = {"kind": "kind-v0.31.0", "istioctl": "istioctl-1.30"}

# "  -n, --name string     the cluster name" / "      --retain   retain nodes" / "  -o, --output string".
_FLAG_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[\w.-]+)(?: (?P<value>[^\s\[]+)(?P<optional>\[=\S*\])?)?")
_GO_DURATION_UNIT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)"
_GO_DURATION = re.compile(rf"^(?:0|[-+]?(?:{_GO_DURATION_UNIT})+)$")
_INTEGER = re.compile(r"^[-+]?\d+$")
_BOOL_VALUES = frozenset({"1", "0", "t", "f", "T", "F", "true", "false", "TRUE", "FALSE", "True", "False"})


def check(spec: CliSpec, argv: list[str]) -> tuple[str, int] | None:
    """The real tool's error message and exit code for ``argv``, or None when it accepts the command line."""
    tool = spec["tool"]

    def refuse(message: str, exit_code: int | None = None) -> tuple[str, int]:
        return f"{spec['error_prefix']}{message}", spec["flag_error_exit_code"] if exit_code is None else exit_code

    def named(path: str) -> str:
        return f"{tool} {path}".strip()

    commands = spec["commands"]
    groups = {" ".join(path.split()[:n]) for path in commands for n in range(len(path.split()))}
    words: list[str] = []
    for token in argv:
        if token.startswith("-"):
            break
        words.append(token)
    path = ""
    for word in words:
        candidate = f"{path} {word}".strip()
        if candidate in commands or candidate in groups:
            path = candidate
            continue
        if path in commands:
            break  # a positional argument of the command
        return refuse(f'unknown command "{word}" for "{named(path)}"')
    command = commands.get(path)
    if command is None and path in groups:
        return refuse(f"{named(path)}: a subcommand is required")
    if command is None:
        return refuse(f"{named(path)}: no recorded help for this command in {spec['source']} (record it there)")
    flags = command["flags"]
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
            name, equals, value = token[2:].partition("=")
            flag = flags.get(name)
            if flag is None:
                return refuse(f"unknown flag: --{name}")
            if flag["value"] is not None and not equals and not flag["optional"]:
                if index >= len(rest):
                    return refuse(f"flag needs an argument: --{name}")
                value, equals = rest[index], "="
                index += 1
            problem = _value_problem(flag, value) if equals else None
            if problem:
                return refuse(f'invalid argument "{value}" for "--{name}" flag: {problem}')
        elif token.startswith("-") and len(token) > 1:
            letters = token[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                long_name = command["shorthands"].get(letter)
                if long_name is None:
                    return refuse(f"unknown shorthand flag: '{letter}' in {token}")
                flag = flags[long_name]
                if flag["value"] is None:
                    continue
                value = letters.removeprefix("=")
                if not value:
                    if index >= len(rest):
                        return refuse(f"flag needs an argument: '{letter}' in -{letter}")
                    value = rest[index]
                    index += 1
                problem = _value_problem(flag, value)
                if problem:
                    return refuse(f'invalid argument "{value}" for "-{letter}, --{long_name}" flag: {problem}')
                letters = ""
        else:
            positional.append(token)
    if positional and not command["takes_arguments"]:
        return refuse(f'unknown command "{positional[0]}" for "{named(path)}"', exit_code=1)
    wanted = command["required_arguments"]
    if len(positional) < wanted:
        return refuse(f"{named(path)} needs {wanted} argument(s), got {positional}", exit_code=1)
    return None


def _value_problem(flag: Flag, value: str) -> str | None:
    kind = flag["value"]
    if kind is None:
        return None if value in _BOOL_VALUES else f'strconv.ParseBool: parsing "{value}": invalid syntax'
    if kind == "duration" and not _GO_DURATION.match(value):
        missing_unit = _INTEGER.match(value) and value.strip("+-0")
        return f'time: {"missing unit in duration" if missing_unit else "invalid duration"} "{value}"'
    if kind in ("int", "int32", "int64", "uint", "uint32") and not _INTEGER.match(value):
        return f'strconv.ParseInt: parsing "{value}": invalid syntax'
    return None


def parse_help(tool: str, path: str, text: str) -> Command:
    """One command's flags (its own and the global ones) and its arguments, from its ``--help``."""
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
            flags[found.group("long")] = {"value": found.group("value"), "optional": bool(found.group("optional"))}
            if found.group("short"):
                shorthands[found.group("short")] = found.group("long")
    prefix = f"{tool} {path}".strip()
    usage = next((u for u in usage_lines if u.startswith(prefix) and not u.endswith("[command]")), None)
    if not flags or usage is None:
        raise ValueError(f"{prefix!r}: no flags or no usage line found; is this cobra's --help output?")
    arguments = usage.removeprefix(prefix).replace("[flags]", "")
    # Optional parts ([IMAGE...], [<type>/], [.<namespace>]) name no required argument.
    required = re.sub(r"\[[^\]]*\]", "", arguments)
    return {
        "flags": flags,
        "shorthands": shorthands,
        "takes_arguments": bool(arguments.strip()),
        "required_arguments": len(re.findall(r"<[^>]+>", required)),
    }


def _aliases(text: str) -> list[str]:
    """The names under cobra's ``Aliases:`` heading (``install, apply``)."""
    found = re.search(r"^Aliases:\n\s+(.+)$", text, re.M)
    return [name.strip() for name in found.group(1).split(",")] if found else []


def load_spec(name: str) -> CliSpec:
    """The recorded CLI in ``tests/data/cli/<name>/``: ``spec.json`` maps each command to its help file."""
    directory = os.path.join(CLI_DATA_DIR, name)
    with open(os.path.join(directory, "spec.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    tool = meta["tool"]
    commands: dict[str, Command] = {}
    for path, help_file in meta["commands"].items():
        with open(os.path.join(directory, help_file), encoding="utf-8") as handle:
            text = handle.read()
        commands[path] = parse_help(tool, path, text)
        # Where the usage line and the command's own argument check disagree, the recorded check wins.
        override = meta.get("required_arguments", {}).get(path)
        if override is not None:
            commands[path]["required_arguments"] = int(override["count"])
        parent = path.rsplit(" ", 1)[0] if " " in path else ""
        for alias in _aliases(text):
            commands.setdefault(f"{parent} {alias}".strip(), commands[path])
    return {
        "tool": tool,
        "source": f"tests/data/cli/{name}",
        "error_prefix": meta["error_prefix"],
        "flag_error_exit_code": meta["flag_error_exit_code"],
        "commands": commands,
    }


def recorded_spec(tool: str) -> CliSpec | None:
    """The recorded CLI of the pinned release of ``tool``, or None for a tool without one."""
    name = RECORDED.get(tool)
    return load_spec(name) if name is not None else None
