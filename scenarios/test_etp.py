"""ETP — seed 001's egress traffic policies (001_2a324748033e196a.txt), through a replaceable config provider.

The seed's vendor resource ``ASMEgressTrafficPolicy`` lets chosen workloads reach chosen external hosts
through the egress gateway, over HTTP, HTTP upgraded to HTTPS by the gateway, the application's own HTTPS
passed through, or TCP. Each check asks the ``etp`` fixture for the documented rule; the run's config
provider (``--etp-provider``) expresses it: ``native`` with upstream Istio resources
(``manifests/scenarios/etp/native/``), ``vendor`` with the vendor's resource as the seed shows it
(``manifests/scenarios/etp/vendor/``). The checks are the same for both; the report names the provider.
Workloads: ``mytest/sleep-a`` (the one the policies let out) and ``default/nginx`` (never let out).

Under REGISTRY_ONLY a sidecar answers plain HTTP to an unregistered host itself, 502 on route
``block_all``, and resets a TLS connection to an unregistered address (its catch-all TCP chain,
``BlackHoleCluster``); the seed calls the latter "connection refused".

How the native provider expresses each field of the seed's policy (the same rows are in each check's
report entry):

policy field                                  native resource              native field
--------------------------------------------  ---------------------------  --------------------------------------------
metadata.name                                 Gateway                      metadata.name, in istio-system
metadata.name                                 Sidecar (namespace default)  metadata.name
metadata.namespace                            (none)                       none: from[].namespace and istio-system
spec.byEgressGateway.name                     Gateway                      spec.selector: istio=<name>
spec.byEgressGateway.name                     VirtualService               mesh hop: destination, the gateway Service
spec.egressRules[].from[].namespace           ServiceEntry                 metadata.namespace; exportTo ., istio-system
spec.egressRules[].from[].namespace           VirtualService               metadata.namespace; exportTo ., istio-system
spec.egressRules[].from[].namespace           Sidecar                      metadata.namespace
spec.egressRules[].from[].namespace           Gateway                      spec.servers[].hosts: <namespace>/*
spec.egressRules[].from[].workloadSelector    Sidecar <to[].name>          spec.workloadSelector.labels
spec.egressRules[].from[].workloadSelector    Sidecar <to[].name>          spec.egress[].hosts: ./*, istio-system/*
spec.egressRules[].from[].workloadSelector    Sidecar (namespace default)  spec.egress[].hosts: istio-system/*
spec.egressRules[].to[].name                  ServiceEntry                 metadata.name
spec.egressRules[].to[].name                  VirtualService               HTTP: <to[].name>-<host>; else <to[].name>
spec.egressRules[].to[].name                  Sidecar <to[].name>          metadata.name
spec.egressRules[].to[].name                  DestinationRule              metadata.name: <to[].name>-<host>
spec.egressRules[].to[].hosts                 ServiceEntry                 spec.hosts
spec.egressRules[].to[].hosts                 VirtualService               spec.hosts
spec.egressRules[].to[].hosts                 VirtualService               HTTP: one per host, both hops
spec.egressRules[].to[].hosts                 VirtualService               HTTPS mesh hop: tls match sniHosts
spec.egressRules[].to[].hosts                 VirtualService               HTTPS, TCP gateway hop: tcp to the 1st host
spec.egressRules[].to[].hosts                 DestinationRule              spec.host: one per host
spec.egressRules[].to[].port.name             ServiceEntry                 spec.ports[].name
spec.egressRules[].to[].port.number           ServiceEntry                 spec.ports[].number
spec.egressRules[].to[].port.number           VirtualService               mesh hop: match port
spec.egressRules[].to[].port.number           VirtualService               gateway hop: destination port
spec.egressRules[].to[].port.protocol         ServiceEntry                 spec.ports[].protocol
spec.egressRules[].to[].port.protocol         VirtualService               routes: HTTP http; HTTPS tls, tcp; TCP tcp
spec.egressRules[].to[].port.protocol         Gateway                      spec.servers[].port.protocol: HTTPS or TLS
spec.egressRules[].to[].byEgressGateway.port  Gateway                      spec.servers[].port.number
spec.egressRules[].to[].byEgressGateway.port  VirtualService               mesh hop: destination port
spec.egressRules[].to[].byEgressGateway.port  VirtualService               gateway hop: match port
spec.egressRules[].to[].byEgressGateway       Gateway                      no port: spec.servers[].port = to[].port
spec.egressRules[].to[].byEgressGateway       VirtualService               no port: both hops use to[].port.number
spec.egressRules[].to[].httpsUpgrade.enabled  DestinationRule              tls.mode SIMPLE, istio-system, exportTo .
spec.egressRules[].to[].httpsUpgrade.port     ServiceEntry                 spec.ports[]: that port, protocol HTTPS
spec.egressRules[].to[].httpsUpgrade.port     VirtualService               gateway hop: destination port
spec.egressRules[].to[].httpsUpgrade.port     DestinationRule              portLevelSettings[].port.number
(sidecar to gateway: mTLS)                    Gateway                      spec.servers[].tls.mode: ISTIO_MUTUAL
(sidecar to gateway: mTLS)                    DestinationRule (harness)    gateway host ISTIO_MUTUAL if pods unlabelled
"""

