"""The external world offline: the CoreDNS edit, the rendered manifests, and deploy/remove against a
recording stand-in for ``Kube`` (the class's contract, no API server)."""

from __future__ import annotations

import base64
import copy
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core.manifests import Document, render
from conformance.core.timeouts import Timeouts
from conformance.kube.api import AppliedObject, ExecResult, KubeError, ObjectRef, PodInfo
from conformance.world import external
from conformance.world.corefile import (
    DNS_BLOCK_BEGIN,
    DNS_BLOCK_END,
    CorefileError,
    corefile_reloads_itself,
    dns_block_addresses,
    render_dns_block,
    server_block_zones,
    with_dns_block,
    without_dns_block,
)
from conformance.world.external import (
    COREDNS_CONFIGMAP,
    COREDNS_DEPLOYMENT,
    COREFILE_REVISION_ANNOTATION,
    EXTERNAL_WORLD_LABEL,
    PUBLIC_HOSTS,
    ExternalWorld,
    ExternalWorldError,
    provide_external_world,
)
from conformance.world.pki import RunPKI
from tests.fake_apiserver import merge_patch
from tests.fakes.kube import KubeStandIn

DATA = Path(__file__).parent / "data"
KUBEADM_COREFILE: str = yaml.safe_load((DATA / "kubeadm-coredns-configmap.yaml").read_text())["data"]["Corefile"]
SAMPLE_ADDRESSES = {h.name: f"10.96.10.{i}" for i, h in enumerate(PUBLIC_HOSTS, start=1)}

#: A Corefile that already carries other customisations: a stub domain, a hosts plugin in the main
#: block, a snippet, comments, and no trailing newline.
CUSTOMISED_COREFILE = """\
(common) {
    errors
    cache 30
}
# corporate resolver for internal names
corp.example:53 {
    import common
    forward . 10.0.0.53
}
.:53 {
    errors
    health {
       lameduck 5s
    }
    hosts {
        192.0.2.10 registry.corp.example
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}"""

FAST = Timeouts(rollout=5, delete=5, dns_ready=0.2, converge=0.2, request=5, poll_interval=0.001)

IMAGES = {
    "docker.io/curlimages/curl:8.16.0",
    "docker.io/mccutchen/go-httpbin:v2.15.0",
    "docker.io/envoyproxy/envoy:v1.36.2",
    "docker.io/library/nginx:1.29.3",
}


@pytest.fixture(scope="module")
def pki() -> RunPKI:
    return external.new_pki()


# ------------------------------------------------------------------------------------------- Corefile


@pytest.mark.parametrize(
    "original",
    [KUBEADM_COREFILE, KUBEADM_COREFILE.rstrip("\n"), CUSTOMISED_COREFILE, ""],
    ids=["kubeadm", "kubeadm-no-final-newline", "customised", "empty"],
)
def test_dns_block_round_trip_is_byte_exact(original: str) -> None:
    block = render_dns_block(SAMPLE_ADDRESSES)
    edited = with_dns_block(original, block)
    assert edited.startswith(original)
    assert block in edited
    assert without_dns_block(edited) == original


@pytest.mark.parametrize("original", [KUBEADM_COREFILE, CUSTOMISED_COREFILE])
def test_dns_block_apply_twice_equals_once(original: str) -> None:
    block = render_dns_block(SAMPLE_ADDRESSES)
    once = with_dns_block(original, block)
    assert with_dns_block(once, block) == once
    assert once.count(DNS_BLOCK_BEGIN) == 1


def test_dns_block_is_replaced_when_addresses_change() -> None:
    first = with_dns_block(KUBEADM_COREFILE, render_dns_block(SAMPLE_ADDRESSES))
    moved = {**SAMPLE_ADDRESSES, "test.com": "10.96.99.99"}
    second = with_dns_block(first, render_dns_block(moved))
    assert dns_block_addresses(second) == moved
    assert second.count(DNS_BLOCK_BEGIN) == 1
    assert without_dns_block(second) == KUBEADM_COREFILE


