"""Who ships the Istio under test: the ``implementation`` block of the conformance report.

The fields are those of the Gateway API conformance report's ``Implementation`` (organization, project,
url, version, contact), read from the YAML file given with ``--implementation-file``::

    organization: example.com
    project: example-mesh
    url: https://example.com/mesh
    version: 2.4.1
    contact: ["@example/mesh-maintainers", "mesh-support@example.com"]

Without the file, a run in which the harness installed upstream Istio itself describes upstream Istio; a
run against an installed Istio then cannot say whose implementation it tested (the report says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

FIELDS = ("organization", "project", "url", "version", "contact")

UPSTREAM_URL = "https://github.com/istio/istio"
UPSTREAM_CONTACT = ("https://github.com/istio/istio/issues",)


class ImplementationError(ValueError):
    """The implementation file is unreadable or incomplete; the message says which field and why."""


@dataclass(frozen=True)
class Implementation:
    organization: str
    project: str
    url: str
    version: str
    contact: tuple[str, ...]
    #: Where the description comes from: the file's name, or the harness's own for upstream Istio.
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "project": self.project,
            "url": self.url,
            "version": self.version,
            "contact": list(self.contact),
            "source": self.source,
        }


def upstream_istio(version: str) -> Implementation:
    """Upstream Istio as the harness installs it (no implementation file needed)."""
    return Implementation("istio", "istio", UPSTREAM_URL, version, UPSTREAM_CONTACT, "harness (upstream Istio)")


def load_implementation(path: Path) -> Implementation:
    """The implementation described by a YAML file; every field required, no unknown field accepted."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ImplementationError(f"{path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ImplementationError(f"{path} is not YAML: {exc}") from None
    return parse_implementation(data, source=path.name)


def parse_implementation(data: object, *, source: str) -> Implementation:
    if not isinstance(data, Mapping):
        raise ImplementationError(f"{source} must be a mapping with the fields {', '.join(FIELDS)}")
    unknown = sorted(str(key) for key in data if key not in FIELDS)
    if unknown:
        raise ImplementationError(f"{source}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(FIELDS)})")
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise ImplementationError(f"{source}: missing field(s) {', '.join(missing)}")
    text = {name: _text(data[name], name, source) for name in ("organization", "project", "url", "version")}
    parts = urlsplit(text["url"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImplementationError(f"{source}: url {text['url']!r} is not an http(s) URL")
    contact = data["contact"]
    if isinstance(contact, str):
        contact = [contact]
    if not isinstance(contact, list) or not contact:
        raise ImplementationError(f"{source}: contact must be a non-empty list (GitHub handles, e-mail or a URL)")
    contacts = tuple(_text(item, "contact", source) for item in contact)
    return Implementation(text["organization"], text["project"], text["url"], text["version"], contacts, source)


def _text(value: object, name: str, source: str) -> str:
    # YAML turns `version: 1.30` into a float; a version is text, so say how to write it.
    if not isinstance(value, str) or not value.strip():
        hint = ' (quote it: version: "1.30")' if isinstance(value, int | float) else ""
        raise ImplementationError(f"{source}: {name} must be a non-empty string{hint}")
    return value.strip()
