"""EGW — send all egress through an egress gateway (seed 003_7968a64320b06b64.txt).

The seed takes a client in ``default`` from the mesh's open default to a single exit: with ALLOW_ANY the
pod reaches aliyun.com; REGISTRY_ONLY makes the sidecar refuse hosts the mesh does not know; a
ServiceEntry lets the sidecar send the request itself, still not through the gateway; a Gateway and a
two-hop VirtualService finally carry it through ``istio-system/istio-egressgateway``.
"""

from __future__ import annotations

from conformance.checks import ABSENT, ALLOW_ANY, PLAINTEXT, REGISTRY_ONLY, Client, EgressGateway, Step, host, http
from conformance.spec.catalogue import check


@check("EGW-01")
def test_allow_any_reaches_an_unregistered_host(step: Step, sleep: Client) -> None:
    step.mesh(outbound=ALLOW_ANY)
    sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))


@check("EGW-02")
def test_registry_only_refuses_an_unregistered_host(step: Step, sleep: Client) -> None:
    """The denial means something only if the same request succeeds without it: the control first."""
    with step.documented("Step 1: under ALLOW_ANY the host answers"):
        step.mesh(outbound=ALLOW_ANY)
        sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
    step.mesh(outbound=REGISTRY_ONLY)
    r = sleep.curl("-sI", "http://aliyun.com").is_denied(http(502), headers={"server": "envoy"})
    sleep.sidecar.log_for(r).has(
        route_name="block_all", response_code=502, response_code_details="direct_response", upstream_cluster=ABSENT
    )


@check("EGW-03")
def test_service_entry_lets_the_sidecar_reach_the_host_itself(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml")
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
    sleep.sidecar.log_for(r).has(upstream_cluster="outbound|80||aliyun.com", response_code=301)
    egress_gateway.no_log_for(r)


@check("EGW-04")
def test_gateway_and_two_hop_routes_carry_the_request(step: Step, sleep: Client, egress_gateway: EgressGateway) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")
    step.sidecars_reach(egress_gateway, over=PLAINTEXT, namespace=sleep.namespace)
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
    egress_gateway.log_for(r).has(
        upstream_cluster="outbound|80||aliyun.com",
        authority="aliyun.com",
        method="HEAD",
        response_code=301,
        downstream_remote_address=host(sleep.ip),
    )


@check("EGW-05")
def test_gateway_routes_without_service_entry_capture_the_request(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    """Step 4's Gateway and VirtualService, but neither REGISTRY_ONLY nor the ServiceEntry: the request
    reaches the gateway, which has nowhere to send it."""
    step.mesh(outbound=ALLOW_ANY)
    step.apply("egw/gateway.yaml", "egw/virtual-service.yaml")
    step.sidecars_reach(egress_gateway, over=PLAINTEXT, namespace=sleep.namespace)
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(503))
    sleep.sidecar.log_for(r).has(upstream_cluster=f"outbound|80||{egress_gateway.info.host}", response_code=503)
    egress_gateway.log_for(r).has(
        authority="aliyun.com", response_code=503, response_flags="NC", response_code_details="cluster_not_found"
    )
