"""The mesh's gateways a check reads: the egress gateway (with the positive control of a no-entry
check) and ambient waypoints."""

from __future__ import annotations

from conformance.checks.clients import Client, response_expectation
from conformance.checks.proxies import Proxy
from conformance.checks.step import Step
from conformance.engine.runtime import EgressGatewayInfo, LogLookup, LogSource, Observation, ProxyKind, Until
from conformance.probe.outcomes import http


class EgressGateway(Proxy):
    """The egress gateway: its access log, and what the documented configuration assumes of it."""

    #: The positive control of a no-entry check: a harness-owned gateway server that answers 204 itself.
    CONTROL_MANIFEST = "harness/egress-gateway-log-control.yaml"
    CONTROL_HOST = "log-control.egress-conformance.invalid"

    def __init__(self, step: Step, info: EgressGatewayInfo) -> None:
        super().__init__(step, info.log_source())
        self.info = info

    def no_log_for(self, observation: Observation) -> None:
        """No entry for this request — proven against a control request through the same gateway, sent
        after it, whose entry must appear first (Envoy flushes its access log in order, with a delay)."""
        step = self._step
        with step.group(f"egress gateway has no entry for {observation.probe_id} (positive control)"):
            step.apply(self.CONTROL_MANIFEST, adaptation="positive control for an absent access-log entry")
            control_client = Client(step, step.runtime.probe_client())
            control_request = control_client.curl("-s", "-H", f"host:{self.CONTROL_HOST}", f"http://{self.info.host}/")
            control = control_request._run(Until.CONVERGES, response_expectation(http(204)), control=True)
            self.log_for(control).has(response_code=204, authority=self.CONTROL_HOST)
            step.record_action(
                "log",
                probe=observation.probe_id,
                proxy=self.source.record(),
                present=False,
                controlProbe=control.probe_id,
            )
            entries = step.runtime.log_entries(self.source, observation, LogLookup())
            if entries:
                raise AssertionError(
                    f"the egress gateway logged {observation.probe_id} ({observation.client.ref}: "
                    f"{observation.request.display()}), which must not pass through it: {entries[0].summary()}"
                )


class Waypoint(Proxy):
    """An ambient waypoint, a Gateway API Gateway of class ``istio-waypoint``: the access log of its Envoy.

    Istio deploys a waypoint's pods itself when the Gateway is applied (a check's step creates it), with
    the label :data:`GATEWAY_NAME_LABEL` and the Envoy in container ``istio-proxy``; the log is read from
    every pod with that label in the Gateway's namespace.
    """

    #: Set by Istio on every pod it deploys for a Gateway API gateway, waypoints included.
    GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

    def __init__(self, step: Step, namespace: str, name: str) -> None:
        selector = f"{self.GATEWAY_NAME_LABEL}={name}"
        super().__init__(step, LogSource(ProxyKind.WAYPOINT, f"{namespace}/{name}", namespace, selector))
