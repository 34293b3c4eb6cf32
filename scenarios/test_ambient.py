"""AMB — centrally managed egress through a waypoint (seed 000_2c76676392fa61cf.txt), and AMB-X, the ambient
equivalents of the sidecar profile's authorization checks.

The seed starts from an ambient client in ``default`` that reaches aliyun.com directly: ztunnel forwards a
connection to a host it does not know at L4. A NetworkPolicy then closes that direct way out. A waypoint
in ``istio-egress`` and a ServiceEntry bound to it open aliyun.com again, now through the waypoint's Envoy,
which sees and logs every request; finally the waypoint upgrades the plain-HTTP request to HTTPS towards
the origin. Every check from AMB-03 on keeps the NetworkPolicy, so a request that succeeds can only have
taken the waypoint path.

AMB-X1…X3 attach AuthorizationPolicies to a ServiceEntry (``targetRefs``), which the waypoint enforces.
AMB-X4 (REGISTRY_ONLY) does not apply to ztunnel and has no test; its catalogue record says why.
"""

from __future__ import annotations

from conformance.checks import ABSENT, CONN_REFUSED, TIMEOUT, TLS_RESET, Client, Step, Waypoint, http, port, prefix
from conformance.spec.catalogue import ambient_check
from conformance.spec.model import Tier
from conformance.spec.record_texts import AMB_INTRO, AMB_STEP1, AMB_STEP4, AMB_STEP5, TEST_CA_ADAPTATION
from conformance.world.external import CLIENT_CA_FILE

#: How the ambient profile's waypoint trusts the test CA when it originates TLS (seed 000, step 5).
WAYPOINT_TEST_CA_ADAPTATION = (
    f"{TEST_CA_ADAPTATION}: the DestinationRule's credentialName names a Secret in istio-egress holding only "
    "ca.crt (a waypoint may read a CA-only credential of its own namespace); SNI and the certificate's name "
    "check keep Istio's defaults, taken from the request host aliyun.com, which the origin's certificate names"
)

NETWORK_POLICY = "ambient/network-policy.yaml"
WAYPOINT = "ambient/waypoint.yaml"
ALIYUN = "ambient/service-entry.yaml"
HTTPBIN = "ambient/service-entry-httpbin.yaml"
#: The external world's origins present certificates of the run's test CA, which the client trusts.
TEST_CA = ("--cacert", CLIENT_CA_FILE)
#: How the waypoint's RBAC filter names a denial by an AuthorizationPolicy of istio-egress.
DENIED_BY = "rbac_access_denied_matched_policy[ns[istio-egress]-policy[{}]"


def close_direct_egress(step: Step) -> None:
    with step.documented("Keep the client from reaching the outside directly: DNS and HBONE to the waypoint only"):
        step.apply(NETWORK_POLICY)


def open_waypoint(step: Step) -> None:
    with step.documented("Step 3: istio-egress joins ambient, with a waypoint that everything in it uses"):
        step.apply("ambient/egress-namespace.yaml", WAYPOINT)
        step.wait_for(WAYPOINT, "Programmed", kind="Gateway")


def bind_to_waypoint(step: Step, service_entry: str) -> None:
    """Register an external host in istio-egress and wait until Istio has bound it to the waypoint."""
    step.apply(service_entry)
    step.wait_for(service_entry, "istio.io/WaypointBound", kind="ServiceEntry")


def egress_through_waypoint(step: Step, service_entry: str) -> None:
    """The state of AMB-03 for one host: direct egress closed, the host reachable through the waypoint."""
    close_direct_egress(step)
    open_waypoint(step)
    with step.documented("Step 4: the external host is registered in istio-egress and bound to its waypoint"):
        bind_to_waypoint(step, service_entry)


def attach_policy(step: Step, policy: str) -> None:
    """Apply an AuthorizationPolicy and wait until Istio reports it bound to the waypoint."""
    step.apply(policy)
    step.wait_for(policy, "WaypointAccepted", kind="AuthorizationPolicy")


