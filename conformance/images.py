"""The container images the harness deploys: one list (``manifests/images.yaml``), checked and usable offline.

The list pins every image by an explicit tag and, where a citable source (or a registry query) gave one, by
digest. From it the harness and its users can:

- ``python -m conformance.images list``: print every reference (``name:tag@digest`` when the digest is
  known), one per line, e.g. to mirror them into a private registry;
- ``python -m conformance.images resolve [--write]``: ask each registry (Docker Registry HTTP API v2) for
  the digest of every tag and record it in the list;
- ``python -m conformance.images load --cluster-name N``: ``docker pull`` what is missing and
  ``kind load docker-image`` it into the cluster, for runs without registry access.

Istio's images depend on the Istio release, so their entries hold a ``${ISTIO_VERSION}`` placeholder; a
templated entry records digests per rendered reference under ``pins``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import enum
import hashlib
import json
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
import yaml

from conformance import MANIFESTS_DIR, progress, versions
from conformance.manifests import iter_manifest_files
from conformance.processes import run_tool

IMAGE_LIST_PATH = MANIFESTS_DIR / "images.yaml"
API_VERSION = "egress-conformance/v1alpha1"
KIND = "ImageList"

#: Placeholders an entry may use, with the setting that supplies each.
KNOWN_VARIABLES: Mapping[str, str] = {"ISTIO_VERSION": "--istio-version"}

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"

#: Manifest media types asked for, multi-platform ones first: the digest of an index (manifest list)
#: is the one that pulls correctly on every node architecture.
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
SINGLE_MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT_MEDIA_TYPES = INDEX_MEDIA_TYPES + SINGLE_MANIFEST_MEDIA_TYPES

RESOLVED_SOURCE_PREFIX = "resolved from registry on "

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*)(?::\d+)?$")
_ENTRY_KEYS = frozenset({"image", "digest", "source", "used_by", "kind_load", "pins"})
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

_HEADER = """\
# Every container image the harness deploys or loads into kind, in one place.
#
# Each entry: `image` (an explicit tag, never `latest`), `digest` (sha256:..., only with a citable
# `source`), `used_by`. `kind_load: false` marks an image that is pulled but not loaded into the cluster
# (the kind node image is the cluster). Istio entries use ${ISTIO_VERSION}; their digests, per rendered
# reference, live under `pins`.
#
#   python -m conformance.images list                  # references to mirror, one per line
#   python -m conformance.images resolve --write       # record digests from the registries
#   python -m conformance.images load --cluster-name egress-conformance   # air-gapped: kind load
#
# The ambient profile sets global.variant=distroless (istio/istio manifests/helm-profiles/ambient.yaml),
# and the charts then append "-distroless" to every Istio tag; the demo (sidecar) profile sets no variant.
"""


class ImageListError(ValueError):
    """The image list is malformed; the message lists every problem found."""


class RegistryError(RuntimeError):
    """A registry could not be asked for a digest; the message says which image and why."""


class ImageLoadError(RuntimeError):
    """Pulling or loading an image failed, or docker/kind are missing; the message says what to do."""


# --- image references -----------------------------------------------------------------------------


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


def _placeholders(text: str) -> set[str]:
    names: set[str] = set()
    for match in string.Template.pattern.finditer(text):
        name = match.group("braced") or match.group("named")
        if name:
            names.add(name)
    return names


def default_variables(istio_version: str = versions.DEFAULT_ISTIO_VERSION) -> dict[str, str]:
    """Values for every placeholder the list may use."""
    _, minor, patch = versions.parse_istio_version(istio_version)
    return {"ISTIO_VERSION": f"1.{minor}.{patch}"}


# --- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    digest: str
    source: str


@dataclass(frozen=True)
class Image:
    """One concrete image: an entry rendered for a run's variables."""

    name: str
    group: str
    used_by: tuple[str, ...]
    digest: str | None = None
    source: str | None = None
    kind_load: bool = True
    #: The entry's ``image`` as written (with placeholders, if any).
    template: str = ""

    @property
    def reference(self) -> str:
        """``name@digest`` when the digest is known, else ``name`` (which carries the tag)."""
        return f"{self.name}@{self.digest}" if self.digest else self.name

    @property
    def parsed(self) -> ImageName:
        return parse_reference(self.name)


