"""egress-conformance: end-to-end conformance harness for service-mesh egress on upstream Istio."""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the checkout: manifests/ lives beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS_DIR = PROJECT_ROOT / "manifests"

#: apiVersion of the harness's own data files (image list, versions).
DATA_API_VERSION = "egress-conformance/v1alpha1"
#: apiVersion of the documents a run writes (conformance report, plan).
DOCUMENT_API_VERSION = "egress-conformance.io/v1alpha1"
