"""NSD — deny one namespace's egress at the egress gateway (seed 004_d84b0b36a19207dd.txt).

The seed routes demo-frontend's requests for www.aliyun.com through the egress gateway, over mesh mTLS, and
denies them there by source namespace. Its security note adds that a pod without a sidecar is not held to
that policy until a NetworkPolicy closes the direct way out, and a warning that the ServiceEntry must
resolve by DNS.

Each check applies every resource of its step, so it runs alone. The sidecar -> gateway hop needs no
adaptation in this family: the seed's own DestinationRule subset sets ``ISTIO_MUTUAL`` on the sidecars'
cluster, which overrides what auto-mTLS would pick from the gateway pods' labels.
"""

from __future__ import annotations

from conformance.checks import CONN_REFUSED, REGISTRY_ONLY, TIMEOUT, Client, EgressGateway, Step, http
from conformance.spec.catalogue import sidecar_check
from conformance.spec.record_texts import NSD_SECURITY, NSD_STEP1, NSD_STEP3, NSD_STEP4, NSD_STEP5, NSD_STEP6

SERVICE_ENTRY = "nsd/service-entry.yaml"
GATEWAY_HOP = ("nsd/gateway.yaml", "nsd/destination-rule.yaml", "nsd/virtual-service.yaml")
DENY_DEMO_FRONTEND = "nsd/authorization-policy.yaml"
ALLOW_ALLOWED_PATH = "nsd/authorization-policy-allow.yaml"
#: The gateway's RBAC filter names the matched policy in its log (Istio: ns[<ns>]-policy[<name>]-rule[<i>]).
DENIED_BY_POLICY = "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-demo-frontend]-rule[0]]"
#: An ALLOW policy exists and none of its rules matched.
DENIED_BY_NO_ALLOW = "rbac_access_denied_matched_policy[none]"


@sidecar_check(
    "NSD-01",
    "The sleep pod in demo-frontend runs an injected sidecar",
    NSD_STEP1,
    "container istio-proxy present",
    adaptations=(
        "Istio >= 1.27 injects istio-proxy as a native sidecar (an init container with "
        "restartPolicy Always); both places are accepted",
    ),
)
def test_sleep_in_demo_frontend_runs_a_sidecar(step: Step, frontend_sleep: Client) -> None:
    frontend_sleep.has_sidecar()


@sidecar_check(
    "NSD-02",
    "REGISTRY_ONLY with a ServiceEntry in istio-system lets demo-frontend reach the host",
    NSD_STEP3,
    "301",
)
def test_service_entry_in_istio_system_lets_demo_frontend_out(step: Step, frontend_sleep: Client) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY)
    frontend_sleep.curl("-sI", "http://www.aliyun.com").converges_to(http(301))


@sidecar_check(
    "NSD-03",
    "Requests from demo-frontend go through the egress gateway over mTLS",
    NSD_STEP4,
    "301",
)
def test_demo_frontend_goes_through_the_gateway_over_mtls(
    step: Step, frontend_sleep: Client, egress_gateway: EgressGateway
) -> None:
    """The seed's own DestinationRule subset sets ISTIO_MUTUAL on the sidecar-to-gateway hop: no adaptation is
    needed, however the gateway's pods are labelled."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP)
    r = frontend_sleep.curl("-sI", "http://www.aliyun.com").converges_to(http(301))
    egress_gateway.log_for(r).has(upstream_cluster="outbound|80||www.aliyun.com", response_code=301)


@sidecar_check(
    "NSD-04",
    "A DENY policy on the egress gateway blocks the demo-frontend namespace",
    NSD_STEP6,
    "403 with server: envoy",
)
def test_gateway_denies_the_demo_frontend_namespace(
    step: Step, frontend_sleep: Client, egress_gateway: EgressGateway
) -> None:
    """``server: envoy`` holds but proves little: the client's own sidecar overwrites the Server header of
    every response (the gateway writes ``istio-envoy``). The gateway's log entry shows the 403 is its
    RBAC filter's, matching the seed's DENY policy."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP, DENY_DEMO_FRONTEND)
    r = frontend_sleep.curl("-sI", "http://www.aliyun.com").is_denied(http(403), headers={"server": "envoy"})
    egress_gateway.log_for(r).has(response_code=403, response_code_details=DENIED_BY_POLICY)