@dataclass(frozen=True)
class ImageEntry:
    group: str
    image: str
    used_by: tuple[str, ...]
    digest: str | None = None
    source: str | None = None
    kind_load: bool = True
    #: For templated entries: rendered reference -> digest and its source.
    pins: Mapping[str, Pin] = field(default_factory=dict)

    @property
    def templated(self) -> bool:
        return bool(_placeholders(self.image))

    def render(self, variables: Mapping[str, str]) -> Image:
        name = string.Template(self.image).substitute(variables) if self.templated else self.image
        pin = self.pins.get(name)
        digest, source = (pin.digest, pin.source) if pin else (self.digest, self.source)
        return Image(name, self.group, self.used_by, digest, source, self.kind_load, self.image)


@dataclass(frozen=True)
class ImageList:
    entries: tuple[ImageEntry, ...]

    def groups(self) -> list[str]:
        return list(dict.fromkeys(entry.group for entry in self.entries))

    def images(self, variables: Mapping[str, str] | None = None, groups: Iterable[str] | None = None) -> list[Image]:
        """Every entry rendered for ``variables`` (defaults: the default Istio release)."""
        values = dict(variables) if variables is not None else default_variables()
        wanted = set(groups) if groups is not None else None
        return [e.render(values) for e in self.entries if wanted is None or e.group in wanted]

    def find(self, text: str, variables: Mapping[str, str] | None = None) -> Image | None:
        """The listed image ``text`` names (any spelling of the same tag), or None."""
        wanted = parse_reference(text).canonical
        for image in self.images(variables):
            if image.parsed.canonical == wanted:
                return image
        return None

    def templates(self) -> set[str]:
        """Canonical forms of every entry's ``image`` as written (placeholders kept)."""
        return {parse_reference(entry.image).canonical for entry in self.entries}


def validate_image_list(data: object) -> list[str]:
    """Every problem with the parsed YAML of an image list (empty list: it is valid)."""
    if not isinstance(data, dict):
        return ["the image list must be a mapping with apiVersion, kind and groups"]
    problems: list[str] = []
    if data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        problems.append(f"apiVersion/kind must be {API_VERSION}/{KIND}")
    unknown_top = set(data) - {"apiVersion", "kind", "groups"}
    if unknown_top:
        problems.append(f"unknown top-level keys: {sorted(unknown_top)}")
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        return [*problems, "`groups` must map group names to lists of entries"]
    sample = default_variables()
    seen: dict[str, str] = {}
    for group, entries in groups.items():
        if not isinstance(entries, list) or not entries:
            problems.append(f"group {group!r}: must be a non-empty list of entries")
            continue
        for index, entry in enumerate(entries):
            where = f"{group}[{index}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: an entry must be a mapping")
                continue
            problems += [f"{where}: {p}" for p in _entry_problems(entry, sample)]
            image = entry.get("image")
            if isinstance(image, str):
                canonical = parse_reference(image).canonical
                if canonical in seen:
                    problems.append(f"{where}: {image} is already listed at {seen[canonical]}")
                seen.setdefault(canonical, where)
    return problems