@ambient_check(
    "AMB-01",
    "An ambient pod reaches an external host directly",
    AMB_STEP1,
    "301 with the origin's own Server header",
)
def test_ambient_client_reaches_an_unregistered_host_directly(step: Step, sleep: Client) -> None:
    """ztunnel forwards a connection to a host it does not know at L4: no Envoy is on the path, so the answer
    carries no x-envoy-* header."""
    sleep.curl("-sI", "http://aliyun.com").converges_to(
        http(301), headers={"x-external-world-scheme": "http"}, no_headers_with_prefix=("x-envoy-",)
    )


@ambient_check(
    "AMB-02",
    "A NetworkPolicy stops ambient pods reaching the outside directly",
    AMB_INTRO,
    "blocked (implied)",
)
def test_network_policy_closes_the_direct_way_out(step: Step, sleep: Client) -> None:
    """The block means something only if the same request got through before it: the control first.

    ztunnel accepts the pod's connection inside the pod, so the policy drops ztunnel's onward connection (made
    from the pod's network namespace); curl's denial limit (6 s at --timeout-scale 1) runs out before ztunnel's
    10 s connect timeout. Past that limit ztunnel resets the connection it had accepted (tls-reset, curl exit 56).
    """
    with step.documented("Step 1: the client reaches the host directly"):
        sleep.curl("-sI", "http://aliyun.com").converges_to(http(301), headers={"x-external-world-scheme": "http"})
    step.apply(NETWORK_POLICY)
    sleep.curl("-sI", "http://aliyun.com").is_denied(TIMEOUT | CONN_REFUSED | TLS_RESET)


