"""The ambient profile's manifests hold together: what one object names, another defines.

Strict schema validation (tests/test_manifests.py) cannot see that a NetworkPolicy lets the clients reach
the waypoint's pods, that a policy targets a ServiceEntry that exists, or that the TLS origination trusts a
Secret with a CA in it. The API server would accept every one of these mistakes; the data plane would then
fail in ways only a cluster shows. These tests read the rendered manifests and check the links.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conformance import MANIFESTS_DIR, PROJECT_ROOT
from conformance.checks.gateways import Waypoint
from conformance.core import manifests
from conformance.engine.runtime import scenario_variables
from conformance.harness.fixtures import EGRESS_WAYPOINT_NAME, EGRESS_WAYPOINT_NAMESPACE
from conformance.world.workloads import SLEEP

AMBIENT = MANIFESTS_DIR / "scenarios" / "ambient"
SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"
VARIABLES = scenario_variables(
    ingress_ip="10.96.100.16",
    external_namespace="external",
    gateway_namespace="istio-system",
    gateway_istio_label="egressgateway",
    client_crt="Y3J0",
    client_key="a2V5",
    ca_crt="Y2E=",
)
_CITATION = re.compile(r"Seed (\d{3}_[0-9a-f]{16}\.txt), \"([^\"]+)\"")


def docs(name: str) -> list[dict[str, Any]]:
    return manifests.render(AMBIENT.relative_to(MANIFESTS_DIR) / name, VARIABLES)


def one(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs(name) if d["kind"] == kind]
    return doc


def all_of(kind: str) -> list[dict[str, Any]]:
    return [d for path in sorted(AMBIENT.glob("*.yaml")) for d in docs(path.name) if d["kind"] == kind]


@pytest.mark.parametrize("path", sorted(AMBIENT.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_opens_with_the_seed_section_it_expresses(path: Path) -> None:
    head = path.read_text(encoding="utf-8").split("\napiVersion:", 1)[0]
    assert head.startswith("# Seed "), f"{path.name} must open with a comment citing its seed"
    citations = _CITATION.findall(head.replace("\n# ", " "))
    assert citations, f"{path.name}: no 'Seed <file>, \"<section>\"' citation"
    for seed_file, section in citations:
        seed = SEEDS / seed_file
        if seed.is_file():
            assert section in seed.read_text(encoding="utf-8"), f"{path.name}: {seed_file} has no {section!r}"


def test_network_policy_selects_the_clients_egress_only() -> None:
    policy = one("network-policy.yaml", "NetworkPolicy")
    assert policy["metadata"]["namespace"] == SLEEP.namespace
    assert policy["spec"]["podSelector"] == {"matchLabels": dict(SLEEP.pod_labels)}
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert all("ipBlock" not in peer for rule in policy["spec"]["egress"] for peer in rule["to"])


def test_network_policy_leaves_open_dns_and_hbone_to_the_waypoint_pods_only() -> None:
    rules = one("network-policy.yaml", "NetworkPolicy")["spec"]["egress"]
    allowed = {
        (
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            tuple(sorted(peer["podSelector"]["matchLabels"].items())),
            tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])),
        )
        for rule in rules
        for peer in rule["to"]
    }
    waypoint = one("waypoint.yaml", "Gateway")
    waypoint_pods = ((Waypoint.GATEWAY_NAME_LABEL, waypoint["metadata"]["name"]),)
    hbone = next(listener["port"] for listener in waypoint["spec"]["listeners"] if listener["protocol"] == "HBONE")
    assert allowed == {
        ("kube-system", (("k8s-app", "kube-dns"),), (("TCP", 53), ("UDP", 53))),
        (waypoint["metadata"]["namespace"], waypoint_pods, (("TCP", hbone),)),
    }


def test_the_waypoint_is_the_one_the_checks_read_and_the_namespace_uses() -> None:
    waypoint = one("waypoint.yaml", "Gateway")
    namespace = one("egress-namespace.yaml", "Namespace")
    assert (waypoint["metadata"]["namespace"], waypoint["metadata"]["name"]) == (
        EGRESS_WAYPOINT_NAMESPACE,
        EGRESS_WAYPOINT_NAME,
    )
    assert namespace["metadata"]["name"] == EGRESS_WAYPOINT_NAMESPACE
    assert namespace["metadata"]["labels"] == {
        "istio.io/dataplane-mode": "ambient",
        "istio.io/use-waypoint": EGRESS_WAYPOINT_NAME,
    }
    assert waypoint["spec"]["gatewayClassName"] == "istio-waypoint"
    assert waypoint["metadata"]["labels"]["istio.io/waypoint-for"] in ("service", "all")
    assert waypoint["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]


def test_service_entries_live_beside_the_waypoint_without_a_label_of_their_own() -> None:
    entries = all_of("ServiceEntry")
    assert {e["spec"]["hosts"][0] for e in entries} == {"aliyun.com", "httpbin.org"}
    for entry in entries:
        # Bound through the namespace label; a label on the entry would take precedence over it.
        assert entry["metadata"]["namespace"] == EGRESS_WAYPOINT_NAMESPACE
        assert "labels" not in entry["metadata"]
        assert entry["spec"]["resolution"] == "DNS" and entry["spec"]["location"] == "MESH_EXTERNAL"


def test_the_upgrade_originates_tls_on_the_port_it_sends_to_443() -> None:
    entry = one("service-entry-https-upgrade.yaml", "ServiceEntry")
    rule = one("destination-rule-https-upgrade.yaml", "DestinationRule")
    secret = one("origin-ca-secret.yaml", "Secret")
    upgraded = {p["number"] for p in entry["spec"]["ports"] if p.get("targetPort") == 443}
    (setting,) = rule["spec"]["trafficPolicy"]["portLevelSettings"]
    assert rule["spec"]["host"] in entry["spec"]["hosts"]
    assert setting["port"]["number"] in upgraded
    assert setting["tls"]["mode"] == "SIMPLE"
    assert "insecureSkipVerify" not in setting["tls"]
    # The credential is the CA only, in the namespace of the waypoint that reads it.
    assert setting["tls"]["credentialName"] == secret["metadata"]["name"]
    assert rule["metadata"]["namespace"] == secret["metadata"]["namespace"] == EGRESS_WAYPOINT_NAMESPACE
    assert set(secret["data"]) == {"ca.crt"} and secret["data"]["ca.crt"] == VARIABLES["TEST_CA_CRT"]


def test_authorization_policies_target_service_entries_the_waypoint_serves() -> None:
    entries = {(e["metadata"]["namespace"], e["metadata"]["name"]) for e in all_of("ServiceEntry")}
    policies = all_of("AuthorizationPolicy")
    assert len(policies) == 3
    for policy in policies:
        assert policy["spec"]["action"] == "DENY"
        assert "selector" not in policy["spec"]
        (target,) = policy["spec"]["targetRefs"]
        assert (target["group"], target["kind"]) == ("networking.istio.io", "ServiceEntry")
        assert (policy["metadata"]["namespace"], target["name"]) in entries
