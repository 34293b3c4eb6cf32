"""What a check does, as data: the ordered actions of one check run (mesh setting, apply, delete, wait,
probe, access-log assertion), the workloads and namespaces it uses.

The scenario layer records every action here in a plan run and in a real run alike. A plan run writes the
records as ``plan.json`` (schema: ``conformance/schemas/plan.schema.json``), the routing oracle's input; a
real run keeps them as the check's evidence. Secret material never enters a record: the ``data`` and
``stringData`` of every Secret are replaced by :data:`REDACTED` before anything is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.core.redaction import REDACTED
from conformance.kube.api import ObjectRef
from conformance.probe.log_matchers import (
    Absent,
    Contains,
    Exact,
    FieldMatcher,
    HostOfAddress,
    Not,
    PortOfAddress,
    Prefix,
    Present,
)
from conformance.probe.responses import ResponseExpectation

Document = dict[str, Any]


def redacted(doc: Mapping[str, Any]) -> Document:
    """A copy safe to log, attach or write to a report: Secret values replaced, keys kept."""
    copied: Document = copy.deepcopy(dict(doc))
    if copied.get("kind") == "Secret":
        for key in ("data", "stringData"):
            values = copied.get(key)
            if isinstance(values, dict):
                copied[key] = {name: REDACTED for name in values}
    return copied


def object_ref(doc: Mapping[str, Any]) -> ObjectRef:
    metadata = doc.get("metadata") or {}
    return ObjectRef(str(doc["apiVersion"]), str(doc["kind"]), str(metadata["name"]), metadata.get("namespace"))


def ref_dict(ref: ObjectRef) -> dict[str, str]:
    data = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        data["namespace"] = ref.namespace
    return data


def matcher_dict(matcher: FieldMatcher) -> dict[str, Any]:
    """The plan-format form of an access-log field matcher."""
    if isinstance(matcher, Exact):
        return {"equals": matcher.value}
    if isinstance(matcher, Prefix):
        return {"prefix": matcher.prefix}
    if isinstance(matcher, Contains):
        return {"contains": matcher.part}
    if isinstance(matcher, HostOfAddress):
        return {"hostOf": matcher.host}
    if isinstance(matcher, PortOfAddress):
        return {"portOf": matcher.port}
    if isinstance(matcher, Absent):
        return {"absent": True}
    if isinstance(matcher, Present):
        return {"present": True}
    if isinstance(matcher, Not):
        return {"not": matcher_dict(matcher.inner)}
    raise TypeError(f"no plan form for matcher {matcher!r}")


def expectation_dict(expectation: ResponseExpectation) -> dict[str, Any]:
    data: dict[str, Any] = {"outcome": str(expectation.outcome)}
    if expectation.header_equals:
        data["headerEquals"] = dict(expectation.header_equals)
    if expectation.headers_present:
        data["headersPresent"] = list(expectation.headers_present)
    if expectation.header_prefixes_absent:
        data["headerPrefixesAbsent"] = list(expectation.header_prefixes_absent)
    if expectation.body_contains is not None:
        data["bodyContains"] = expectation.body_contains
    if expectation.body_equals is not None:
        data["bodyEquals"] = expectation.body_equals
    if expectation.json_fields:
        data["jsonFields"] = {name: matcher_dict(m) for name, m in expectation.json_fields.items()}
    return data


@dataclass
class Action:
    """One thing a check does; ``as_dict`` gives its plan-format record."""

    seq: int
    type: str
    step: str
    fields: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "step": self.step, **self.fields}


@dataclass
class CheckActions:
    """The action log of one check run in one data-plane mode."""

    check_id: str
    nodeid: str
    mode: str
    profile: str
    title: str
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    probe_count: int = 0

    def add(self, type_: str, step: str, **fields: Any) -> Action:
        action = Action(len(self.actions) + 1, type_, step, dict(fields))
        self.actions.append(action)
        return action

    def next_probe_id(self) -> str:
        self.probe_count += 1
        return f"p{self.probe_count}"

    def use_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        self.namespaces.setdefault(name, dict(labels))

    def use_workload(self, record: Mapping[str, Any]) -> None:
        self.workloads.setdefault(str(record["ref"]), dict(record))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "nodeid": self.nodeid,
            "mode": self.mode,
            "profile": self.profile,
            "title": self.title,
            "namespaces": [{"name": n, "labels": labels} for n, labels in sorted(self.namespaces.items())],
            "workloads": [self.workloads[ref] for ref in sorted(self.workloads)],
            "actions": [a.as_dict() for a in self.actions],
        }


def resources_dict(docs: Sequence[Mapping[str, Any]]) -> list[Document]:
    return [redacted(doc) for doc in docs]
