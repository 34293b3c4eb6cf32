"""The records of the catalogue: one per check of the scenario specification, implemented or not, with
what its seed documents, what upstream Istio does, and every deviation and adaptation.
"""

from __future__ import annotations

from conformance.settings.options import MeshMode
from conformance.spec.model import (
    SEED_AMBIENT,
    SEED_EGW,
    SEED_ETP,
    SEED_MTLS,
    SEED_NSD,
    Check,
    Profile,
    Seed,
    Tier,
    ambient_check,
    external_check,
    sidecar_check,
)

#: Sidecar reaching the egress gateway: the adaptations of the specification's rule (they depend on whether
#: the installed gateway's pods carry ``security.istio.io/tlsMode=istio``; the step records which one ran).
GATEWAY_PLAINTEXT_ADAPTATION = (
    "gateway pods labelled security.istio.io/tlsMode=istio: a DestinationRule for the gateway host with "
    "tls.mode DISABLE keeps the documented plain-HTTP gateway hop (sidecars would otherwise send mTLS to a "
    "plain HTTP server)"
)
GATEWAY_MTLS_ADAPTATION = (
    "gateway pods without security.istio.io/tlsMode=istio (upstream's default): a DestinationRule for the "
    "gateway host with tls.mode ISTIO_MUTUAL makes sidecars speak the mTLS the documented ISTIO_MUTUAL "
    "gateway server expects (auto-mTLS alone would send plaintext)"
)
TEST_CA_ADAPTATION = "origins present certificates of the run's test CA; TLS origination trusts that CA explicitly"
#: Seed 001's egress gateway is its own ``egressgateway-a``; upstream's installed one is labelled istio=egressgateway.
ETP_GATEWAY_SELECTOR_ADAPTATION = (
    "the seed's AuthorizationPolicy selects its gateway by istio: egressgateway-a; the harness selects the "
    "installed upstream gateway, istio: egressgateway"
)

_EGW_STEP1 = Seed(SEED_EGW, "Step 1: Deploy a sample application")
_EGW_STEP2 = Seed(SEED_EGW, "(Optional) Step 2: Set the policy for accessing external services to REGISTRY_ONLY")
_EGW_STEP3 = Seed(SEED_EGW, "Step 3: Create a service entry to define an external service")
_EGW_STEP4 = Seed(SEED_EGW, "Step 4: Use an egress gateway to route all the requests to access external services")

_NSD_STEP1 = Seed(SEED_NSD, "Step 1: Deploy a test service")
_NSD_STEP3 = Seed(SEED_NSD, "Step 3: Restrict outbound traffic to registered services only")
_NSD_STEP4 = Seed(SEED_NSD, "Step 4: Route traffic through the egress gateway")
_NSD_STEP5 = Seed(SEED_NSD, "Step 5: Create an authorization policy")
_NSD_STEP6 = Seed(SEED_NSD, "Step 6: Verify the authorization policy")
_NSD_SECURITY = Seed(SEED_NSD, "Security considerations")

_MTLS_STEP1 = Seed(SEED_MTLS, "Step 1: Deploy the sleep test application")
_MTLS_STEP2 = Seed(SEED_MTLS, "Step 2: Enable REGISTRY_ONLY and create a ServiceEntry")
_MTLS_STEP3 = Seed(SEED_MTLS, "Step 3: Create the egress gateway and route HTTP traffic through it")
_MTLS_STEP4 = Seed(SEED_MTLS, "Step 4: Upgrade egress traffic to mTLS")
_MTLS_STEP5 = Seed(SEED_MTLS, "Step 5: Configure authorization policies")

_ETP_SETUP = Seed(SEED_ETP, "Set up the environment")
_ETP_HTTP = Seed(SEED_ETP, "Route HTTP traffic through the egress gateway")
_ETP_UPGRADE = Seed(SEED_ETP, "Solution 1: mTLS with HTTPS upgrade (recommended)")
_ETP_PASSTHROUGH = Seed(SEED_ETP, "Solution 2: HTTPS passthrough")
_ETP_TCP = Seed(SEED_ETP, "Route TCP traffic through the egress gateway")
_ETP_AUTHZ = Seed(SEED_ETP, "Add fine-grained access control with an authorization policy")

