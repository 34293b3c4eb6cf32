"""The in-cluster external world's own checks: what every scenario takes for granted about "the Internet".

XW-01…XW-05 run curl in the external world's probe pod, outside every mesh, so nothing in them depends
on Istio: if one fails, the scenario checks using the same host would fail for a reason unrelated to the
mesh. XW-06 proves the property the external world exists for: the mesh does not know it.
"""

from __future__ import annotations

from conformance.checks import REGISTRY_ONLY, TLS_RESET, Client, Step, http
from conformance.spec.catalogue import external_check
from conformance.spec.record_texts import EGW_STEP1, MTLS_STEP1, MTLS_STEP4
from conformance.world.external import CLIENT_CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE

CA = ("--cacert", CLIENT_CA_FILE)
CLIENT_CERTIFICATE = ("--cert", CLIENT_CERT_FILE, "--key", CLIENT_KEY_FILE)


@external_check(
    "XW-01",
    "aliyun.com over HTTP answers the origin's 301 to https://aliyun.com/",
    EGW_STEP1,
    "http(301), Location https://aliyun.com/, no x-envoy-* headers, from the origin's address",
)
def test_http_origin_redirects_to_https(step: Step, external_probe: Client) -> None:
    external_probe.curl("-sI", "http://aliyun.com").converges_to(
        http(301),
        headers={"location": "https://aliyun.com/", "x-external-world-scheme": "http"},
        no_headers_with_prefix=("x-envoy-",),
    )


@external_check(
    "XW-02",
    "www.httpbin.org over HTTPS verifies with the test CA and reports an https url",
    None,
    "http(200); url https://www.httpbin.org/anything",
)
def test_https_origin_verifies_with_the_test_ca(step: Step, external_probe: Client) -> None:
    external_probe.curl(*CA, "https://www.httpbin.org/anything").converges_to(
        http(200), json={"url": "https://www.httpbin.org/anything"}
    )


@external_check(
    "XW-03",
    "The mTLS ingress answers by address with Host test.com",
    MTLS_STEP1,
    "http(418), body contains teapot",
)
def test_ingress_by_address_answers_teapot(step: Step, external_probe: Client) -> None:
    external_probe.curl("-H", "host:test.com", "$INGRESS_GATEWAY_IP/status/418").converges_to(
        http(418), body_contains="teapot"
    )


@external_check(
    "XW-04",
    "The ingress denies the test.client certificate on /status/418 only",
    MTLS_STEP4,
    "http(200) on /status/200; http(403) RBAC: access denied on /status/418",
)
def test_ingress_denies_test_client_on_status_418(step: Step, external_probe: Client) -> None:
    # The certificate is accepted (so the 403 below comes from the ingress's RBAC, not from TLS).
    external_probe.curl(*CA, *CLIENT_CERTIFICATE, "https://test.com/status/200").converges_to(http(200))
    external_probe.curl(*CA, *CLIENT_CERTIFICATE, "https://test.com/status/418").converges_to(
        http(403), body="RBAC: access denied"
    )


@external_check(
    "XW-05",
    "The ingress refuses a TLS client without a certificate",
    None,
    "http(200) with the test.client certificate (the control), then tls-reset without one",
)
def test_ingress_refuses_clients_without_certificate(step: Step, external_probe: Client) -> None:
    # The control: with the certificate the same request is answered, so the reset is the missing certificate.
    external_probe.curl(*CA, *CLIENT_CERTIFICATE, "https://test.com/status/200").converges_to(http(200))
    external_probe.curl(*CA, "https://test.com/status/200").is_denied(TLS_RESET)


@external_check(
    "XW-06",
    "The external world is unknown to the mesh",
    None,
    "(the harness's own requirement)",
    through_sidecars=True,
)
def test_mesh_does_not_know_the_external_world(step: Step, sleep: Client) -> None:
    """istiod does not know the external world's Services, so the mesh cannot reach the stand-in for the Internet
    by a shortcut: a sidecar under REGISTRY_ONLY refuses even the Service's own cluster name."""
    step.mesh(outbound=REGISTRY_ONLY)
    r = sleep.curl("-sI", "http://aliyun-com.$EXTERNAL_NAMESPACE.svc.cluster.local").is_denied(http(502))
    sleep.sidecar.log_for(r).has(route_name="block_all", response_code=502)