from __future__ import annotations

from conformance.checks import (
    REGISTRY_ONLY,
    TLS_RESET,
    Client,
    EgressGateway,
    EgressPolicies,
    EgressProtocol,
    ExternalPort,
    Step,
    host,
    http,
    port,
)
from conformance.spec.catalogue import sidecar_check
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
from conformance.world.external import CLIENT_CA_FILE

#: Seed 001's egress gateway is its own ``egressgateway-a``; upstream's installed one is labelled istio=egressgateway.
ETP_GATEWAY_SELECTOR_ADAPTATION = (
    "the seed's AuthorizationPolicy selects its gateway by istio: egressgateway-a; the harness selects the "
    "installed upstream gateway, istio: egressgateway"
)

HTTPS_RESET_DEVIATION = (
    "the seed calls the HTTPS failure 'connection refused'; a sidecar under REGISTRY_ONLY accepts the TCP "
    "connection and resets the TLS handshake (curl exit 35), it never refuses the connection"
)

HTTPBIN = ("www.httpbin.org", "httpbin.org")
ALIBABACLOUD = ("www.alibabacloud.com",)
HTTP_80 = ExternalPort(80, "http", EgressProtocol.HTTP)
HTTPS_443 = ExternalPort(443, "https", EgressProtocol.HTTPS)
TCP_443 = ExternalPort(443, "tcp", EgressProtocol.TCP)
#: The seed's curl options: print the status code only (the harness reads the whole response anyway).
STATUS_ONLY = ("-s", "-o", "/dev/null", "-w", "%{http_code}\\n")
#: The external world's origins present certificates of the run's test CA, which the client trusts.
TEST_CA = ("--cacert", CLIENT_CA_FILE)


def over_mesh_mtls(gateway: EgressGateway, gateway_port: int) -> str:
    """The SNI a sidecar's ISTIO_MUTUAL cluster for the gateway sends: the gateway saw mesh mTLS."""
    return f"outbound_.{gateway_port}_._.{gateway.info.host}"


def refused_http(client: Client, *curl: str) -> None:
    """Plain HTTP to a host the client's sidecar does not know: its own 502 on route block_all."""
    r = client.curl(*curl).is_denied(http(502))
    client.sidecar.log_for(r).has(route_name="block_all", response_code=502)


def refused_https(client: Client, url: str) -> None:
    """TLS to an address the client's sidecar does not know: reset by its catch-all chain, BlackHoleCluster."""
    r = client.curl(*STATUS_ONLY, *TEST_CA, url).is_denied(TLS_RESET)
    client.sidecar.log_for(r, by_time=True).has(upstream_cluster="BlackHoleCluster", downstream_local_address=port(443))


@sidecar_check(
    "ETP-00",
    "REGISTRY_ONLY without a policy blocks both workloads",
    ETP_SETUP,
    "502, 502",
)
def test_registry_only_without_policy_blocks_both_workloads(step: Step, sleep_a: Client, nginx: Client) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    refused_http(sleep_a, *STATUS_ONLY, "http://www.httpbin.org")
    refused_http(nginx, *STATUS_ONLY, "http://www.httpbin.org")


