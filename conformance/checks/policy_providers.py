"""The config providers that express an egress rule as manifests, and the ``etp`` fixture's policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from conformance.checks.clients import Client
from conformance.checks.egress_policy import (
    NATIVE_MANIFESTS,
    REPORT_KEY,
    TEST_CA_MANIFEST,
    VENDOR_MANIFESTS,
    VENDOR_NAMESPACE_MANIFEST,
    Carriage,
    EgressRule,
    ExternalPort,
    PolicyError,
    rule_of_native_resources,
    rules_of_vendor_policy,
)
from conformance.checks.gateway_hop import ISTIO_MUTUAL
from conformance.checks.gateways import EgressGateway
from conformance.checks.policy_mapping import mapping_record
from conformance.checks.step import Step
from conformance.core import manifests
from conformance.settings.options import EtpProvider
from conformance.spec.record_texts import TEST_CA_ADAPTATION


@dataclass(frozen=True)
class PolicyResources:
    """A provider's answer: the manifests holding one rule's policy (applied together, revoked together)."""

    provider: EtpProvider
    manifests: tuple[str, ...]
    #: The harness makes the rule's sidecars speak mTLS to the egress gateway (``Step.sidecars_reach``).
    gateway_hop: bool = False
    #: The gateway's TLS origination trusts the run's test CA (``TEST_CA_MANIFEST`` in its namespace).
    test_ca: bool = False
    #: The documented environment the policy needs (e.g. its namespace): applied first, never revoked.
    setup: tuple[str, ...] = ()


class ConfigProvider(Protocol):
    """Turns an egress rule into the scenario manifests that express it on the mesh under test."""

    @property
    def kind(self) -> EtpProvider: ...

    def resources(self, rule: EgressRule) -> PolicyResources: ...


class NativeProvider:
    """Upstream Istio resources, one hand-written manifest per documented rule."""

    kind = EtpProvider.NATIVE

    def resources(self, rule: EgressRule) -> PolicyResources:
        manifest = f"{NATIVE_MANIFESTS}/{rule.carriage.value}.yaml"
        expressed = rule_of_native_resources(manifests.render(f"scenarios/{manifest}"))
        if expressed != rule.with_effective_gateway_port():
            raise PolicyError(f"{manifest} expresses {expressed.record()}, not the rule asked for: {rule.record()}")
        return PolicyResources(
            self.kind, (manifest,), gateway_hop=True, test_ca=rule.carriage is Carriage.HTTPS_UPGRADE
        )


class VendorProvider:
    """The vendor's ``ASMEgressTrafficPolicy``, as the seed shows it; the vendor's mesh does the rest."""

    kind = EtpProvider.VENDOR

    def resources(self, rule: EgressRule) -> PolicyResources:
        manifest = f"{VENDOR_MANIFESTS}/{rule.carriage.value}.yaml"
        (doc,) = manifests.render(f"scenarios/{manifest}")
        granted = rules_of_vendor_policy(doc)
        if granted != [rule]:
            raise PolicyError(
                f"{manifest} grants {[r.record() for r in granted]}, not the rule asked for: {rule.record()}"
            )
        return PolicyResources(self.kind, (manifest,), setup=(VENDOR_NAMESPACE_MANIFEST,))


PROVIDERS: Mapping[EtpProvider, ConfigProvider] = {
    EtpProvider.NATIVE: NativeProvider(),
    EtpProvider.VENDOR: VendorProvider(),
}


# -------------------------------------------------------------------------------------- the etp fixture


@dataclass
class AppliedPolicy:
    """What ``EgressPolicies.allow`` applied for one rule."""

    rule: EgressRule
    resources: PolicyResources
    record: dict[str, Any] = field(default_factory=dict)


class EgressPolicies:
    """The ``etp`` fixture: seed 001's egress traffic policies, expressed by the run's config provider.

    ::

        hosts, http_80 = ("www.httpbin.org", "httpbin.org"), ExternalPort(80, "http", EgressProtocol.HTTP)
        policy = etp.allow(sleep_a, "httpbin-service-http", hosts, http_80, gateway_port=80)
        ...
        etp.revoke(policy)   # the documented deletion of the policy

    Every policy is recorded in the check's report entry (key :data:`REPORT_KEY`): the provider, the rule and
    the manifests, beside the field mapping.
    """

    def __init__(self, step: Step, gateway: EgressGateway, provider: ConfigProvider) -> None:
        self._step = step
        self._gateway = gateway
        self.provider = provider
        self._report: dict[str, Any] = {
            "provider": provider.kind.value,
            "rules": [],
            "fieldMapping": mapping_record(),
        }

    def allow(
        self,
        client: Client,
        name: str,
        hosts: Sequence[str],
        port: ExternalPort,
        *,
        gateway_port: int | None = None,
        https_upgrade_port: int | None = None,
    ) -> AppliedPolicy:
        """Let ``client``'s workloads (its namespace, its pod labels) reach ``hosts`` through the gateway."""
        step = self._step
        spec = client.workload.spec
        rule = EgressRule.of(name, spec.namespace, spec.pod_labels, hosts, port, gateway_port, https_upgrade_port)
        resources = self.provider.resources(rule)
        if resources.gateway_hop:
            step.sidecars_reach(self._gateway, over=ISTIO_MUTUAL, namespace=rule.namespace)
        if resources.test_ca:
            step.adapt(TEST_CA_MANIFEST, reason=TEST_CA_ADAPTATION)
        try:
            if resources.setup:
                step.apply(*resources.setup)
            step.apply(*resources.manifests)
        except Exception as exc:  # the provider's kind may not be served here: name the option that chose it
            raise PolicyError(
                f"--etp-provider {self.provider.kind.value}: applying {', '.join(resources.manifests)} failed: {exc}"
            ) from exc
        record = {"rule": rule.record(), "manifests": list(resources.manifests), "revoked": False}
        self._report["rules"].append(record)
        step.run.details[REPORT_KEY] = self._report
        return AppliedPolicy(rule, resources, record)

    def revoke(self, policy: AppliedPolicy) -> None:
        """Delete the policy (the seed's ``kubectl delete``) and wait until its resources are gone."""
        self._step.delete(*policy.resources.manifests)
        policy.record["revoked"] = True
