"""Cross-reference rules: each fails on a deliberately broken configuration; all hold over the catalogue's
plan, except where a check declares the rule its documented pitfall breaks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from conformance import PROJECT_ROOT
from conformance.engine.crossref import check_findings, declared_breaks, plan_problems
from conformance.engine.crossref_context import Rule
from conformance.runtimes.planning import Plan
from conformance.spec.catalogue import CATALOGUE
from tests.plan_run import PlanRun

GOLDEN = PROJECT_ROOT / "tests" / "data" / "golden" / "plan"

Check = dict[str, Any]


def golden(name: str) -> Check:
    mode = "ambient" if name.startswith("AMB-") else "sidecar"
    check: Check = json.loads((GOLDEN / f"{name}.{mode}.json").read_text(encoding="utf-8"))
    return check


def plan_of(*checks: Check) -> dict[str, Any]:
    document = Plan("1.30.3").document()
    document["checks"] = list(checks)
    return document


def broken_rules(check: Check) -> set[Rule]:
    return {f.rule for f in check_findings(plan_of(check), check)}


def resource(check: Check, kind: str, name: str) -> dict[str, Any]:
    """The first applied object of this kind and name (the one a mutation changes)."""
    for action in check["actions"]:
        for doc in action.get("resources", []) if action["type"] == "apply" else []:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                found: dict[str, Any] = doc
                return found
    raise LookupError(f"{kind} {name} is not applied by {check['id']}")


def drop(check: Check, kind: str, name: str) -> None:
    for action in check["actions"]:
        if action["type"] == "apply":
            action["resources"] = [
                d for d in action["resources"] if not (d["kind"] == kind and d["metadata"]["name"] == name)
            ]


def first_probe_index(check: Check) -> int:
    return next(i for i, a in enumerate(check["actions"]) if a["type"] == "probe")


# ------------------------------------------------------------------------------------- broken fixtures


def typo_in_gateway_reference(check: Check) -> None:
    vs = resource(check, "VirtualService", "example-com-through-egress-gateway")
    text = json.dumps(vs).replace("istio-system/istio-egressgateway", "istio-system/istio-egresgateway")
    vs.update(json.loads(text))


def gateway_moved_away_from_the_short_name(check: Check) -> None:
    resource(check, "Gateway", "egress-gateway")["metadata"]["namespace"] = "istio-system"


def route_not_exported_to_the_gateway(check: Check) -> None:
    resource(check, "VirtualService", "example-com-through-egress-gateway")["spec"]["exportTo"] = ["demo-frontend"]


def subset_renamed(check: Check) -> None:
    resource(check, "DestinationRule", "target-egress-gateway")["spec"]["subsets"][0]["name"] = "mtls"


def subset_rule_in_a_namespace_the_client_does_not_look_in(check: Check) -> None:
    resource(check, "DestinationRule", "target-egress-gateway")["metadata"]["namespace"] = "default"


def subset_rule_private_to_the_root_namespace(check: Check) -> None:
    rule = resource(check, "DestinationRule", "target-egress-gateway")
    rule["metadata"]["namespace"] = "istio-system"
    rule["spec"]["exportTo"] = ["."]


def subset_defined_only_where_istiod_does_not_look_first(check: Check) -> None:
    """A client-namespace rule for the host hides the root namespace's rule: istiod does not merge them."""
    local = resource(check, "DestinationRule", "target-egress-gateway")
    root = copy.deepcopy(local)
    root["metadata"]["namespace"] = "istio-system"
    local["spec"]["subsets"][0]["name"] = "mtls"
    check["actions"][1]["resources"].append(root)


def secret_missing(check: Check) -> None:
    drop(check, "Secret", "test.client")


def secret_in_the_client_namespace(check: Check) -> None:
    resource(check, "Secret", "test.client")["metadata"]["namespace"] = "default"


def secret_deleted_before_the_probe(check: Check) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "name": "test.client", "namespace": "istio-system"}
    delete = {"seq": 0, "type": "delete", "step": "revoke", "resources": [secret]}
    check["actions"].insert(first_probe_index(check), delete)


def sidecar_origination_without_its_secret(check: Check) -> None:
    """With a workloadSelector the sidecar reads the secret from the rule's own namespace (default)."""
    resource(check, "DestinationRule", "originate-mtls-for-test-com")["spec"]["workloadSelector"] = {
        "matchLabels": {"app": "sleep"}
    }


