"""The catalogue's MTLS records: seed 002, mTLS origination to an external mTLS ingress."""

from __future__ import annotations

from conformance.spec.model import (
    Check,
    sidecar_check,
)
from conformance.spec.record_texts import (
    GATEWAY_MTLS_ADAPTATION,
    MTLS_STEP1,
    MTLS_STEP2,
    MTLS_STEP3,
    MTLS_STEP4,
    MTLS_STEP5,
)

MTLS_RECORDS: tuple[Check, ...] = (
    sidecar_check(
        "MTLS-01",
        "The external mTLS ingress answers by address with Host test.com",
        "MTLS",
        MTLS_STEP1,
        "418 teapot",
        "http(418), body contains teapot (ALLOW_ANY: the sidecar passes the unknown host on to the address)",
    ),
    sidecar_check(
        "MTLS-02",
        "REGISTRY_ONLY with a STATIC ServiceEntry for test.com keeps it reachable",
        "MTLS",
        MTLS_STEP2,
        "418",
        "http(418)",
    ),
    sidecar_check(
        "MTLS-03",
        "The request goes through the egress gateway over mesh mTLS",
        "MTLS",
        MTLS_STEP3,
        "418; the gateway logs outbound|80||test.com",
        "http(418); the gateway logs upstream_cluster outbound|80||test.com, response_code 418",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-04a",
        "The egress gateway originates mTLS to test.com:443 with the test.client certificate",
        "MTLS",
        MTLS_STEP4,
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
        MTLS_STEP4,
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
        MTLS_STEP4,
        "outbound|443||test.com, upstream_host :443",
        "the gateway's entry for the /status/418 request (the seed reads the last line after it) has "
        "upstream_cluster outbound|443||test.com and an upstream_host on port 443",
        adaptations=(GATEWAY_MTLS_ADAPTATION,),
    ),
    sidecar_check(
        "MTLS-05",
        "A DENY policy by principal, host and path at the gateway",
        "MTLS",
        MTLS_STEP5,
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
        MTLS_STEP2,
        "502 Bad Gateway for the unregistered service, then reachable",
        "http(502) from the sidecar (route block_all) for test.com by address under REGISTRY_ONLY; once the "
        "step's ServiceEntry is applied, http(418)",
        beyond_specification="seed 002, step 2: after REGISTRY_ONLY, requests to unregistered services "
        "return 502 Bad Gateway; the ServiceEntry makes test.com reachable again",
    ),
)
