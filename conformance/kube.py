"""Kubernetes access: apply/delete YAML, waits, pods, exec with exit codes, logs.

Each ``Kube`` builds its own ``Configuration`` and ``ApiClient`` from the kubeconfig and never touches the
client library's global default. Waits poll with deadlines (``time.monotonic``) and say which deadline ran
out; the clock and the sleep are injectable so tests need no real waiting.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import math
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from urllib3.exceptions import HTTPError as Urllib3Error
from websocket import (
    WebSocketBadStatusException,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketTimeoutException,
)

from conformance import manifests, progress
from conformance.timeouts import DEFAULT_TIMEOUTS

FIELD_MANAGER = "egress-conformance"

_T = TypeVar("_T")

# Parts of the client library without annotations, used through Any on purpose.
_load_kube_config: Any = kube_config.load_kube_config
_DynamicClient: Any = DynamicClient

#: Upper bound of one REST request; waits also cap it by what is left of their deadline.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: How long an unknown kind is looked up again (a CRD applied moments ago, discovery not yet updated).
DEFAULT_DISCOVERY_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 0.5
#: How long closing an exec stream waits for the server's close frame.
_EXEC_CLOSE_TIMEOUT = 1.0

_CRD_API_VERSION = "apiextensions.k8s.io/v1"
_CRD_KIND = "CustomResourceDefinition"
_GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
#: NO_PROXY entries covering the loopback interface (the client matches CIDRs and exact names).
_LOOPBACK_NO_PROXY = ("127.0.0.0/8", "::1", "localhost")
_ROLLOUT_KINDS = {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}


class KubeError(RuntimeError):
    """An API call failed or a wait ran out; the message says which object and which deadline."""


class KubeApiError(KubeError):
    """The API server answered with an error status, or (``status`` None) could not be reached."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def transient(self) -> bool:
        """Worth retrying inside a wait: no answer, throttled, or a server-side failure."""
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one applied object (enough to get or delete it)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ip: str | None
    phase: str
    ready: bool
    containers: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    #: Process exit code; 0 on success.
    exit_code: int


@dataclass(frozen=True)
class RolloutProgress:
    """One look at a workload, judged the way ``kubectl rollout status`` judges it."""

    done: bool
    message: str


# --------------------------------------------------------------------------------------------------------
# Pure helpers (no I/O): status judgements and API error messages.


def _int(value: Any) -> int:
    """Go omits zero-valued status counters from JSON; absent means 0."""
    return int(value) if value is not None else 0


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _describe_conditions(obj: Mapping[str, Any]) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not conditions:
        return "no status conditions yet"
    parts = []
    for c in conditions:
        text = f"{c.get('type')}={c.get('status')}"
        if c.get("reason"):
            text += f" ({c.get('reason')}: {c.get('message', '')})"
        parts.append(text)
    return "; ".join(parts)


