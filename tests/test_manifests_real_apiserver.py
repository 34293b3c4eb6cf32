"""Every Kubernetes object in manifests/ is accepted by a real API server, for every vendored Istio release.

For each Istio CRD bundle vendored under ``manifests/schemas/istio-<version>/`` a fresh control plane gets
that bundle and the Gateway API bundle the Istio minor pairs with (``conformance.core.versions``), both applied
for real as the harness applies them. Then every object of every other manifest is server-side applied
with ``dryRun=All``: the API server runs its whole validation (schemas, CEL rules, enums, admission)
without storing anything, and a rejection fails the test with the server's own message.

Placeholders are rendered with the sample values of tests/data/manifest-variables.yaml. Namespaces exist
as in a real run: those the manifests themselves create (applied for real first) and those the Istio
install creates. New manifest directories are picked up by themselves; a manifest that needs a namespace
nothing creates fails with the server's ``namespaces "..." not found``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core.manifests import iter_manifest_files, load_documents, render_text
from conformance.core.timeouts import Timeouts
from conformance.core.versions import GATEWAY_API_BY_MINOR
from conformance.kube.api import Kube, KubeError
from conformance.kube.validation import NON_API_KINDS, VENDOR_CRD_SOURCES
from conformance.world.workloads import WORKLOADS
from tests.plan_run import PlanRun
from tests.real_apiserver import RealApiServer

SAMPLE_VARIABLES: dict[str, str] = {
    str(key): str(value)
    for key, value in (
        yaml.safe_load((Path(__file__).parent / "data" / "manifest-variables.yaml").read_text(encoding="utf-8")) or {}
    ).items()
}
#: CRD bundles: applied for real per Istio release, not dry-run as objects of their own.
BUNDLE_DIRS = (MANIFESTS_DIR / "schemas", MANIFESTS_DIR / "gateway-api")
#: Namespaces a real run has before it applies anything of its own: the cluster's, istioctl's, and those
#: the harness creates for its client workloads (conformance.world.workloads) before any check runs in them.
RUN_NAMESPACES = tuple(
    dict.fromkeys(("default", "kube-system", "istio-system", *(spec.namespace for spec in WORKLOADS.values())))
)
#: Stand-in for the redacted values of Secrets in a plan: valid base64, as the real data is.
SECRET_VALUE = "UExBTk5FRA=="
#: Everything here is applied moments after its CRDs are Established: no long waits are needed.
TIMEOUTS = Timeouts(apply=5, discovery=5, crd_established=60)

_ISTIO_BUNDLE_DIR = re.compile(r"^istio-1\.(\d+)\.\d+")


def rendered(path: Path) -> list[dict[str, Any]]:
    text = render_text(path.read_text(encoding="utf-8"), SAMPLE_VARIABLES, source=str(path))
    return load_documents(text, source=str(path))


def bundle(path: Path) -> list[dict[str, Any]]:
    """A CRD bundle, parsed with libyaml (the Istio bundle is large for the pure-Python parser)."""
    return [doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if doc]


def api_objects(path: Path) -> list[dict[str, Any]]:
    """The documents of ``path`` that are Kubernetes API objects (not istioctl or kind configuration)."""
    return [doc for doc in rendered(path) if (doc.get("apiVersion"), doc.get("kind")) not in NON_API_KINDS]


def applicable_manifests() -> list[Path]:
    return [
        path
        for path in iter_manifest_files()
        if not any(bundle in path.parents for bundle in BUNDLE_DIRS) and api_objects(path)
    ]


@dataclass(frozen=True)
class CrdSet:
    istio: str
    istio_bundle: Path
    gateway_api: str

    @property
    def gateway_api_bundle(self) -> Path:
        return MANIFESTS_DIR / "gateway-api" / self.gateway_api / "standard-install.yaml"


def vendored_crd_sets() -> list[CrdSet]:
    sets = []
    for bundle in MANIFESTS_DIR.glob("schemas/istio-*/crd-all.gen.yaml"):
        match = _ISTIO_BUNDLE_DIR.match(bundle.parent.name)
        assert match, f"{bundle.parent} is not named istio-<version>"
        minor = f"1.{match.group(1)}"
        assert minor in GATEWAY_API_BY_MINOR, f"{bundle}: no Gateway API bundle is paired with Istio {minor}"
        sets.append(CrdSet(bundle.parent.name.removeprefix("istio-"), bundle, GATEWAY_API_BY_MINOR[minor]))
    return sorted(sets, key=lambda s: [int(n) if n.isdigit() else n for n in re.split(r"[.-]", s.istio)])


MANIFESTS = applicable_manifests()
CRD_SETS = vendored_crd_sets()


@dataclass
class Cluster:
    kube: Kube
    crds: CrdSet
    established: list[str]


@pytest.fixture(scope="module", params=CRD_SETS, ids=lambda s: f"istio-{s.istio}")
def cluster(request: pytest.FixtureRequest, real_apiserver: RealApiServer) -> Iterator[Cluster]:
    """A fresh control plane (no CRD of another release left over) with this release's CRDs applied."""
    crds: CrdSet = request.param
    if not crds.gateway_api_bundle.is_file():
        pytest.fail(
            f"Istio {crds.istio} pairs with Gateway API {crds.gateway_api}, but "
            f"{crds.gateway_api_bundle.relative_to(MANIFESTS_DIR.parent)} is not vendored",
            pytrace=False,
        )
    control_plane = RealApiServer(real_apiserver.binaries, controller_manager=False)  # dry runs need no controller
    with control_plane as server, Kube(server.kubeconfig, timeouts=TIMEOUTS) as kube:
        # The vendor CRD too: a vendor's mesh has it, and the ETP checks' vendor provider applies its kind.
        bundles = [
            *bundle(crds.gateway_api_bundle),
            *bundle(crds.istio_bundle),
            *(doc for path in VENDOR_CRD_SOURCES for doc in bundle(path)),
        ]
        kube.apply(bundles)
        names = [doc["metadata"]["name"] for doc in bundles if doc["kind"] == "CustomResourceDefinition"]
        kube.wait_crds_established(names, TIMEOUTS.crd_established)
        namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in RUN_NAMESPACES]
        namespaces += [doc for path in MANIFESTS for doc in api_objects(path) if doc["kind"] == "Namespace"]
        kube.apply(namespaces)
        yield Cluster(kube, crds, names)


