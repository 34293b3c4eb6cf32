"""The gateway hop: how sidecars talk to the egress gateway, and the harness's rule for making the
installed gateway behave as the documentation assumes (the specification's rule for the sidecar profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from conformance.engine.runtime import EgressGatewayInfo
from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, GATEWAY_PLAINTEXT_ADAPTATION


class GatewayHop(StrEnum):
    """How the documented configuration has sidecars talk to the egress gateway."""

    #: Plain HTTP to a plain ``HTTP`` gateway server (seed 003).
    PLAINTEXT = "plaintext"
    #: Mesh mTLS to an ``ISTIO_MUTUAL`` gateway server (seeds 001 and 002).
    ISTIO_MUTUAL = "istio-mutual"


PLAINTEXT = GatewayHop.PLAINTEXT
ISTIO_MUTUAL = GatewayHop.ISTIO_MUTUAL


@dataclass(frozen=True)
class HopAdaptation:
    """The harness manifest (under ``scenarios/harness/``) that makes the gateway hop as documented."""

    reason: str
    manifest: str
    variables: dict[str, str] = field(default_factory=dict)


def hop_adaptation(gateway: EgressGatewayInfo, over: GatewayHop, sni: str | None) -> HopAdaptation | None:
    """Whether a sidecar sends mTLS to the gateway depends on the gateway pods' label
    ``security.istio.io/tlsMode=istio`` unless a DestinationRule for the gateway host decides: the minimal
    DestinationRule for the installed gateway, or nothing when it already behaves as documented. ``sni`` is
    needed when the gateway server lists hosts (it then matches on SNI)."""
    if over is GatewayHop.PLAINTEXT and gateway.tls_mode_label:
        return HopAdaptation(GATEWAY_PLAINTEXT_ADAPTATION, "gateway-plaintext.yaml")
    if over is GatewayHop.ISTIO_MUTUAL and not gateway.tls_mode_label:
        manifest = "gateway-istio-mutual-sni.yaml" if sni else "gateway-istio-mutual.yaml"
        return HopAdaptation(GATEWAY_MTLS_ADAPTATION, manifest, {"SNI": sni} if sni else {})
    return None
