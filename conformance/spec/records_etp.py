"""The catalogue's ETP records: seed 001, egress traffic policies per workload."""

from __future__ import annotations

from conformance.spec.model import (
    Check,
    sidecar_check,
)
from conformance.spec.record_texts import (
    ETP_AUTHZ,
    ETP_HTTP,
    ETP_PASSTHROUGH,
    ETP_SETUP,
    ETP_TCP,
    ETP_UPGRADE,
    GATEWAY_MTLS_ADAPTATION,
    TEST_CA_ADAPTATION,
)

#: Seed 001's egress gateway is its own ``egressgateway-a``; upstream's installed one is labelled istio=egressgateway.
ETP_GATEWAY_SELECTOR_ADAPTATION = (
    "the seed's AuthorizationPolicy selects its gateway by istio: egressgateway-a; the harness selects the "
    "installed upstream gateway, istio: egressgateway"
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

ETP_RECORDS: tuple[Check, ...] = (
    sidecar_check(
        "ETP-00",
        "REGISTRY_ONLY without a policy blocks both workloads",
        "ETP",
        ETP_SETUP,
        "502, 502",
        "http(502) for sleep-a and for nginx, each from its own sidecar (route block_all)",
    ),
    sidecar_check(
        "ETP-01",
        "An HTTP policy lets only sleep-a through the gateway; deleting it revokes access",
        "ETP",
        ETP_HTTP,
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
        ETP_UPGRADE,
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
        ETP_PASSTHROUGH,
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
        ETP_TCP,
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
        ETP_AUTHZ,
        "POST 403 RBAC: access denied; GET 200",
        "under the HTTP policy, sleep-a POST http://httpbin.org/post http(403) with body RBAC: access denied "
        "(the gateway logs response_code_details rbac_access_denied_matched_policy[ns[istio-system]-"
        "policy[sleep-a-egress-www-httpbin-org]-rule[0]]); GET http://httpbin.org/get http(200)" + ETP_MESH_MTLS,
        adaptations=(GATEWAY_MTLS_ADAPTATION, ETP_GATEWAY_SELECTOR_ADAPTATION),
    ),
)
