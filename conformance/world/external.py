"""The in-cluster "external world": origins standing in for the public hosts the seeds talk to.

What it provides (requirements: the spec's external-world document):

- Namespace ``external`` (configurable) outside every mesh: no injection, no ambient enrollment, and the
  label :data:`EXTERNAL_WORLD_LABEL` that the harness's ``meshConfig.discoverySelectors`` exclude, so
  istiod, sidecars, gateways and ztunnel treat its Services like Internet hosts.
- One Service (own ClusterIP) per public name: aliyun.com, www.aliyun.com, httpbin.org, www.httpbin.org
  and www.alibabacloud.com are served by nginx (``manifests/external/origins.yaml``), test.com by the mTLS
  ingress, a standalone Envoy (``manifests/external/mtls-ingress.yaml``), both in front of go-httpbin.
- CoreDNS resolves those names to those ClusterIPs from any pod: a marked server block of its own is
  appended to the kube-system/coredns Corefile (``hosts`` plugin, inline entries) and removed again,
  leaving the Corefile byte for byte as it was. A separate server block, rather than a ``hosts`` entry in
  the ``.:53`` block, because ``hosts`` may appear only once per server block (a cluster may already use
  it) and because deleting a whole block is an exact inverse of adding it. The block is authoritative
  for exactly the public names, so nothing about them leaks to an upstream resolver. CoreDNS's ``reload``
  plugin (global to the Corefile, kubeadm enables it) picks the change up once the kubelet has refreshed
  the ConfigMap volume, which annotating the CoreDNS pods hastens; without ``reload`` the CoreDNS
  Deployment is rolled.
- Secrets from the run's PKI where the seeds expect them: ``istio-system/test.client`` and
  ``sleep-secret`` in client namespaces (tls.crt, tls.key, ca.crt).
- A probe client (curl, outside the mesh) for the external world's own checks and the DNS wait.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from conformance.core import progress
from conformance.core.expect import ExpectationFailed, eventually
from conformance.core.timeouts import Timeouts
from conformance.istio.components import ISTIO_NAMESPACE
from conformance.kube.api import AppliedObject, KubeError, ObjectRef, PodInfo
from conformance.kube.kube_like import KubeLike
from conformance.probe.curl import PodTarget
from conformance.world.corefile import corefile_reloads_itself, render_dns_block, with_dns_block, without_dns_block
from conformance.world.pki import CLIENT_NAME, Credential, RunPKI

DEFAULT_NAMESPACE = "external"
#: Namespaces carrying this label are outside the mesh's view (meshConfig.discoverySelectors exclude them).
EXTERNAL_WORLD_LABEL = "egress-conformance/external-world"
INGRESS_HOST = "test.com"

#: Where client pods mount ``sleep-secret`` (the seeds' sleep Deployment uses this path).
CLIENT_TLS_DIR = "/etc/sleep/tls"
CLIENT_CA_FILE = f"{CLIENT_TLS_DIR}/ca.crt"
CLIENT_CERT_FILE = f"{CLIENT_TLS_DIR}/tls.crt"
CLIENT_KEY_FILE = f"{CLIENT_TLS_DIR}/tls.key"
CLIENT_SECRET_NAME = "sleep-secret"
#: The egress gateway reads its client credential from its own namespace.
GATEWAY_SECRET_NAMESPACE = ISTIO_NAMESPACE
GATEWAY_SECRET_NAME = CLIENT_NAME

PROBE_SELECTOR = "app=external-probe"
PROBE_CONTAINER = "curl"


class Frontend(StrEnum):
    """The process answering for a public name; also the label of its server certificate."""

    ORIGINS = "origins"
    MTLS_INGRESS = "mtls-ingress"


@dataclass(frozen=True)
class PublicHost:
    name: str
    #: Service in the external namespace whose ClusterIP the name resolves to.
    service: str
    frontend: Frontend


PUBLIC_HOSTS: tuple[PublicHost, ...] = (
    PublicHost("aliyun.com", "aliyun-com", Frontend.ORIGINS),
    PublicHost("www.aliyun.com", "www-aliyun-com", Frontend.ORIGINS),
    PublicHost("httpbin.org", "httpbin-org", Frontend.ORIGINS),
    PublicHost("www.httpbin.org", "www-httpbin-org", Frontend.ORIGINS),
    PublicHost("www.alibabacloud.com", "www-alibabacloud-com", Frontend.ORIGINS),
    PublicHost(INGRESS_HOST, "test-com", Frontend.MTLS_INGRESS),
)

#: Server certificate label -> DNS names it carries (first name = CN).
SERVER_CERTIFICATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {f.value: tuple(h.name for h in PUBLIC_HOSTS if h.frontend is f) for f in Frontend}
)
#: Secret (in the external namespace) holding each frontend's server certificate.
SERVER_SECRETS: Mapping[Frontend, str] = MappingProxyType(
    {Frontend.ORIGINS: "origins-tls", Frontend.MTLS_INGRESS: "mtls-ingress-tls"}
)
#: The backend Service the frontends proxy to (no public name).
HTTPBIN_SERVICE = "httpbin"

NAMESPACE_MANIFEST = "external/namespace.yaml"
SERVICES_MANIFEST = "external/services.yaml"
TLS_SECRET_MANIFEST = "external/tls-secret.yaml"
CA_SECRET_MANIFEST = "external/ca-secret.yaml"
WORKLOAD_MANIFESTS = ("external/httpbin.yaml", "external/origins.yaml", "external/mtls-ingress.yaml")
PROBE_MANIFEST = "external/probe-client.yaml"

COREDNS_CONFIGMAP = ObjectRef("v1", "ConfigMap", "coredns", "kube-system")
COREDNS_DEPLOYMENT = ObjectRef("apps/v1", "Deployment", "coredns", "kube-system")
COREFILE_KEY = "Corefile"
COREFILE_REVISION_ANNOTATION = "egress-conformance/corefile-revision"
#: kubeadm's label on the CoreDNS pods.
COREDNS_SELECTOR = "k8s-app=kube-dns"


class ExternalWorldError(RuntimeError):
    pass


def new_pki() -> RunPKI:
    """A fresh PKI whose server certificates cover every public name of the external world."""
    return RunPKI.generate(SERVER_CERTIFICATES)


def short_digest(*parts: str) -> str:
    """A short stable digest of public values (rolls the pods when certificates or addresses change)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("ascii")).decode("ascii")


