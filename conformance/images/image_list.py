"""The list of every container image the harness deploys (``manifests/images.yaml``): its schema, reading
and writing it, and the check that manifests name only listed images.

The list pins every image by an explicit tag and, where a citable source (or a registry query) gave one, by
digest. Istio's images depend on the Istio release, so their entries hold a ``${ISTIO_VERSION}``
placeholder; a templated entry records digests per rendered reference under ``pins``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance import DATA_API_VERSION, MANIFESTS_DIR
from conformance.core import versions
from conformance.core.manifests import iter_manifest_files
from conformance.images.references import DIGEST, ImageName, parse_reference, placeholders, reference_problems

IMAGE_LIST_PATH = MANIFESTS_DIR / "images.yaml"
API_VERSION = DATA_API_VERSION
KIND = "ImageList"

#: Placeholders an entry may use, with the setting that supplies each.
KNOWN_VARIABLES: Mapping[str, str] = {"ISTIO_VERSION": "--istio-version"}

#: Folders of manifests/ that the harness itself never deploys: the local-cluster tier's (its node image's
#: CNI names images the tier builds under local names; tests/test_local_cluster.py checks those).
TIER_MANIFESTS = frozenset({"local-cluster"})
_ENTRY_KEYS = frozenset({"image", "digest", "source", "used_by", "kind_load", "pins"})
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

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
        return bool(placeholders(self.image))

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
    names = placeholders(image)
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
    if not isinstance(digest, str) or not DIGEST.match(digest):
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


def _neutralizeplaceholders(text: str) -> str:
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
            if key in CONTAINER_LISTS and isinstance(value, list):
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
        if path.relative_to(root).parts[0] in TIER_MANIFESTS:
            continue
        text = _neutralizeplaceholders(path.read_text(encoding="utf-8"))
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
        if placeholders(text):
            if name.canonical not in listed_templates:
                missing.add(text)
            continue
        listed = concrete.get(name.canonical)
        if listed is None or (name.digest is not None and name.digest != listed.digest):
            missing.add(text)
    return missing