def waypoint_ca_secret_in_the_gateway_namespace(check: Check) -> None:
    """In ambient mode the waypoint, not the egress gateway, reads the CA Secret: from its own namespace."""
    resource(check, "Secret", "origin-ca")["metadata"]["namespace"] = "istio-system"


def gateway_destination_without_resolution(check: Check) -> None:
    entry = resource(check, "ServiceEntry", "test-com")["spec"]
    entry["resolution"] = "NONE"
    del entry["endpoints"]


def policy_selector_typo(check: Check) -> None:
    resource(check, "AuthorizationPolicy", "deny-demo-frontend")["spec"]["selector"]["matchLabels"] = {
        "istio": "egress-gateway"
    }


def gateway_selector_typo(check: Check) -> None:
    resource(check, "Gateway", "egress-gateway")["spec"]["selector"] = {"istio": "egressgateway-v2"}


def client_secret_without_its_key(check: Check) -> None:
    """MUTUAL origination presents tls.crt and tls.key: a Secret holding only the CA cannot."""
    del resource(check, "Secret", "test.client")["data"]["tls.key"]


def origination_sni_typo(check: Check) -> None:
    policy = resource(check, "DestinationRule", "originate-mtls-for-test-com")["spec"]["trafficPolicy"]
    policy["portLevelSettings"][0]["tls"]["sni"] = "tset.com"


def origination_on_a_port_the_service_entry_lacks(check: Check) -> None:
    policy = resource(check, "DestinationRule", "originate-mtls-for-test-com")["spec"]["trafficPolicy"]
    policy["portLevelSettings"][0]["port"]["number"] = 8443


def policy_source_namespace_typo(check: Check) -> None:
    rule = resource(check, "AuthorizationPolicy", "deny-demo-frontend")["spec"]["rules"][0]
    rule["from"][0]["source"]["namespaces"] = ["demo-frontent"]


def network_policy_opens_the_service_port_not_the_pod_port(check: Check) -> None:
    """Sidecars reach the gateway pods on their container port 8080; Service port 80 opens nothing."""
    rule = resource(check, "NetworkPolicy", "egress-only-through-the-egress-gateway")["spec"]["egress"][0]
    rule["ports"] = [{"protocol": "TCP", "port": 80}]


def ambient_namespace_without_its_waypoint_label(check: Check) -> None:
    del resource(check, "Namespace", "istio-egress")["metadata"]["labels"]["istio.io/use-waypoint"]


def policy_targeting_a_service_entry_that_is_not_there(check: Check) -> None:
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny-default", "namespace": "istio-egress"},
        "spec": {
            "targetRefs": [{"group": "networking.istio.io", "kind": "ServiceEntry", "name": "external-svc-aliyn"}],
            "action": "DENY",
            "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}],
        },
    }
    next(a for a in check["actions"] if a["type"] == "apply")["resources"].append(policy)


BROKEN: list[tuple[str, Callable[[Check], None], Rule]] = [
    ("NSD-06", typo_in_gateway_reference, Rule.GATEWAY_EXISTS),
    ("MTLS-04a", gateway_moved_away_from_the_short_name, Rule.GATEWAY_EXISTS),
    ("NSD-06", route_not_exported_to_the_gateway, Rule.GATEWAY_ROUTE_VISIBLE),
    ("NSD-06", subset_renamed, Rule.SUBSET_DEFINED),
    ("NSD-06", subset_rule_in_a_namespace_the_client_does_not_look_in, Rule.SUBSET_DEFINED),
    ("NSD-06", subset_rule_private_to_the_root_namespace, Rule.SUBSET_DEFINED),
    ("NSD-06", subset_defined_only_where_istiod_does_not_look_first, Rule.SUBSET_DEFINED),
    ("MTLS-04a", secret_missing, Rule.CREDENTIAL_SECRET),
    ("MTLS-04a", secret_in_the_client_namespace, Rule.CREDENTIAL_SECRET),
    ("MTLS-04a", secret_deleted_before_the_probe, Rule.CREDENTIAL_SECRET),
    ("MTLS-04a", sidecar_origination_without_its_secret, Rule.CREDENTIAL_SECRET),
    ("AMB-04", waypoint_ca_secret_in_the_gateway_namespace, Rule.CREDENTIAL_SECRET),
    ("MTLS-04a", gateway_destination_without_resolution, Rule.SERVICE_ENTRY_RESOLUTION),
    ("NSD-06", policy_selector_typo, Rule.AUTHORIZATION_SELECTOR),
    ("MTLS-04a", gateway_selector_typo, Rule.GATEWAY_SELECTOR),
    ("MTLS-04a", client_secret_without_its_key, Rule.CREDENTIAL_SECRET),
    ("MTLS-04a", origination_sni_typo, Rule.ORIGINATION_SNI),
    ("MTLS-04a", origination_on_a_port_the_service_entry_lacks, Rule.DESTINATION_RULE_PORT),
    ("NSD-06", policy_source_namespace_typo, Rule.AUTHORIZATION_SOURCE),
    ("NSD-06", network_policy_opens_the_service_port_not_the_pod_port, Rule.NETWORK_POLICY_PORT),
    ("AMB-04", ambient_namespace_without_its_waypoint_label, Rule.WAYPOINT_BINDING),
    ("AMB-04", policy_targeting_a_service_entry_that_is_not_there, Rule.AUTHORIZATION_TARGET),
]