def test_dns_block_keeps_other_blocks_intact() -> None:
    edited = with_dns_block(CUSTOMISED_COREFILE, render_dns_block(SAMPLE_ADDRESSES))
    zones = server_block_zones(edited)
    assert zones[:2] == ["corp.example", "."]
    assert sorted(zones[2:]) == sorted(SAMPLE_ADDRESSES)
    assert "(common)" not in zones  # snippets are not server blocks


def test_dns_block_maps_every_public_name_to_its_address() -> None:
    block = render_dns_block(SAMPLE_ADDRESSES)
    assert dns_block_addresses(KUBEADM_COREFILE + "\n" + block) == SAMPLE_ADDRESSES
    assert sorted(server_block_zones(block)) == sorted(h.name for h in PUBLIC_HOSTS)
    assert block.startswith(DNS_BLOCK_BEGIN + "\n")
    assert block.endswith(DNS_BLOCK_END + "\n")
    lines = [line.strip() for line in block.splitlines()]
    # hosts plugin with inline entries, a short TTL, no reverse records; one server block, port 53
    assert lines[1].endswith("{") and all(f"{h}:53" in lines[1] for h in SAMPLE_ADDRESSES)
    assert "hosts {" in lines and "ttl 30" in lines and "no_reverse" in lines
    assert block.count("{") == block.count("}") == 2


def test_dns_block_without_reverse_marker_is_an_error() -> None:
    broken = KUBEADM_COREFILE + "\n" + DNS_BLOCK_BEGIN + "\naliyun.com:53 {\n}\n"
    with pytest.raises(CorefileError, match="end marker"):
        without_dns_block(broken)


@pytest.mark.parametrize("key", ["test.com:53", "dns://aliyun.com", "WWW.HTTPBIN.ORG.", "httpbin.org"])
def test_dns_block_refuses_names_the_corefile_already_serves(key: str) -> None:
    corefile = KUBEADM_COREFILE + f"{key} {{\n    forward . 10.0.0.1\n}}\n"
    with pytest.raises(CorefileError, match="already has a server block"):
        with_dns_block(corefile, render_dns_block(SAMPLE_ADDRESSES))


@pytest.mark.parametrize("key", ["aliyun.com:5353", "tls://test.com", "example.org:53", "sub.test.com"])
def test_dns_block_ignores_other_ports_and_names(key: str) -> None:
    corefile = KUBEADM_COREFILE + f"{key} {{\n    forward . 10.0.0.1\n}}\n"
    edited = with_dns_block(corefile, render_dns_block(SAMPLE_ADDRESSES))
    assert without_dns_block(edited) == corefile


@pytest.mark.parametrize("addresses", [{"aliyun.com": "not-an-ip"}, {"bad_name!": "10.0.0.1"}, {}])
def test_dns_block_rejects_bad_input(addresses: dict[str, str]) -> None:
    with pytest.raises(CorefileError):
        render_dns_block(addresses)


def test_reload_plugin_detection() -> None:
    assert corefile_reloads_itself(KUBEADM_COREFILE)
    assert corefile_reloads_itself(CUSTOMISED_COREFILE)
    without = "\n".join(line for line in KUBEADM_COREFILE.splitlines() if line.strip() != "reload")
    assert not corefile_reloads_itself(without)
    assert not corefile_reloads_itself(without + "\n# reload\n")


# ------------------------------------------------------------------------------------------- manifests


def manifest_variables(pki: RunPKI) -> dict[str, dict[str, str]]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    common = {"NAMESPACE": "external", "PROBE_NAMESPACE": "external-probe"}
    workloads = {**common, "HTTPBIN_IP": "10.96.20.20", "REVISION": "0123456789abcdef"}
    secret = {
        "SECRET_NAMESPACE": "default",
        "SECRET_NAME": "sleep-secret",
        "TLS_CRT": b64(pki.client.certificate_pem()),
        "TLS_KEY": b64(pki.client.private_key_pem()),
        "CA_CRT": b64(pki.ca_pem()),
    }
    return {
        external.NAMESPACE_MANIFEST: common,
        external.SERVICES_MANIFEST: common,
        external.PROBE_MANIFEST: workloads,
        external.TLS_SECRET_MANIFEST: secret,
        external.CA_SECRET_MANIFEST: secret,
        **{m: workloads for m in external.WORKLOAD_MANIFESTS},
    }


