"""Evidence of a check for the Allure results: labels, documented steps, attachments, and the results
directory's own files (``environment.properties``, ``categories.json``).

One place talks to Allure, so the rest of the library stays typed and every attachment passes the same
redaction rule (``conformance.core.redaction``): no private key or registered secret value is ever attached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import allure

from conformance.core import redaction

_dynamic: Any = allure.dynamic
_allure: Any = allure
_attach: Any = allure.attach
_step: Any = allure.step
_types: Any = allure.attachment_type
_severity: Any = allure.severity_level

REDACTED_KEY = redaction.REDACTED_KEY

#: Text every failure of a check with a documented deviation carries (the exception gets it as a note), so
#: failures can be sorted into the "Documentation deviation" category by their message.
DEVIATION_MARKER = "documentation deviation"
#: Exceptions that mean the cluster, a tool or the harness's environment failed, not the mesh under test.
INFRASTRUCTURE_ERRORS = (
    "KubeError",
    "KubeApiError",
    "ClusterError",
    "IstioError",
    "ProbeError",
    "BinaryError",
    "ChecksumMismatch",
    "ExternalWorldError",
    "CorefileError",
    "WorkloadError",
    "PKIError",
    "TimeoutExpired",
    "ConnectionError",
    "OSError",
)

#: Allure categories, first match wins (Allure 2's ``categories.json`` format; the Allure 3 configuration in
#: ``tools/allure/allurerc.yaml`` holds the same rules). The regexes work as full matches (Allure 2, Java)
#: and as searches (Allure 3, JavaScript) alike.
CATEGORIES: tuple[dict[str, Any], ...] = (
    {
        "name": "Infrastructure",
        "description": "the cluster, the API server, a tool or the external world failed; rerun before judging",
        "matchedStatuses": ["broken"],
        "messageRegex": r"^(?:[\w.]+\.)?(?:" + "|".join(INFRASTRUCTURE_ERRORS) + r")\b[\s\S]*",
    },
    {
        "name": "Documentation deviation",
        "description": "the check has a documented deviation from upstream Istio; compare with the documentation",
        "matchedStatuses": ["failed"],
        "messageRegex": r"[\s\S]*" + DEVIATION_MARKER + r"[\s\S]*",
    },
    {
        "name": "Product defect",
        "description": "the mesh did not behave as upstream Istio must",
        "matchedStatuses": ["failed"],
    },
)


def scrub(text: str) -> str:
    """The text without PEM private keys or registered secret values."""
    return redaction.scrub(text)


def check_marks(*, epic: str, feature: str, story: str, core: bool = True) -> list[Any]:
    """Allure's labels of a check as marks, given at collection: epic = profile, feature = family, story =
    check ID. Marks, unlike labels added while the test runs, are there when its set-up fails."""
    return [
        _allure.epic(epic),
        _allure.feature(feature),
        _allure.story(story),
        _allure.severity(_severity.CRITICAL if core else _severity.NORMAL),
    ]


def label_check(*, title: str, tags: tuple[str, ...]) -> None:
    """The running check's title and tags (mode, seed, ``planned``)."""
    _dynamic.title(title)
    for tag in tags:
        _dynamic.tag(tag)


def describe_check(*, title: str, description: str) -> None:
    """Title and description of the running check (allure-pytest resets both after setup: call this from
    the call phase)."""
    _dynamic.title(title)
    _dynamic.description(scrub(description))


@contextmanager
def step(title: str) -> Iterator[None]:
    with _step(scrub(title)):
        yield


def attach_text(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.TEXT)


def attach_yaml(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.YAML)


def attach_json(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.JSON)


def attach_evidence_file(path: Path, name: str) -> None:
    """An evidence file already written (scrubbed and bounded) to the report directory."""
    kind = _types.JSON if path.suffix == ".json" else _types.YAML if path.suffix == ".yaml" else _types.TEXT
    _attach(scrub(path.read_text(encoding="utf-8", errors="replace")), name=name, attachment_type=kind)


# ------------------------------------------------------------------------------ results directory files


def write_environment_properties(allure_dir: Path, properties: Mapping[str, str]) -> Path:
    """``environment.properties``: the header of the report (allure-pytest never writes it)."""
    allure_dir.mkdir(parents=True, exist_ok=True)
    path = allure_dir / "environment.properties"
    lines = [f"{_property_key(key)}={_property_value(value)}\n" for key, value in properties.items()]
    path.write_text(scrub("".join(lines)), encoding="utf-8")
    return path


def write_categories(allure_dir: Path) -> Path:
    """``categories.json``: product defect, infrastructure, documentation deviation."""
    allure_dir.mkdir(parents=True, exist_ok=True)
    path = allure_dir / "categories.json"
    path.write_text(json.dumps(list(CATEGORIES), indent=2) + "\n", encoding="utf-8")
    return path


def _property_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


def _property_value(value: str) -> str:
    # One line per property: Java properties escaping for the backslash and line breaks.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "")
