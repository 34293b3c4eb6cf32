"""The configuration side of a check: mesh settings and manifests, checked against the cross-reference
rules, applied, tracked and undone afterwards."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from functools import lru_cache
from typing import Any, Protocol

import yaml

from conformance.checks.errors import CrossReferenceError, ScenarioError
from conformance.checks.gateway_hop import GatewayHop, hop_adaptation
from conformance.core import evidence, manifests, versions
from conformance.engine import crossref
from conformance.engine.actions import object_ref, redacted, ref_dict, resources_dict
from conformance.engine.check_run import Adaptation, CheckRun
from conformance.engine.crossref_context import Context
from conformance.engine.istio_config import Configuration
from conformance.engine.runtime import Applied, EgressGatewayInfo, Observation, Runtime
from conformance.istio.mesh_config import OutboundMode
from conformance.kube.api import ObjectRef
from conformance.kube.validation import SchemaRegistry, Validator
from conformance.spec.model import Check

#: Scenario manifests live here, under ``manifests/``.
SCENARIO_MANIFESTS = "scenarios"
#: The harness's own configuration (adaptations, positive controls), beside the documented one.
HARNESS_MANIFESTS = "scenarios/harness"


class Attachments:
    """What an action attaches to its Allure step."""

    def yaml(self, text: str, name: str) -> None:
        evidence.attach_yaml(text, name)

    def json(self, text: str, name: str) -> None:
        evidence.attach_json(text, name)

    def text(self, text: str, name: str) -> None:
        evidence.attach_text(text, name)


ATTACHMENTS = Attachments()


class KnownGateway(Protocol):
    """An egress gateway as the check knows it (``conformance.checks.gateways.EgressGateway``)."""

    @property
    def info(self) -> EgressGatewayInfo: ...


@lru_cache(maxsize=4)
def _validator(istio_version: str) -> Validator:
    """Strict validation against the CRDs of the run's Istio minor (and its Gateway API bundle)."""
    try:
        minor = versions.istio_minor(istio_version)
    except ValueError:  # an installed Istio the harness has no schemas for: the default minor's
        return Validator()
    return Validator(SchemaRegistry.for_istio_minor(minor))


