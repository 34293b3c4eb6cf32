"""Seed 001's egress traffic policies: the two config providers, the field mapping, the vendor schema."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conformance import MANIFESTS_DIR, PROJECT_ROOT
from conformance.checks.clients import Client
from conformance.checks.egress_policy import (
    REPORT_KEY,
    Carriage,
    EgressProtocol,
    EgressRule,
    ExternalPort,
    PolicyError,
    rule_of_native_resources,
    rules_of_vendor_policy,
)
from conformance.checks.gateways import EgressGateway
from conformance.checks.policy_mapping import (
    FIELD_MAPPING,
    IMPLICIT_GATEWAY_MTLS,
    mapping_record,
    mapping_table,
    policy_fields,
)
from conformance.checks.policy_providers import (
    PROVIDERS,
    EgressPolicies,
    NativeProvider,
    VendorProvider,
)
from conformance.core import manifests
from conformance.kube.validation import VENDOR_CRD_SOURCES, Validator
from conformance.settings.options import EtpProvider
from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION
from conformance.world.workloads import SLEEP_A
from tests.test_scenario import RecordingRuntime, calls_of, new_step

CARRIAGES = [c.value for c in Carriage]
HTTPBIN = ("www.httpbin.org", "httpbin.org")
HTTP_80 = ExternalPort(80, "http", EgressProtocol.HTTP)
HTTPS_443 = ExternalPort(443, "https", EgressProtocol.HTTPS)
#: The rules the ETP scenarios ask for, one per carriage (as scenarios/test_etp.py builds them).
LABELS = {"app": "sleep-a"}
DOCUMENTED = {
    Carriage.HTTP: EgressRule.of("httpbin-service-http", "mytest", LABELS, HTTPBIN, HTTP_80, 80),
    Carriage.HTTPS_UPGRADE: EgressRule.of("httpbin-service-http", "mytest", LABELS, HTTPBIN, HTTP_80, 80, 443),
    Carriage.HTTPS_PASSTHROUGH: EgressRule.of("httpbin-service-https", "mytest", LABELS, HTTPBIN, HTTPS_443, 444),
    Carriage.TCP: EgressRule.of(
        "aliyun-service-tcp",
        "mytest",
        LABELS,
        ("www.alibabacloud.com",),
        ExternalPort(443, "tcp", EgressProtocol.TCP),
    ),
}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def native_docs(carriage: str) -> list[dict[str, Any]]:
    return manifests.render(f"scenarios/etp/native/{carriage}.yaml")


def vendor_doc(carriage: str) -> dict[str, Any]:
    (doc,) = manifests.render(f"scenarios/etp/vendor/{carriage}.yaml")
    return doc


# ------------------------------------------------------------------------------------ the two providers


@pytest.mark.parametrize("carriage", CARRIAGES)
def test_native_and_vendor_manifests_express_the_same_rule(carriage: str) -> None:
    (granted,) = rules_of_vendor_policy(vendor_doc(carriage))
    assert granted.carriage.value == carriage
    assert rule_of_native_resources(native_docs(carriage)) == granted.with_effective_gateway_port()


@pytest.mark.parametrize("carriage", list(Carriage))
def test_each_provider_answers_the_documented_rule_with_its_manifest(carriage: Carriage) -> None:
    rule = DOCUMENTED[carriage]
    native = NativeProvider().resources(rule)
    assert native.manifests == (f"etp/native/{carriage.value}.yaml",)
    assert native.gateway_hop and native.test_ca is (carriage is Carriage.HTTPS_UPGRADE)
    vendor = VendorProvider().resources(rule)
    assert vendor.manifests == (f"etp/vendor/{carriage.value}.yaml",)
    assert not vendor.gateway_hop and not vendor.test_ca
    assert set(PROVIDERS) == set(EtpProvider)


@pytest.mark.parametrize(
    "change",
    [
        {"namespace": "default"},
        {"workload_selector": (("app", "sleep"),)},
        {"hosts": ("httpbin.org",)},
        {"gateway_port": 8080},
        {"name": "other-service"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_rule_the_manifest_does_not_express_is_refused_by_both_providers(change: Mapping[str, Any]) -> None:
    from dataclasses import replace

    rule = replace(DOCUMENTED[Carriage.HTTP], **change)
    with pytest.raises(PolicyError, match=r"etp/native/http\.yaml expresses"):
        NativeProvider().resources(rule)
    with pytest.raises(PolicyError, match=r"etp/vendor/http\.yaml grants"):
        VendorProvider().resources(rule)


def test_the_vendor_provider_keeps_the_seeds_empty_gateway_port() -> None:
    rule = DOCUMENTED[Carriage.TCP]
    assert rule.gateway_port is None and rule.effective_gateway_port == 443
    with pytest.raises(PolicyError):
        VendorProvider().resources(rule.with_effective_gateway_port())


def test_rule_validation_and_carriage() -> None:
    with pytest.raises(PolicyError, match="names no host"):
        EgressRule.of("x", "mytest", {}, (), HTTP_80)
    with pytest.raises(PolicyError, match="only an HTTP port can be upgraded"):
        EgressRule.of("x", "mytest", {}, HTTPBIN, HTTPS_443, 444, 443)
    assert [DOCUMENTED[c].carriage for c in Carriage] == list(Carriage)
    assert DOCUMENTED[Carriage.HTTPS_UPGRADE].record()["httpsUpgrade"] == {"enabled": True, "port": 443}
    assert DOCUMENTED[Carriage.TCP].record()["byEgressGateway"] == {}


def _broken(carriage: str, edit: Any) -> list[dict[str, Any]]:
    docs = copy.deepcopy(native_docs(carriage))
    edit(docs)
    return docs


def _kind(docs: list[dict[str, Any]], kind: str, index: int = 0) -> dict[str, Any]:
    return [d for d in docs if d["kind"] == kind][index]


@pytest.mark.parametrize(
    "carriage, edit, problem",
    [
        ("http", lambda d: _kind(d, "ServiceEntry")["spec"].update(exportTo=["*"]), "exportTo"),
        ("http", lambda d: _kind(d, "Sidecar", 0)["spec"].update(workloadSelector={"labels": {"a": "b"}}), "default"),
        ("http", lambda d: _kind(d, "Sidecar", 1)["spec"]["egress"][0].update(hosts=["*/*"]), "import"),
        ("http", lambda d: _kind(d, "Gateway")["spec"]["servers"][0].update(hosts=["*"]), "mesh mTLS"),
        (
            "http",
            lambda d: _kind(d, "VirtualService")["spec"]["http"][1]["route"][0]["destination"].update(
                host="httpbin.org"
            ),
            "gateway hop reaches",
        ),
        ("http", lambda d: d.remove(_kind(d, "VirtualService", 1)), "cover the ServiceEntry's hosts"),
        (
            "https-upgrade",
            lambda d: _kind(d, "DestinationRule")["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"].pop(
                "credentialName"
            ),
            "originate TLS",
        ),
        (
            "https-passthrough",
            lambda d: _kind(d, "VirtualService")["spec"]["tcp"][0]["match"][0].update(port=443),
            "gateway port 444",
        ),
    ],
)
def test_a_native_translation_that_breaks_the_shared_shape_is_refused(carriage: str, edit: Any, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        rule_of_native_resources(_broken(carriage, edit))


# ------------------------------------------------------------------------------- the vendor's resource


def test_the_vendor_crd_is_a_valid_custom_resource_definition() -> None:
    (crd,) = [d for d in yaml.safe_load_all(VENDOR_CRD_SOURCES[0].read_text(encoding="utf-8")) if d]
    kubernetes_validate.validate(crd, "1.35", strict=True)
    assert crd["spec"]["names"]["kind"] == "ASMEgressTrafficPolicy"
    assert crd["spec"]["group"] == "istio.alibabacloud.com"


@pytest.mark.parametrize("carriage", CARRIAGES)
def test_vendor_manifests_validate_strictly(carriage: str, validator: Validator) -> None:
    assert validator.validate(vendor_doc(carriage)) == []


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda s: s["egressRules"][0]["from"][0].update(workloadselector={"app": "sleep-a"}), "workloadselector"),
        (lambda s: s["egressRules"][0]["to"][0]["port"].update(protocol="HTTP2"), "HTTP2"),
        (lambda s: s["egressRules"][0]["to"][0]["byEgressGateway"].update(port="80"), "'80'"),
        (lambda s: s.update(egressRule=s.pop("egressRules")), "egressRule"),
        (lambda s: s["egressRules"][0]["to"][0].pop("hosts"), "hosts"),
    ],
)
def test_the_vendor_schema_rejects_what_the_seed_never_shows(edit: Any, fragment: str, validator: Validator) -> None:
    doc = copy.deepcopy(vendor_doc("http"))
    edit(doc["spec"])
    problems = validator.validate(doc)
    assert problems and fragment in str(problems)


# -------------------------------------------------------------------------------------------- the mapping


def _schema_fields(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    yield prefix
    for name, child in (schema.get("properties") or {}).items():
        yield from _schema_fields(child, f"{prefix}.{name}" if prefix else name)
    if "items" in schema:
        yield from _schema_fields(schema["items"], f"{prefix}[]")


def test_the_mapping_covers_every_field_the_seeds_policies_use() -> None:
    used = {
        path for c in CARRIAGES for path in policy_fields(vendor_doc(c)) if path.split(".")[0] in ("metadata", "spec")
    }
    mapped = {m.policy_field for m in FIELD_MAPPING}
    assert used - mapped == set()
    assert {
        "metadata.name",
        "spec.egressRules[].from[].workloadSelector",
        "spec.egressRules[].to[].byEgressGateway",
        "spec.egressRules[].to[].httpsUpgrade.port",
    } <= used


def test_the_mapping_names_only_fields_of_the_vendor_kind() -> None:
    (crd,) = [d for d in yaml.safe_load_all(VENDOR_CRD_SOURCES[0].read_text(encoding="utf-8")) if d]
    known = set(_schema_fields(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])) | {
        "metadata.name",
        "metadata.namespace",
    }
    mapped = {m.policy_field for m in FIELD_MAPPING} - {IMPLICIT_GATEWAY_MTLS}
    assert mapped - known == set()


def test_policy_fields_treat_label_maps_and_empty_objects_as_one_field() -> None:
    doc = {"spec": {"a": {}, "rules": [{"workloadSelector": {"app": "x", "tier": "y"}, "n": 1, "hosts": ["a", "b"]}]}}
    assert list(policy_fields(doc)) == [
        "spec.a",
        "spec.rules[].workloadSelector",
        "spec.rules[].n",
        "spec.rules[].hosts",
    ]


def test_the_etp_scenario_docstring_holds_the_mapping_table() -> None:
    docstring = ast.get_docstring(ast.parse((PROJECT_ROOT / "scenarios" / "test_etp.py").read_text(encoding="utf-8")))
    assert docstring is not None and mapping_table() in docstring
    assert all(len(line) <= 120 for line in mapping_table().splitlines())
    assert mapping_record()[0] == {
        "policyField": "metadata.name",
        "nativeResource": "Gateway",
        "nativeField": "metadata.name, in istio-system",
    }


def test_native_manifests_name_only_the_hosts_and_namespaces_of_the_seed() -> None:
    hosts = {"www.httpbin.org", "httpbin.org", "www.alibabacloud.com"}
    for path in sorted((MANIFESTS_DIR / "scenarios" / "etp" / "native").glob("*.yaml")):
        for doc in manifests.render(path):
            assert doc["metadata"]["namespace"] in {"mytest", "istio-system"}, path.name
            assert set(doc["spec"].get("hosts", [])) <= hosts, path.name


# ------------------------------------------------------------------------------------- the etp fixture


def policies(provider: EtpProvider, labelled: bool = False) -> tuple[RecordingRuntime, EgressPolicies, Client]:
    labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
    if labelled:
        labels["security.istio.io/tlsMode"] = "istio"
    runtime = RecordingRuntime(gateway_labels=labels)
    step = new_step(runtime, "ETP-02")
    etp = EgressPolicies(step, EgressGateway(step, runtime.gateway), PROVIDERS[provider])
    return runtime, etp, Client(step, runtime.workload(SLEEP_A))


def applied_kinds(runtime: RecordingRuntime) -> list[list[str]]:
    return [[f"{r.kind} {r.namespace}/{r.name}" for r in refs] for refs in calls_of(runtime, "apply")]


def test_native_policy_brings_the_gateway_hop_and_the_test_ca_and_records_both() -> None:
    runtime, etp, sleep_a = policies(EtpProvider.NATIVE)
    policy = etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80, https_upgrade_port=443)
    applied = applied_kinds(runtime)
    assert applied[0] == ["DestinationRule mytest/egress-conformance-gateway-hop"]
    assert applied[1] == ["Secret istio-system/egress-conformance-test-ca"]
    assert applied[2][0] == "ServiceEntry mytest/httpbin-service-http" and len(applied) == 3
    run = etp._step.run
    assert [a.reason for a in run.adaptations] == [GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION]
    report = run.details[REPORT_KEY]
    assert report["provider"] == "native" and report["fieldMapping"] == mapping_record()
    assert report["rules"] == [
        {"rule": policy.rule.record(), "manifests": ["etp/native/https-upgrade.yaml"], "revoked": False}
    ]


def test_native_policy_on_a_labelled_gateway_needs_no_hop_adaptation() -> None:
    runtime, etp, sleep_a = policies(EtpProvider.NATIVE, labelled=True)
    etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80)
    assert [refs[0].split()[0] for refs in applied_kinds(runtime)] == ["ServiceEntry"]
    assert etp._step.run.adaptations == []


def test_vendor_policy_is_the_vendor_resource_alone_and_revocation_deletes_it() -> None:
    runtime, etp, sleep_a = policies(EtpProvider.VENDOR)
    policy = etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80, https_upgrade_port=443)
    # The seed's environment first (its namespace), then the policy; revoking deletes the policy only.
    assert applied_kinds(runtime) == [
        ["Namespace None/istio-egress"],
        ["ASMEgressTrafficPolicy istio-egress/egress-by-egressgateway"],
    ]
    etp.revoke(policy)
    (deleted,) = calls_of(runtime, "delete")
    assert [(r.kind, r.namespace, r.name) for r in deleted] == [
        ("ASMEgressTrafficPolicy", "istio-egress", "egress-by-egressgateway")
    ]
    report = etp._step.run.details[REPORT_KEY]
    assert report["provider"] == "vendor" and report["rules"][0]["revoked"] is True
    assert etp._step.run.adaptations == []


def test_a_policy_for_another_workload_is_refused_before_anything_is_applied() -> None:
    runtime, etp, sleep_a = policies(EtpProvider.NATIVE)
    with pytest.raises(PolicyError, match="expresses"):
        etp.allow(sleep_a, "httpbin-service-http", ("httpbin.org",), HTTP_80, gateway_port=80)
    assert calls_of(runtime, "apply") == []


def test_a_mesh_without_the_vendor_kind_fails_naming_the_option() -> None:
    runtime, etp, sleep_a = policies(EtpProvider.VENDOR)

    def refuse(docs: Any) -> Any:
        raise RuntimeError("ASMEgressTrafficPolicy (istio.alibabacloud.com/v1) is not served by the cluster")

    runtime.apply = refuse  # type: ignore[method-assign]
    with pytest.raises(
        PolicyError, match=r"--etp-provider vendor: applying etp/vendor/http\.yaml failed: .*not served"
    ):
        etp.allow(sleep_a, "httpbin-service-http", HTTPBIN, HTTP_80, gateway_port=80)
    assert REPORT_KEY not in etp._step.run.details