@sidecar_check(
    "ETP-01",
    "An HTTP policy lets only sleep-a through the gateway; deleting it revokes access",
    ETP_HTTP,
    "nginx 502; sleep-a 200; after deletion sleep-a 502",
    adaptations=(GATEWAY_MTLS_ADAPTATION,),
)
def test_http_policy_lets_only_sleep_a_out_until_deleted(
    step: Step, sleep_a: Client, nginx: Client, egress_gateway: EgressGateway, etp: EgressPolicies
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    policy = etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80)
    refused_http(nginx, *STATUS_ONLY, "http://www.httpbin.org")
    r = sleep_a.curl(*STATUS_ONLY, "http://www.httpbin.org").converges_to(http(200))
    sleep_a.sidecar.log_for(r).has(upstream_cluster=f"outbound|80||{egress_gateway.info.host}", response_code=200)
    egress_gateway.log_for(r).has(
        upstream_cluster="outbound|80||www.httpbin.org",
        authority="www.httpbin.org",
        method="GET",
        response_code=200,
        downstream_remote_address=host(sleep_a.ip),
        requested_server_name=over_mesh_mtls(egress_gateway, 80),
    )
    with step.documented("The policy is deleted: access is revoked"):
        etp.revoke(policy)
        refused_http(sleep_a, *STATUS_ONLY, "http://www.httpbin.org")


@sidecar_check(
    "ETP-02",
    "An HTTPS-upgrade policy: the gateway originates TLS to port 443",
    ETP_UPGRADE,
    "sleep-a http 200, /anything url https://, https 200; nginx http 502, https connection refused with "
    "BlackHoleCluster in its sidecar log; after deletion sleep-a http 502, https connection refused",
    deviation=HTTPS_RESET_DEVIATION,
    adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
)
def test_https_upgrade_policy_originates_tls_at_the_gateway(
    step: Step, sleep_a: Client, nginx: Client, egress_gateway: EgressGateway, etp: EgressPolicies
) -> None:
    """The path of sleep-a's own HTTPS request is left open on purpose: the seed gives only its 200, the native
    provider's ServiceEntry port 443 (which the upgrade needs) lets it leave from the sidecar, and a vendor's
    controller may carry it through the gateway; either way it must answer 200."""
    step.mesh(outbound=REGISTRY_ONLY)
    policy = etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80, https_upgrade_port=443)
    r = sleep_a.curl(*STATUS_ONLY, "http://httpbin.org").converges_to(
        http(200), headers={"x-external-world-scheme": "https"}
    )
    egress_gateway.log_for(r).has(
        upstream_cluster="outbound|443||httpbin.org",
        upstream_host=port(443),
        authority="httpbin.org",
        response_code=200,
        downstream_remote_address=host(sleep_a.ip),
        requested_server_name=over_mesh_mtls(egress_gateway, 80),
    )
    sleep_a.curl("-s", "http://httpbin.org/anything").converges_to(
        http(200), json={"url": "https://httpbin.org/anything"}
    )
    # The seed gives only the 200 of sleep-a's own HTTPS; which way it leaves is the provider's translation
    # (native: straight from the sidecar, on the ServiceEntry port 443 the upgrade needs).
    sleep_a.curl(*STATUS_ONLY, *TEST_CA, "https://www.httpbin.org").converges_to(http(200))
    refused_http(nginx, *STATUS_ONLY, "http://www.httpbin.org")
    refused_https(nginx, "https://www.httpbin.org")
    with step.documented("The policy is deleted: access is revoked"):
        etp.revoke(policy)
        refused_http(sleep_a, *STATUS_ONLY, "http://www.httpbin.org")
        refused_https(sleep_a, "https://www.httpbin.org")


