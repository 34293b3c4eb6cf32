"""Offline cross-reference rules over one check's configuration, as its plan records it.

Strict schema validation accepts each object alone; these rules catch what only shows between objects — a
VirtualService naming a Gateway that is not there, a subset no visible DestinationRule defines, a
credentialName whose Secret is elsewhere — the mistakes istiod accepts silently and Envoy answers with a
404, a 503 or a route to nowhere. A check's actions are replayed in order (``apply`` adds or replaces,
``delete`` removes), and at every probe the configuration then in force is checked, looked at the way
istiod would from the proxies involved: the probing client's sidecar for the ``mesh`` hop, the egress
gateway for the gateway hop.

Rules (stable names; a check's catalogue record lists those its documented configuration breaks on
purpose, e.g. a pitfall the seed demonstrates):

- ``gateway-exists``: every Gateway a VirtualService names exists (``ns/name``, or a bare name in the
  VirtualService's namespace; ``mesh`` means the sidecars).
- ``gateway-route-visible``: a VirtualService bound to a Gateway is exported to the namespace the gateway
  proxies run in (istiod picks gateway routes by the proxy's namespace).
- ``subset-defined``: a route's subset is defined by the DestinationRule istiod picks for that client and
  host (client namespace first, then the host's namespace, then the root namespace, each as exported).
- ``credential-secret``: a ``credentialName`` Secret exists where the proxy reads it (the gateway's
  namespace, in ambient mode each waypoint's, or the DestinationRule's own for one with a workloadSelector),
  with the keys its TLS mode needs: a certificate and key to present (MUTUAL origination, a gateway server),
  a CA to verify with (SIMPLE or MUTUAL origination, a MUTUAL server), in the Secret or its ``-cacert`` twin.
- ``service-entry-resolution``: a ServiceEntry a gateway routes to resolves by DNS or is STATIC. A gateway
  never gets a passthrough (ORIGINAL_DST) cluster: for a NONE entry istiod falls back to EDS
  (``convertResolution`` in ``pilot/pkg/networking/core/cluster.go``), and without endpoints that cluster is
  empty, so the gateway answers 503 ``no healthy upstream`` itself.
- ``authorization-selector``: an AuthorizationPolicy's selector matches the egress gateway as installed
  (plan ``egressGateway.podLabels``) or, outside the gateway's namespace, a workload of the check.
- ``gateway-selector``: an Istio Gateway's selector matches the egress gateway's pod labels.
- ``authorization-source``: the ``principals`` and ``namespaces`` an AuthorizationPolicy's rules name are those
  of a workload of the check (a principal is ``<trust domain>/ns/<namespace>/sa/<service account>``; ``*``
  wildcards as Istio matches them): a source that matches nothing makes a DENY deny nothing.
- ``authorization-target``: every ``targetRef`` of an AuthorizationPolicy names an object the check applies
  (or the installed egress gateway's Service) in the policy's namespace.
- ``waypoint-binding``: in ambient mode a ServiceEntry's ``istio.io/use-waypoint`` (its own label, else its
  namespace's) names a waypoint that exists, and a ServiceEntry beside a waypoint is bound to one: unbound,
  ztunnel carries its traffic straight out and the waypoint's policies never apply.
- ``destination-rule-port``: a DestinationRule's ``portLevelSettings`` name ports the host's ServiceEntry
  declares (a setting for another port applies to no traffic).
- ``origination-sni``: the SNI a DestinationRule originates TLS with names its host (or a host of the host's
  ServiceEntry): the origin presents a certificate for its own name, and a mistyped SNI fails the handshake
  or reaches another virtual host.
- ``network-policy-port``: a NetworkPolicy's egress ports towards pods the harness knows (the egress gateway,
  istiod, the cluster DNS, a waypoint) are ports those pods listen on: a rule opening another port lets
  nothing through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.engine.crossref_context import Context, Rule
from conformance.engine.crossref_policy_rules import POLICY_RULES
from conformance.engine.crossref_traffic_rules import TRAFFIC_RULES
from conformance.engine.istio_config import Configuration
from conformance.spec.catalogue import CATALOGUE


@dataclass(frozen=True)
class Finding:
    rule: Rule
    check: str
    #: The probe at which the configuration broke the rule first.
    probe: str
    message: str

    def __str__(self) -> str:
        return f"{self.check} at {self.probe}: [{self.rule.value}] {self.message}"


# In Rule's declaration order, which orders each check's findings; a rule without an implementation fails here.
RULES = {rule: {**TRAFFIC_RULES, **POLICY_RULES}[rule] for rule in Rule}


# ------------------------------------------------------------------------------------------ entry points


def check_findings(plan: Mapping[str, Any], check: Mapping[str, Any]) -> list[Finding]:
    """Every rule broken by the configuration in force at one of the check's probes, each reported once
    (at the first probe that sees it)."""
    context = Context.of(plan, check)
    config = Configuration()
    findings: dict[tuple[Rule, str], Finding] = {}
    for action in check.get("actions") or []:
        kind = action.get("type")
        if kind == "apply":
            config.apply(action.get("resources") or [])
        elif kind == "delete":
            config.delete(action.get("resources") or [])
        elif kind == "probe":
            client = context.workloads.get(str(action.get("client")))
            for rule, evaluate in RULES.items():
                for message in evaluate(config, context, client):
                    findings.setdefault((rule, message), Finding(rule, str(check["id"]), str(action["probe"]), message))
    return list(findings.values())


def configuration_problems(
    config: Configuration, context: Context, declared: Mapping[Rule, str] | None = None
) -> list[str]:
    """What the configuration ``config`` breaks, from every viewpoint of the check (the egress gateway and
    each client's sidecar), except the rules in ``declared``: run over a step's whole configuration before
    it is applied, in a plan and on a cluster alike."""
    skipped = declared or {}
    problems: dict[str, None] = {}
    clients: list[Mapping[str, Any] | None] = [None, *context.workloads.values()]
    for rule, evaluate in RULES.items():
        if rule in skipped:
            continue
        for client in clients:
            for message in evaluate(config, context, client):
                problems.setdefault(f"[{rule.value}] {message}", None)
    return list(problems)


def declared_breaks(check_id: str) -> dict[Rule, str]:
    """The rules a check's catalogue record says its documented configuration breaks on purpose."""
    record = CATALOGUE.get(check_id)
    return {Rule(rule): why for rule, why in (record.breaks_rules if record else ())}


def plan_problems(plan: Mapping[str, Any]) -> list[str]:
    """Findings no check declares, and declarations no finding bears out (a stale exemption hides the
    next real mistake): empty when the plan's configurations are consistent."""
    problems: list[str] = []
    for check in plan.get("checks") or []:
        findings = check_findings(plan, check)
        declared = declared_breaks(str(check["id"]))
        problems += [str(f) for f in findings if f.rule not in declared]
        broken = {f.rule for f in findings}
        problems += [
            f"{check['id']} declares it breaks {rule.value} ({why}), but its plan does not"
            for rule, why in declared.items()
            if rule not in broken
        ]
    return problems