@pytest.mark.parametrize("name", ["NSD-06", "MTLS-04a", "AMB-03", "AMB-04"])
def test_the_reviewed_plans_break_no_rule(name: str) -> None:
    assert broken_rules(golden(name)) == set()


@pytest.mark.parametrize("name, breaks, rule", BROKEN, ids=[b.__name__ for _, b, _ in BROKEN])
def test_a_deliberately_broken_configuration_breaks_exactly_its_rule(
    name: str, breaks: Callable[[Check], None], rule: Rule
) -> None:
    check = golden(name)
    breaks(check)
    assert broken_rules(check) == {rule}


def test_every_rule_has_a_broken_fixture() -> None:
    assert {rule for _, _, rule in BROKEN} == set(Rule)


def test_a_rule_visible_from_the_service_namespace_defines_the_subset() -> None:
    check = golden("NSD-06")
    resource(check, "DestinationRule", "target-egress-gateway")["metadata"]["namespace"] = "istio-system"
    assert broken_rules(check) == set()


def test_a_finding_names_the_probe_that_first_sees_it() -> None:
    check = golden("NSD-06")
    subset_renamed(check)
    (finding,) = check_findings(plan_of(check), check)
    # p1 and p2 come from the pod without a sidecar; p3 is the first probe through the sidecar.
    assert finding.probe == "p3"
    assert "the sidecar of demo-frontend/sleep to subset target-egress-gateway-mTLS" in finding.message


# ------------------------------------------------------------------------------------ the catalogue's plan


def test_rules_hold_over_the_whole_catalogue_plan(catalogue_plan: PlanRun) -> None:
    assert plan_problems(catalogue_plan.plan) == []


def test_the_resolution_pitfall_breaks_the_rule_it_declares(catalogue_plan: PlanRun) -> None:
    check = catalogue_plan.check("NSD-07", "sidecar")
    findings = check_findings(catalogue_plan.plan, check)
    assert {f.rule for f in findings} == set(declared_breaks("NSD-07")) == {Rule.SERVICE_ENTRY_RESOLUTION}
    # The working configuration comes first; the rule breaks only once resolution NONE is applied.
    assert [f.probe for f in findings] == ["p2"]


def test_an_undeclared_finding_and_a_stale_declaration_are_both_problems(catalogue_plan: PlanRun) -> None:
    pitfall = catalogue_plan.check("NSD-07", "sidecar")
    undeclared = {**copy.deepcopy(pitfall), "id": "NSD-03"}
    (problem,) = plan_problems(plan_of(undeclared))
    assert problem.startswith("NSD-03 at p2: [service-entry-resolution]")
    stale = copy.deepcopy(pitfall)
    stale["actions"] = [a for a in stale["actions"] if a.get("sources") != ["nsd/service-entry-resolution-none.yaml"]]
    (problem,) = plan_problems(plan_of(stale))
    assert problem.startswith("NSD-07 declares it breaks service-entry-resolution")


def test_declared_rules_are_rules() -> None:
    for record in CATALOGUE.values():
        assert set(declared_breaks(record.id)) <= set(Rule), record.id
        assert all(why for _, why in record.breaks_rules), record.id