class Step:
    """The configuration side of one check: mesh settings and manifests, tracked and undone afterwards."""

    def __init__(self, run: CheckRun, runtime: Runtime) -> None:
        self.run = run
        self.runtime = runtime
        self._label = run.check.seed.section if run.check.seed else run.check.title
        self._created: dict[ObjectRef, None] = {}
        self._changed: dict[ObjectRef, None] = {}
        self._undo = ExitStack()
        #: The check's configuration in force (what it applied, minus what it deleted), for the rules.
        self._configuration = Configuration()
        #: Monotonic time of the last configuration change: convergence is measured from it.
        self.changed_at: float | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------------ records

    @property
    def check(self) -> Check:
        return self.run.check

    @property
    def label(self) -> str:
        return self._label

    @contextlib.contextmanager
    def documented(self, title: str) -> Iterator[None]:
        """Group the actions of the block under one documented step (its title in the harness's words)."""
        previous, self._label = self._label, title
        try:
            with evidence.step(title):
                yield
        finally:
            self._label = previous

    def record_action(self, type_: str, **fields: Any) -> None:
        """Append one action to the check's log; the runtime announces it (a plan prints it)."""
        action = self.run.actions.add(type_, self._label, **fields)
        self.runtime.announce(self.check.id, action)

    @contextlib.contextmanager
    def action(self, type_: str, title: str, **fields: Any) -> Iterator[Attachments]:
        """One verb's action: recorded once in the check's log and shown as one Allure step, ``title``,
        holding what the verb attaches (a manifest, a probe's transcript, a log entry)."""
        with evidence.step(title):
            self.record_action(type_, **fields)
            yield ATTACHMENTS

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Several actions under one Allure step (the clean-up, a no-entry check with its control)."""
        with evidence.step(title):
            yield

    def record_observed(self, label: str, observation: Observation) -> None:
        """Keep an observation's outcome for the report (the catalogue asks for it, e.g. a pitfall)."""
        self.run.observed[label] = observation.outcome_text

    def _changed_now(self) -> None:
        self.changed_at = time.monotonic()

    # ---------------------------------------------------------------------------------------- mesh-wide

    def mesh(self, *, outbound: OutboundMode) -> None:
        """Set the mesh-wide outboundTrafficPolicy; the original mesh config is restored after the check."""
        with self.action("mesh", f"mesh outboundTrafficPolicy {outbound.value}", outboundTrafficPolicy=outbound.value):
            self._undo.enter_context(self.runtime.outbound_policy(outbound))
            self._changed_now()

    # -------------------------------------------------------------------------------------- manifests

    def render(self, manifest: str, extra: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """A scenario manifest rendered with the run's variables and strictly validated."""
        relative = manifest if manifest.startswith(f"{SCENARIO_MANIFESTS}/") else f"{SCENARIO_MANIFESTS}/{manifest}"
        variables = {**self.runtime.variables(), **(extra or {})}
        docs = manifests.render(relative, variables)
        problems = [
            str(p) for doc in docs for p in _validator(self.runtime.istio_version).validate(doc, source=relative)
        ]
        if problems:
            raise ScenarioError(f"{relative} fails strict validation:\n  " + "\n  ".join(problems))
        for doc in docs:
            if doc.get("kind") != "Namespace" and not (doc.get("metadata") or {}).get("namespace"):
                raise ScenarioError(f"{relative}: {doc.get('kind')} {doc['metadata'].get('name')} has no namespace")
        return docs

    def apply(self, *manifest_files: str, adaptation: str | None = None, **variables: str) -> list[Applied]:
        """Apply scenario manifests (server-side, in order); objects they create are removed after the check,
        objects they change are released (the harness's fields dropped)."""
        docs = [doc for name in manifest_files for doc in self.render(name, variables)]
        self._check_cross_references(docs, manifest_files)
        title = "apply " + ", ".join(manifest_files) + (" (adaptation)" if adaptation else "")
        record: dict[str, Any] = {"sources": list(manifest_files), "resources": resources_dict(docs)}
        if adaptation:
            record["adaptation"] = adaptation
        with self.action("apply", title, **record) as attach:
            attach.yaml(yaml.safe_dump_all([redacted(d) for d in docs], sort_keys=False), " + ".join(manifest_files))
            applied = self.runtime.apply(docs)
        for item in applied:
            if item.created is False and item.ref not in self._created:
                self._changed.setdefault(item.ref, None)
            else:
                self._created.setdefault(item.ref, None)
        self._changed_now()
        return applied

    def _check_cross_references(self, docs: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> None:
        """The step's whole configuration (this apply plus what the check applied before) against the
        cross-reference rules, before anything of it reaches the cluster."""
        configuration = self._configuration.copy()
        configuration.apply(docs)
        gateway = self.runtime.egress_gateway()
        # The check's clients exist before its body runs (they are its fixtures): all of them are known here.
        workloads = [client.record() for client in self.run.clients.values()]
        context = Context.of_run(gateway.record() if gateway else None, workloads, self.runtime.mode.value)
        problems = crossref.configuration_problems(configuration, context, crossref.declared_breaks(self.check.id))
        if problems:
            raise CrossReferenceError(
                f"{self.check.id}: applying {', '.join(sources)} would leave a configuration that "
                + "; ".join(problems)
            )
        self._configuration = configuration

    def delete(self, *manifest_files: str) -> None:
        """Delete what these manifests define (e.g. revoke a policy) and wait until it is gone."""
        refs = [object_ref(doc) for name in manifest_files for doc in self.render(name)]
        self._configuration.delete(ref_dict(ref) for ref in refs)
        with self.action("delete", "delete " + ", ".join(manifest_files), resources=[ref_dict(r) for r in refs]):
            self.runtime.delete(refs)
        for ref in refs:
            self._created.pop(ref, None)
        self._changed_now()

    def wait_for(self, manifest_file: str, condition: str, status: str = "True", *, kind: str | None = None) -> None:
        """Wait until an object of the manifest (the first of ``kind`` when given) reports a condition."""
        docs = [d for d in self.render(manifest_file) if kind is None or d.get("kind") == kind]
        if not docs:
            raise ScenarioError(f"{manifest_file} holds no {kind or 'object'}")
        ref = object_ref(docs[0])
        what = f"{ref} condition {condition}={status}"
        fields = {"what": what, "resource": ref_dict(ref), "condition": condition, "status": status}
        with self.action("wait", f"wait for {ref} {condition}={status}", **fields):
            self.runtime.wait_condition(ref, condition, status)

    def adapt(self, *manifest_files: str, reason: str, **variables: str) -> Adaptation:
        """Apply manifests that adapt the documented configuration to this mesh (a harness-only resource, or
        a documented one with a field changed), and record the adaptation and its reason for the report."""
        self.apply(*manifest_files, adaptation=reason, **variables)
        adaptation = Adaptation(reason, tuple(f"{SCENARIO_MANIFESTS}/{name}" for name in manifest_files))
        self.run.adaptations.append(adaptation)
        return adaptation

    # ------------------------------------------------------------------------------- the gateway hop

    def sidecars_reach(
        self, gateway: KnownGateway, *, over: GatewayHop, namespace: str, sni: str | None = None
    ) -> Adaptation | None:
        """Make sidecars in ``namespace`` talk to the egress gateway the way the documentation assumes
        (``conformance.checks.gateway_hop``): apply the rule's DestinationRule, or nothing, and record which."""
        rule = hop_adaptation(gateway.info, over, sni)
        if rule is None:
            return None
        adaptation = Adaptation(rule.reason, (f"{HARNESS_MANIFESTS}/{rule.manifest}",))
        variables = {"CLIENT_NAMESPACE": namespace, "EGRESS_GATEWAY_HOST": gateway.info.host, **rule.variables}
        self.apply(f"harness/{rule.manifest}", adaptation=rule.reason, **variables)
        self.run.adaptations.append(adaptation)
        return adaptation

    # -------------------------------------------------------------------------------------- cleanup

    def cleanup(self) -> None:
        """Undo the check: delete what it created, release what it changed, restore mesh settings."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        created = list(self._created)
        changed = [ref for ref in self._changed if ref not in self._created]
        with self.group("clean up"):
            if created:
                self.record_action("delete", resources=[ref_dict(r) for r in created], cleanup=True)
                try:
                    self.runtime.delete(created)
                except Exception as exc:  # the other undo steps still run; the first error is raised
                    errors.append(exc)
            if changed:
                try:
                    self.runtime.release(changed)
                except Exception as exc:
                    errors.append(exc)
            try:
                self._undo.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
