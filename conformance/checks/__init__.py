"""The check API: a check reads like the documented step it verifies. Scenarios import this, and the
catalogue (``conformance.spec.catalogue``) to declare each check's record above its test.

::

    @sidecar_check(
        "EGW-04",
        "A Gateway and a two-hop VirtualService route the request through the egress gateway",
        EGW_STEP4,
        "301, the gateway's log shows the request",
        adaptations=(GATEWAY_PLAINTEXT_ADAPTATION,),
    )
    def test_gateway_and_two_hop_routes_carry_the_request(step, sleep, egress_gateway):
        step.mesh(outbound=REGISTRY_ONLY)
        step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")
        step.sidecars_reach(egress_gateway, over=PLAINTEXT, namespace=sleep.namespace)
        r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
        egress_gateway.log_for(r).has(upstream_cluster="outbound|80||aliyun.com", method="HEAD",
                                      downstream_remote_address=host(sleep.ip))

* ``step`` applies manifests from ``manifests/scenarios/`` (rendered, strictly validated first), changes
  mesh-wide settings, and at the end of the check removes what it created, releases what it changed and
  restores the mesh settings — waiting for the removal.
* Clients (``sleep``, ``nginx``, ...) run the documented curl command; ``converges_to`` is a positive check
  (N consecutive matches), ``is_denied`` / ``stays`` a negative one (observed, then held).
* Proxies (``egress_gateway``, ``sleep.sidecar``, a waypoint) find the access-log entry of a request and
  match its fields; ``no_log_for`` proves an absence after a positive control.

Every action is recorded (``conformance.engine.actions``): a plan run writes the records as ``plan.json``, a real
run keeps them as evidence; every applied manifest, probe transcript and matched log entry is attached to
the check's Allure result. What actually happens is the runtime's business (``conformance.engine.runtime``).
"""

from conformance.checks.clients import Client, Request
from conformance.checks.egress_policy import EgressProtocol, ExternalPort
from conformance.checks.gateway_hop import ISTIO_MUTUAL, PLAINTEXT, GatewayHop
from conformance.checks.gateways import EgressGateway, Waypoint
from conformance.checks.policy_providers import AppliedPolicy, EgressPolicies
from conformance.checks.proxies import ABSENT, Proxy, host, port, prefix
from conformance.checks.step import Step
from conformance.istio.mesh_config import OutboundMode
from conformance.probe.outcomes import CONN_REFUSED, CONN_RESET, DNS_FAIL, NON_HTTP_REPLY, TIMEOUT, TLS_RESET, http

ALLOW_ANY = OutboundMode.ALLOW_ANY
REGISTRY_ONLY = OutboundMode.REGISTRY_ONLY

__all__ = [
    "ABSENT",
    "ALLOW_ANY",
    "CONN_REFUSED",
    "CONN_RESET",
    "DNS_FAIL",
    "ISTIO_MUTUAL",
    "NON_HTTP_REPLY",
    "PLAINTEXT",
    "REGISTRY_ONLY",
    "TIMEOUT",
    "TLS_RESET",
    "AppliedPolicy",
    "Client",
    "EgressGateway",
    "EgressPolicies",
    "EgressProtocol",
    "ExternalPort",
    "GatewayHop",
    "Proxy",
    "Request",
    "Step",
    "Waypoint",
    "host",
    "http",
    "port",
    "prefix",
]