def rollout_progress(kind: str, obj: Mapping[str, Any]) -> RolloutProgress:
    """Rollout state of a Deployment, DaemonSet or StatefulSet (``kubectl rollout status`` rules).

    Mirrors kubectl's polymorphichelpers/rollout_status.go. Raises KubeError where kubectl fails instead
    of waiting: a Deployment past its progress deadline, or an update strategy that is not RollingUpdate.
    """
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = metadata.get("name", "?")
    generation = _int(metadata.get("generation"))
    observed = _int(status.get("observedGeneration"))
    kind = _ROLLOUT_KINDS.get(kind.lower(), kind)

    if kind == "Deployment":
        if generation > observed:
            return RolloutProgress(False, "waiting for the deployment spec update to be observed")
        progressing = _condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            raise KubeError(f"deployment {name!r} exceeded its progress deadline")
        wanted = spec.get("replicas")
        updated = _int(status.get("updatedReplicas"))
        if wanted is not None and updated < int(wanted):
            return RolloutProgress(False, f"{updated} of {wanted} new replicas updated")
        replicas = _int(status.get("replicas"))
        if replicas > updated:
            return RolloutProgress(False, f"{replicas - updated} old replicas pending termination")
        available = _int(status.get("availableReplicas"))
        if available < updated:
            return RolloutProgress(False, f"{available} of {updated} updated replicas available")
        return RolloutProgress(True, f"deployment {name!r} rolled out")

    if kind == "DaemonSet":
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise KubeError(f"daemon set {name!r}: rollout status needs the RollingUpdate strategy, not {strategy}")
        if generation > observed:
            return RolloutProgress(False, "waiting for the daemon set spec update to be observed")
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        if updated < desired:
            return RolloutProgress(False, f"{updated} of {desired} new pods updated")
        available = _int(status.get("numberAvailable"))
        if available < desired:
            return RolloutProgress(False, f"{available} of {desired} updated pods available")
        return RolloutProgress(True, f"daemon set {name!r} rolled out")

    if kind == "StatefulSet":
        strategy_spec = spec.get("updateStrategy") or {}
        strategy = strategy_spec.get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise KubeError(f"stateful set {name!r}: rollout status needs the RollingUpdate strategy, not {strategy}")
        if observed == 0 or generation > observed:
            return RolloutProgress(False, "waiting for the stateful set spec update to be observed")
        wanted = spec.get("replicas")
        ready = _int(status.get("readyReplicas"))
        if wanted is not None and ready < int(wanted):
            return RolloutProgress(False, f"{int(wanted) - ready} pods not ready yet")
        rolling = strategy_spec.get("rollingUpdate")
        if rolling is not None:
            partition = rolling.get("partition")
            updated = _int(status.get("updatedReplicas"))
            if wanted is not None and partition is not None and updated < int(wanted) - int(partition):
                return RolloutProgress(False, f"{updated} of {int(wanted) - int(partition)} new pods updated")
            return RolloutProgress(True, f"stateful set {name!r} partitioned roll out complete")
        if status.get("updateRevision") != status.get("currentRevision"):
            return RolloutProgress(False, f"rolling update to revision {status.get('updateRevision')} in progress")
        return RolloutProgress(True, f"stateful set {name!r} rolled out")

    raise KubeError(f"rollout status is defined for Deployment, DaemonSet and StatefulSet, not {kind}")


def crd_established(crd: Mapping[str, Any]) -> bool:
    condition = _condition(crd, "Established")
    return condition is not None and condition.get("status") == "True"


def gateway_programmed(gateway: Mapping[str, Any]) -> bool:
    """Programmed=True, and not a leftover from an earlier generation of the spec."""
    condition = _condition(gateway, "Programmed")
    if condition is None or condition.get("status") != "True":
        return False
    generation = (gateway.get("metadata") or {}).get("generation")
    observed = condition.get("observedGeneration")
    return generation is None or observed is None or int(observed) >= int(generation)


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = _condition(pod, "Ready")
    return PodInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        ip=status.get("podIP") or None,
        phase=str(status.get("phase") or "Unknown"),
        ready=ready is not None and ready.get("status") == "True",
        containers=tuple(str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []),
        labels=dict(metadata.get("labels") or {}),
    )


def exit_code_from_status(status: Mapping[str, Any]) -> int | None:
    """Exit code carried by the exec error channel's Status; None when it reports another failure.

    The server writes ``Success``, or ``Failure`` with reason ``NonZeroExitCode`` and a cause of type
    ``ExitCode`` whose message is the code (k8s.io/apimachinery remotecommand constants; the API server's
    stream translator builds it in codeExitToStatusError).
    """
    if status.get("status") == "Success":
        return 0
    if status.get("reason") != "NonZeroExitCode":
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None


def _complete_status(raw: bytes) -> bool:
    """The error channel holds a whole Status: the server writes it in one frame after all output."""
    if not raw:
        return False
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _status_message(body: str | bytes | None) -> str | None:
    """The ``message`` of a Status body, or the body itself when it is not one."""
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:2000] or None
    if isinstance(parsed, dict) and parsed.get("message"):
        return str(parsed["message"])
    return text.strip()[:2000] or None


