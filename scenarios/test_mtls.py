"""MTLS — the egress gateway originates mTLS to an external mTLS service (seed 002_cc7ee192d894de70.txt).

The sleep pod in default calls the external ingress by address with ``Host: test.com``. The seed registers
test.com at that address, sends it through the egress gateway over mesh mTLS, then has the gateway connect
to test.com:443 with the client certificate ``test.client``, and finally denies one path at the gateway.

Each check applies every resource of its step, so it runs alone. The seed takes for granted that sidecars
speak mTLS to its ``ISTIO_MUTUAL`` gateway server; upstream's gateway pods lack the label that makes
auto-mTLS do so, and then ``step.sidecars_reach`` adds the gateway-host DestinationRule the specification
prescribes (recorded per check; nothing is added for a gateway that has the label).
"""

from __future__ import annotations

from conformance.checks import ALLOW_ANY, ISTIO_MUTUAL, REGISTRY_ONLY, Client, EgressGateway, Step, http, port
from conformance.spec.catalogue import sidecar_check
from conformance.spec.record_texts import (
    GATEWAY_MTLS_ADAPTATION,
    MTLS_STEP1,
    MTLS_STEP2,
    MTLS_STEP3,
    MTLS_STEP4,
    MTLS_STEP5,
)

SERVICE_ENTRY = "mtls/service-entry.yaml"
GATEWAY_HOP = ("mtls/gateway.yaml", "mtls/virtual-service.yaml")
#: Step 4 as a whole: the route to 443, the client certificate's secret, the MUTUAL DestinationRule.
MTLS_ORIGINATION = (
    "mtls/gateway.yaml",
    "mtls/virtual-service-mtls.yaml",
    "mtls/test-client-secret.yaml",
    "mtls/destination-rule.yaml",
)
HOST_TEST_COM = ("-H", "host:test.com")
DENIED_BY_POLICY = "rbac_access_denied_matched_policy[ns[istio-system]-policy[test]-rule[0]]"


@sidecar_check(
    "MTLS-01",
    "The external mTLS ingress answers by address with Host test.com",
    MTLS_STEP1,
    "418 teapot",
)
def test_ingress_answers_by_address_with_host_test_com(step: Step, sleep: Client) -> None:
    """Under ALLOW_ANY the sidecar passes a host it does not know on to the address curl connects to."""
    step.mesh(outbound=ALLOW_ANY)
    sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(418), body_contains="teapot")


@sidecar_check(
    "MTLS-02",
    "REGISTRY_ONLY with a STATIC ServiceEntry for test.com keeps it reachable",
    MTLS_STEP2,
    "418",
)
def test_static_service_entry_keeps_test_com_reachable(step: Step, sleep: Client) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY)
    sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(418))


@sidecar_check(
    "MTLS-03",
    "The request goes through the egress gateway over mesh mTLS",
    MTLS_STEP3,
    "418; the gateway logs outbound|80||test.com",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_request_goes_through_the_gateway_over_mesh_mtls(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP)
    step.sidecars_reach(egress_gateway, over=ISTIO_MUTUAL, namespace=sleep.namespace)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(418))
    egress_gateway.log_for(r).has(upstream_cluster="outbound|80||test.com", response_code=418)


@sidecar_check(
    "MTLS-04a",
    "The egress gateway originates mTLS to test.com:443 with the test.client certificate",
    MTLS_STEP4,
    "200 with server: envoy",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_gateway_originates_mtls_with_the_client_certificate(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    """``server: envoy`` is asserted because the seed shows it, but the client's own sidecar writes it on
    every response, and step 3's plain port 80 answers the same 200: the gateway's entry for the request,
    on its port-443 cluster, is what shows the origination."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *MTLS_ORIGINATION)
    step.sidecars_reach(egress_gateway, over=ISTIO_MUTUAL, namespace=sleep.namespace)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/200", "-I").converges_to(
        http(200), headers={"server": "envoy"}
    )
    egress_gateway.log_for(r).has(upstream_cluster="outbound|443||test.com", response_code=200)


@sidecar_check(
    "MTLS-04b",
    "The external ingress denies the test.client certificate on /status/418",
    MTLS_STEP4,
    "RBAC: access denied",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_external_ingress_denies_the_client_certificate_on_status_418(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    """A positive check: the 403 is the external ingress recognising test.client, which only happens when
    the gateway's mTLS origination works. The gateway holds no policy in this step and logs the 403 as
    its upstream's (``via_upstream``), not as a decision of its own."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *MTLS_ORIGINATION)
    step.sidecars_reach(egress_gateway, over=ISTIO_MUTUAL, namespace=sleep.namespace)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(403), body="RBAC: access denied")
    egress_gateway.log_for(r).has(
        upstream_cluster="outbound|443||test.com", response_code=403, response_code_details="via_upstream"
    )


@sidecar_check(
    "MTLS-04c",
    "The gateway's log shows the origination to port 443",
    MTLS_STEP4,
    "outbound|443||test.com, upstream_host :443",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_gateway_log_shows_the_origination_to_port_443(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    """The seed reads the gateway's last log line after its /status/418 request: that request's entry."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *MTLS_ORIGINATION)
    step.sidecars_reach(egress_gateway, over=ISTIO_MUTUAL, namespace=sleep.namespace)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(403))
    egress_gateway.log_for(r).has(upstream_cluster="outbound|443||test.com", upstream_host=port(443))


@sidecar_check(
    "MTLS-05",
    "A DENY policy by principal, host and path at the gateway",
    MTLS_STEP5,
    "/headers denied",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_gateway_denies_the_sleep_principal_on_headers_only(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    """The policy matches all three attributes: the principal of the sidecar's mesh certificate (the
    gateway terminates that mTLS), host test.com (the Host header curl sends to the address) and path
    /headers. Its RBAC filter answers the 403 itself and names the policy in its log; other paths pass."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *MTLS_ORIGINATION, "mtls/authorization-policy.yaml")
    step.sidecars_reach(egress_gateway, over=ISTIO_MUTUAL, namespace=sleep.namespace)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/headers").is_denied(http(403), body="RBAC: access denied")
    egress_gateway.log_for(r).has(response_code=403, response_code_details=DENIED_BY_POLICY)
    sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/200", "-I").converges_to(http(200))


@sidecar_check(
    "MTLS-06",
    "REGISTRY_ONLY without the ServiceEntry makes test.com unreachable until it is created",
    MTLS_STEP2,
    "502 Bad Gateway for the unregistered service, then reachable",
    beyond_specification="seed 002, step 2: after REGISTRY_ONLY, requests to unregistered services "
    "return 502 Bad Gateway; the ServiceEntry makes test.com reachable again",
)
def test_registry_only_without_service_entry_makes_test_com_unreachable(step: Step, sleep: Client) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    r = sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").is_denied(http(502))
    sleep.sidecar.log_for(r).has(route_name="block_all", response_code=502)
    with step.documented("Step 2: the ServiceEntry registers test.com at the ingress address"):
        step.apply(SERVICE_ENTRY)
        sleep.curl(*HOST_TEST_COM, "$INGRESS_GATEWAY_IP/status/418").converges_to(http(418))
