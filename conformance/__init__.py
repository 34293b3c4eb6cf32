"""egress-conformance: end-to-end conformance harness for service-mesh egress on upstream Istio."""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the checkout: manifests/ lives beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS_DIR = PROJECT_ROOT / "manifests"