# ---------------------------------------------------------------------------------------------- world


class ExternalWorld:
    """Deploys, describes and removes the external world in one cluster."""

    def __init__(
        self,
        kube: KubeLike,
        timeouts: Timeouts,
        namespace: str = DEFAULT_NAMESPACE,
        probe_namespace: str | None = None,
    ) -> None:
        self.kube = kube
        self.timeouts = timeouts
        self.namespace = namespace
        self.probe_namespace = probe_namespace or f"{namespace}-probe"
        #: Everything applied, in order; ``created`` decides whether removal deletes or releases it.
        self._applied: list[AppliedObject] = []
        self._addresses: dict[str, str] = {}
        self._pki: RunPKI | None = None

    # -- description

    @property
    def pki(self) -> RunPKI:
        if self._pki is None:
            raise ExternalWorldError("the external world is not deployed yet")
        return self._pki

    @property
    def addresses(self) -> Mapping[str, str]:
        """Public name -> ClusterIP it resolves to."""
        return MappingProxyType(dict(self._addresses))

    @property
    def applied(self) -> tuple[ObjectRef, ...]:
        return tuple(applied.ref for applied in self._applied)

    def address_of(self, host: str) -> str:
        try:
            return self._addresses[host]
        except KeyError:
            raise ExternalWorldError(f"{host!r} is not a public name of the external world") from None

    def ingress_ip(self) -> str:
        """The mTLS ingress address: what the seeds call INGRESS_GATEWAY_IP (test.com resolves to it)."""
        return self.address_of(INGRESS_HOST)

    def _variables(self) -> dict[str, str]:
        return {"NAMESPACE": self.namespace, "PROBE_NAMESPACE": self.probe_namespace}

    # -- lifecycle

    def deploy(self, pki: RunPKI) -> None:
        """Apply everything (Services first, to learn their addresses) and wait for the rollouts."""
        self._pki = pki
        with progress.step(f"deploying the external world in namespace {self.namespace}"):
            self._apply(NAMESPACE_MANIFEST, self._variables())
            for frontend, secret in SERVER_SECRETS.items():
                self._apply_tls_secret(self.namespace, secret, pki.server(frontend.value))
            self._apply(SERVICES_MANIFEST, self._variables())
            self._addresses = {host.name: self._cluster_ip(host.service) for host in PUBLIC_HOSTS}
            httpbin_ip = self._cluster_ip(HTTPBIN_SERVICE)
            revision = short_digest(pki.fingerprint(), httpbin_ip, *sorted(self._addresses.values()))
            workload_variables = {**self._variables(), "HTTPBIN_IP": httpbin_ip, "REVISION": revision}
            for manifest in WORKLOAD_MANIFESTS:
                self._apply(manifest, workload_variables)
            self._apply_tls_secret(self.probe_namespace, CLIENT_SECRET_NAME, pki.client)
            self._apply(PROBE_MANIFEST, workload_variables)
            for ref in self.applied:
                if ref.kind == "Deployment" and ref.namespace:
                    self.kube.wait_rollout("Deployment", ref.namespace, ref.name, self.timeouts.rollout)

    def configure_dns(self) -> None:
        """Point the public names at the external world (idempotent)."""
        if not self._addresses:
            raise ExternalWorldError("deploy the external world before configuring DNS")
        with progress.step("CoreDNS: resolving the public names to the external world"):
            corefile = self._read_corefile()
            updated = with_dns_block(corefile, render_dns_block(self._addresses))
            if updated != corefile:
                self._write_corefile(updated, running=corefile)

    def revert_dns(self) -> None:
        """Remove the managed block; a no-op when it is not there (or the cluster has no kubeadm CoreDNS)."""
        current = self.kube.get(COREDNS_CONFIGMAP)
        if current is None:
            return
        corefile = str((current.get("data") or {}).get(COREFILE_KEY, ""))
        original = without_dns_block(corefile)
        if original == corefile:
            return
        with progress.step("CoreDNS: restoring the original Corefile"):
            self._write_corefile(original, running=corefile)

    def wait_dns_ready(self, client: PodInfo | None = None) -> None:
        """Poll until ``client`` (default: the probe pod) resolves and reaches every public name."""
        pod = client or self.probe_pod()
        expected = dict(self._addresses)
        last_seen: dict[str, str] = {}

        def resolve() -> dict[str, str]:
            last_seen.clear()
            last_seen.update(self._resolved_addresses(pod, expected))
            return dict(last_seen)

        with progress.step(f"waiting until pod {pod.namespace}/{pod.name} resolves the public names"):
            try:
                eventually(
                    resolve,
                    lambda seen: all(seen.get(host) == ip for host, ip in expected.items()),
                    timeouts=self.timeouts,
                    deadline="dns_ready",
                    # CoreDNS replicas reload on their own timers: one good answer may come from the
                    # replica that already has the new Corefile while the other still answers stale.
                    consecutive=3,
                    description="public names resolve to the external world",
                    tolerated=(KubeError,),
                )
            except ExpectationFailed:
                wrong = {h: last_seen.get(h) or "-" for h, ip in expected.items() if last_seen.get(h) != ip}
                detail = ", ".join(f"{h} -> {ip} (want {expected[h]})" for h, ip in sorted(wrong.items()))
                raise ExternalWorldError(
                    f"deadline dns_ready ({self.timeouts.dns_ready:.0f}s) ran out: from pod "
                    f"{pod.namespace}/{pod.name} {detail}. A Corefile reload error shows in "
                    "`kubectl -n kube-system logs -l k8s-app=kube-dns`."
                ) from None

    def remove(self) -> None:
        """Revert DNS, then delete what this world created and release its fields on objects that were
        there before (both go newest first)."""
        with progress.step("removing the external world"):
            try:
                self.revert_dns()
            finally:
                applied = list(self._applied)
                self._applied.clear()
                created = [a.ref for a in applied if a.created]
                existing = [a.ref for a in applied if not a.created]
                try:
                    if existing:
                        self.kube.release(existing)
                finally:
                    if created:
                        self.kube.delete(created, timeout=self.timeouts.delete, wait=True)

    # -- secrets for scenarios

    def create_client_secrets(self, namespace: str, name: str = CLIENT_SECRET_NAME) -> ObjectRef:
        """``sleep-secret`` for client pods: ca.crt for ``curl --cacert``, tls.crt/tls.key of test.client."""
        return self._apply_tls_secret(namespace, name, self.pki.client)

    def create_gateway_client_secret(
        self, namespace: str = GATEWAY_SECRET_NAMESPACE, name: str = GATEWAY_SECRET_NAME
    ) -> ObjectRef:
        """``istio-system/test.client`` (credentialName of MUTUAL origination at the egress gateway)."""
        if self.kube.get(ObjectRef("v1", "Namespace", namespace)) is None:
            raise ExternalWorldError(f"namespace {namespace} does not exist: install Istio first")
        return self._apply_tls_secret(namespace, name, self.pki.client)

    def create_ca_secret(self, namespace: str, name: str) -> ObjectRef:
        """A Secret holding only ca.crt: lets a gateway/waypoint verify the origins (SIMPLE origination)."""
        variables = {"SECRET_NAMESPACE": namespace, "SECRET_NAME": name, "CA_CRT": _b64(self.pki.ca_pem())}
        return self._apply(CA_SECRET_MANIFEST, variables)[0]

    # -- probing

    def probe_target(self) -> PodTarget:
        """Where the external world's own checks run curl (a pod outside every mesh)."""
        return PodTarget(self.probe_namespace, label_selector=PROBE_SELECTOR, container=PROBE_CONTAINER)

    def probe_pod(self) -> PodInfo:
        pods = [p for p in self.kube.pods(self.probe_namespace, PROBE_SELECTOR) if p.ready]
        if not pods:
            raise ExternalWorldError(f"no ready probe pod ({PROBE_SELECTOR}) in namespace {self.probe_namespace}")
        return pods[0]

    # -- internals

    def _apply(self, manifest: str, variables: Mapping[str, str]) -> list[ObjectRef]:
        applied = self.kube.apply_manifest(manifest, variables)
        for item in applied:
            known = next((i for i, seen in enumerate(self._applied) if seen.ref == item.ref), None)
            if known is None:
                self._applied.append(item)
            elif self._applied[known].created != item.created:
                # Created by this run stays created (a re-apply finds only our own fields).
                self._applied[known] = AppliedObject(
                    item.ref, self._applied[known].created or item.created, item.object
                )
        return [item.ref for item in applied]

    def _apply_tls_secret(self, namespace: str, name: str, credential: Credential) -> ObjectRef:
        variables = {
            "SECRET_NAMESPACE": namespace,
            "SECRET_NAME": name,
            "TLS_CRT": _b64(credential.certificate_pem()),
            "TLS_KEY": _b64(credential.private_key_pem()),
            "CA_CRT": _b64(self.pki.ca_pem()),
        }
        return self._apply(TLS_SECRET_MANIFEST, variables)[0]

    def _cluster_ip(self, service: str) -> str:
        obj = self.kube.get(ObjectRef("v1", "Service", service, self.namespace))
        address = str(((obj or {}).get("spec") or {}).get("clusterIP") or "")
        if not address or address == "None":
            raise ExternalWorldError(f"Service {self.namespace}/{service} has no ClusterIP")
        return address

    def _read_corefile(self) -> str:
        configmap = self.kube.get(COREDNS_CONFIGMAP)
        corefile = ((configmap or {}).get("data") or {}).get(COREFILE_KEY)
        if not isinstance(corefile, str):
            raise ExternalWorldError(
                "kube-system/coredns has no Corefile: this cluster's DNS is not the kubeadm CoreDNS, "
                "so the external world's names cannot be configured"
            )
        return corefile

    def _write_corefile(self, corefile: str, running: str) -> None:
        """Store ``corefile`` and make CoreDNS pick it up; ``running`` is the Corefile CoreDNS runs now."""
        self.kube.merge_patch(COREDNS_CONFIGMAP, {"data": {COREFILE_KEY: corefile}})
        if corefile_reloads_itself(running):
            self._nudge_coredns_pods(corefile)
        else:
            self._roll_coredns(corefile)

    def _nudge_coredns_pods(self, corefile: str) -> None:
        # The kubelet refreshes a ConfigMap volume when it syncs the pod: periodically (about a minute)
        # or at once when the pod object changes. Annotating the pods saves most of that minute; the
        # reload plugin then sees the new file within its interval (30 s by default). Only a speed-up:
        # a failure here just leaves the periodic sync to do it.
        annotations = {COREFILE_REVISION_ANNOTATION: short_digest(corefile)}
        try:
            for pod in self.kube.pods(COREDNS_CONFIGMAP.namespace or "kube-system", COREDNS_SELECTOR):
                ref = ObjectRef("v1", "Pod", pod.name, pod.namespace)
                self.kube.merge_patch(ref, {"metadata": {"annotations": annotations}})
        except KubeError as exc:
            progress.info(f"could not annotate the CoreDNS pods (their periodic sync will apply the change): {exc}")

    def _roll_coredns(self, corefile: str) -> None:
        # Without the reload plugin CoreDNS reads the Corefile only at start: roll its pods.
        annotations = {COREFILE_REVISION_ANNOTATION: short_digest(corefile)}
        patch: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        self.kube.merge_patch(COREDNS_DEPLOYMENT, patch)
        self.kube.wait_rollout("Deployment", "kube-system", "coredns", self.timeouts.rollout)

    def _resolved_addresses(self, pod: PodInfo, hosts: Mapping[str, str]) -> dict[str, str]:
        """Ask curl in ``pod`` to connect to http://<name>/ for every name; name -> address it used."""
        per_name = 5
        command = ["curl", "-sS", "--connect-timeout", "3", "-m", str(per_name)]
        command += ["-w", "%{url_effective} %{remote_ip}\n"]
        for host in hosts:
            command += ["-o", "/dev/null", f"http://{host}/"]
        container = PROBE_CONTAINER if pod.namespace == self.probe_namespace else None
        exec_timeout = per_name * len(hosts) + 10
        try:
            result = self.kube.exec(pod.namespace, pod.name, command, container, timeout=exec_timeout)
        except KubeError as exc:
            # A failed exec is one failed poll (e.g. the API server briefly busy), not the end of the wait.
            progress.info(f"DNS probe in {pod.namespace}/{pod.name} failed: {exc}")
            return {}
        seen: dict[str, str] = {}
        for line in result.stdout.splitlines():
            url, _, address = line.strip().partition(" ")
            name = urlsplit(url).hostname
            if name and address.strip():
                seen[name] = address.strip()
        return seen


@contextmanager
def provide_external_world(
    kube: KubeLike,
    timeouts: Timeouts,
    pki: RunPKI,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    remove_on_exit: bool | Callable[[], bool] = True,
) -> Iterator[ExternalWorld]:
    """Deploy, configure DNS and wait until names resolve; on exit revert DNS and delete everything.

    ``remove_on_exit`` may be a callable, asked on exit (a failed check kept for inspection needs the
    external world it talked to)."""
    world = ExternalWorld(kube, timeouts, namespace)
    try:
        world.deploy(pki)
        world.configure_dns()
        world.wait_dns_ready()
        yield world
    finally:
        if remove_on_exit() if callable(remove_on_exit) else remove_on_exit:
            world.remove()