@ambient_check(
    "AMB-03",
    "A waypoint in istio-egress carries traffic to a ServiceEntry host",
    AMB_STEP4,
    "301, server: envoy, x-envoy-upstream-service-time; waypoint log",
    deviation="the seed's waypoint log has a field authority_for (Istio's JSON access log has none; the "
    "host is in authority), an upstream_cluster ending in ';' (the cluster's alt_stat_name, which "
    "%UPSTREAM_CLUSTER% prints; Istio's log uses %UPSTREAM_CLUSTER_RAW%, inbound-vip|80|http|aliyun.com) "
    "and method GET for a curl -I request, which sends HEAD; its "
    "response shows server: envoy, where an upstream waypoint overwrites Server with istio-envoy (the "
    "server name of its inbound listeners)",
)
def test_waypoint_carries_the_registered_host(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    """The client's direct way out is closed first (AMB-02's NetworkPolicy), so a 301 can only have come through
    the waypoint."""
    close_direct_egress(step)
    open_waypoint(step)
    bind_to_waypoint(step, ALIYUN)
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(
        http(301),
        headers={"server": "istio-envoy", "x-external-world-scheme": "http"},
        headers_present=("x-envoy-upstream-service-time",),
    )
    waypoint.log_for(r).has(
        upstream_cluster="inbound-vip|80|http|aliyun.com",
        route_name="default",
        method="HEAD",
        response_code=301,
        authority="aliyun.com",
        upstream_host=port(80),
    )


@ambient_check(
    "AMB-04",
    "The waypoint upgrades HTTP to HTTPS towards the origin",
    AMB_STEP5,
    "301; the waypoint forwards to port 443",
    deviation="the seed's response after the upgrade repeats the one before it (Location "
    "https://aliyun.com/, server: envoy); reached over HTTPS, aliyun.com redirects to "
    "https://www.aliyun.com/ (the external world's aliyun.com does so, modelled on the real apex), and the "
    "waypoint writes server: istio-envoy",
    adaptations=(WAYPOINT_TEST_CA_ADAPTATION,),
)
def test_waypoint_upgrades_the_request_to_https(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    close_direct_egress(step)
    open_waypoint(step)
    step.apply("ambient/origin-ca-secret.yaml", adaptation=WAYPOINT_TEST_CA_ADAPTATION)
    step.apply("ambient/destination-rule-https-upgrade.yaml")
    bind_to_waypoint(step, "ambient/service-entry-https-upgrade.yaml")
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(
        http(301),
        headers={"x-external-world-scheme": "https", "location": "https://www.aliyun.com/"},
        headers_present=("x-envoy-upstream-service-time",),
    )
    waypoint.log_for(r).has(
        upstream_cluster="inbound-vip|80|http|aliyun.com",
        response_code=301,
        authority="aliyun.com",
        upstream_host=port(443),
    )


@ambient_check(
    "AMB-05",
    "The application's own HTTPS passes the waypoint at L4",
    AMB_STEP5,
    "HTTPS is forwarded as TLS: no L7 capabilities",
    adaptations=(TEST_CA_ADAPTATION,),
    beyond_specification="seed 000's introduction and step 5: a waypoint forwards an application's "
    "direct HTTPS as TLS and can apply only TCP-level policy and routing to it",
)
def test_application_https_passes_the_waypoint_at_l4(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    """The seed's warning: a waypoint cannot read an application's own TLS, so it forwards the connection
    (no L7 fields in its entry, no Envoy headers on the origin's answer)."""
    close_direct_egress(step)
    open_waypoint(step)
    bind_to_waypoint(step, ALIYUN)
    r = sleep.curl("-sI", *TEST_CA, "https://aliyun.com").converges_to(
        http(301), headers={"x-external-world-scheme": "https"}, no_headers_with_prefix=("x-envoy-",)
    )
    waypoint.log_for(r, by_time=True).has(
        upstream_cluster="inbound-vip|443|tcp|aliyun.com", method=ABSENT, path=ABSENT, upstream_host=port(443)
    )


@ambient_check(
    "AMB-X1",
    "A DENY by source namespace at the egress waypoint",
    None,
    "(ambient equivalent of NSD-04: 403 with server: envoy)",
    deviation="seed 004 shows server: envoy on the denial; an upstream waypoint answers with server: "
    "istio-envoy (the server name Istio gives its inbound and gateway listeners)",
    tier=Tier.EXTENDED,
)
def test_waypoint_denies_the_client_namespace(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    egress_through_waypoint(step, ALIYUN)
    attach_policy(step, "ambient/deny-client-namespace.yaml")
    r = sleep.curl("-sI", "http://aliyun.com").is_denied(http(403), headers={"server": "istio-envoy"})
    waypoint.log_for(r).has(response_code=403, response_code_details=prefix(DENIED_BY.format("deny-client-namespace")))


@ambient_check(
    "AMB-X2",
    "A DENY for POST at the egress waypoint",
    None,
    "(ambient equivalent of ETP-05: POST RBAC: access denied, GET allowed)",
    tier=Tier.EXTENDED,
)
def test_waypoint_denies_post_and_lets_get_through(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    egress_through_waypoint(step, HTTPBIN)
    attach_policy(step, "ambient/deny-post.yaml")
    denied = sleep.curl("-s", "-X", "POST", "http://httpbin.org/post").is_denied(http(403), body="RBAC: access denied")
    waypoint.log_for(denied).has(
        method="POST", response_code=403, response_code_details=prefix(DENIED_BY.format("deny-post"))
    )
    allowed = sleep.curl("-s", "http://httpbin.org/get").converges_to(http(200))
    waypoint.log_for(allowed).has(upstream_cluster="inbound-vip|80|http|httpbin.org", method="GET", response_code=200)


@ambient_check(
    "AMB-X3",
    "A DENY by principal and path at the egress waypoint",
    None,
    "(ambient equivalent of MTLS-05: /headers denied for the sleep identity)",
    tier=Tier.EXTENDED,
)
def test_waypoint_denies_one_path_to_the_sleep_identity(step: Step, sleep: Client, waypoint: Waypoint) -> None:
    egress_through_waypoint(step, HTTPBIN)
    attach_policy(step, "ambient/deny-principal-path.yaml")
    denied = sleep.curl("-s", "http://httpbin.org/headers").is_denied(http(403), body="RBAC: access denied")
    waypoint.log_for(denied).has(
        path="/headers", response_code=403, response_code_details=prefix(DENIED_BY.format("deny-sleep-headers"))
    )
    allowed = sleep.curl("-s", "http://httpbin.org/status/200").converges_to(http(200))
    waypoint.log_for(allowed).has(
        upstream_cluster="inbound-vip|80|http|httpbin.org", path="/status/200", response_code=200
    )


ambient_check(
    "AMB-X4",
    "REGISTRY_ONLY for ambient workloads",
    None,
    "(ambient equivalent of EGW-02 / ETP-00)",
    tier=Tier.EXTENDED,
    not_applicable="ztunnel does not implement meshConfig.outboundTrafficPolicy: unknown destinations "
    "leave directly at L4 in ambient mode; blocking them is a NetworkPolicy's job (see AMB-02)",
)
