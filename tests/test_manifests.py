"""Every YAML file under manifests/ parses, renders and validates strictly against the real schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.manifests import (
    ManifestError,
    iter_manifest_files,
    load_documents,
    placeholders,
    render_text,
)
from conformance.validation import NON_API_KINDS, Validator

SAMPLE_VARIABLES: dict[str, str] = {
    str(k): str(v)
    for k, v in (yaml.safe_load((Path(__file__).parent / "data" / "manifest-variables.yaml").read_text()) or {}).items()
}
#: Bundles of schemas, validated as CRDs but not object by object against themselves.
SCHEMA_DIRS = (MANIFESTS_DIR / "schemas",)

MANIFEST_FILES = [p for p in iter_manifest_files() if not any(d in p.parents for d in SCHEMA_DIRS)]


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def test_manifests_exist() -> None:
    assert MANIFEST_FILES, "manifests/ holds no YAML"


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: str(p.relative_to(MANIFESTS_DIR)))
def test_manifest_validates_strictly(path: Path, validator: Validator) -> None:
    text = path.read_text(encoding="utf-8")
    unknown = placeholders(text) - set(SAMPLE_VARIABLES)
    assert not unknown, f"add sample values for {sorted(unknown)} to tests/data/manifest-variables.yaml"
    docs = load_documents(render_text(text, SAMPLE_VARIABLES, source=str(path)), source=str(path))
    assert docs, f"{path} holds no document"
    problems = [str(p) for doc in docs for p in validator.validate(doc, source=str(path))]
    assert not problems, "\n".join(problems)


def test_schema_bundles_cover_the_kinds_scenarios_use(validator: Validator) -> None:
    kinds = validator.registry.kinds()
    for needed in [
        ("networking.istio.io/v1", "ServiceEntry"),
        ("networking.istio.io/v1", "Gateway"),
        ("networking.istio.io/v1", "VirtualService"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
    ]:
        assert needed in kinds


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
    assert {kind for _, kind in NON_API_KINDS} == {"IstioOperator", "Cluster", "ImageList"}


def test_missing_placeholder_value_is_refused() -> None:
    with pytest.raises(ManifestError, match="INGRESS_IP"):
        render_text("value: ${INGRESS_IP}", {}, source="x.yaml")


def test_only_braced_upper_case_placeholders_are_substituted() -> None:
    text = "pattern: ^$|^[a-z]+$\nprice: $5\nip: ${INGRESS_IP}\nlower: ${not_a_placeholder}\n"
    assert placeholders(text) == {"INGRESS_IP"}
    rendered = render_text(text, {"INGRESS_IP": "10.96.0.20"})
    assert rendered == "pattern: ^$|^[a-z]+$\nprice: $5\nip: 10.96.0.20\nlower: ${not_a_placeholder}\n"