def _entry_problems(entry: Mapping[str, Any], sample: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (allowed: {sorted(_ENTRY_KEYS)})")
    image = entry.get("image")
    if not isinstance(image, str):
        return [*problems, "`image` is required and must be a string"]
    names = _placeholders(image)
    unknown_names = names - set(KNOWN_VARIABLES)
    if unknown_names:
        problems.append(f"{image}: unknown placeholder(s) {sorted(unknown_names)} (known: {sorted(KNOWN_VARIABLES)})")
        return problems
    rendered = string.Template(image).substitute(sample) if names else image
    problems += reference_problems(rendered)

    digest, source = entry.get("digest"), entry.get("source")
    problems += _pin_problems(digest, source, image)
    if digest is not None and names:
        problems.append(f"{image}: a templated image records digests under `pins`, per rendered reference")

    used_by = entry.get("used_by")
    if not isinstance(used_by, list) or not used_by or not all(isinstance(u, str) and u for u in used_by):
        problems.append(f"{image}: `used_by` must be a non-empty list of strings")
    if "kind_load" in entry and not isinstance(entry["kind_load"], bool):
        problems.append(f"{image}: `kind_load` must be true or false")

    pins = entry.get("pins")
    if pins is not None:
        if not names:
            problems.append(f"{image}: `pins` is only for templated images; use `digest`/`source`")
        elif not isinstance(pins, dict):
            problems.append(f"{image}: `pins` must map rendered references to {{digest, source}}")
        else:
            shape = _template_regex(image)
            for rendered_name, pin in pins.items():
                if not isinstance(rendered_name, str) or not shape.match(rendered_name):
                    problems.append(f"{image}: pin key {rendered_name!r} is not a rendering of the template")
                elif not isinstance(pin, dict) or set(pin) - {"digest", "source"}:
                    problems.append(f"{image}: pin {rendered_name} must be a mapping with digest and source")
                else:
                    problems += _pin_problems(pin.get("digest"), pin.get("source"), rendered_name, required=True)
    return problems


def _pin_problems(digest: object, source: object, image: str, *, required: bool = False) -> list[str]:
    problems: list[str] = []
    if digest is None:
        if required:
            problems.append(f"{image}: digest is required")
        elif source is not None:
            problems.append(f"{image}: `source` cites a digest, but no `digest` is given")
        return problems
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        problems.append(f"{image}: digest {digest!r} is not sha256:<64 lower-case hex digits>")
    if not isinstance(source, str) or not source.strip():
        problems.append(f"{image}: a digest needs a `source` saying where it comes from")
    return problems


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in string.Template.pattern.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        parts.append(r"[\w.-]+" if (match.group("braced") or match.group("named")) else re.escape(match.group()))
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("^" + "".join(parts) + "$")


def parse_image_list(data: object, source: str = "<image list>") -> ImageList:
    problems = validate_image_list(data)
    if problems:
        raise ImageListError(f"{source}:\n  " + "\n  ".join(problems))
    assert isinstance(data, dict)
    entries: list[ImageEntry] = []
    for group, items in data["groups"].items():
        for item in items:
            pins = {name: Pin(pin["digest"], pin["source"]) for name, pin in (item.get("pins") or {}).items()}
            entries.append(
                ImageEntry(
                    group=str(group),
                    image=item["image"],
                    used_by=tuple(item["used_by"]),
                    digest=item.get("digest"),
                    source=item.get("source"),
                    kind_load=item.get("kind_load", True),
                    pins=pins,
                )
            )
    return ImageList(tuple(entries))


def load(path: Path = IMAGE_LIST_PATH) -> ImageList:
    """Read and validate the image list."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ImageListError(f"{path}: cannot read the image list: {exc}") from exc
    return parse_image_list(data, str(path))


def dump(image_list: ImageList) -> str:
    """The list as YAML (the layout ``resolve --write`` writes)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in image_list.entries:
        item: dict[str, Any] = {"image": entry.image}
        if entry.digest:
            item["digest"] = entry.digest
            item["source"] = entry.source
        item["used_by"] = list(entry.used_by)
        if not entry.kind_load:
            item["kind_load"] = False
        if entry.pins:
            item["pins"] = {
                name: {"digest": pin.digest, "source": pin.source} for name, pin in sorted(entry.pins.items())
            }
        groups.setdefault(entry.group, []).append(item)
    body = yaml.safe_dump({"apiVersion": API_VERSION, "kind": KIND, "groups": groups}, sort_keys=False, width=110)
    return _HEADER + body


def write(image_list: ImageList, path: Path = IMAGE_LIST_PATH) -> None:
    text = dump(image_list)
    parse_image_list(yaml.safe_load(text), str(path))  # never write a list that would not load back
    path.write_text(text, encoding="utf-8")


_default_list: ImageList | None = None


def default_list() -> ImageList:
    """The repository's image list, loaded once."""
    global _default_list
    if _default_list is None:
        _default_list = load()
    return _default_list


def reference(
    image: Image | str, image_list: ImageList | None = None, variables: Mapping[str, str] | None = None
) -> str:
    """The reference to deploy: ``name:tag@digest`` when the digest is known, else ``name:tag``.

    A string must name a listed image (any spelling of its tag); an unlisted image is an error, so nothing
    reaches a cluster without being pinned here.
    """
    if isinstance(image, Image):
        return image.reference
    found = (image_list or default_list()).find(image, variables)
    if found is None:
        raise ImageListError(f"{image} is not in {IMAGE_LIST_PATH.name}; add it there (with a tag) first")
    return found.reference


# --- images used by manifests/ ---------------------------------------------------------------------

#: libyaml's loader when present: manifests/ holds multi-megabyte CRD bundles.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SENTINEL = re.compile(r"__PLACEHOLDER_([A-Za-z_][A-Za-z0-9_]*)__")


def _neutralize_placeholders(text: str) -> str:
    """Replace ``${NAME}`` by a YAML-safe token so a template parses without its run-time values."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("named")
        if name:
            return f"__PLACEHOLDER_{name}__"
        if match.group("escaped") is not None:
            return "$"
        return match.group()

    return string.Template.pattern.sub(substitute, text)


def _container_images(node: object) -> Iterator[str]:
    """Images of every container list (containers, initContainers, ...) anywhere in a document.

    Only lists of container objects count, so an OpenAPI schema's ``image`` property is never mistaken
    for an image.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CONTAINER_LISTS and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        yield container["image"]
            yield from _container_images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _container_images(item)


def images_in_manifests(root: Path = MANIFESTS_DIR) -> set[str]:
    """Every container image named by a YAML file under ``root``.

    Placeholders are kept in ``${NAME}`` form (``docker.io/istio/proxyv2:${ISTIO_VERSION}``), to be
    matched against the list's templated entries.
    """
    found: set[str] = set()
    for path in iter_manifest_files(root):
        text = _neutralize_placeholders(path.read_text(encoding="utf-8"))
        try:
            documents = list(yaml.load_all(text, Loader=_YAML_LOADER))
        except yaml.YAMLError as exc:
            raise ImageListError(f"{path}: invalid YAML: {exc}") from exc
        for document in documents:
            for image in _container_images(document):
                found.add(_SENTINEL.sub(lambda m: "${" + m.group(1) + "}", image))
    return found


def unlisted_images(used: Iterable[str], image_list: ImageList) -> set[str]:
    """The images in ``used`` that the list does not pin (templates must match a templated entry).

    An image given with a digest must carry the listed digest. A reference whose repository itself is
    a placeholder cannot be checked and is reported too: manifests must name their images.
    """
    listed_templates = image_list.templates()
    concrete = {image.parsed.canonical: image for image in image_list.images()}
    missing: set[str] = set()
    for text in used:
        name = parse_reference(text)
        if _placeholders(text):
            if name.canonical not in listed_templates:
                missing.add(text)
            continue
        listed = concrete.get(name.canonical)
        if listed is None or (name.digest is not None and name.digest != listed.digest):
            missing.add(text)
    return missing


# --- registry: tag -> digest ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedDigest:
    digest: str
    media_type: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """Anonymous, read-only Docker Registry HTTP API v2 client: tag -> manifest digest.

    Authentication follows the registry token flow: a 401 carries ``WWW-Authenticate: Bearer realm=...,
    service=..., scope=...``; an anonymous token from the realm is sent back as ``Authorization: Bearer``.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout
        self.session = session or requests.Session()
        self._tokens: dict[tuple[str, str, str], str] = {}
        #: Last token that worked per (registry, repository): sent up front on the next request.
        self._repository_tokens: dict[tuple[str, str], str] = {}

    def endpoint(self, registry: str) -> str:
        if registry in self.endpoints:
            return self.endpoints[registry].rstrip("/")
        return DOCKER_HUB_API if registry == DOCKER_HUB else f"https://{registry}"

    def manifest_digest(self, image: str | ImageName) -> ResolvedDigest:
        name = parse_reference(image) if isinstance(image, str) else image
        label = name.canonical
        if not name.tag:
            raise RegistryError(f"{label}: no tag to resolve")
        url = f"{self.endpoint(name.registry)}/v2/{name.repository}/manifests/{name.tag}"
        headers = {"Accept": ", ".join(ACCEPT_MEDIA_TYPES)}
        response = self._request("HEAD", url, headers, name)
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest:
            # Not every registry sends the header on HEAD; the digest is the sha256 of the manifest bytes.
            response = self._request("GET", url, headers, name)
            digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or media_type
        if not _DIGEST.match(digest):
            raise RegistryError(f"{label}: registry answered an unusable digest {digest!r}")
        return ResolvedDigest(digest, media_type)

    def _request(self, method: str, url: str, headers: dict[str, str], name: ImageName) -> requests.Response:
        label = name.canonical
        repository = (name.registry, name.repository)
        try:
            known = self._repository_tokens.get(repository)
            sent = {**headers, "Authorization": f"Bearer {known}"} if known else headers
            response = self.session.request(method, url, headers=sent, timeout=self.timeout)
            if response.status_code == 401:
                token = self._token(response.headers.get("WWW-Authenticate", ""), name)
                self._repository_tokens[repository] = token
                authorized = {**headers, "Authorization": f"Bearer {token}"}
                response = self.session.request(method, url, headers=authorized, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"{label}: cannot reach {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 404:
            raise RegistryError(f"{label}: the registry has no such tag (404 from {url})")
        if response.status_code != 200:
            raise RegistryError(f"{label}: {method} {url} answered HTTP {response.status_code}")
        return response

    def _token(self, challenge: str, name: ImageName) -> str:
        label = name.canonical
        scheme, _, params_text = challenge.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise RegistryError(
                f"{label}: the registry wants {scheme or 'unknown'} credentials; only anonymous pulls are supported"
            )
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{label}: the registry's Bearer challenge names no token realm")
        service = params.get("service", "")
        scope = params.get("scope") or f"repository:{name.repository}:pull"
        key = (realm, service, scope)
        if key not in self._tokens:
            query = {"scope": scope, **({"service": service} if service else {})}
            try:
                response = self.session.get(realm, params=query, timeout=self.timeout)
            except requests.RequestException as exc:
                raise RegistryError(f"{label}: cannot reach token service {realm}: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise RegistryError(f"{label}: token service {realm} answered HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise RegistryError(f"{label}: token service {realm} did not answer JSON") from None
            token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise RegistryError(f"{label}: token service {realm} answered no token")
            self._tokens[key] = token
        return self._tokens[key]


class ResolveStatus(enum.StrEnum):
    #: The recorded digest equals the registry's.
    UNCHANGED = "unchanged"
    #: No digest was recorded; the registry's is now (with --write).
    NEW = "new"
    #: A digest recorded by an earlier resolve differs: the tag was re-pushed.
    MOVED = "moved"
    #: A digest from a cited source differs from the registry's; never overwritten.
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class ResolveResult:
    image: Image
    status: ResolveStatus
    digest: str | None = None
    media_type: str = ""
    error: str = ""


def resolve(
    image_list: ImageList,
    client: RegistryClient,
    variables: Mapping[str, str] | None = None,
    groups: Iterable[str] | None = None,
    today: dt.date | None = None,
) -> tuple[list[ResolveResult], ImageList]:
    """Ask the registries for every image's digest; return the results and the list with them recorded.

    Digests cited from elsewhere (kind's release notes, say) are checked, never replaced.
    """
    values = dict(variables) if variables is not None else default_variables()
    wanted = set(groups) if groups is not None else None
    source = RESOLVED_SOURCE_PREFIX + (today or dt.datetime.now(dt.UTC).date()).isoformat()
    results: list[ResolveResult] = []
    entries: list[ImageEntry] = []
    for entry in image_list.entries:
        if wanted is not None and entry.group not in wanted:
            entries.append(entry)
            continue
        image = entry.render(values)
        try:
            resolved = client.manifest_digest(image.name)
        except RegistryError as exc:
            results.append(ResolveResult(image, ResolveStatus.FAILED, error=str(exc)))
            entries.append(entry)
            continue
        if image.digest == resolved.digest:
            status = ResolveStatus.UNCHANGED
        elif image.digest is None:
            status = ResolveStatus.NEW
        elif (image.source or "").startswith(RESOLVED_SOURCE_PREFIX):
            status = ResolveStatus.MOVED
        else:
            status = ResolveStatus.CONFLICT
        results.append(ResolveResult(image, status, resolved.digest, resolved.media_type))
        if status in (ResolveStatus.NEW, ResolveStatus.MOVED):
            if entry.templated:
                entry = replace(entry, pins={**entry.pins, image.name: Pin(resolved.digest, source)})
            else:
                entry = replace(entry, digest=resolved.digest, source=source)
        entries.append(entry)
    return results, ImageList(tuple(entries))


# --- air-gapped runs: docker pull + kind load -----------------------------------------------------


class LoadAction(enum.StrEnum):
    ALREADY_PRESENT = "already present"
    PULLED = "pulled"


@dataclass(frozen=True)
class LoadResult:
    image: Image
    action: LoadAction
    loaded_into_kind: bool


class Commands:
    """Runs docker and kind, turning failures into :class:`ImageLoadError`."""

    def __init__(self, docker: str, kind: str, timeout: float) -> None:
        self.docker = docker
        self.kind = kind
        self.timeout = timeout

    def run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_tool(list(argv), self.timeout, error=ImageLoadError, check=check)


def find_tools(kind_bin: Path | str | None) -> tuple[str, str]:
    """docker and kind executables, or an error saying what to install."""
    docker = shutil.which("docker")
    if docker is None:
        raise ImageLoadError(
            "docker was not found on PATH: `load` needs Docker to pull and save images "
            "(install Docker, or mirror the images listed by `python -m conformance.images list`)"
        )
    if kind_bin is not None:
        kind = shutil.which(str(kind_bin))
        if kind is None:
            raise ImageLoadError(f"--kind-bin {kind_bin}: not an executable file or a command on PATH")
    else:
        found = shutil.which("kind")
        if found is None:
            raise ImageLoadError(f"kind was not found on PATH: install kind {versions.KIND.version} or pass --kind-bin")
        kind = found
    return docker, kind


def _present_locally(commands: Commands, image: Image) -> bool:
    """The image is in the local Docker store (and, when a digest is pinned, it is that digest)."""
    inspected = commands.run(
        [commands.docker, "image", "inspect", "--format", "{{json .RepoDigests}}", image.name], check=False
    )
    if inspected.returncode != 0:
        return False
    if image.digest is None:
        return True
    with contextlib.suppress(ValueError):
        repo_digests = json.loads(inspected.stdout.strip() or "[]")
        return any(str(entry).endswith("@" + image.digest) for entry in repo_digests or [])
    return False


def load_into_kind(images: Sequence[Image], cluster_name: str, commands: Commands) -> list[LoadResult]:
    """Make every image present in Docker (pulled by digest when pinned) and load it into the cluster."""
    results: list[LoadResult] = []
    for number, image in enumerate(images, start=1):
        counter = f"[{number}/{len(images)}]"
        if _present_locally(commands, image):
            action = LoadAction.ALREADY_PRESENT
            progress.info(f"{counter} {image.reference}: already present in Docker")
        else:
            with progress.step(f"{counter} docker pull {image.reference}"):
                if image.digest:
                    by_digest = f"{image.parsed.repository_reference}@{image.digest}"
                    commands.run([commands.docker, "pull", by_digest])
                    # Pods name the tag, so the node must know the image under its tag too.
                    commands.run([commands.docker, "tag", by_digest, image.name])
                else:
                    commands.run([commands.docker, "pull", image.name])
            action = LoadAction.PULLED
        if image.kind_load:
            with progress.step(f"{counter} kind load docker-image {image.name} --name {cluster_name}"):
                commands.run([commands.kind, "load", "docker-image", image.name, "--name", cluster_name])
        results.append(LoadResult(image, action, image.kind_load))
    return results


# --- command line ----------------------------------------------------------------------------------


def _endpoint(text: str) -> tuple[str, str]:
    registry, sep, url = text.partition("=")
    if not sep or not registry or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected REGISTRY=URL, e.g. docker.io=https://mirror.example")
    return registry, url


def _istio_version(text: str) -> str:
    try:
        return default_variables(text)["ISTIO_VERSION"]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conformance.images", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--images-file", type=Path, default=IMAGE_LIST_PATH, help="the image list to use")
    common.add_argument(
        "--istio-version",
        type=_istio_version,
        default=versions.DEFAULT_ISTIO_VERSION,
        help="Istio release whose images to use (default: %(default)s)",
    )
    common.add_argument(
        "--group", action="append", dest="groups", help="only this group of the list (repeatable; default: all)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", parents=[common], help="print every image reference, one per line")

    resolve_cmd = commands.add_parser("resolve", parents=[common], help="ask the registries for digests")
    resolve_cmd.add_argument("--write", action="store_true", help="record new digests in the image list")
    resolve_cmd.add_argument(
        "--endpoint",
        type=_endpoint,
        action="append",
        default=[],
        metavar="REGISTRY=URL",
        help="query URL instead of the registry's own API host (repeatable)",
    )
    resolve_cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")

    load_cmd = commands.add_parser("load", parents=[common], help="docker pull + kind load every image")
    load_cmd.add_argument("--cluster-name", required=True, help="kind cluster to load the images into")
    load_cmd.add_argument("--kind-bin", help="kind executable (default: kind on PATH)")
    load_cmd.add_argument("--timeout", type=float, default=900.0, help="seconds per docker/kind command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        image_list = load(args.images_file)
        unknown_groups = set(args.groups or []) - set(image_list.groups())
        if unknown_groups:
            raise ImageListError(f"unknown group(s) {sorted(unknown_groups)}; groups: {image_list.groups()}")
        variables = default_variables(args.istio_version)
        if args.command == "list":
            for image in image_list.images(variables, args.groups):
                print(image.reference)
            return 0
        if args.command == "resolve":
            return _resolve_command(args, image_list, variables)
        progress.attach_terminal_handler()
        docker, kind = find_tools(args.kind_bin)
        results = load_into_kind(
            image_list.images(variables, args.groups), args.cluster_name, Commands(docker, kind, args.timeout)
        )
        loaded = sum(result.loaded_into_kind for result in results)
        print(f"{len(results)} image(s) present in Docker, {loaded} loaded into kind cluster {args.cluster_name}")
        return 0
    except (ImageListError, ImageLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _resolve_command(args: argparse.Namespace, image_list: ImageList, variables: Mapping[str, str]) -> int:
    client = RegistryClient(dict(args.endpoint), timeout=args.timeout)
    results, updated = resolve(image_list, client, variables, args.groups)
    for result in results:
        kind = (
            ""
            if result.status is ResolveStatus.FAILED or result.media_type in INDEX_MEDIA_TYPES
            else (f" (single-platform manifest {result.media_type or 'of unknown type'})")
        )
        detail = result.error if result.status is ResolveStatus.FAILED else f"{result.digest}{kind}"
        if result.status in (ResolveStatus.MOVED, ResolveStatus.CONFLICT):
            detail += f" (recorded: {result.image.digest}, source: {result.image.source})"
        print(f"{result.image.name}\t{result.status.value}\t{detail}")
    if args.write and updated != image_list:
        write(updated, args.images_file)
        print(f"recorded new digests in {args.images_file}")
    failed = any(r.status in (ResolveStatus.FAILED, ResolveStatus.CONFLICT) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
