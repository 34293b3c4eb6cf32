"""Every YAML file under manifests/ parses, renders and validates strictly against the real schemas."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import version_model, versions
from conformance.core.manifests import (
    Document,
    ManifestError,
    iter_manifest_files,
    load_documents,
    placeholders,
    render_text,
)
from conformance.kube.validation import SKIPPED_KINDS, SchemaRegistry, Validator, skip_reason

SAMPLE_VARIABLES: dict[str, str] = {
    str(k): str(v)
    for k, v in (yaml.safe_load((Path(__file__).parent / "data" / "manifest-variables.yaml").read_text()) or {}).items()
}
#: Vendored upstream schema bundles: the source of the schemas, not objects validated against themselves.
SCHEMA_DIRS = (MANIFESTS_DIR / "schemas", MANIFESTS_DIR / "gateway-api")
GATEWAY_API_BUNDLES = sorted((MANIFESTS_DIR / "gateway-api").glob("*/standard-install.yaml"))

MANIFEST_FILES = [p for p in iter_manifest_files() if not any(d in p.parents for d in SCHEMA_DIRS)]
_C_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


@functools.cache
def _registry(minor: str) -> SchemaRegistry:
    return SchemaRegistry.for_istio_minor(versions.VERSIONS.minor(minor))


def registry_for(minor: version_model.IstioMinor) -> SchemaRegistry:
    return _registry(minor.minor)


@pytest.fixture(scope="module")
def rendered_manifests() -> dict[str, list[Document]]:
    """Every manifest rendered with the sample placeholder values, by path under manifests/."""
    rendered: dict[str, list[Document]] = {}
    for path in MANIFEST_FILES:
        text = path.read_text(encoding="utf-8")
        unknown = placeholders(text) - set(SAMPLE_VARIABLES)
        assert not unknown, f"add sample values for {sorted(unknown)} to tests/data/manifest-variables.yaml"
        docs = load_documents(render_text(text, SAMPLE_VARIABLES, source=str(path)), source=str(path))
        assert docs, f"{path} holds no document"
        rendered[str(path.relative_to(MANIFESTS_DIR))] = docs
    return rendered


def test_manifests_exist() -> None:
    assert MANIFEST_FILES, "manifests/ holds no YAML"


@pytest.mark.parametrize("minor", versions.ISTIO_MINORS, ids=lambda m: f"istio-{m.minor}")
def test_every_manifest_validates_against_each_supported_istio_minor(
    minor: version_model.IstioMinor, rendered_manifests: dict[str, list[Document]]
) -> None:
    """The minor's CRDs and Gateway API bundle, built-in kinds on its oldest and newest Kubernetes.

    Not schema-validated, by kind (conformance.kube.validation.SKIPPED_KINDS, each with its reason):
    IstioOperator (an istioctl overlay, never sent to the API server: a real istioctl rendering it is its
    check), kind's Cluster config, and the harness's own ImageList and Versions files.
    """
    registry = registry_for(minor)
    validators = [Validator(registry, kubernetes) for kubernetes in minor.kubernetes_bounds]
    problems = [
        f"[Kubernetes {v.kubernetes_version}] {p}"
        for v in validators
        for source, docs in rendered_manifests.items()
        for doc in docs
        for p in v.validate(doc, source=source)
    ]
    assert not problems, (
        f"against Istio {minor.release.version} ({minor.schemas}, Gateway API {minor.gateway_api}):\n"
        + "\n".join(problems)
    )


def test_skipped_kinds_are_exactly_the_non_api_documents_of_manifests(
    rendered_manifests: dict[str, list[Document]],
) -> None:
    skipped = {
        (doc["apiVersion"], doc["kind"]): source
        for source, docs in rendered_manifests.items()
        for doc in docs
        if skip_reason(doc) is not None
    }
    # A kind listed but no longer used, or one skipped without a stated reason, fails here.
    assert set(skipped) == set(SKIPPED_KINDS)
    assert all(len(reason.split()) >= 5 for reason in SKIPPED_KINDS.values())


@pytest.mark.parametrize("bundle", GATEWAY_API_BUNDLES, ids=lambda p: p.parent.name)
def test_gateway_api_bundle_objects_are_valid_kubernetes_objects(bundle: Path, validator: Validator) -> None:
    # The harness applies these objects (CRDs, the safe-upgrades admission policy) as they are.
    docs = [d for d in yaml.load_all(bundle.read_text(encoding="utf-8"), Loader=_C_LOADER) if d]
    problems = [str(p) for doc in docs for p in validator.validate(doc, source=bundle.name)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("minor", versions.ISTIO_MINORS, ids=lambda m: f"istio-{m.minor}")
def test_schema_bundles_cover_the_kinds_scenarios_use(minor: version_model.IstioMinor) -> None:
    kinds = registry_for(minor).kinds()
    for needed in [
        ("networking.istio.io/v1", "ServiceEntry"),
        ("networking.istio.io/v1", "Gateway"),
        ("networking.istio.io/v1", "VirtualService"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ]:
        assert needed in kinds, f"{needed} missing from the schemas of Istio {minor.minor}"


@pytest.mark.parametrize(
    "doc, fragment",
    [
        (  # unknown field deep inside an Istio spec
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": "a"},
                "spec": {"hosts": ["aliyun.com"], "resolutin": "DNS"},
            },
            "resolutin",
        ),
        (  # enum value typo
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "a"},
                "spec": {"host": "test.com", "trafficPolicy": {"tls": {"mode": "MUTAL"}}},
            },
            "MUTAL",
        ),
        (  # the seed's access-log style typo in metadata
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": "a", "lables": {}},
                "spec": {},
            },
            "lables",
        ),
        (  # built-in kind, unknown container field
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "a"},
                "spec": {
                    "selector": {"matchLabels": {"app": "a"}},
                    "template": {
                        "metadata": {"labels": {"app": "a"}},
                        "spec": {"containers": [{"name": "c", "image": "x:1", "imagePullPolcy": "x"}]},
                    },
                },
            },
            "imagePullPolcy",
        ),
        (  # unknown group/version
            {"apiVersion": "networking.istio.io/v2", "kind": "ServiceEntry", "metadata": {"name": "a"}},
            "no schema",
        ),
    ],
)
def test_validator_rejects(doc: dict[str, Any], fragment: str, validator: Validator) -> None:
    problems = validator.validate(doc)
    assert problems and fragment in str(problems[0])


def test_validator_accepts_preserved_unknown_fields(validator: Validator) -> None:
    # EnvoyFilter patch values are free-form (x-kubernetes-preserve-unknown-fields).
    doc = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "a"},
        "spec": {
            "configPatches": [
                {"applyTo": "HTTP_FILTER", "patch": {"operation": "MERGE", "value": {"anything": {"goes": 1}}}}
            ]
        },
    }
    assert validator.validate(doc) == []


def test_non_api_kinds_are_only_tool_configs() -> None:
    assert {kind for _, kind in SKIPPED_KINDS} == {"IstioOperator", "Cluster", "ImageList", "ImageMap", "Versions"}


def test_missing_placeholder_value_is_refused() -> None:
    with pytest.raises(ManifestError, match="INGRESS_IP"):
        render_text("value: ${INGRESS_IP}", {}, source="x.yaml")


def test_only_braced_upper_case_placeholders_are_substituted() -> None:
    text = "pattern: ^$|^[a-z]+$\nprice: $5\nip: ${INGRESS_IP}\nlower: ${not_a_placeholder}\n"
    assert placeholders(text) == {"INGRESS_IP"}
    rendered = render_text(text, {"INGRESS_IP": "10.96.0.20"})
    assert rendered == "pattern: ^$|^[a-z]+$\nprice: $5\nip: 10.96.0.20\nlower: ${not_a_placeholder}\n"


def test_a_kind_newer_than_a_supported_minor_fails_that_minor_only() -> None:
    # gateway.networking.k8s.io/v1 TLSRoute is in the standard channel from Gateway API v1.5 on, so a
    # manifest using it would install with Istio 1.30 and 1.31 but not with 1.29 (Gateway API v1.4.1).
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "TLSRoute",
        "metadata": {"name": "test-com", "namespace": "egress"},
        "spec": {
            "parentRefs": [{"name": "egress-gateway"}],
            "hostnames": ["test.com"],
            "rules": [{"backendRefs": [{"name": "test-com", "port": 443}]}],
        },
    }
    rejected = {
        minor.minor
        for minor in versions.ISTIO_MINORS
        if Validator(registry_for(minor), minor.kubernetes_oldest).validate(route)
    }
    assert rejected == {"1.29"}
