"""The catalogue's AMB records: seed 000, the ambient data plane's egress waypoint, and its extended AMB-X checks."""

from __future__ import annotations

from conformance.spec.model import (
    Check,
    Tier,
    ambient_check,
)
from conformance.spec.record_texts import AMB_INTRO, AMB_STEP1, AMB_STEP4, AMB_STEP5, TEST_CA_ADAPTATION

#: How the ambient profile's waypoint trusts the test CA when it originates TLS (seed 000, step 5).
WAYPOINT_TEST_CA_ADAPTATION = (
    f"{TEST_CA_ADAPTATION}: the DestinationRule's credentialName names a Secret in istio-egress holding only "
    "ca.crt (a waypoint may read a CA-only credential of its own namespace); SNI and the certificate's name "
    "check keep Istio's defaults, taken from the request host aliyun.com, which the origin's certificate names"
)

AMB_RECORDS: tuple[Check, ...] = (
    ambient_check(
        "AMB-01",
        "An ambient pod reaches an external host directly",
        "AMB",
        AMB_STEP1,
        "301 with the origin's own Server header",
        "http(301) answered by the origin itself (X-External-World-Scheme http); no x-envoy-* response "
        "headers: ztunnel forwards a connection to an unknown host at L4, no Envoy on the path",
    ),
    ambient_check(
        "AMB-02",
        "A NetworkPolicy stops ambient pods reaching the outside directly",
        "AMB",
        AMB_INTRO,
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
        AMB_STEP4,
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
        AMB_STEP5,
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
        AMB_STEP5,
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
)
