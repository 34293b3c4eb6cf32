"""EGW — send all egress through an egress gateway (seed 003_7968a64320b06b64.txt).

The seed takes a client in ``default`` from the mesh's open default to a single exit: with ALLOW_ANY the
pod reaches aliyun.com; REGISTRY_ONLY makes the sidecar refuse hosts the mesh does not know; a
ServiceEntry lets the sidecar send the request itself, still not through the gateway; a Gateway and a
two-hop VirtualService finally carry it through ``istio-system/istio-egressgateway``.
"""

from __future__ import annotations

from conformance.checks import ABSENT, ALLOW_ANY, PLAINTEXT, REGISTRY_ONLY, Client, EgressGateway, Step, host, http
from conformance.spec.catalogue import sidecar_check
from conformance.spec.record_texts import EGW_STEP1, EGW_STEP2, EGW_STEP3, EGW_STEP4, GATEWAY_PLAINTEXT_ADAPTATION


@sidecar_check(
    "EGW-01",
    "With ALLOW_ANY a sidecar reaches an unregistered external host",
    EGW_STEP1,
    "301",
)
def test_allow_any_reaches_an_unregistered_host(step: Step, sleep: Client) -> None:
    step.mesh(outbound=ALLOW_ANY)
    sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))


@sidecar_check(
    "EGW-02",
    "With REGISTRY_ONLY and no ServiceEntry the sidecar refuses the request",
    EGW_STEP2,
    "502",
    specification_correction="the specification expects upstream_cluster=BlackHoleCluster in the "
    "sidecar's log. For plain HTTP under REGISTRY_ONLY istiod ends the port's route configuration with a "
    "catch-all virtual host whose one route, named block_all (util.BlackHole in "
    "pilot/pkg/networking/util/util.go), answers 502 itself as a direct response "
    "(pilot/pkg/networking/core/httproute.go): the request reaches no cluster, and the log's "
    "upstream_cluster is empty. BlackHoleCluster only receives what the catch-all TCP filter chain "
    "takes (TLS and other TCP), as in ETP's tls-reset checks",
)
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


@sidecar_check(
    "EGW-03",
    "A ServiceEntry lets the sidecar reach the host directly, not through the gateway",
    EGW_STEP3,
    "301, sent directly from the pod",
)
def test_service_entry_lets_the_sidecar_reach_the_host_itself(
    step: Step, sleep: Client, egress_gateway: EgressGateway
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml")
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
    sleep.sidecar.log_for(r).has(upstream_cluster="outbound|80||aliyun.com", response_code=301)
    egress_gateway.no_log_for(r)


@sidecar_check(
    "EGW-04",
    "A Gateway and a two-hop VirtualService route the request through the egress gateway",
    EGW_STEP4,
    "301, the gateway's log shows the request",
    adaptations=(GATEWAY_PLAINTEXT_ADAPTATION,),
)
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


@sidecar_check(
    "EGW-05",
    "Under ALLOW_ANY without a ServiceEntry, the gateway's routes still take port 80, and fail",
    EGW_STEP2,
    "requests succeed; the configured egress gateway does not take effect",
    deviation="the seed says the requests still succeed and bypass the gateway. Upstream, a "
    "VirtualService whose hosts match no registered service still gets a virtual host on port 80 (the "
    "serviceByPort[80] fallback of buildSidecarVirtualHostsForVirtualService in "
    "pilot/pkg/networking/core/route/route.go), so the mesh hop takes the request to the gateway; the "
    "gateway hop's destination aliyun.com has no cluster without a ServiceEntry, and the gateway "
    "answers 503 (NC). The gateway does take effect, and breaks the request",
    adaptations=(GATEWAY_PLAINTEXT_ADAPTATION,),
    analyzer_errors=(
        ("IST0101", "the seed's note itself: no ServiceEntry registers the VirtualService's host aliyun.com"),
    ),
    beyond_specification="seed 003's note before step 2: without REGISTRY_ONLY and without a "
    "ServiceEntry, requests succeed but the configured egress gateway does not take effect",
)
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