def api_error_message(exc: ApiException) -> str:
    """``HTTP 422 Invalid: <Status message>``; never the response headers."""
    status = exc.status
    reason = exc.reason or ""
    text = _status_message(exc.body)
    if text is None:
        return f"HTTP {status} {reason}".strip()
    return f"HTTP {status} {reason}: {text}".replace(" :", ":")


def logs_since_seconds(since: datetime, now: datetime) -> int:
    """Whole seconds to ask for so nothing logged at or after ``since`` is missed (at least 1).

    Rounded up plus one second: the kubelet applies the window from its own receipt of the request, a
    moment after ``now``; a second or two of extra log lines is harmless, a missing line is not.
    """
    if since.tzinfo is None:
        since = since.astimezone()  # naive means local time
    if now.tzinfo is None:
        now = now.astimezone()
    return max(1, math.ceil((now - since).total_seconds()) + 1)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bypass_environment_proxy_for_loopback(configuration: Any) -> None:
    """Keep a loopback API server (kind's ``https://127.0.0.1:<port>``) off an HTTP(S)_PROXY from the
    environment, as kubectl, kind and istioctl do (Go never proxies loopback addresses).

    The Python client sends every request, and its exec WebSocket, through the environment's proxy unless
    NO_PROXY matches; a developer machine behind a corporate proxy would then fail on the first API call.
    A ``proxy-url`` written into the kubeconfig itself is left alone.
    """
    host = urlsplit(str(configuration.host)).hostname
    if host is None or not _is_loopback(host):
        return
    proxies = getproxies()
    from_environment = proxies.get(urlsplit(str(configuration.host)).scheme) or proxies.get("all")
    if not configuration.proxy or configuration.proxy != from_environment:
        return
    entries = [entry.strip() for entry in (configuration.no_proxy or "").split(",") if entry.strip()]
    configuration.no_proxy = ",".join([*entries, *(e for e in _LOOPBACK_NO_PROXY if e not in entries)])


def _identity(doc: Mapping[str, Any], index: int) -> tuple[str, str, str]:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    name = (doc.get("metadata") or {}).get("name")
    missing = [
        label
        for label, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name))
        if not isinstance(value, str) or not value
    ]
    if missing:
        raise KubeError(f"document {index} ({kind or 'no kind'} {name or ''}) lacks {', '.join(missing)}")
    return str(api_version), str(kind), str(name)


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


# --------------------------------------------------------------------------------------------------------


