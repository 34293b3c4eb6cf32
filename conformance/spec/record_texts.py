"""The texts several families of the catalogue's records share: the adaptations more than one family
declares, and the sections of the seeds the records cite."""

from __future__ import annotations

from conformance.spec.model import (
    SEED_AMBIENT,
    SEED_EGW,
    SEED_ETP,
    SEED_MTLS,
    SEED_NSD,
    Seed,
)

#: Sidecar reaching the egress gateway: the adaptations of the specification's rule (they depend on whether
#: the installed gateway's pods carry ``security.istio.io/tlsMode=istio``; the step records which one ran).
GATEWAY_PLAINTEXT_ADAPTATION = (
    "gateway pods labelled security.istio.io/tlsMode=istio: a DestinationRule for the gateway host with "
    "tls.mode DISABLE keeps the documented plain-HTTP gateway hop (sidecars would otherwise send mTLS to a "
    "plain HTTP server)"
)
GATEWAY_MTLS_ADAPTATION = (
    "gateway pods without security.istio.io/tlsMode=istio (upstream's default): a DestinationRule for the "
    "gateway host with tls.mode ISTIO_MUTUAL makes sidecars speak the mTLS the documented ISTIO_MUTUAL "
    "gateway server expects (auto-mTLS alone would send plaintext)"
)
TEST_CA_ADAPTATION = "origins present certificates of the run's test CA; TLS origination trusts that CA explicitly"

EGW_STEP1 = Seed(SEED_EGW, "Step 1: Deploy a sample application")
EGW_STEP2 = Seed(SEED_EGW, "(Optional) Step 2: Set the policy for accessing external services to REGISTRY_ONLY")
EGW_STEP3 = Seed(SEED_EGW, "Step 3: Create a service entry to define an external service")
EGW_STEP4 = Seed(SEED_EGW, "Step 4: Use an egress gateway to route all the requests to access external services")

NSD_STEP1 = Seed(SEED_NSD, "Step 1: Deploy a test service")
NSD_STEP3 = Seed(SEED_NSD, "Step 3: Restrict outbound traffic to registered services only")
NSD_STEP4 = Seed(SEED_NSD, "Step 4: Route traffic through the egress gateway")
NSD_STEP5 = Seed(SEED_NSD, "Step 5: Create an authorization policy")
NSD_STEP6 = Seed(SEED_NSD, "Step 6: Verify the authorization policy")
NSD_SECURITY = Seed(SEED_NSD, "Security considerations")

MTLS_STEP1 = Seed(SEED_MTLS, "Step 1: Deploy the sleep test application")
MTLS_STEP2 = Seed(SEED_MTLS, "Step 2: Enable REGISTRY_ONLY and create a ServiceEntry")
MTLS_STEP3 = Seed(SEED_MTLS, "Step 3: Create the egress gateway and route HTTP traffic through it")
MTLS_STEP4 = Seed(SEED_MTLS, "Step 4: Upgrade egress traffic to mTLS")
MTLS_STEP5 = Seed(SEED_MTLS, "Step 5: Configure authorization policies")

ETP_SETUP = Seed(SEED_ETP, "Set up the environment")
ETP_HTTP = Seed(SEED_ETP, "Route HTTP traffic through the egress gateway")
ETP_UPGRADE = Seed(SEED_ETP, "Solution 1: mTLS with HTTPS upgrade (recommended)")
ETP_PASSTHROUGH = Seed(SEED_ETP, "Solution 2: HTTPS passthrough")
ETP_TCP = Seed(SEED_ETP, "Route TCP traffic through the egress gateway")
ETP_AUTHZ = Seed(SEED_ETP, "Add fine-grained access control with an authorization policy")

AMB_STEP1 = Seed(SEED_AMBIENT, "Step 1: Deploy the test application")
AMB_INTRO = Seed(SEED_AMBIENT, "Introduction to external service management")
AMB_STEP4 = Seed(SEED_AMBIENT, "Step 4: Create a ServiceEntry and test access")
AMB_STEP5 = Seed(SEED_AMBIENT, "Step 5: Configure Waypoint to upgrade HTTP requests to HTTPS")