@pytest.fixture(scope="module")
def rendered(pki: RunPKI) -> dict[str, list[Document]]:
    return {path: render(path, variables) for path, variables in manifest_variables(pki).items()}


def all_docs(rendered: Mapping[str, list[Document]]) -> list[Document]:
    return [doc for docs in rendered.values() for doc in docs]


def find(docs: Iterable[Document], kind: str, name: str) -> Document:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}"
    return matches[0]


def test_every_external_manifest_is_covered_here() -> None:
    on_disk = {str(p.relative_to(p.parents[1])) for p in (MANIFESTS_DIR / "external").glob("*.yaml")}
    assert on_disk == set(manifest_variables(external.new_pki()))


def test_namespaces_are_outside_the_mesh(rendered: dict[str, list[Document]]) -> None:
    namespaces = rendered[external.NAMESPACE_MANIFEST]
    assert {n["metadata"]["name"] for n in namespaces} == {"external", "external-probe"}
    for namespace in namespaces:
        labels = namespace["metadata"]["labels"]
        assert labels[EXTERNAL_WORLD_LABEL] == "true"
        assert labels["istio-injection"] == "disabled"
        assert not any(key.startswith("istio.io/dataplane-mode") for key in labels)
        assert "istio.io/use-waypoint" not in labels


def test_workloads_opt_out_of_injection_and_ambient(rendered: dict[str, list[Document]]) -> None:
    deployments = [d for d in all_docs(rendered) if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"httpbin", "origins", "mtls-ingress", "probe"}
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["sidecar.istio.io/inject"] == "false"
        assert labels["istio.io/dataplane-mode"] == "none"
        assert labels.items() >= deployment["spec"]["selector"]["matchLabels"].items()


def test_only_the_pinned_images_are_used(rendered: dict[str, list[Document]]) -> None:
    images = {
        c["image"]
        for d in all_docs(rendered)
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == IMAGES


def test_one_service_per_public_name_with_http_and_https(rendered: dict[str, list[Document]]) -> None:
    docs = all_docs(rendered)
    app_of = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]["app"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    for host in PUBLIC_HOSTS:
        service = find(docs, "Service", host.service)
        assert service["metadata"]["labels"]["egress-conformance/public-host"] == host.name
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert (ports["http"]["port"], ports["https"]["port"]) == (80, 443)
        assert (ports["http"]["appProtocol"], ports["https"]["appProtocol"]) == ("http", "https")
        assert service["spec"]["selector"]["app"] == app_of[host.frontend.value]
    assert find(docs, "Service", external.HTTPBIN_SERVICE)["spec"]["selector"]["app"] == app_of["httpbin"]


def test_server_secrets_are_mounted_by_their_frontends(rendered: dict[str, list[Document]]) -> None:
    docs = all_docs(rendered)
    for frontend, secret in external.SERVER_SECRETS.items():
        volumes = find(docs, "Deployment", frontend.value)["spec"]["template"]["spec"]["volumes"]
        assert secret in {v.get("secret", {}).get("secretName") for v in volumes}


def test_origins_nginx_config(rendered: dict[str, list[Document]]) -> None:
    config = find(all_docs(rendered), "ConfigMap", "origins-nginx")["data"]["origins.conf"]
    assert "$$" not in config and "$host" in config and "$scheme" in config
    for host in PUBLIC_HOSTS:
        if host.frontend is external.Frontend.ORIGINS:
            assert host.name in config
    assert "return 301 https://$host/;" in config
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in config
    assert "proxy_pass http://10.96.20.20:80;" in config


def envoy_config(rendered: Mapping[str, list[Document]]) -> dict[str, Any]:
    text = find(all_docs(rendered), "ConfigMap", "mtls-ingress-envoy")["data"]["envoy.yaml"]
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_mtls_ingress_requires_client_certificates_on_443(rendered: dict[str, list[Document]]) -> None:
    listeners = {x["name"]: x for x in envoy_config(rendered)["static_resources"]["listeners"]}
    tls = listeners["mutual_tls"]["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls["@type"].endswith("DownstreamTlsContext")
    assert tls["require_client_certificate"] is True
    common = tls["common_tls_context"]
    assert common["validation_context"]["trusted_ca"]["filename"].endswith("/ca.crt")
    assert "transport_socket" not in listeners["plain_http"]["filter_chains"][0]
    ports = {x["name"]: x["address"]["socket_address"]["port_value"] for x in listeners.values()}
    assert ports == {"plain_http": 8080, "mutual_tls": 8443}


def test_mtls_ingress_denies_test_client_on_status_418(pki: RunPKI, rendered: dict[str, list[Document]]) -> None:
    listeners = {x["name"]: x for x in envoy_config(rendered)["static_resources"]["listeners"]}
    hcm = listeners["mutual_tls"]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["name"] for f in hcm["http_filters"]]
    assert filters == ["envoy.filters.http.rbac", "envoy.filters.http.router"]
    rules = hcm["http_filters"][0]["typed_config"]["rules"]
    assert rules["action"] == "DENY"
    (policy,) = rules["policies"].values()
    assert policy["permissions"] == [{"url_path": {"path": {"prefix": "/status/418"}}}]
    principal = policy["principals"][0]["authenticated"]["principal_name"]["exact"]
    assert principal in pki.client.dns_names
    # the plain listener has no RBAC: only mTLS clients are subject to the deny
    plain = listeners["plain_http"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in plain["http_filters"]] == ["envoy.filters.http.router"]


def test_mtls_ingress_routes_to_httpbin_by_address(rendered: dict[str, list[Document]]) -> None:
    (cluster,) = envoy_config(rendered)["static_resources"]["clusters"]
    assert cluster["type"] == "STATIC"
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "10.96.20.20", "port_value": 80}


