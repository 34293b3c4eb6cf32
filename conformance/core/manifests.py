"""Loading YAML from ``manifests/``: the only way Python code gets Kubernetes objects.

Manifests may hold ``${NAME}`` placeholders (upper-case, braced) for values known only at run time (an
IP, a namespace, certificate data). Any other ``$`` (regular expressions in upstream CRDs, Envoy
configuration) is left alone. Rendering refuses a missing variable, so a typo never reaches the API server
as a literal ``${...}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from conformance import MANIFESTS_DIR

Document = dict[str, Any]


class ManifestError(ValueError):
    pass


def manifest_path(relative: str | Path) -> Path:
    """Resolve a path relative to ``manifests/`` (absolute paths are kept)."""
    path = Path(relative)
    if not path.is_absolute():
        path = MANIFESTS_DIR / path
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    return path


_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders(text: str) -> set[str]:
    """Names of the ``${NAME}`` placeholders in ``text``."""
    return set(_PLACEHOLDER.findall(text))


def render_text(text: str, variables: Mapping[str, str] | None = None, *, source: str = "<text>") -> str:
    missing = placeholders(text) - set(variables or {})
    if missing:
        raise ManifestError(f"{source}: no value for placeholder(s) {', '.join(sorted(missing))}")
    values = variables or {}
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def load_documents(text: str, *, source: str = "<text>") -> list[Document]:
    """Parse multi-document YAML, dropping empty documents."""
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: invalid YAML: {exc}") from exc
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {index} is not a mapping")
    return docs


def render(relative: str | Path, variables: Mapping[str, str] | None = None) -> list[Document]:
    """Render and parse one manifest file from ``manifests/``."""
    path = manifest_path(relative)
    text = render_text(path.read_text(encoding="utf-8"), variables, source=str(path))
    return load_documents(text, source=str(path))


def iter_manifest_files(root: Path = MANIFESTS_DIR) -> Iterator[Path]:
    """Every ``*.yaml`` / ``*.yml`` file under ``root``, sorted."""
    yield from sorted(p for p in root.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
