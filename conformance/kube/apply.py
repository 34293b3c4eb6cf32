"""Server-side apply, the harness's rules: what is sent, what counts as created, how a change is released.

Pure functions; ``conformance.kube.api.Kube`` sends what they build.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from conformance.kube.errors import KubeError
from conformance.kube.objects import ObjectRef

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"


def identity(doc: Mapping[str, Any], index: int) -> tuple[str, str, str]:
    """apiVersion, kind and name of document ``index``; KubeError naming what is missing."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    name = (doc.get("metadata") or {}).get("name")
    missing = [
        label
        for label, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name))
        if not isinstance(value, str) or not value
    ]
    if missing:
        raise KubeError(f"document {index} ({kind or 'no kind'} {name or ''}) lacks {', '.join(missing)}")
    return str(api_version), str(kind), str(name)


def apply_body(
    doc: Mapping[str, Any], index: int, namespaced: bool, default_namespace: str | None
) -> tuple[ObjectRef, dict[str, Any]]:
    """The reference and the body to send; the caller's document is left alone.

    A namespaced object takes the document's namespace, else ``default_namespace``; a cluster-scoped one
    loses any namespace, as kubectl does.
    """
    api_version, kind, name = identity(doc, index)
    body = copy.deepcopy(dict(doc))
    metadata = body.setdefault("metadata", {})
    namespace: str | None = None
    if namespaced:
        namespace = metadata.get("namespace") or default_namespace
        if not namespace:
            raise KubeError(
                f"document {index} ({kind} {name}): {kind} is namespaced, but neither the "
                "document nor the caller gives a namespace"
            )
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    return ObjectRef(api_version, kind, name, namespace), body


def owned_only_by(obj: Mapping[str, Any], field_manager: str) -> bool:
    """``field_manager`` manages fields of the object, and no other manager does.

    Entries of the status subresource are not counted: controllers write the status of whatever they
    manage (a Deployment's status by the controller manager, a Gateway's by istiod), including objects
    the harness created in an earlier run. An object without any entry (e.g. a Namespace created from an
    intent with no fields) is not claimed: whoever made it, it is not provably ours.
    """
    entries = [
        entry
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if entry.get("subresource") != "status"
    ]
    return bool(entries) and all(entry.get("manager") == field_manager for entry in entries)


def was_created(http_status: int, obj: Mapping[str, Any], field_manager: str) -> bool:
    """201: the apply created the object. 200: it existed, and counts as created when only we manage it."""
    return http_status == 201 or owned_only_by(obj, field_manager)


def being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def release_intent(ref: ObjectRef, uid: str | None) -> dict[str, Any]:
    """An apply configuration claiming no field: applying it drops every field only our manager set.

    The uid makes the apply a precondition on this very object: the server refuses it (409 "uid mismatch")
    when the object is gone meanwhile, so a release never creates an empty object, and (422, uid immutable)
    when another object of the name replaced it.
    """
    metadata: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def kinds_defined(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """(group, kind) a CustomResourceDefinition document defines; None for any other document."""
    if doc.get("apiVersion") != CRD_API_VERSION or doc.get("kind") != CRD_KIND:
        return None
    spec = doc.get("spec") or {}
    kind = (spec.get("names") or {}).get("kind")
    group = spec.get("group")
    if not group or not kind:
        return None
    return str(group), str(kind)


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]