def test_tls_secret_carries_the_pem_material(pki: RunPKI, rendered: dict[str, list[Document]]) -> None:
    (secret,) = rendered[external.TLS_SECRET_MANIFEST]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "tls.crt": pki.client.certificate_pem(),
        "tls.key": pki.client.private_key_pem(),
        "ca.crt": pki.ca_pem(),
    }
    (ca_only,) = rendered[external.CA_SECRET_MANIFEST]
    assert set(ca_only["data"]) == {"ca.crt"}


def test_probe_client_mounts_sleep_secret_where_the_seeds_do(rendered: dict[str, list[Document]]) -> None:
    pod = find(all_docs(rendered), "Deployment", "probe")["spec"]["template"]["spec"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    (volume,) = pod["volumes"]
    assert mount["mountPath"] == external.CLIENT_TLS_DIR
    assert volume["secret"]["secretName"] == external.CLIENT_SECRET_NAME


# ------------------------------------------------------------------------------------ stand-in Kube


class RecordingKube(KubeStandIn):
    """Keeps objects in memory, allocates ClusterIPs, and answers the probe's curl from the Corefile.

    ``dns_lag`` is how many DNS probes still see the old Corefile after it changes (CoreDNS's reload).
    """

    def __init__(self, corefile: str | None = KUBEADM_COREFILE, dns_lag: int = 0) -> None:
        self.objects: dict[ObjectRef, dict[str, Any]] = {}
        self.applied: list[ObjectRef] = []
        self.deleted: list[ObjectRef] = []
        self.released: list[ObjectRef] = []
        self.patches: list[tuple[ObjectRef, Mapping[str, Any]]] = []
        self.rollouts: list[tuple[str, str, str]] = []
        self.commands: list[list[str]] = []
        self.exec_failures = 0
        self.coredns_pods = ["coredns-1", "coredns-2"]
        self._next_ip = ipaddress.ip_address("10.96.0.100")
        self.dns_lag = dns_lag
        self._served_corefile = corefile or ""
        self._pending_probes = 0
        if corefile is not None:
            self.objects[COREDNS_CONFIGMAP] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "data": {"Corefile": corefile},
            }
        self.objects[COREDNS_DEPLOYMENT] = {"metadata": {"name": "coredns"}, "spec": {"template": {}}}

    def apply(
        self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None, *, dry_run: bool = False
    ) -> list[AppliedObject]:
        applied = []
        for doc in docs:
            meta = doc["metadata"]
            ref = ObjectRef(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace", default_namespace))
            obj = copy.deepcopy(dict(doc))
            if ref.kind == "Service":
                previous = self.objects.get(ref, {}).get("spec", {}).get("clusterIP")
                if previous is None:
                    previous, self._next_ip = str(self._next_ip), self._next_ip + 1
                obj["spec"]["clusterIP"] = previous
            created = ref not in self.objects or ref in self.applied
            self.objects[ref] = obj
            self.applied.append(ref)
            applied.append(AppliedObject(ref, created, copy.deepcopy(obj)))
        return applied

    def apply_manifest(
        self, relative: str | Path, variables: Mapping[str, str] | None = None, default_namespace: str | None = None
    ) -> list[AppliedObject]:
        return self.apply(render(relative, variables), default_namespace)

    def release(self, refs: Iterable[ObjectRef]) -> None:
        self.released.extend(reversed(list(refs)))

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None:
        # Like Kube.delete: in reverse order, dependents before what they depend on.
        for ref in reversed(list(refs)):
            self.deleted.append(ref)
            self.objects.pop(ref, None)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        obj = self.objects.get(ref)
        return copy.deepcopy(obj) if obj is not None else None

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.patches.append((ref, copy.deepcopy(dict(patch))))
        if ref.kind == "Pod":
            self.objects.setdefault(ref, {"metadata": {}})
        self.objects[ref] = merge_patch(self.objects[ref], patch)
        if ref == COREDNS_CONFIGMAP:
            self._pending_probes = self.dns_lag
        return copy.deepcopy(self.objects[ref])

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None:
        assert ObjectRef("apps/v1", kind, name, namespace) in self.objects
        self.rollouts.append((kind, namespace, name))

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        if (namespace, label_selector) == ("kube-system", "k8s-app=kube-dns"):
            return [PodInfo(namespace, name, None, "Running", True, ("coredns",)) for name in self.coredns_pods]
        if ObjectRef("apps/v1", "Deployment", "probe", namespace) not in self.objects:
            return []
        return [PodInfo(namespace, "probe-7d9f", "10.244.0.9", "Running", True, ("curl",))]

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        self.commands.append(command)
        if self.exec_failures > 0:
            self.exec_failures -= 1
            raise KubeError(f"exec in {namespace}/{pod}: 500 Internal Server Error")
        assert "%{url_effective} %{remote_ip}\n" in command, command
        return self._resolve(command)

    def corefile(self) -> str:
        return str(self.objects[COREDNS_CONFIGMAP]["data"]["Corefile"])

    def _resolve(self, command: list[str]) -> ExecResult:
        if self._pending_probes > 0:
            self._pending_probes -= 1
        elif COREDNS_CONFIGMAP in self.objects:
            self._served_corefile = self.corefile()
        answers = dns_block_addresses(self._served_corefile)
        urls = [arg for arg in command if arg.startswith("http://")]
        lines = [f"{url} {answers.get(urlsplit(url).hostname or '', '')}" for url in urls]
        return ExecResult(stdout="\n".join(lines) + "\n", stderr="", exit_code=0 if answers else 6)


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


def test_deploy_and_remove_are_symmetric(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    world.configure_dns()
    world.wait_dns_ready()
    world.create_client_secrets("default")
    applied = set(kube.applied)
    assert {r.kind for r in applied} >= {"Namespace", "Secret", "Service", "ConfigMap", "Deployment"}
    assert dns_block_addresses(kube.corefile()) == dict(world.addresses)

    world.remove()

    assert set(kube.deleted) == applied
    assert len(kube.deleted) == len(applied)
    assert kube.corefile() == KUBEADM_COREFILE
    assert world.applied == ()
    # namespaces go last: objects inside them are deleted first
    assert [r.kind for r in kube.deleted][-2:] == ["Namespace", "Namespace"]


def test_remove_releases_objects_that_were_there_before_instead_of_deleting_them(
    kube: RecordingKube, pki: RunPKI
) -> None:
    # A user's cluster already has the probe namespace (say, from their own setup): the harness must give
    # back its fields on it at the end, never delete it.
    existing = ObjectRef("v1", "Namespace", "external-probe")
    kube.objects[existing] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "external-probe"}}
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)

    world.remove()

    assert kube.released == [existing]
    assert existing not in kube.deleted
    assert ObjectRef("v1", "Namespace", "external") in kube.deleted