_AMB_STEP1 = Seed(SEED_AMBIENT, "Step 1: Deploy the test application")
_AMB_INTRO = Seed(SEED_AMBIENT, "Introduction to external service management")
_AMB_STEP4 = Seed(SEED_AMBIENT, "Step 4: Create a ServiceEntry and test access")
_AMB_STEP5 = Seed(SEED_AMBIENT, "Step 5: Configure Waypoint to upgrade HTTP requests to HTTPS")
#: How the ambient profile's waypoint trusts the test CA when it originates TLS (seed 000, step 5).
WAYPOINT_TEST_CA_ADAPTATION = (
    f"{TEST_CA_ADAPTATION}: the DestinationRule's credentialName names a Secret in istio-egress holding only "
    "ca.crt (a waypoint may read a CA-only credential of its own namespace); SNI and the certificate's name "
    "check keep Istio's defaults, taken from the request host aliyun.com, which the origin's certificate names"
)

#: Seed 001's model: the sidecar -> gateway hop is always mTLS. The gateway's entry shows it by the SNI the
#: sidecar's ISTIO_MUTUAL cluster sends (Istio's outbound_.<port>_.<subset>_.<host> form).
ETP_MESH_MTLS = (
    "; every request the gateway carries arrived over mesh mTLS: its entry's requested_server_name is "
    "outbound_.<gateway port>_._.istio-egressgateway.istio-system.svc.cluster.local"
)

_HTTPS_RESET_DEVIATION = (
    "the seed calls the HTTPS failure 'connection refused'; a sidecar under REGISTRY_ONLY accepts the TCP "
    "connection and resets the TLS handshake (curl exit 35), it never refuses the connection"
)