class Kube:
    """Typed access to one cluster through its own ApiClient."""

    def __init__(
        self,
        kubeconfig: Path,
        context: str | None = None,
        field_manager: str = FIELD_MANAGER,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        discovery_timeout: float = DEFAULT_DISCOVERY_TIMEOUT,
        crd_timeout: float = DEFAULT_TIMEOUTS.crd_established,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.field_manager = field_manager
        self._request_timeout = request_timeout
        self._discovery_timeout = discovery_timeout
        self._crd_timeout = crd_timeout
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock

        self._configuration = k8s.Configuration()
        try:
            _load_kube_config(
                config_file=str(kubeconfig),
                context=context,
                client_configuration=self._configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as exc:
            where = f"context {context!r} of " if context else ""
            raise KubeError(f"cannot use {where}kubeconfig {kubeconfig}: {exc}") from exc
        bypass_environment_proxy_for_loopback(self._configuration)
        self._api_client: Any = k8s.ApiClient(configuration=self._configuration)
        # The discovery cache lives with this Kube: the library default is a file in the shared temp
        # directory keyed by server URL, which a previous cluster on the same port would have filled.
        self._discovery_dir = tempfile.TemporaryDirectory(prefix="egress-conformance-discovery-")
        self._dynamic_client: Any = None
        self._discovery_lock = threading.RLock()

    # ---- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._api_client.close()
        self._discovery_dir.cleanup()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return str(self._configuration.host)

    # ---- plumbing -------------------------------------------------------------------------------------

    @property
    def _dynamic(self) -> Any:
        with self._discovery_lock:
            if self._dynamic_client is None:
                cache_file = str(Path(self._discovery_dir.name) / "discovery.json")
                self._dynamic_client = self._call(
                    f"discovery of {self.host}", lambda: _DynamicClient(self._api_client, cache_file=cache_file)
                )
            return self._dynamic_client

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run one API call, turning library and transport errors into KubeApiError naming ``what``."""
        try:
            return fn()
        except ApiException as exc:
            raise KubeApiError(f"{what}: {api_error_message(exc)}", status=exc.status) from exc
        except (Urllib3Error, OSError) as exc:
            raise KubeApiError(f"{what}: API server {self.host} not reachable: {exc}", status=None) from exc

    def _request_timeout_until(self, deadline: float | None) -> float:
        if deadline is None:
            return self._request_timeout
        return max(1.0, min(self._request_timeout, deadline - self._clock()))

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        try:
            data = response.data
        finally:
            release = getattr(response, "release_conn", None)
            if release is not None:
                release()
        parsed = json.loads(data) if data else {}
        if not isinstance(parsed, dict):
            raise KubeError(f"API server answered with JSON that is not an object: {str(parsed)[:200]}")
        return parsed

    def _lookup(self, api_version: str, kind: str) -> Any:
        """Resource type from discovery; the library re-reads discovery once itself on a miss."""
        with self._discovery_lock:
            dynamic = self._dynamic
            if "/" in api_version:
                group, version = api_version.split("/", 1)
                return self._call(
                    f"discovery of {kind} ({api_version})",
                    lambda: dynamic.resources.get(group=group, api_version=version, kind=kind),
                )
            # Core kinds: restrict the search to /api so every /apis group is not listed first.
            return self._call(
                f"discovery of {kind} ({api_version})",
                lambda: dynamic.resources.get(prefix="api", api_version=api_version, kind=kind),
            )

    def _resource(self, api_version: str, kind: str, *, wait: float = 0.0) -> Any:
        """Resource type of ``kind``; waits up to ``wait`` seconds for a kind that is not served yet."""
        deadline = self._clock() + wait
        while True:
            try:
                return self._lookup(api_version, kind)
            except ResourceNotFoundError:
                if self._clock() >= deadline:
                    waited = f" (looked again for {wait:g}s)" if wait else ""
                    raise KubeError(f"{kind} ({api_version}) is not served by {self.host}{waited}") from None
            except ResourceNotUniqueError as exc:
                raise KubeError(f"{kind} ({api_version}) is ambiguous in discovery: {exc}") from exc
            self._sleep(min(self._poll_interval, max(0.0, deadline - self._clock())))

    def _resource_or_none(self, ref: ObjectRef) -> Any:
        try:
            resource = self._lookup(ref.api_version, ref.kind)
        except ResourceNotFoundError:
            return None  # the kind is not served (its CRD is gone), so no object of it exists
        if resource.namespaced and not ref.namespace:
            raise KubeError(f"{ref}: {ref.kind} is namespaced but the reference has no namespace")
        return resource

    def _poll(
        self,
        description: str,
        deadline_name: str,
        timeout: float,
        check: Callable[[], str | None],
        deadline: float | None = None,
    ) -> None:
        """Call ``check`` until it returns None (done), at most ``timeout`` seconds (or until ``deadline``).

        ``check`` returns what it is still waiting for; that text ends up in the timeout message. Transient
        API errors (no answer, 429, 5xx) count as "not yet" rather than failing the wait.
        """
        if deadline is None:
            deadline = self._clock() + timeout
        while True:
            try:
                pending = check()
            except KubeApiError as exc:
                if not exc.transient:
                    raise
                pending = str(exc)
            if pending is None:
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise KubeError(
                    f"{description}: not done within the {deadline_name} deadline of {timeout:g}s; last seen: {pending}"
                )
            self._sleep(min(self._poll_interval, remaining))

    def _get_dict(
        self, resource: Any, name: str, namespace: str | None, what: str, deadline: float | None = None
    ) -> dict[str, Any] | None:
        try:
            response = self._call(
                what,
                lambda: self._dynamic.get(
                    resource,
                    name=name,
                    namespace=namespace,
                    serialize=False,
                    _request_timeout=self._request_timeout_until(deadline),
                ),
            )
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise
        return self._json(response)

    # ---- public API -----------------------------------------------------------------------------------

    def server_version(self) -> str:
        """``v1.35.0``-style git version of the API server."""
        response = self._call(
            "GET /version",
            lambda: k8s.VersionApi(self._api_client).get_code(
                _preload_content=False, _request_timeout=self._request_timeout
            ),
        )
        version = self._json(response).get("gitVersion")
        if not isinstance(version, str) or not version:
            raise KubeError(f"{self.host}/version has no gitVersion")
        return version

    def apply(self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None) -> list[ObjectRef]:
        """Server-side apply each document (fieldValidation=Strict, our field manager, force conflicts).

        Documents are applied in order. After a CustomResourceDefinition, a later document of a kind it
        defines waits for the CRD to be Established and for discovery to serve the kind.
        """
        refs: list[ObjectRef] = []
        # (group, kind) -> name of a CRD applied in this call and not yet seen Established
        pending_crds: dict[tuple[str, str], str] = {}
        for index, doc in enumerate(docs):
            api_version, kind, name = _identity(doc, index)
            crd_name = pending_crds.get((_group_of(api_version), kind))
            if crd_name is not None:
                self.wait_crds_established([crd_name], self._crd_timeout)
                pending_crds = {key: value for key, value in pending_crds.items() if value != crd_name}
            resource = self._resource(api_version, kind, wait=self._discovery_timeout)

            body = copy.deepcopy(dict(doc))
            metadata = body.setdefault("metadata", {})
            namespace: str | None = None
            if resource.namespaced:
                namespace = metadata.get("namespace") or default_namespace
                if not namespace:
                    raise KubeError(
                        f"document {index} ({kind} {name}): {kind} is namespaced, but neither the "
                        "document nor the caller gives a namespace"
                    )
                metadata["namespace"] = namespace
            else:
                metadata.pop("namespace", None)  # as kubectl does: cluster-scoped objects have none
            ref = ObjectRef(api_version, kind, name, namespace)

            self._apply_one(ref, resource, body)
            refs.append(ref)
            if api_version == _CRD_API_VERSION and kind == _CRD_KIND:
                spec = body.get("spec") or {}
                defined_kind = (spec.get("names") or {}).get("kind")
                if spec.get("group") and defined_kind:
                    pending_crds[(str(spec["group"]), str(defined_kind))] = name
        return refs

    def _apply_one(self, ref: ObjectRef, resource: Any, body: dict[str, Any]) -> None:
        self._call(
            f"apply {ref}",
            lambda: self._json(
                self._dynamic.server_side_apply(
                    resource,
                    body=body,
                    name=ref.name,
                    namespace=ref.namespace,
                    field_manager=self.field_manager,
                    force_conflicts=True,
                    # A fresh list every call: the library appends fieldManager/force to the list it is given.
                    # (Its field_validation= keyword would be dropped silently.)
                    query_params=[("fieldValidation", "Strict")],
                    serialize=False,
                    _request_timeout=self._request_timeout,
                )
            ),
        )

    def apply_manifest(
        self,
        relative: str | Path,
        variables: Mapping[str, str] | None = None,
        default_namespace: str | None = None,
    ) -> list[ObjectRef]:
        """Render a file from manifests/ (``conformance.manifests.render``) and apply it."""
        return self.apply(manifests.render(relative, variables), default_namespace)

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None:
        """Delete (missing objects are fine) and, with ``wait``, poll until every one is gone.

        Objects are deleted in reverse order (dependents before what they depend on) with background
        propagation; ``timeout`` bounds the whole call.
        """
        deadline = self._clock() + timeout
        deleted: list[tuple[ObjectRef, Any]] = []
        for ref in reversed(list(refs)):
            resource = self._resource_or_none(ref)
            if resource is None:
                continue
            if not self._delete_one(ref, resource, deadline):
                continue
            deleted.append((ref, resource))
        if not wait or not deleted:
            return

        remaining = list(deleted)

        def still_there() -> str | None:
            for item in list(remaining):
                ref, resource = item
                if self._get_dict(resource, ref.name, ref.namespace, f"get {ref}", deadline) is None:
                    remaining.remove(item)
            return ", ".join(f"{ref} still exists" for ref, _ in remaining) or None

        with progress.step(f"waiting for {len(deleted)} deleted object(s) to disappear"):
            self._poll(f"deleting {len(deleted)} object(s)", "delete", timeout, still_there, deadline=deadline)

    def _delete_one(self, ref: ObjectRef, resource: Any, deadline: float) -> bool:
        """Issue the delete; False when the object was already gone."""
        try:
            self._call(
                f"delete {ref}",
                lambda: self._json(
                    self._dynamic.delete(
                        resource,
                        name=ref.name,
                        namespace=ref.namespace,
                        propagation_policy="Background",
                        serialize=False,
                        _request_timeout=self._request_timeout_until(deadline),
                    )
                ),
            )
        except KubeApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist."""
        resource = self._resource_or_none(ref)
        if resource is None:
            return None
        return self._get_dict(resource, ref.name, ref.namespace, f"get {ref}")

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch (application/merge-patch+json); returns the updated object."""
        resource = self._resource_or_none(ref)
        if resource is None:
            raise KubeError(f"merge patch {ref}: {ref.kind} ({ref.api_version}) is not served by {self.host}")
        return self._call(
            f"merge patch {ref}",
            lambda: self._json(
                self._dynamic.patch(
                    resource,
                    body=dict(patch),
                    name=ref.name,
                    namespace=ref.namespace,
                    content_type="application/merge-patch+json",
                    serialize=False,
                    _request_timeout=self._request_timeout,
                )
            ),
        )

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None:
        pending = list(dict.fromkeys(names))
        if not pending:
            return
        resource = self._resource(_CRD_API_VERSION, _CRD_KIND)

        def not_established() -> str | None:
            states = []
            for name in list(pending):
                crd = self._get_dict(resource, name, None, f"get CustomResourceDefinition {name}")
                if crd is None:
                    states.append(f"{name}: not found")
                elif crd_established(crd):
                    pending.remove(name)
                else:
                    states.append(f"{name}: {_describe_conditions(crd)}")
            return "; ".join(states) or None

        with progress.step(f"waiting for CRD(s) {', '.join(pending)} to be Established"):
            self._poll("CRDs Established", "crd_established", timeout, not_established)

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None:
        """Deployment / DaemonSet / StatefulSet: observed generation current and all replicas updated+ready."""
        canonical = _ROLLOUT_KINDS.get(kind.lower())
        if canonical is None:
            raise KubeError(f"rollout status is defined for Deployment, DaemonSet and StatefulSet, not {kind}")
        ref = ObjectRef("apps/v1", canonical, name, namespace)
        resource = self._resource(ref.api_version, canonical)

        def not_rolled_out() -> str | None:
            obj = self._get_dict(resource, name, namespace, f"get {ref}")
            if obj is None:
                return f"{ref} not found"
            state = rollout_progress(canonical, obj)
            return None if state.done else state.message

        with progress.step(f"waiting for rollout of {ref}"):
            self._poll(f"rollout of {ref}", "rollout", timeout, not_rolled_out)

    def wait_gateway_programmed(self, namespace: str, name: str, timeout: float) -> None:
        """Gateway API Gateway with condition Programmed=True."""
        ref = ObjectRef(_GATEWAY_API_VERSION, "Gateway", name, namespace)
        resource = self._resource(ref.api_version, ref.kind)

        def not_programmed() -> str | None:
            gateway = self._get_dict(resource, name, namespace, f"get {ref}")
            if gateway is None:
                return f"{ref} not found"
            return None if gateway_programmed(gateway) else _describe_conditions(gateway)

        with progress.step(f"waiting for {ref} to be Programmed"):
            self._poll(f"{ref} Programmed", "gateway_programmed", timeout, not_programmed)

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        resource = self._resource("v1", "Pod")
        listing = self._call(
            f"list pods {namespace} -l {label_selector}",
            lambda: self._json(
                self._dynamic.get(
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    serialize=False,
                    _request_timeout=self._request_timeout,
                )
            ),
        )
        infos = [pod_info(item) for item in listing.get("items") or []]
        return sorted(infos, key=lambda info: info.name)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a kind as dicts: in ``namespace``, or in all namespaces when None."""
        resource = self._resource(api_version, kind)
        where = f" in {namespace}" if namespace else " in all namespaces"
        listing = self._call(
            f"list {kind}{where}" + (f" -l {label_selector}" if label_selector else ""),
            lambda: self._json(
                self._dynamic.get(
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    serialize=False,
                    _request_timeout=self._request_timeout,
                )
            ),
        )
        return [dict(item) for item in listing.get("items") or []]

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        """Run a command; stdout, stderr and exit code kept apart; bounded by ``timeout``.

        A non-zero exit is a result, not an error. Anything else the server reports on the error channel
        (container gone, runtime failure), a refused stream, or the deadline raises KubeError.
        """
        if not command:
            raise KubeError("exec needs a command")
        target = f"pod {namespace}/{pod}" + (f" container {container}" if container else "")
        what = f"exec {command!r} in {target}"
        deadline = self._clock() + timeout
        api_client, ws = self._open_exec_stream(what, namespace, pod, command, container, deadline, timeout)
        try:
            while ws.is_open():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise KubeError(f"{what}: no exit status within the exec deadline of {timeout:g}s")
                try:
                    # Bounds a read that stalls inside a frame too, not only the wait for the next one.
                    ws.sock.settimeout(remaining)
                    ws.update(timeout=remaining)
                    if _complete_status(ws.peek_channel(ERROR_CHANNEL)):
                        break
                except WebSocketTimeoutException:
                    raise KubeError(f"{what}: no exit status within the exec deadline of {timeout:g}s") from None
                except WebSocketConnectionClosedException:
                    break  # peer dropped the TCP connection without a close frame; judge what arrived
                except (WebSocketException, OSError) as exc:
                    raise KubeError(f"{what}: stream failed: {exc}") from exc
            # Binary mode: bytes are decoded once, so a character split across frames stays intact.
            stdout = bytes(ws.read_channel(STDOUT_CHANNEL)).decode("utf-8", "replace")
            stderr = bytes(ws.read_channel(STDERR_CHANNEL)).decode("utf-8", "replace")
            raw_status = bytes(ws.read_channel(ERROR_CHANNEL))
        finally:
            self._close_exec_stream(ws)
            api_client.close()

        if not raw_status.strip():
            raise KubeError(f"{what}: stream closed without an exit status (stderr: {stderr.strip()[:500]!r})")
        try:
            status = json.loads(raw_status)
        except ValueError:
            status = None
        if not isinstance(status, dict):
            raise KubeError(f"{what}: {raw_status.decode('utf-8', 'replace').strip()[:1000]}")
        exit_code = exit_code_from_status(status)
        if exit_code is None:
            reason = status.get("reason") or status.get("status") or "Failure"
            raise KubeError(f"{what}: {reason}: {status.get('message') or raw_status.decode('utf-8', 'replace')}")
        return ExecResult(stdout=stdout, stderr=stderr, exit_code=exit_code)

    def _open_exec_stream(
        self,
        what: str,
        namespace: str,
        pod: str,
        command: list[str],
        container: str | None,
        deadline: float,
        timeout: float,
    ) -> tuple[Any, Any]:
        """Open the exec WebSocket within the deadline.

        A fresh ApiClient per stream: ``stream()`` swaps the client's ``call_api`` while it connects, which
        would race with any other request on a shared client. The library gives the handshake no timeout,
        so it runs on a daemon thread; if the deadline passes first, the late stream is closed on arrival.
        """
        api_client: Any = k8s.ApiClient(configuration=self._configuration)
        api: Any = k8s.CoreV1Api(api_client)
        outcome: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=1)
        lock = threading.Lock()
        abandoned = threading.Event()

        def connect() -> None:
            try:
                kwargs: dict[str, Any] = {
                    "command": list(command),
                    "stdin": False,
                    "stdout": True,
                    "stderr": True,
                    "tty": False,
                }
                if container:
                    kwargs["container"] = container
                ws = stream(
                    api.connect_get_namespaced_pod_exec, pod, namespace, _preload_content=False, binary=True, **kwargs
                )
            except BaseException as exc:
                outcome.put((None, exc))
                return
            with lock:
                if abandoned.is_set():
                    self._close_exec_stream(ws)
                    api_client.close()
                    return
                outcome.put((ws, None))

        threading.Thread(target=connect, name=f"exec-handshake {namespace}/{pod}", daemon=True).start()
        try:
            ws, error = outcome.get(timeout=max(0.0, deadline - self._clock()))
        except queue.Empty:
            with lock:
                abandoned.set()
                if not outcome.empty():  # arrived between the timeout and the lock
                    ws, _ = outcome.get_nowait()
                    if ws is not None:
                        self._close_exec_stream(ws)
            api_client.close()
            raise KubeError(f"{what}: the stream did not open within the exec deadline of {timeout:g}s") from None
        if error is not None:
            api_client.close()
            raise KubeError(f"{what}: could not open the stream: {self._handshake_error(error)}") from error
        return api_client, ws

    @staticmethod
    def _handshake_error(error: BaseException) -> str:
        """The API server's answer to a refused upgrade (e.g. unknown container: 400 with a Status)."""
        cause = error.__cause__ or error.__context__
        if isinstance(cause, WebSocketBadStatusException):
            status = getattr(cause, "status_code", None)
            message = _status_message(getattr(cause, "resp_body", None))
            return f"HTTP {status}: {message}" if message else f"HTTP {status}"
        if isinstance(error, ApiException):
            return str(error.reason or error)
        return f"{type(error).__name__}: {error}"

    @staticmethod
    def _close_exec_stream(ws: Any) -> None:
        # Closing is best effort: the result (or the error) is already decided.
        with contextlib.suppress(Exception):
            ws.close(timeout=_EXEC_CLOSE_TIMEOUT)
        # After the server's close frame the library's close() returns early without closing the socket.
        sock = getattr(ws, "sock", None)
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.shutdown()

    def logs(self, namespace: str, label_selector: str, container: str | None, since: datetime) -> dict[str, str]:
        """Log text since ``since`` of every pod behind the selector, by pod name.

        Uses ``sinceSeconds`` computed here rather than ``sinceTime``: the window is then measured on one
        clock (ours) instead of comparing our timestamp with the node's, so skew between the test host and
        the cluster cannot hide lines; and the client library exposes only ``since_seconds`` on this call.
        """
        since_seconds = logs_since_seconds(since, self._wall_clock())
        api: Any = k8s.CoreV1Api(self._api_client)
        texts: dict[str, str] = {}
        for pod in self.pods(namespace, label_selector):
            target = f"logs of pod {namespace}/{pod.name}" + (f" container {container}" if container else "")
            kwargs: dict[str, Any] = {"since_seconds": since_seconds}
            if container:
                kwargs["container"] = container

            def read(name: str = pod.name, extra: dict[str, Any] = kwargs) -> bytes:
                response = api.read_namespaced_pod_log(
                    name, namespace, _preload_content=False, _request_timeout=self._request_timeout, **extra
                )
                try:
                    return bytes(response.data)
                finally:
                    response.release_conn()

            texts[pod.name] = self._call(target, read).decode("utf-8", "replace")
        return texts