@sidecar_check(
    "ETP-03",
    "An HTTPS passthrough policy through gateway port 444",
    ETP_PASSTHROUGH,
    "sleep-a http 200, /anything url https://, https 200; nginx http 502, https connection refused; "
    "after deletion sleep-a http 502, https connection refused",
    deviation="the documented policy declares port 443 (HTTPS) only, so plain HTTP to the hosts stays "
    "unregistered and REGISTRY_ONLY answers it with 502: the seed's http 200 and https:// url repeat "
    "the HTTPS-upgrade section's results and cannot hold under this policy; and " + HTTPS_RESET_DEVIATION,
    adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
)
def test_https_passthrough_policy_carries_the_application_tls_through_port_444(
    step: Step, sleep_a: Client, nginx: Client, egress_gateway: EgressGateway, etp: EgressPolicies
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    policy = etp.allow(sleep_a, "httpbin-service-https", HTTPBIN, HTTPS_443, gateway_port=444)
    # The section's plain-HTTP checks: a policy for port 443 only leaves port 80 unregistered.
    refused_http(sleep_a, *STATUS_ONLY, "http://httpbin.org")
    refused_http(sleep_a, "-s", "http://httpbin.org/anything")
    r = sleep_a.curl(*STATUS_ONLY, *TEST_CA, "https://www.httpbin.org").converges_to(http(200))
    sleep_a.sidecar.log_for(r, sni="www.httpbin.org").has(upstream_cluster=f"outbound|444||{egress_gateway.info.host}")
    egress_gateway.log_for(r, by_time=True).has(
        upstream_cluster="outbound|443||www.httpbin.org",
        upstream_host=port(443),
        downstream_remote_address=host(sleep_a.ip),
        requested_server_name=over_mesh_mtls(egress_gateway, 444),
    )
    refused_http(nginx, *STATUS_ONLY, "http://www.httpbin.org")
    refused_https(nginx, "https://www.httpbin.org")
    with step.documented("The policy is deleted: access is revoked"):
        etp.revoke(policy)
        refused_http(sleep_a, *STATUS_ONLY, "http://www.httpbin.org")
        refused_https(sleep_a, "https://www.httpbin.org")


@sidecar_check(
    "ETP-04",
    "A TCP policy for www.alibabacloud.com:443",
    ETP_TCP,
    "sleep-a http 502, https 200; nginx http 502, https connection refused with BlackHoleCluster; after "
    "deletion sleep-a http 502, https connection refused",
    deviation=HTTPS_RESET_DEVIATION,
    adaptations=(GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION),
)
def test_tcp_policy_carries_tls_to_www_alibabacloud_com(
    step: Step, sleep_a: Client, nginx: Client, egress_gateway: EgressGateway, etp: EgressPolicies
) -> None:
    """The policy names port 443 only: plain HTTP on port 80 stays refused by the client's own sidecar."""
    step.mesh(outbound=REGISTRY_ONLY)
    policy = etp.allow(sleep_a, "aliyun-service-tcp", ALIBABACLOUD, TCP_443)
    refused_http(sleep_a, *STATUS_ONLY, "http://www.alibabacloud.com")
    r = sleep_a.curl(*STATUS_ONLY, *TEST_CA, "https://www.alibabacloud.com").converges_to(http(200))
    # A TCP chain reads no SNI: the entries are found by their time window.
    sleep_a.sidecar.log_for(r, by_time=True).has(
        upstream_cluster=f"outbound|443||{egress_gateway.info.host}", downstream_local_address=port(443)
    )
    egress_gateway.log_for(r, by_time=True).has(
        upstream_cluster="outbound|443||www.alibabacloud.com",
        upstream_host=port(443),
        downstream_remote_address=host(sleep_a.ip),
        requested_server_name=over_mesh_mtls(egress_gateway, 443),
    )
    refused_http(nginx, *STATUS_ONLY, "http://www.alibabacloud.com")
    refused_https(nginx, "https://www.alibabacloud.com")
    with step.documented("The policy is deleted: access is revoked"):
        etp.revoke(policy)
        refused_http(sleep_a, *STATUS_ONLY, "http://www.alibabacloud.com")
        refused_https(sleep_a, "https://www.alibabacloud.com")


@sidecar_check(
    "ETP-05",
    "A DENY policy for POST from mytest at the gateway",
    ETP_AUTHZ,
    "POST 403 RBAC: access denied; GET 200",
    adaptations=(GATEWAY_MTLS_ADAPTATION, ETP_GATEWAY_SELECTOR_ADAPTATION),
)
def test_gateway_denies_post_from_mytest_and_lets_get_through(
    step: Step, sleep_a: Client, egress_gateway: EgressGateway, etp: EgressPolicies
) -> None:
    step.mesh(outbound=REGISTRY_ONLY)
    etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80)
    step.adapt("etp/authorization-policy.yaml", reason=ETP_GATEWAY_SELECTOR_ADAPTATION)
    r = sleep_a.curl("-s", "-X", "POST", "http://httpbin.org/post").is_denied(http(403), body="RBAC: access denied")
    egress_gateway.log_for(r).has(
        method="POST",
        authority="httpbin.org",
        response_code=403,
        response_code_details="rbac_access_denied_matched_policy[ns[istio-system]-policy[sleep-a-egress-www-httpbin-org]-rule[0]]",
    )
    r = sleep_a.curl("-s", "http://httpbin.org/get").converges_to(http(200))
    egress_gateway.log_for(r).has(
        upstream_cluster="outbound|80||httpbin.org",
        method="GET",
        response_code=200,
        downstream_remote_address=host(sleep_a.ip),
        requested_server_name=over_mesh_mtls(egress_gateway, 80),
    )