RECORDS: tuple[Check, ...] = (
    # ---------------------------------------------------------------- EGW: seed 003
    sidecar_check(
        "EGW-01",
        "With ALLOW_ANY a sidecar reaches an unregistered external host",
        "EGW",
        _EGW_STEP1,
        "301",
        "http(301)",
    ),
    sidecar_check(
        "EGW-02",
        "With REGISTRY_ONLY and no ServiceEntry the sidecar refuses the request",
        "EGW",
        _EGW_STEP2,
        "502",
        "first, under ALLOW_ANY, the origin's http(301) for the same request (the control: the host, DNS and "
        "the external world work); then http(502) from the sidecar (server: envoy), which logs it on route "
        "block_all with response_code_details direct_response and no upstream cluster",
        specification_correction="the specification expects upstream_cluster=BlackHoleCluster in the "
        "sidecar's log. For plain HTTP under REGISTRY_ONLY istiod ends the port's route configuration with a "
        "catch-all virtual host whose one route, named block_all (util.BlackHole in "
        "pilot/pkg/networking/util/util.go), answers 502 itself as a direct response "
        "(pilot/pkg/networking/core/httproute.go): the request reaches no cluster, and the log's "
        "upstream_cluster is empty. BlackHoleCluster only receives what the catch-all TCP filter chain "
        "takes (TLS and other TCP), as in ETP's tls-reset checks",
    ),
    sidecar_check(
        "EGW-03",
        "A ServiceEntry lets the sidecar reach the host directly, not through the gateway",
        "EGW",
        _EGW_STEP3,
        "301, sent directly from the pod",
        "http(301); the sidecar logs upstream_cluster outbound|80||aliyun.com; the egress gateway logs "
        "nothing for the request",
    ),
    sidecar_check(
        "EGW-04",
        "A Gateway and a two-hop VirtualService route the request through the egress gateway",
        "EGW",
        _EGW_STEP4,
        "301, the gateway's log shows the request",
        "http(301); the gateway logs upstream_cluster outbound|80||aliyun.com, authority aliyun.com, method "
        "HEAD, response_code 301, downstream_remote_address of the sleep pod",
        adaptations=(GATEWAY_PLAINTEXT_ADAPTATION,),
    ),
    sidecar_check(
        "EGW-05",
        "Under ALLOW_ANY without a ServiceEntry, the gateway's routes still take port 80, and fail",
        "EGW",
        _EGW_STEP2,
        "requests succeed; the configured egress gateway does not take effect",
        "http(503): the sidecar sends the request to the egress gateway (its log: outbound|80||istio-"
        "egressgateway.istio-system.svc.cluster.local, 503), and the gateway answers it itself (response_flags "
        "NC, response_code_details cluster_not_found, authority aliyun.com): its route names "
        "outbound|80||aliyun.com, a cluster only a ServiceEntry creates",
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
    ),
    # ---------------------------------------------------------------- NSD: seed 004
    sidecar_check(
        "NSD-01",
        "The sleep pod in demo-frontend runs an injected sidecar",
        "NSD",
        _NSD_STEP1,
        "container istio-proxy present",
        "container istio-proxy present",
        adaptations=(
            "Istio >= 1.27 injects istio-proxy as a native sidecar (an init container with "
            "restartPolicy Always); both places are accepted",
        ),
    ),
    sidecar_check(
        "NSD-02",
        "REGISTRY_ONLY with a ServiceEntry in istio-system lets demo-frontend reach the host",
        "NSD",
        _NSD_STEP3,
        "301",
        "http(301)",
    ),
    sidecar_check(
        "NSD-03",
        "Requests from demo-frontend go through the egress gateway over mTLS",
        "NSD",
        _NSD_STEP4,
        "301",
        "http(301); the gateway logs upstream_cluster outbound|80||www.aliyun.com, response_code 301. The "
        "seed's own DestinationRule subset sets ISTIO_MUTUAL on the hop, so no adaptation is needed "
        "whatever labels the gateway pods carry",
    ),
    sidecar_check(
        "NSD-04",
        "A DENY policy on the egress gateway blocks the demo-frontend namespace",
        "NSD",
        _NSD_STEP6,
        "403 with server: envoy",
        "http(403) with header server: envoy; the gateway logs the 403 with response_code_details "
        "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-demo-frontend]-rule[0]]. The header "
        "is the client sidecar's own (Istio's outbound connection manager overwrites Server with Envoy's "
        "default on every response; the gateway would say istio-envoy), so the log shows where the "
        "policy acted",
    ),
    sidecar_check(
        "NSD-05",
        "A pod without a sidecar bypasses the egress gateway and its policy",
        "NSD",
        _NSD_SECURITY,
        "bypass possible",
        "with the DENY in force (the sidecar pod gets http(403), logged by the gateway's policy), the pod "
        "without a sidecar gets http(301): it connects to the origin itself, untouched by REGISTRY_ONLY "
        "and by the gateway's policy",
    ),
    sidecar_check(
        "NSD-06",
        "A NetworkPolicy closes the bypass; the sidecar pod is still denied by the gateway",
        "NSD",
        _NSD_SECURITY,
        "blocked",
        "the pod without a sidecar gets http(301) before the NetworkPolicy and timeout or conn-refused "
        "after it; the sidecar pod still gets http(403) with server: envoy, logged by the gateway's policy",
    ),
    sidecar_check(
        "NSD-07",
        "A ServiceEntry with resolution NONE does not work through the gateway",
        "NSD",
        _NSD_STEP3,
        "fails (the gateway loops back to itself)",
        "http(301) through the gateway with resolution DNS, then, once NONE replaces it, http(503) answered "
        "by the gateway itself: it logs the request on outbound|80||www.aliyun.com with response_flags UH "
        "and response_code_details no_healthy_upstream",
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
    ),
    sidecar_check(
        "NSD-08",
        "DENY is evaluated before ALLOW; with no ALLOW policy the rest is allowed",
        "NSD",
        _NSD_STEP5,
        "a DENY match is rejected whatever ALLOW says; without ALLOW, non-denied requests pass",
        "with the seed's DENY and an ALLOW for demo-frontend on /allowed, /allowed gets http(403) logged as "
        "the DENY policy's; with the ALLOW alone, /allowed gets http(301) and / http(403) logged as "
        "rbac_access_denied_matched_policy[none]; with neither, / gets http(301)",
        beyond_specification="seed 004, step 5: policies of one workload are evaluated CUSTOM, then DENY, "
        "then ALLOW; a DENY match is rejected regardless of ALLOW policies, and without ALLOW policies every "
        "request not denied is permitted",
    ),
    # ---------------------------------------------------------------- MTLS: seed 002
    sidecar_check(
        "MTLS-01",
        "The external mTLS ingress answers by address with Host test.com",
        "MTLS",
        _MTLS_STEP1,
        "418 teapot",
        "http(418), body contains teapot (ALLOW_ANY: the sidecar passes the unknown host on to the address)",
    ),
    sidecar_check(
        "MTLS-02",
        "REGISTRY_ONLY with a STATIC ServiceEntry for test.com keeps it reachable",
        "MTLS",
        _MTLS_STEP2,
        "418",
        "http(418)",
    ),
    sidecar_check(
        "MTLS-03",
        "The request goes through the egress gateway over mesh mTLS",
        "MTLS",
        _MTLS_STEP3,
        "418; the gateway logs outbound|80||test.com",
        "http(418); the gateway logs upstream_cluster outbound|80||test.com, response_code 418",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-04a",
        "The egress gateway originates mTLS to test.com:443 with the test.client certificate",
        "MTLS",
        _MTLS_STEP4,
        "200 with server: envoy",
        "http(200) with header server: envoy, and the gateway logs that request on outbound|443||test.com "
        "with response_code 200: the header is the client sidecar's own (Istio's outbound connection "
        "manager overwrites Server with Envoy's default on every response), and step 3's plain port 80 "
        "gives the same 200, so only the gateway's log tells the origination from it",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-04b",
        "The external ingress denies the test.client certificate on /status/418",
        "MTLS",
        _MTLS_STEP4,
        "RBAC: access denied",
        "http(403), body RBAC: access denied, from the external ingress: the gateway, which holds no policy "
        "in this step, logs the 403 as received from upstream (response_code_details via_upstream) on "
        "outbound|443||test.com",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-04c",
        "The gateway's log shows the origination to port 443",
        "MTLS",
        _MTLS_STEP4,
        "outbound|443||test.com, upstream_host :443",
        "the gateway's entry for the /status/418 request (the seed reads the last line after it) has "
        "upstream_cluster outbound|443||test.com and an upstream_host on port 443",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-05",
        "A DENY policy by principal, host and path at the gateway",
        "MTLS",
        _MTLS_STEP5,
        "/headers denied",
        "http(403) RBAC: access denied on /headers, from the gateway's policy (response_code_details "
        "rbac_access_denied_matched_policy[ns[istio-system]-policy[test]-rule[0]]); /status/200 still "
        "http(200). The policy's hosts match the :authority test.com curl sends to the address (exact, "
        "case-insensitive); its HTTP-only rule would deny all TCP on a TCP gateway server (IST0133), but "
        "the gateway's only server here is HTTPS, terminated to HTTP",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-06",
        "REGISTRY_ONLY without the ServiceEntry makes test.com unreachable until it is created",
        "MTLS",
        _MTLS_STEP2,
        "502 Bad Gateway for the unregistered service, then reachable",
        "http(502) from the sidecar (route block_all) for test.com by address under REGISTRY_ONLY; once the "
        "step's ServiceEntry is applied, http(418)",
        beyond_specification="seed 002, step 2: after REGISTRY_ONLY, requests to unregistered services "
        "return 502 Bad Gateway; the ServiceEntry makes test.com reachable again",
    ),
    # ---------------------------------------------------------------- ETP: seed 001
    sidecar_check(
        "ETP-00",
        "REGISTRY_ONLY without a policy blocks both workloads",
        "ETP",
        _ETP_SETUP,
        "502, 502",
        "http(502) for sleep-a and for nginx, each from its own sidecar (route block_all)",
    ),
    sidecar_check(
        "ETP-01",
        "An HTTP policy lets only sleep-a through the gateway; deleting it revokes access",
        "ETP",
        _ETP_HTTP,
        "nginx 502; sleep-a 200; after deletion sleep-a 502",
        "nginx http(502) (route block_all); sleep-a http(200) through the egress gateway (its sidecar logs "
        "upstream_cluster outbound|80||istio-egressgateway.istio-system.svc.cluster.local, the gateway "
        "outbound|80||www.httpbin.org with authority www.httpbin.org and sleep-a's address); after deletion "
        "sleep-a http(502) (route block_all)" + ETP_MESH_MTLS,
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "ETP-02",
        "An HTTPS-upgrade policy: the gateway originates TLS to port 443",
        "ETP",
        _ETP_UPGRADE,
        "sleep-a http 200, /anything url https://, https 200; nginx http 502, https connection refused with "
        "BlackHoleCluster in its sidecar log; after deletion sleep-a http 502, https connection refused",
        "sleep-a http://httpbin.org http(200), the gateway logs upstream_cluster outbound|443||httpbin.org and "
        "an upstream_host on port 443, the origin served https; /anything reports url "
        "https://httpbin.org/anything; sleep-a https://www.httpbin.org http(200); nginx http(502) (block_all) "
        "and tls-reset (BlackHoleCluster); after deletion sleep-a http(502) and tls-reset (BlackHoleCluster)"
        + ETP_MESH_MTLS
        + ". The path of sleep-a's own HTTPS is not asserted: the seed gives only its 200, "
        "the native provider's ServiceEntry port 443 (which the upgrade needs) lets it leave from the "
        "sidecar, and a vendor's controller may carry it through the gateway; both must give the 200",
        deviation=_HTTPS_RESET_DEVIATION,
        adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
    ),
    sidecar_check(
        "ETP-03",
        "An HTTPS passthrough policy through gateway port 444",
        "ETP",
        _ETP_PASSTHROUGH,
        "sleep-a http 200, /anything url https://, https 200; nginx http 502, https connection refused; "
        "after deletion sleep-a http 502, https connection refused",
        "sleep-a http://httpbin.org and /anything http(502) (route block_all); sleep-a https://www.httpbin.org "
        "http(200) through the gateway (its sidecar logs outbound|444||istio-egressgateway.istio-system.svc."
        "cluster.local for SNI www.httpbin.org, the gateway outbound|443||www.httpbin.org); nginx http(502) "
        "and tls-reset (BlackHoleCluster); after deletion sleep-a http(502) and tls-reset (BlackHoleCluster)"
        + ETP_MESH_MTLS,
        deviation="the documented policy declares port 443 (HTTPS) only, so plain HTTP to the hosts stays "
        "unregistered and REGISTRY_ONLY answers it with 502: the seed's http 200 and https:// url repeat "
        "the HTTPS-upgrade section's results and cannot hold under this policy; and " + _HTTPS_RESET_DEVIATION,
        adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
    ),
    sidecar_check(
        "ETP-04",
        "A TCP policy for www.alibabacloud.com:443",
        "ETP",
        _ETP_TCP,
        "sleep-a http 502, https 200; nginx http 502, https connection refused with BlackHoleCluster; after "
        "deletion sleep-a http 502, https connection refused",
        "sleep-a http(502) (route block_all: port 80 is not in the policy); sleep-a https http(200) through "
        "the gateway (its sidecar's TCP line logs outbound|443||istio-egressgateway.istio-system.svc."
        "cluster.local, the gateway outbound|443||www.alibabacloud.com); nginx http(502) and tls-reset "
        "(BlackHoleCluster); after deletion sleep-a http(502) and tls-reset (BlackHoleCluster)" + ETP_MESH_MTLS,
        deviation=_HTTPS_RESET_DEVIATION,
        adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
    ),
    sidecar_check(
        "ETP-05",
        "A DENY policy for POST from mytest at the gateway",
        "ETP",
        _ETP_AUTHZ,
        "POST 403 RBAC: access denied; GET 200",
        "under the HTTP policy, sleep-a POST http://httpbin.org/post http(403) with body RBAC: access denied "
        "(the gateway logs response_code_details rbac_access_denied_matched_policy[ns[istio-system]-"
        "policy[sleep-a-egress-www-httpbin-org]-rule[0]]); GET http://httpbin.org/get http(200)" + ETP_MESH_MTLS,
        adaptations=(GATEWAY_MTLS_ADAPTATION, ETP_GATEWAY_SELECTOR_ADAPTATION),
    ),
    # ---------------------------------------------------------------- AMB: seed 000
    ambient_check(
        "AMB-01",
        "An ambient pod reaches an external host directly",
        "AMB",
        _AMB_STEP1,
        "301 with the origin's own Server header",
        "http(301) answered by the origin itself (X-External-World-Scheme http); no x-envoy-* response "
        "headers: ztunnel forwards a connection to an unknown host at L4, no Envoy on the path",
    ),
    ambient_check(
        "AMB-02",
        "A NetworkPolicy stops ambient pods reaching the outside directly",
        "AMB",
        _AMB_INTRO,
        "blocked (implied)",
        "http(301) from the origin before the policy (the control: a down origin, DNS or world cannot pass "
        "for a block), then no HTTP response: timeout, or conn-refused where the policy rejects. ztunnel "
        "accepts the pod's connection inside the pod, so the policy drops ztunnel's onward connection "
        "(made from the pod's network namespace) and curl's denial limit (6 s at --timeout-scale 1) runs "
        "out before ztunnel's 10 s connect timeout; a limit stretched past it shows ztunnel resetting the "
        "connection it accepted (tls-reset, curl exit 56)",
    ),
    ambient_check(
        "AMB-03",
        "A waypoint in istio-egress carries traffic to a ServiceEntry host",
        "AMB",
        _AMB_STEP4,
        "301, server: envoy, x-envoy-upstream-service-time; waypoint log",
        "http(301) with server: istio-envoy, x-envoy-upstream-service-time, the origin served HTTP; "
        "ServiceEntry istio.io/WaypointBound=True; the waypoint logs upstream_cluster "
        "inbound-vip|80|http|aliyun.com, route default, method HEAD, response_code 301, authority "
        "aliyun.com, upstream_host port 80 — with the client's direct path closed by the AMB-02 policy",
        deviation="the seed's waypoint log has a field authority_for (Istio's JSON access log has none; the "
        "host is in authority), an upstream_cluster ending in ';' (the cluster's alt_stat_name, which "
        "%UPSTREAM_CLUSTER% prints; Istio's log uses %UPSTREAM_CLUSTER_RAW%, inbound-vip|80|http|aliyun.com) "
        "and method GET for a curl -I request, which sends HEAD; its "
        "response shows server: envoy, where an upstream waypoint overwrites Server with istio-envoy (the "
        "server name of its inbound listeners)",
    ),
    ambient_check(
        "AMB-04",
        "The waypoint upgrades HTTP to HTTPS towards the origin",
        "AMB",
        _AMB_STEP5,
        "301; the waypoint forwards to port 443",
        "http(301) from the origin's HTTPS server (X-External-World-Scheme https, Location "
        "https://www.aliyun.com/) with x-envoy-upstream-service-time; the waypoint logs upstream_cluster "
        "inbound-vip|80|http|aliyun.com with upstream_host port 443",
        deviation="the seed's response after the upgrade repeats the one before it (Location "
        "https://aliyun.com/, server: envoy); reached over HTTPS, aliyun.com redirects to "
        "https://www.aliyun.com/ (the external world's aliyun.com does so, modelled on the real apex), and the "
        "waypoint writes server: istio-envoy",
        adaptations=(WAYPOINT_TEST_CA_ADAPTATION,),
    ),
    ambient_check(
        "AMB-05",
        "The application's own HTTPS passes the waypoint at L4",
        "AMB",
        _AMB_STEP5,
        "HTTPS is forwarded as TLS: no L7 capabilities",
        "in AMB-03's state, https://aliyun.com with the test CA gets the origin's own http(301) (X-External-"
        "World-Scheme https, no x-envoy-* response headers: no Envoy read the request); the waypoint logs "
        "the connection on inbound-vip|443|tcp|aliyun.com with no method, path or response code",
        adaptations=(TEST_CA_ADAPTATION,),
        beyond_specification="seed 000's introduction and step 5: a waypoint forwards an application's "
        "direct HTTPS as TLS and can apply only TCP-level policy and routing to it",
    ),
    ambient_check(
        "AMB-X1",
        "A DENY by source namespace at the egress waypoint",
        "AMB-X",
        None,
        "(ambient equivalent of NSD-04: 403 with server: envoy)",
        "http(403) with server: istio-envoy for default/sleep's documented request to aliyun.com; the "
        "waypoint logs response_code 403 with the policy's rbac_access_denied_matched_policy details",
        deviation="seed 004 shows server: envoy on the denial; an upstream waypoint answers with server: "
        "istio-envoy (the server name Istio gives its inbound and gateway listeners)",
        tier=Tier.EXTENDED,
    ),
    ambient_check(
        "AMB-X2",
        "A DENY for POST at the egress waypoint",
        "AMB-X",
        None,
        "(ambient equivalent of ETP-05: POST RBAC: access denied, GET allowed)",
        "to httpbin.org (ETP-05's host, bound to the waypoint by its own ServiceEntry): POST http(403) "
        "RBAC: access denied, logged by the waypoint as the policy's denial; GET http(200) through the "
        "waypoint",
        tier=Tier.EXTENDED,
    ),
    ambient_check(
        "AMB-X3",
        "A DENY by principal and path at the egress waypoint",
        "AMB-X",
        None,
        "(ambient equivalent of MTLS-05: /headers denied for the sleep identity)",
        "to httpbin.org for cluster.local/ns/default/sa/sleep: /headers http(403) RBAC: access denied, "
        "logged by the waypoint as the policy's denial; /status/200 http(200)",
        tier=Tier.EXTENDED,
    ),
    ambient_check(
        "AMB-X4",
        "REGISTRY_ONLY for ambient workloads",
        "AMB-X",
        None,
        "(ambient equivalent of EGW-02 / ETP-00)",
        "not applicable",
        tier=Tier.EXTENDED,
        not_applicable="ztunnel does not implement meshConfig.outboundTrafficPolicy: unknown destinations "
        "leave directly at L4 in ambient mode; blocking them is a NetworkPolicy's job (see AMB-02)",
    ),
    # ---------------------------------------------------------------- XW: the external world itself
    external_check(
        "XW-01",
        "aliyun.com over HTTP answers the origin's 301 to https://aliyun.com/",
        _EGW_STEP1,
        "http(301), Location https://aliyun.com/, no x-envoy-* headers, from the origin's address",
    ),
    external_check(
        "XW-02",
        "www.httpbin.org over HTTPS verifies with the test CA and reports an https url",
        None,
        "http(200); url https://www.httpbin.org/anything",
    ),
    external_check(
        "XW-03",
        "The mTLS ingress answers by address with Host test.com",
        _MTLS_STEP1,
        "http(418), body contains teapot",
    ),
    external_check(
        "XW-04",
        "The ingress denies the test.client certificate on /status/418 only",
        _MTLS_STEP4,
        "http(200) on /status/200; http(403) RBAC: access denied on /status/418",
    ),
    external_check(
        "XW-05",
        "The ingress refuses a TLS client without a certificate",
        None,
        "http(200) with the test.client certificate (the control), then tls-reset without one",
    ),
    Check(
        "XW-06",
        "The external world is unknown to the mesh",
        Profile.EXTERNAL_WORLD,
        "XW",
        (MeshMode.SIDECAR,),
        None,
        "(the harness's own requirement)",
        "under REGISTRY_ONLY a sidecar gets http(502) on route block_all for an external-world Service's own "
        "cluster name: istiod does not know the Service, so the mesh cannot shortcut the Internet",
    ),
)
