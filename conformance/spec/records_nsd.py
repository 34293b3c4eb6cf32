"""The catalogue's NSD records: seed 004, the egress gateway per namespace with its authorization policies."""

from __future__ import annotations

from conformance.spec.model import (
    Check,
    sidecar_check,
)
from conformance.spec.record_texts import NSD_SECURITY, NSD_STEP1, NSD_STEP3, NSD_STEP4, NSD_STEP5, NSD_STEP6

NSD_RECORDS: tuple[Check, ...] = (
    sidecar_check(
        "NSD-01",
        "The sleep pod in demo-frontend runs an injected sidecar",
        "NSD",
        NSD_STEP1,
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
        NSD_STEP3,
        "301",
        "http(301)",
    ),
    sidecar_check(
        "NSD-03",
        "Requests from demo-frontend go through the egress gateway over mTLS",
        "NSD",
        NSD_STEP4,
        "301",
        "http(301); the gateway logs upstream_cluster outbound|80||www.aliyun.com, response_code 301. The "
        "seed's own DestinationRule subset sets ISTIO_MUTUAL on the hop, so no adaptation is needed "
        "whatever labels the gateway pods carry",
    ),
    sidecar_check(
        "NSD-04",
        "A DENY policy on the egress gateway blocks the demo-frontend namespace",
        "NSD",
        NSD_STEP6,
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
        NSD_SECURITY,
        "bypass possible",
        "with the DENY in force (the sidecar pod gets http(403), logged by the gateway's policy), the pod "
        "without a sidecar gets http(301): it connects to the origin itself, untouched by REGISTRY_ONLY "
        "and by the gateway's policy",
    ),
    sidecar_check(
        "NSD-06",
        "A NetworkPolicy closes the bypass; the sidecar pod is still denied by the gateway",
        "NSD",
        NSD_SECURITY,
        "blocked",
        "the pod without a sidecar gets http(301) before the NetworkPolicy and timeout or conn-refused "
        "after it; the sidecar pod still gets http(403) with server: envoy, logged by the gateway's policy",
    ),
    sidecar_check(
        "NSD-07",
        "A ServiceEntry with resolution NONE does not work through the gateway",
        "NSD",
        NSD_STEP3,
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
        NSD_STEP5,
        "a DENY match is rejected whatever ALLOW says; without ALLOW, non-denied requests pass",
        "with the seed's DENY and an ALLOW for demo-frontend on /allowed, /allowed gets http(403) logged as "
        "the DENY policy's; with the ALLOW alone, /allowed gets http(301) and / http(403) logged as "
        "rbac_access_denied_matched_policy[none]; with neither, / gets http(301)",
        beyond_specification="seed 004, step 5: policies of one workload are evaluated CUSTOM, then DENY, "
        "then ALLOW; a DENY match is rejected regardless of ALLOW policies, and without ALLOW policies every "
        "request not denied is permitted",
    ),
)
