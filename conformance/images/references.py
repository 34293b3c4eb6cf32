"""Image references: Docker's grammar of ``[registry/]repository[:tag][@digest]``, and its placeholders.

``nginx`` means ``docker.io/library/nginx``; a reference may hold ``${NAME}`` placeholders (an Istio image's
tag is ``${ISTIO_VERSION}``), kept verbatim until rendered.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

DOCKER_HUB = "docker.io"

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*)(?::\d+)?$")


@dataclass(frozen=True)
class ImageName:
    """A parsed ``[registry/]repository:tag[@digest]`` with Docker's defaults made explicit."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None = None

    @property
    def canonical(self) -> str:
        """``registry/repository:tag`` — equal for every spelling of the same tag (``nginx:1`` etc.)."""
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")

    @property
    def repository_reference(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_reference(text: str) -> ImageName:
    """Split an image reference the way Docker does (``nginx`` is ``docker.io/library/nginx``).

    Placeholders such as ``${ISTIO_VERSION}`` are kept verbatim; use :func:`reference_problems` to check a
    rendered reference.
    """
    remainder, _, digest = text.partition("@")
    first, slash, rest = remainder.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, remainder
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    tag: str | None = None
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageName(registry, path, tag, digest or None)


def reference_problems(text: str) -> list[str]:
    """Why ``text`` is not a pinned-by-tag image reference (empty list: it is one)."""
    if not text or text != text.strip():
        return [f"{text!r} is empty or has surrounding whitespace"]
    name = parse_reference(text)
    problems: list[str] = []
    if name.digest is not None:
        problems.append(f"{text}: put the digest in `digest:`, not in `image:`")
    if not _DOMAIN.match(name.registry):
        problems.append(f"{text}: {name.registry!r} is not a registry host")
    if not all(_PATH_COMPONENT.match(part) for part in name.repository.split("/")):
        problems.append(f"{text}: {name.repository!r} is not a valid repository path")
    if name.tag is None:
        problems.append(f"{text}: no tag; pin an explicit version tag")
    elif name.tag == "latest":
        problems.append(f"{text}: `latest` is not a version; pin an explicit version tag")
    elif not _TAG.match(name.tag):
        problems.append(f"{text}: {name.tag!r} is not a valid tag")
    return problems


def placeholders(text: str) -> set[str]:
    names: set[str] = set()
    for match in string.Template.pattern.finditer(text):
        name = match.group("braced") or match.group("named")
        if name:
            names.add(name)
    return names
