"""The mesh-wide ``outboundTrafficPolicy`` switch, in the mesh config of the default revision.

The mesh config is the YAML text under key ``mesh`` of ConfigMap istio-system/istio, which istiod watches
(the istio component of Istio's integration-test framework, UpdateMeshConfig/PatchMeshConfig, rewrites the
same key).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import yaml

from conformance.core import progress
from conformance.istio.components import ISTIO_NAMESPACE, IstioError, ObjectReader
from conformance.kube.api import ObjectRef

MESH_CONFIGMAP = "istio"
MESH_CONFIGMAP_KEY = "mesh"


class MeshConfigKube(ObjectReader, Protocol):
    """The part of ``conformance.kube.api.Kube`` that changing the mesh config needs."""

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]: ...


class OutboundMode(enum.StrEnum):
    """meshConfig.outboundTrafficPolicy.mode values the scenarios switch between."""

    ALLOW_ANY = "ALLOW_ANY"
    REGISTRY_ONLY = "REGISTRY_ONLY"


@contextlib.contextmanager
def outbound_traffic_policy(kube: MeshConfigKube, mode: OutboundMode) -> Iterator[None]:
    """Set meshConfig.outboundTrafficPolicy.mode for the body; afterwards (also when it raises) put the
    original mesh config text back exactly as it was.

    The mesh config is the YAML text under key ``mesh`` of ConfigMap istio-system/istio, which istiod
    watches; this is how Istio's own integration tests change it at run time.
    """
    ref = ObjectRef("v1", "ConfigMap", MESH_CONFIGMAP, ISTIO_NAMESPACE)
    configmap = kube.get(ref)
    if configmap is None:
        raise IstioError(f"ConfigMap {ISTIO_NAMESPACE}/{MESH_CONFIGMAP} not found: is Istio installed?")
    original = (configmap.get("data") or {}).get(MESH_CONFIGMAP_KEY)
    if not isinstance(original, str):
        raise IstioError(f"ConfigMap {ISTIO_NAMESPACE}/{MESH_CONFIGMAP} has no {MESH_CONFIGMAP_KEY!r} key")
    updated = with_outbound_mode(original, mode)
    try:
        kube.merge_patch(ref, {"data": {MESH_CONFIGMAP_KEY: updated}})
        progress.info(f"mesh outboundTrafficPolicy.mode set to {mode.value}")
        yield
    finally:
        kube.merge_patch(ref, {"data": {MESH_CONFIGMAP_KEY: original}})
        progress.info("mesh config restored")


def with_outbound_mode(mesh_text: str, mode: OutboundMode) -> str:
    """The mesh config YAML with outboundTrafficPolicy.mode set; other settings are kept."""
    try:
        mesh = yaml.safe_load(mesh_text) or {}
    except yaml.YAMLError as exc:
        raise IstioError(f"the mesh config is not YAML: {exc}") from None
    if not isinstance(mesh, dict):
        raise IstioError("the mesh config is not a YAML mapping")
    policy = mesh.get("outboundTrafficPolicy")
    mesh["outboundTrafficPolicy"] = {**(policy if isinstance(policy, dict) else {}), "mode": mode.value}
    return yaml.safe_dump(mesh, sort_keys=False, default_flow_style=False)