def test_deploy_waits_for_every_deployment(kube: RecordingKube, pki: RunPKI) -> None:
    ExternalWorld(kube, FAST, namespace="xw").deploy(pki)
    assert sorted(kube.rollouts) == sorted(
        [
            ("Deployment", "xw", "httpbin"),
            ("Deployment", "xw", "origins"),
            ("Deployment", "xw", "mtls-ingress"),
            ("Deployment", "xw-probe", "probe"),
        ]
    )
    # Services (whose addresses the configs need) exist before any workload is applied
    kinds = [r.kind for r in kube.applied]
    assert max(i for i, k in enumerate(kinds) if k == "Service") < kinds.index("Deployment")


def test_each_public_name_gets_its_own_address(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    addresses = world.addresses
    assert set(addresses) == {h.name for h in PUBLIC_HOSTS}
    assert len(set(addresses.values())) == len(PUBLIC_HOSTS)
    service = kube.get(ObjectRef("v1", "Service", "test-com", "external"))
    assert service is not None
    assert world.ingress_ip() == service["spec"]["clusterIP"] == addresses["test.com"]
    with pytest.raises(ExternalWorldError):
        world.address_of("example.com")


def test_workload_configs_point_at_the_httpbin_address(kube: RecordingKube, pki: RunPKI) -> None:
    ExternalWorld(kube, FAST).deploy(pki)
    httpbin = kube.objects[ObjectRef("v1", "Service", "httpbin", "external")]["spec"]["clusterIP"]
    nginx = kube.objects[ObjectRef("v1", "ConfigMap", "origins-nginx", "external")]["data"]["origins.conf"]
    envoy = kube.objects[ObjectRef("v1", "ConfigMap", "mtls-ingress-envoy", "external")]["data"]["envoy.yaml"]
    assert f"proxy_pass http://{httpbin}:80;" in nginx
    assert f'"{httpbin}"' in envoy


def test_revision_changes_with_the_pki(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    origins = ObjectRef("apps/v1", "Deployment", "origins", "external")
    world.deploy(pki)
    first = kube.objects[origins]["spec"]["template"]["metadata"]["annotations"]["egress-conformance/revision"]
    world.deploy(pki)
    assert kube.objects[origins]["spec"]["template"]["metadata"]["annotations"]["egress-conformance/revision"] == first
    world.deploy(external.new_pki())
    assert kube.objects[origins]["spec"]["template"]["metadata"]["annotations"]["egress-conformance/revision"] != first


def test_configure_dns_is_idempotent(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    world.configure_dns()
    after_first = kube.corefile()
    world.configure_dns()
    assert kube.corefile() == after_first
    assert [ref.kind for ref, _ in kube.patches] == ["ConfigMap", "Pod", "Pod"]
    world.revert_dns()
    world.revert_dns()
    assert kube.corefile() == KUBEADM_COREFILE
    assert [ref.kind for ref, _ in kube.patches].count("ConfigMap") == 2


def test_configure_dns_before_deploy_is_refused(kube: RecordingKube) -> None:
    with pytest.raises(ExternalWorldError, match="deploy"):
        ExternalWorld(kube, FAST).configure_dns()


def test_configure_dns_without_kubeadm_coredns_says_so(pki: RunPKI) -> None:
    kube = RecordingKube(corefile=None)
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    with pytest.raises(ExternalWorldError, match="no Corefile"):
        world.configure_dns()
    world.remove()  # nothing to revert, still deletes what was applied
    assert set(kube.deleted) == set(kube.applied)


def test_remove_also_clears_a_leftover_block_from_an_earlier_run(pki: RunPKI) -> None:
    leftover = with_dns_block(KUBEADM_COREFILE, render_dns_block(SAMPLE_ADDRESSES))
    kube = RecordingKube(corefile=leftover)
    ExternalWorld(kube, FAST).remove()
    assert kube.corefile() == KUBEADM_COREFILE


def test_corefile_without_reload_rolls_coredns(pki: RunPKI) -> None:
    static = "\n".join(line for line in KUBEADM_COREFILE.splitlines() if line.strip() != "reload") + "\n"
    kube = RecordingKube(corefile=static)
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    kube.rollouts.clear()
    world.configure_dns()
    world.revert_dns()
    assert kube.rollouts == [("Deployment", "kube-system", "coredns")] * 2
    revisions = [
        p["spec"]["template"]["metadata"]["annotations"][COREFILE_REVISION_ANNOTATION]
        for ref, p in kube.patches
        if ref == COREDNS_DEPLOYMENT
    ]
    assert len(revisions) == 2 and revisions[0] != revisions[1]
    assert kube.corefile() == static


def test_kubeadm_corefile_needs_no_coredns_roll_only_a_pod_nudge(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    kube.rollouts.clear()
    world.configure_dns()
    world.revert_dns()
    assert COREDNS_DEPLOYMENT not in [ref for ref, _ in kube.patches]
    assert kube.rollouts == []
    nudges = [
        (ref.name, p["metadata"]["annotations"][COREFILE_REVISION_ANNOTATION])
        for ref, p in kube.patches
        if ref.kind == "Pod"
    ]
    assert [name for name, _ in nudges] == ["coredns-1", "coredns-2"] * 2
    assert nudges[0][1] != nudges[2][1]  # a new value each time, so each edit is an update


def test_a_failed_pod_nudge_does_not_stop_the_dns_change(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)

    def refuse(namespace: str, label_selector: str) -> list[PodInfo]:
        raise KubeError("pods is forbidden")

    kube.pods = refuse  # type: ignore[method-assign]
    world.configure_dns()
    assert dns_block_addresses(kube.corefile()) == dict(world.addresses)


def test_wait_dns_ready_polls_until_coredns_reloads(pki: RunPKI) -> None:
    kube = RecordingKube(dns_lag=3)
    world = ExternalWorld(kube, replace(FAST, dns_ready=30))
    world.deploy(pki)
    world.configure_dns()
    world.wait_dns_ready()
    probes = [c for c in kube.commands if "%{url_effective} %{remote_ip}\n" in c]
    assert len(probes) == 6  # three stale answers, then three in a row from the new Corefile
    assert {arg for arg in probes[0] if arg.startswith("http://")} == {f"http://{h.name}/" for h in PUBLIC_HOSTS}


def test_wait_dns_ready_gives_up_at_the_deadline_naming_the_names(pki: RunPKI) -> None:
    kube = RecordingKube(dns_lag=10**6)
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    world.configure_dns()
    with pytest.raises(ExternalWorldError, match="dns_ready") as raised:
        world.wait_dns_ready()
    for host in PUBLIC_HOSTS:
        assert host.name in str(raised.value)


def test_wait_dns_ready_rejects_wrong_addresses(pki: RunPKI) -> None:
    kube = RecordingKube()
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    wrong = {h.name: "10.1.1.1" for h in PUBLIC_HOSTS}
    kube.objects[COREDNS_CONFIGMAP]["data"]["Corefile"] = with_dns_block(KUBEADM_COREFILE, render_dns_block(wrong))
    with pytest.raises(ExternalWorldError, match=r"10\.1\.1\.1"):
        world.wait_dns_ready()


def test_gateway_secret_needs_istio_system(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST)
    world.deploy(pki)
    with pytest.raises(ExternalWorldError, match="install Istio first"):
        world.create_gateway_client_secret()
    kube.objects[ObjectRef("v1", "Namespace", "istio-system")] = {"metadata": {"name": "istio-system"}}
    ref = world.create_gateway_client_secret()
    assert ref == ObjectRef("v1", "Secret", "test.client", "istio-system")
    data = kube.objects[ref]["data"]
    assert base64.b64decode(data["tls.crt"]).decode() == pki.client.certificate_pem()
    assert base64.b64decode(data["ca.crt"]).decode() == pki.ca_pem()
    ca_ref = world.create_ca_secret("istio-system", "external-ca")
    world.remove()
    assert ref in kube.deleted and ca_ref in kube.deleted


def test_secrets_need_a_deployed_world(kube: RecordingKube) -> None:
    with pytest.raises(ExternalWorldError, match="not deployed"):
        ExternalWorld(kube, FAST).create_client_secrets("default")


def test_private_keys_stay_out_of_progress_logs(
    kube: RecordingKube, pki: RunPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with provide_external_world(kube, FAST, pki) as world:
        world.create_client_secrets("default")
    keys = [pki.client.private_key_pem(), *(c.private_key_pem() for c in pki.servers.values())]
    assert caplog.records, "progress lines are expected"
    for key in keys:
        encoded = base64.b64encode(key.encode()).decode()
        assert encoded[:40] not in caplog.text
        assert "PRIVATE KEY" not in caplog.text


def test_provide_external_world_removes_everything_even_on_failure(kube: RecordingKube, pki: RunPKI) -> None:
    with pytest.raises(RuntimeError, match="scenario blew up"), provide_external_world(kube, FAST, pki) as world:
        assert dns_block_addresses(kube.corefile()) == dict(world.addresses)
        raise RuntimeError("scenario blew up")
    assert set(kube.deleted) == set(kube.applied)
    assert kube.corefile() == KUBEADM_COREFILE


def test_provide_external_world_cleans_up_a_failed_deploy(pki: RunPKI) -> None:
    kube = RecordingKube(dns_lag=10**6)
    with pytest.raises(ExternalWorldError), provide_external_world(kube, FAST, pki):
        pass
    assert set(kube.deleted) == set(kube.applied)
    assert kube.corefile() == KUBEADM_COREFILE


def test_wait_dns_ready_rides_out_failed_execs(pki: RunPKI) -> None:
    kube = RecordingKube()
    world = ExternalWorld(kube, replace(FAST, dns_ready=30))
    world.deploy(pki)
    world.configure_dns()
    kube.exec_failures = 2
    world.wait_dns_ready()
    assert len(kube.commands) == 5  # two failed execs, then three good answers in a row


def test_probe_target_is_the_probe_client(kube: RecordingKube, pki: RunPKI) -> None:
    world = ExternalWorld(kube, FAST, namespace="xw")
    world.deploy(pki)
    target = world.probe_target()
    assert (target.namespace, target.label_selector, target.container) == ("xw-probe", "app=external-probe", "curl")
    probe = kube.objects[ObjectRef("apps/v1", "Deployment", "probe", "xw-probe")]
    template = probe["spec"]["template"]
    assert template["metadata"]["labels"]["app"] == "external-probe"
    assert template["spec"]["containers"][0]["name"] == target.container
    assert world.probe_pod().namespace == "xw-probe"


def test_client_file_paths_match_the_secret_keys(rendered: dict[str, list[Document]]) -> None:
    (secret,) = rendered[external.TLS_SECRET_MANIFEST]
    for path in (external.CLIENT_CA_FILE, external.CLIENT_CERT_FILE, external.CLIENT_KEY_FILE):
        directory, _, key = path.rpartition("/")
        assert directory == external.CLIENT_TLS_DIR
        assert key in secret["data"]


def test_provide_external_world_asks_on_exit_whether_to_remove_it(kube: RecordingKube, pki: RunPKI) -> None:
    keep = [False]
    with provide_external_world(kube, FAST, pki, remove_on_exit=lambda: not keep[0]):
        keep[0] = True  # a failed check kept for inspection talks to this world
    assert kube.deleted == []
    assert kube.corefile() != KUBEADM_COREFILE
