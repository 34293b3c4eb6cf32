"""The catalogue's XW records: the in-cluster external world itself."""

from __future__ import annotations

from conformance.settings.options import MeshMode
from conformance.spec.model import (
    Check,
    Profile,
    external_check,
)
from conformance.spec.record_texts import EGW_STEP1, MTLS_STEP1, MTLS_STEP4

XW_RECORDS: tuple[Check, ...] = (
    external_check(
        "XW-01",
        "aliyun.com over HTTP answers the origin's 301 to https://aliyun.com/",
        EGW_STEP1,
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
        MTLS_STEP1,
        "http(418), body contains teapot",
    ),
    external_check(
        "XW-04",
        "The ingress denies the test.client certificate on /status/418 only",
        MTLS_STEP4,
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