@sidecar_check(
    "NSD-05",
    "A pod without a sidecar bypasses the egress gateway and its policy",
    NSD_SECURITY,
    "bypass possible",
)
def test_pod_without_sidecar_bypasses_the_gateway_policy(
    step: Step, frontend_sleep: Client, frontend_sleep_without_sidecar: Client, egress_gateway: EgressGateway
) -> None:
    """The bypass means something only while the policy holds: the sidecar pod is denied by it first."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP, DENY_DEMO_FRONTEND)
    r = frontend_sleep.curl("-sI", "http://www.aliyun.com").is_denied(http(403), headers={"server": "envoy"})
    egress_gateway.log_for(r).has(response_code=403, response_code_details=DENIED_BY_POLICY)
    frontend_sleep_without_sidecar.curl("-sI", "http://www.aliyun.com").converges_to(http(301))


@sidecar_check(
    "NSD-06",
    "A NetworkPolicy closes the bypass; the sidecar pod is still denied by the gateway",
    NSD_SECURITY,
    "blocked",
)
def test_network_policy_closes_the_bypass(
    step: Step, frontend_sleep: Client, frontend_sleep_without_sidecar: Client, egress_gateway: EgressGateway
) -> None:
    """The pod without a sidecar first gets through (as in NSD-05), then the NetworkPolicy drops its direct
    connection: curl gives up (timeout), or the network refuses it. The sidecar pod still reaches the
    gateway through the policy's first rule, and the gateway still denies it."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP, DENY_DEMO_FRONTEND)
    with step.documented("Security considerations: a pod without a sidecar bypasses the gateway"):
        frontend_sleep_without_sidecar.curl("-sI", "http://www.aliyun.com").converges_to(http(301))
    with step.documented("Security considerations: a NetworkPolicy allows egress only through the gateway"):
        step.apply("nsd/network-policy.yaml")
        frontend_sleep_without_sidecar.curl("-sI", "http://www.aliyun.com").is_denied(TIMEOUT | CONN_REFUSED)
        r = frontend_sleep.curl("-sI", "http://www.aliyun.com").is_denied(http(403), headers={"server": "envoy"})
        egress_gateway.log_for(r).has(response_code=403, response_code_details=DENIED_BY_POLICY)


@sidecar_check(
    "NSD-07",
    "A ServiceEntry with resolution NONE does not work through the gateway",
    NSD_STEP3,
    "fails (the gateway loops back to itself)",
    deviation="the seed describes an endless loop through the gateway's service address. Upstream, "
    "istiod never gives a gateway a passthrough (ORIGINAL_DST) cluster: for a NONE entry "
    "convertResolution in pilot/pkg/networking/core/cluster.go falls back to EDS when the proxy is a "
    "gateway, and an entry without endpoints gives that cluster none. The gateway answers 503 'no "
    "healthy upstream' itself; nothing loops",
    breaks_rules=(
        (
            "service-entry-resolution",
            "the seed's pitfall itself: the entry the gateway routes to has resolution NONE",
        ),
    ),
)
def test_service_entry_without_resolution_fails_through_the_gateway(
    step: Step, frontend_sleep: Client, egress_gateway: EgressGateway
) -> None:
    """The working route first (DNS, 301 through the gateway), then only the resolution changes: any
    answer seen after that comes from the NONE entry, not from configuration still arriving. A gateway's
    cluster for a NONE entry is an EDS cluster without endpoints: the gateway answers 503 itself."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP)
    r = frontend_sleep.curl("-sI", "http://www.aliyun.com").converges_to(http(301))
    egress_gateway.log_for(r).has(upstream_cluster="outbound|80||www.aliyun.com", response_code=301)
    with step.documented("Step 3: the ServiceEntry with resolution NONE, against the seed's warning"):
        step.apply("nsd/service-entry-resolution-none.yaml")
        failed = frontend_sleep.curl("-sI", "http://www.aliyun.com").is_denied(http(503))
        step.record_observed("www.aliyun.com through the gateway with resolution NONE", failed)
        egress_gateway.log_for(failed).has(
            upstream_cluster="outbound|80||www.aliyun.com",
            response_code=503,
            response_flags="UH",
            response_code_details="no_healthy_upstream",
        )


@sidecar_check(
    "NSD-08",
    "DENY is evaluated before ALLOW; with no ALLOW policy the rest is allowed",
    NSD_STEP5,
    "a DENY match is rejected whatever ALLOW says; without ALLOW, non-denied requests pass",
    beyond_specification="seed 004, step 5: policies of one workload are evaluated CUSTOM, then DENY, "
    "then ALLOW; a DENY match is rejected regardless of ALLOW policies, and without ALLOW policies every "
    "request not denied is permitted",
)
def test_deny_is_evaluated_before_allow_and_no_allow_admits_the_rest(
    step: Step, frontend_sleep: Client, egress_gateway: EgressGateway
) -> None:
    """One request matching both the seed's DENY and an ALLOW is denied by the DENY; with the ALLOW
    alone, a request it does not match is denied; with no policy at all, that request passes."""
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply(SERVICE_ENTRY, *GATEWAY_HOP, DENY_DEMO_FRONTEND, ALLOW_ALLOWED_PATH)
    r = frontend_sleep.curl("-sI", "http://www.aliyun.com/allowed").is_denied(http(403))
    egress_gateway.log_for(r).has(path="/allowed", response_code=403, response_code_details=DENIED_BY_POLICY)
    with step.documented("Step 5: with an ALLOW policy and no DENY, what the ALLOW does not match is denied"):
        step.delete(DENY_DEMO_FRONTEND)
        r = frontend_sleep.curl("-sI", "http://www.aliyun.com/allowed").converges_to(http(301))
        egress_gateway.log_for(r).has(path="/allowed", response_code=301)
        r = frontend_sleep.curl("-sI", "http://www.aliyun.com/").is_denied(http(403))
        egress_gateway.log_for(r).has(path="/", response_code=403, response_code_details=DENIED_BY_NO_ALLOW)
    with step.documented("Step 5: with no ALLOW policy, every request not denied is permitted"):
        step.delete(ALLOW_ALLOWED_PATH)
        frontend_sleep.curl("-sI", "http://www.aliyun.com/").converges_to(http(301))
