"""The catalogue's EGW records: seed 003, the egress gateway."""

from __future__ import annotations

from conformance.spec.model import (
    Check,
    sidecar_check,
)
from conformance.spec.record_texts import EGW_STEP1, EGW_STEP2, EGW_STEP3, EGW_STEP4, GATEWAY_PLAINTEXT_ADAPTATION

EGW_RECORDS: tuple[Check, ...] = (
    sidecar_check(
        "EGW-01",
        "With ALLOW_ANY a sidecar reaches an unregistered external host",
        "EGW",
        EGW_STEP1,
        "301",
        "http(301)",
    ),
    sidecar_check(
        "EGW-02",
        "With REGISTRY_ONLY and no ServiceEntry the sidecar refuses the request",
        "EGW",
        EGW_STEP2,
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
        EGW_STEP3,
        "301, sent directly from the pod",
        "http(301); the sidecar logs upstream_cluster outbound|80||aliyun.com; the egress gateway logs "
        "nothing for the request",
    ),
    sidecar_check(
        "EGW-04",
        "A Gateway and a two-hop VirtualService route the request through the egress gateway",
        "EGW",
        EGW_STEP4,
        "301, the gateway's log shows the request",
        "http(301); the gateway logs upstream_cluster outbound|80||aliyun.com, authority aliyun.com, method "
        "HEAD, response_code 301, downstream_remote_address of the sleep pod",
        adaptations=(GATEWAY_PLAINTEXT_ADAPTATION,),
    ),
    sidecar_check(
        "EGW-05",
        "Under ALLOW_ANY without a ServiceEntry, the gateway's routes still take port 80, and fail",
        "EGW",
        EGW_STEP2,
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
)