def test_there_is_something_to_check() -> None:
    assert CRD_SETS, "no Istio CRD bundle under manifests/schemas/istio-*/crd-all.gen.yaml"
    assert any(path.parent.name == "external" for path in MANIFESTS)


def test_the_crd_bundles_install(cluster: Cluster) -> None:
    served = {
        doc["metadata"]["name"]
        for path in (cluster.crds.istio_bundle, cluster.crds.gateway_api_bundle, *VENDOR_CRD_SOURCES)
        for doc in bundle(path)
        if doc.get("kind") == "CustomResourceDefinition"
    }
    assert set(cluster.established) == served
    assert any(name.endswith(".networking.istio.io") for name in served)
    assert "gateways.gateway.networking.k8s.io" in served


def rejections(kube: Kube, path: Path) -> list[str]:
    """The API server's message for every object of ``path`` it refuses in a dry run."""
    rejected = []
    for doc in api_objects(path):
        try:
            kube.apply([doc], dry_run=True)
        except KubeError as exc:
            rejected.append(str(exc))
    return rejected


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(MANIFESTS_DIR)))
def test_manifest_is_accepted_by_the_api_server(cluster: Cluster, path: Path) -> None:
    rejected = rejections(cluster.kube, path)
    assert not rejected, f"the API server (Istio {cluster.crds.istio} CRDs) rejected {path}:\n" + "\n".join(rejected)


# The check itself: what a broken scenario step would look like, and the server's answer to it.

MISSPELLED_FIELD = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aliyun, namespace: default}
spec: {hosts: [aliyun.com], resolutin: DNS, ports: [{number: 80, name: http, protocol: HTTP}]}
"""
CEL_VIOLATION = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: egress, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, tls: {mode: Terminate}}]
"""
NAMESPACE_NOBODY_CREATES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aliyun, namespace: nobody-creates-this}
spec: {hosts: [aliyun.com], resolution: DNS, ports: [{number: 80, name: http, protocol: HTTP}]}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MISSPELLED_FIELD,
            "HTTP 500 Internal Server Error: failed to create typed patch object (default/aliyun; "
            "networking.istio.io/v1, Kind=ServiceEntry): .spec.resolutin: field not declared in schema",
        ),
        (
            CEL_VIOLATION,
            'HTTP 422 Unprocessable Entity: Gateway.gateway.networking.k8s.io "egress" is invalid: '
            "| spec.listeners: Invalid value: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
        ),
        (NAMESPACE_NOBODY_CREATES, 'HTTP 404 Not Found: namespaces "nobody-creates-this" not found'),
    ],
    ids=["misspelled-field", "gateway-api-cel-rule", "namespace-nobody-creates"],
)
def test_a_broken_manifest_fails_with_the_server_s_message(
    cluster: Cluster, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "step.yaml"
    path.write_text(text, encoding="utf-8")
    (rejected,) = rejections(cluster.kube, path)
    for fragment in message.split(" | "):
        assert fragment in rejected
    assert rejected.startswith(f"apply {yaml.safe_load(text)['kind']} ")


# Every step of every planned check, in its order: what a real run applies, as it applies it.


def _as_applied(resource: dict[str, Any]) -> dict[str, Any]:
    if resource.get("kind") == "Secret":
        return {**resource, "data": {key: SECRET_VALUE for key in resource.get("data") or {}}}
    return resource


def step_rejections(kube: Kube, check: dict[str, Any]) -> list[str]:
    """Dry-run every resource a planned check applies, in order; namespaces it creates are created."""
    rejected = []
    for action in check["actions"]:
        if action["type"] != "apply":
            continue
        for resource in action["resources"]:
            try:
                if resource["kind"] == "Namespace":
                    kube.apply([resource])  # later steps of the check apply into it
                else:
                    kube.apply([_as_applied(resource)], dry_run=True)
            except KubeError as exc:
                rejected.append(f"{check['id']} ({check['mode']}) seq {action['seq']} {action['sources']}: {exc}")
    return rejected


def test_every_planned_step_is_accepted_by_the_api_server(cluster: Cluster, catalogue_plan: PlanRun) -> None:
    rejected = [message for check in catalogue_plan.plan["checks"] for message in step_rejections(cluster.kube, check)]
    assert catalogue_plan.plan["checks"]
    assert not rejected, f"the API server (Istio {cluster.crds.istio} CRDs) rejected planned steps:\n" + "\n".join(
        rejected
    )
