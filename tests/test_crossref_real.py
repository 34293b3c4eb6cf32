"""The cross-reference rules added for the mutants nothing caught, each on a passing and a failing
configuration that a real API server accepts (server-side dry-run with Istio's and Gateway API's CRDs): a
rule judges the objects as the server returns them, defaults filled in, never a configuration the cluster
would refuse anyway."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from conformance import MANIFESTS_DIR
from conformance.engine.crossref import configuration_problems
from conformance.engine.crossref_context import Context, Rule
from conformance.engine.istio_config import Configuration
from conformance.kube.api import Kube
from conformance.runtimes.planning import overlay_egress_gateway
from tests.real_apiserver import RealApiServer
from tests.test_manifests_real_apiserver import TIMEOUTS, bundle

pytestmark = pytest.mark.real_apiserver

ISTIO_CRDS = MANIFESTS_DIR / "schemas" / "istio-1.30.3" / "crd-all.gen.yaml"
GATEWAY_API_CRDS = MANIFESTS_DIR / "gateway-api" / "v1.5.1" / "standard-install.yaml"
NAMESPACES = ("istio-system", "demo-frontend", "istio-egress")
SLEEP = {
    "ref": "default/sleep",
    "namespace": "default",
    "name": "sleep",
    "labels": {"app": "sleep"},
    "serviceAccount": "sleep",
    "dataplane": "sidecar",
}
Doc = dict[str, Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(keys: tuple[str, ...]) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "test.client", "namespace": "istio-system"},
        "type": "Opaque",
        "data": {key: b64("PLANNED") for key in keys},
    }


def service_entry(namespace: str, name: str, host: str, labels: dict[str, str] | None = None) -> Doc:
    metadata: Doc = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": metadata,
        "spec": {
            "hosts": [host],
            "resolution": "DNS",
            "location": "MESH_EXTERNAL",
            "ports": [
                {"number": 80, "name": "http", "protocol": "HTTP"},
                {"number": 443, "name": "https", "protocol": "HTTPS"},
            ],
        },
    }


def origination(port: int = 443, sni: str = "test.com") -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "originate-mtls-for-test-com", "namespace": "default"},
        "spec": {
            "host": "test.com",
            "trafficPolicy": {
                "portLevelSettings": [
                    {"port": {"number": port}, "tls": {"mode": "MUTUAL", "credentialName": "test.client", "sni": sni}}
                ]
            },
        },
    }


def deny(source: Doc, target: Doc | None = None, namespace: str = "istio-system") -> Doc:
    spec: Doc = {"action": "DENY", "rules": [{"from": [{"source": source}]}]}
    spec |= {"targetRefs": [target]} if target else {"selector": {"matchLabels": {"istio": "egressgateway"}}}
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny", "namespace": namespace},
        "spec": spec,
    }


def network_policy(port: int) -> Doc:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "egress-only-through-the-egress-gateway", "namespace": "demo-frontend"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                            "podSelector": {"matchLabels": {"istio": "egressgateway"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ],
        },
    }


def egress_namespace(bound: bool) -> Doc:
    labels = {"istio.io/dataplane-mode": "ambient", **({"istio.io/use-waypoint": "waypoint"} if bound else {})}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-egress", "labels": labels}}


WAYPOINT = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "waypoint", "namespace": "istio-egress", "labels": {"istio.io/waypoint-for": "service"}},
    "spec": {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
}
TEST_COM = service_entry("default", "test-com", "test.com")
HTTPBIN = service_entry("istio-egress", "httpbin-org", "httpbin.org")
SE_TARGET = {"group": "networking.istio.io", "kind": "ServiceEntry", "name": "httpbin-org"}

#: rule -> mode, a configuration that keeps it, one that breaks it.
CASES: dict[Rule, tuple[str, list[Doc], list[Doc]]] = {
    Rule.CREDENTIAL_SECRET: (
        "sidecar",
        [TEST_COM, origination(), secret(("tls.crt", "tls.key", "ca.crt"))],
        [TEST_COM, origination(), secret(("tls.crt", "ca.crt"))],
    ),
    Rule.ORIGINATION_SNI: (
        "sidecar",
        [TEST_COM, origination(), secret(("tls.crt", "tls.key", "ca.crt"))],
        [TEST_COM, origination(sni="tset.com"), secret(("tls.crt", "tls.key", "ca.crt"))],
    ),
    Rule.DESTINATION_RULE_PORT: (
        "sidecar",
        [TEST_COM, origination(443), secret(("tls.crt", "tls.key", "ca.crt"))],
        [TEST_COM, origination(8443), secret(("tls.crt", "tls.key", "ca.crt"))],
    ),
    Rule.AUTHORIZATION_SOURCE: (
        "sidecar",
        [deny({"principals": ["cluster.local/ns/default/sa/sleep"]})],
        [deny({"principals": ["cluster.local/ns/default/sa/slep"]})],
    ),
    Rule.AUTHORIZATION_TARGET: (
        "ambient",
        [egress_namespace(True), WAYPOINT, HTTPBIN, deny({"namespaces": ["default"]}, SE_TARGET, "istio-egress")],
        [
            egress_namespace(True),
            WAYPOINT,
            HTTPBIN,
            deny({"namespaces": ["default"]}, {**SE_TARGET, "name": "httpbin"}, "istio-egress"),
        ],
    ),
    Rule.WAYPOINT_BINDING: (
        "ambient",
        [egress_namespace(True), WAYPOINT, HTTPBIN],
        [egress_namespace(False), WAYPOINT, HTTPBIN],
    ),
    Rule.NETWORK_POLICY_PORT: ("sidecar", [network_policy(8080)], [network_policy(80)]),
}


@pytest.fixture(scope="module")
def server(real_apiserver: RealApiServer) -> Iterator[Kube]:
    control_plane = RealApiServer(real_apiserver.binaries, controller_manager=False)
    with control_plane as running, Kube(running.kubeconfig, timeouts=TIMEOUTS) as kube:
        crds = [*bundle(GATEWAY_API_CRDS), *bundle(ISTIO_CRDS)]
        kube.apply(crds)
        kube.wait_crds_established(
            [d["metadata"]["name"] for d in crds if d["kind"] == "CustomResourceDefinition"], TIMEOUTS.crd_established
        )
        kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES])
        yield kube


def problems_of(kube: Kube, mode: str, docs: list[Doc]) -> list[str]:
    """The rules' findings over ``docs`` as the API server returns them from a server-side dry run."""
    accepted = [applied.object for applied in kube.apply(docs, dry_run=True)]
    configuration = Configuration()
    configuration.apply(accepted)
    gateway = overlay_egress_gateway().record() if mode == "sidecar" else None
    workloads = [SLEEP, {**SLEEP, "ref": "demo-frontend/sleep", "namespace": "demo-frontend"}]
    return configuration_problems(configuration, Context.of_run(gateway, workloads, mode))


def test_every_added_rule_has_a_case() -> None:
    added = {
        Rule.AUTHORIZATION_SOURCE,
        Rule.AUTHORIZATION_TARGET,
        Rule.WAYPOINT_BINDING,
        Rule.DESTINATION_RULE_PORT,
        Rule.NETWORK_POLICY_PORT,
        Rule.ORIGINATION_SNI,
        Rule.CREDENTIAL_SECRET,
    }
    assert set(CASES) == added


@pytest.mark.parametrize("rule", list(CASES), ids=[rule.value for rule in CASES])
def test_a_rule_passes_the_good_configuration_and_names_the_mistake(server: Kube, rule: Rule) -> None:
    mode, good, bad = CASES[rule]
    tag = f"[{rule.value}]"
    assert [p for p in problems_of(server, mode, good) if p.startswith(tag)] == []
    found = [p for p in problems_of(server, mode, bad) if p.startswith(tag)]
    assert len(found) >= 1, problems_of(server, mode, bad)
