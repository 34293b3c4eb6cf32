"""The in-cluster external world's own checks: what every scenario takes for granted about "the Internet".

They run curl in the probe client, a pod outside every mesh, so nothing here depends on Istio. If one of
them fails, the scenario checks that use the same host would fail for a reason unrelated to the mesh.

- XW-01 aliyun.com over HTTP answers 301 to https://aliyun.com/, from the origin itself (seed 003, step 1).
- XW-02 www.httpbin.org over HTTPS verifies against the run's test CA and reports an https:// url.
- XW-03 the mTLS ingress by address with ``Host: test.com`` answers 418 teapot (seed 002, step 1).
- XW-04 with the test.client certificate, test.com/status/418 is denied 403 ``RBAC: access denied`` by the
  ingress while /status/200 passes (seed 002, step 4, the prerequisite's client-certificate rule).
- XW-05 without a client certificate the TLS handshake with test.com:443 fails.
- XW-06 the external world's namespaces carry the discovery-exclusion label and opt out of injection.
"""

from __future__ import annotations

import json

import pytest

from conformance.expect import consistently, eventually
from conformance.external import (
    CLIENT_CA_FILE,
    CLIENT_CERT_FILE,
    CLIENT_KEY_FILE,
    EXTERNAL_WORLD_LABEL,
    INGRESS_HOST,
    ExternalWorld,
)
from conformance.kube import Kube, KubeError, ObjectRef
from conformance.probe import (
    TLS_RESET,
    CurlRequest,
    ProbeError,
    Prober,
    ProbeResult,
    ResponseExpectation,
    http,
)

pytestmark = [pytest.mark.egress, pytest.mark.external_world]

#: Probing through a pod may hit a transient API error; the poll carries on within its deadline.
TOLERATED = (ProbeError, KubeError)


@pytest.fixture(scope="module")
def prober(kube: Kube, external_world: ExternalWorld) -> Prober:
    return Prober(kube, external_world.timeouts)


def observe(prober: Prober, world: ExternalWorld, request: CurlRequest) -> ProbeResult:
    return prober.probe(world.probe_target(), request)


@pytest.mark.check("XW-01")
def test_http_origin_redirects_to_https(prober: Prober, external_world: ExternalWorld) -> None:
    request = CurlRequest("http://aliyun.com", method="HEAD")
    expected = ResponseExpectation(
        http(301), header_equals={"location": "https://aliyun.com/"}, header_prefixes_absent=("x-envoy-",)
    )
    result = eventually(
        lambda: observe(prober, external_world, request), expected,
        timeouts=external_world.timeouts, description="XW-01 curl -sI http://aliyun.com", tolerated=TOLERATED,
    )  # fmt: skip
    assert result.curl_info.get("remote_ip") == external_world.address_of("aliyun.com"), result.transcript()


@pytest.mark.check("XW-02")
def test_https_origin_verifies_with_the_test_ca(prober: Prober, external_world: ExternalWorld) -> None:
    request = CurlRequest("https://www.httpbin.org/anything", cacert=CLIENT_CA_FILE)
    result = eventually(
        lambda: observe(prober, external_world, request), ResponseExpectation(http(200)),
        timeouts=external_world.timeouts, description="XW-02 curl --cacert ca.crt https://www.httpbin.org/anything",
        tolerated=TOLERATED,
    )  # fmt: skip
    # go-httpbin builds the url from X-Forwarded-Proto, set by the TLS-terminating origin.
    assert json.loads(result.body)["url"] == "https://www.httpbin.org/anything", result.transcript()


@pytest.mark.check("XW-03")
def test_ingress_by_address_answers_teapot(prober: Prober, external_world: ExternalWorld) -> None:
    request = CurlRequest(f"{external_world.ingress_ip()}/status/418", headers=(("host", INGRESS_HOST),))
    eventually(
        lambda: observe(prober, external_world, request), ResponseExpectation(http(418), body_contains="teapot"),
        timeouts=external_world.timeouts, description="XW-03 curl -H host:test.com $INGRESS_GATEWAY_IP/status/418",
        tolerated=TOLERATED,
    )  # fmt: skip


@pytest.mark.check("XW-04")
def test_ingress_denies_test_client_on_status_418(prober: Prober, external_world: ExternalWorld) -> None:
    def request(path: str) -> CurlRequest:
        return CurlRequest(
            f"https://{INGRESS_HOST}{path}", cacert=CLIENT_CA_FILE, cert=CLIENT_CERT_FILE, key=CLIENT_KEY_FILE
        )

    # The certificate is accepted (so a 403 below comes from the ingress's RBAC, not from TLS).
    eventually(
        lambda: observe(prober, external_world, request("/status/200")), ResponseExpectation(http(200)),
        timeouts=external_world.timeouts, description="XW-04 mTLS https://test.com/status/200",
        tolerated=TOLERATED,
    )  # fmt: skip
    result = eventually(
        lambda: observe(prober, external_world, request("/status/418")),
        ResponseExpectation(http(403), body_contains="RBAC: access denied"),
        timeouts=external_world.timeouts, description="XW-04 mTLS https://test.com/status/418",
        tolerated=TOLERATED,
    )  # fmt: skip
    assert result.body.strip() == "RBAC: access denied", result.transcript()


@pytest.mark.check("XW-05")
def test_ingress_refuses_clients_without_certificate(prober: Prober, external_world: ExternalWorld) -> None:
    request = CurlRequest(f"https://{INGRESS_HOST}/status/200", cacert=CLIENT_CA_FILE)
    consistently(
        lambda: observe(prober, external_world, request), TLS_RESET,
        timeouts=external_world.timeouts, description="XW-05 https://test.com without a client certificate",
        tolerated=TOLERATED,
    )  # fmt: skip


@pytest.mark.check("XW-06")
def test_external_namespaces_are_outside_the_mesh(kube: Kube, external_world: ExternalWorld) -> None:
    for name in (external_world.namespace, external_world.probe_namespace):
        namespace = kube.get(ObjectRef("v1", "Namespace", name))
        assert namespace is not None, f"namespace {name} is missing"
        labels = namespace["metadata"].get("labels", {})
        assert labels.get(EXTERNAL_WORLD_LABEL) == "true", labels
        assert labels.get("istio-injection") == "disabled", labels
        assert "istio.io/dataplane-mode" not in labels, labels
