"""Strict offline validation of Kubernetes objects: built-in kinds and CRD-defined kinds alike.

Built-in kinds go through kubernetes-validate's strict schemas. Custom resources (Istio, Gateway API) are
checked against the openAPIV3Schema of the real CRDs, with every structural object schema closed
(``additionalProperties: false``) unless it says ``x-kubernetes-preserve-unknown-fields`` — the same
unknown-field rule the API server applies with ``fieldValidation=Strict``. CEL rules
(``x-kubernetes-validations``) are not evaluated offline.

The schemas are those of one supported Istio minor (``SchemaRegistry.for_istio_minor``): the Istio CRDs and
the Gateway API bundle ``manifests/versions.yaml`` records for it;
built-in kinds are checked against one Kubernetes minor's schemas. The harness's tests validate every
manifest against each supported Istio minor, on the oldest and the newest Kubernetes it supports.
Documents of ``SKIPPED_KINDS`` are not API objects and are checked elsewhere (the reason is given there).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import version_model, versions

#: Kubernetes minor the schemas of built-in kinds are taken from by default: the default node image's.
KUBERNETES_VERSION = versions.VERSIONS.default_node.kubernetes

#: A vendor CRD written from a seed's fields (the vendor config provider of the ETP checks renders it).
VENDOR_CRD_SOURCES: tuple[Path, ...] = (MANIFESTS_DIR / "schemas" / "vendor" / "asmegresstrafficpolicy-crd.yaml",)

#: CRD bundles whose schemas are used for custom resources by default: the default Istio release's CRDs,
#: the Gateway API bundle it pairs with, and the vendor CRD.
CRD_SOURCES: tuple[Path, ...] = (
    versions.istio_minor(versions.DEFAULT_ISTIO_VERSION).crd_path,
    versions.istio_minor(versions.DEFAULT_ISTIO_VERSION).gateway_api_bundle_path,
    *VENDOR_CRD_SOURCES,
)

#: Kinds that are not Kubernetes API objects, so no API schema applies: each with why it is not
#: schema-validated here and what checks it instead.
SKIPPED_KINDS: Mapping[tuple[str, str], str] = {
    ("install.istio.io/v1alpha1", "IstioOperator"): (
        "an istioctl install overlay: istioctl reads it and renders Istio's manifests from it, nothing sends "
        "it to the API server; a real istioctl rendering it is its check"
    ),
    ("kind.x-k8s.io/v1alpha4", "Cluster"): "kind's own configuration file, read by `kind create cluster --config`",
    ("egress-conformance/v1alpha1", "ImageList"): "the harness's image list, checked by conformance.images.loading",
    ("egress-conformance/v1alpha1", "Versions"): "the harness's versions file, checked by conformance.core.versions",
    ("egress-conformance/v1alpha1", "ImageMap"): "an image map (--image-map), checked by conformance.images.image_map",
}
NON_API_KINDS: frozenset[tuple[str, str]] = frozenset(SKIPPED_KINDS)

#: libyaml's loader when present: the CRD bundles are about a megabyte each.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STRUCTURAL_CHILDREN = ("properties", "items", "additionalProperties")


@dataclass(frozen=True)
class ValidationProblem:
    source: str
    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.kind} {self.name}: {self.message}"


def close_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema with unknown fields forbidden along its structural spine."""
    closed: dict[str, Any] = copy.deepcopy(dict(schema))
    _close(closed)
    return closed


def _close(node: dict[str, Any]) -> None:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        # Unknown fields are kept here by design; nothing below is closed either.
        return
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for key in _STRUCTURAL_CHILDREN:
        child = node.get(key)
        if key == "properties" and isinstance(child, dict):
            for sub in child.values():
                if isinstance(sub, dict):
                    _close(sub)
        elif isinstance(child, dict):
            _close(child)


class SchemaRegistry:
    """openAPIV3Schema per (apiVersion, kind) of served CRD versions."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def from_files(cls, paths: Iterable[Path] = CRD_SOURCES) -> SchemaRegistry:
        registry = cls()
        for path in paths:
            registry.add_crds(d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) if d)
        return registry

    @classmethod
    def for_istio_minor(cls, minor: version_model.IstioMinor) -> SchemaRegistry:
        """The minor's Istio CRDs (manifests/schemas/<schemas>/) and its Gateway API bundle."""
        return cls.from_files((minor.crd_path, minor.gateway_api_bundle_path, *VENDOR_CRD_SOURCES))

    def add_crds(self, crds: Iterable[Mapping[str, Any]]) -> None:
        for crd in crds:
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                schema = version["schema"]["openAPIV3Schema"]
                root = close_schema(schema)
                # apiVersion/kind/metadata are validated by the API server itself, not the CRD schema.
                root.setdefault("properties", {})
                root["properties"].setdefault("apiVersion", {"type": "string"})
                root["properties"].setdefault("kind", {"type": "string"})
                root["properties"].setdefault("metadata", {"type": "object"})
                root["additionalProperties"] = False
                api_version = f"{spec['group']}/{version['name']}"
                self._schemas[(api_version, spec["names"]["kind"])] = root

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any] | None:
        return self._schemas.get((api_version, kind))

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._schemas)


class Validator:
    def __init__(self, registry: SchemaRegistry | None = None, kubernetes_version: str = KUBERNETES_VERSION):
        self.registry = registry or SchemaRegistry.from_files()
        self.kubernetes_version = kubernetes_version

    def validate(self, doc: Mapping[str, Any], source: str = "<object>") -> list[ValidationProblem]:
        api_version = str(doc.get("apiVersion", ""))
        kind = str(doc.get("kind", ""))
        name = str((doc.get("metadata") or {}).get("name", "<unnamed>"))

        def problem(message: str) -> ValidationProblem:
            return ValidationProblem(source, kind or "<no kind>", name, message)

        if not api_version or not kind:
            return [problem("apiVersion and kind are required")]
        if skip_reason(doc) is not None:
            return []
        schema = self.registry.schema_for(api_version, kind)
        if schema is not None:
            problems = [
                problem(_describe(error)) for error in jsonschema.Draft7Validator(schema).iter_errors(dict(doc))
            ]
            problems += self._validate_metadata(doc, problem)
            return problems
        return self._validate_builtin(doc, problem)

    def _validate_metadata(self, doc: Mapping[str, Any], problem: Any) -> list[ValidationProblem]:
        # ObjectMeta is the same for every kind: borrow the strict schema through a ConfigMap shell.
        shell = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata") or {}}
        return self._validate_builtin(shell, problem)

    def _validate_builtin(self, doc: Mapping[str, Any], problem: Any) -> list[ValidationProblem]:
        try:
            kubernetes_validate.validate(dict(doc), self.kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [
                problem(
                    f"no schema for {doc.get('apiVersion')} {doc.get('kind')} "
                    f"(not a Kubernetes {self.kubernetes_version} kind and no CRD known)"
                )
            ]
        except kubernetes_validate.ValidationError as exc:
            return [problem(_describe(exc))]
        return []


def skip_reason(doc: Mapping[str, Any]) -> str | None:
    """Why ``doc`` is not schema-validated (one of SKIPPED_KINDS), or None when it is."""
    return SKIPPED_KINDS.get((str(doc.get("apiVersion", "")), str(doc.get("kind", ""))))


def _describe(error: Any) -> str:
    path = "/".join(str(p) for p in getattr(error, "absolute_path", []) or [])
    message = getattr(error, "message", None) or str(error)
    return f"{path or '<root>'}: {message}"
