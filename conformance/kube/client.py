"""The connection to one API server: kubeconfig, proxy rule, discovery, and raw REST calls as JSON.

Each ``KubeClient`` builds its own ``Configuration`` and ``ApiClient`` from the kubeconfig and never touches
the client library's global default. Every call is turned into JSON or a ``KubeApiError`` naming what was
attempted; nothing here retries or waits (``conformance.kube.api`` does, through ``conformance.core.poll``).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
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
from urllib3.exceptions import HTTPError as Urllib3Error

from conformance.kube.errors import KubeApiError, KubeError, KubeUnreachableError, api_error
from conformance.kube.objects import ObjectRef

_T = TypeVar("_T")

# Parts of the client library without annotations, used through Any on purpose.
_load_kube_config: Any = kube_config.load_kube_config
_DynamicClient: Any = DynamicClient

#: NO_PROXY entries covering the loopback interface (the client matches CIDRs and exact names).
_LOOPBACK_NO_PROXY = ("127.0.0.0/8", "::1", "localhost")
#: ``check_reachable``: (connect, read) seconds of its single request, which is never retried.
REACHABILITY_TIMEOUT = (3.0, 5.0)


class KindNotServedError(KubeError):
    """Discovery does not list the kind (its CRD is missing or not Established yet)."""


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


@dataclass(frozen=True)
class Response:
    """A successful answer: HTTP status and the JSON object."""

    status: int
    body: dict[str, Any]


def _decode(response: Any) -> Response:
    try:
        data = response.data
        status = int(getattr(response, "status", 200))
    finally:
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
    parsed = json.loads(data) if data else {}
    if not isinstance(parsed, dict):
        raise KubeError(f"API server answered with JSON that is not an object: {str(parsed)[:200]}")
    return Response(status, parsed)


class KubeClient:
    """One API server, reached through the kubeconfig's credentials."""

    def __init__(self, kubeconfig: Path, context: str | None, *, request_timeout: float) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.request_timeout = request_timeout
        self.configuration: Any = k8s.Configuration()
        try:
            _load_kube_config(
                config_file=str(kubeconfig),
                context=context,
                client_configuration=self.configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise KubeError(f"cannot use {self.describe_config()}: {exc}") from exc
        bypass_environment_proxy_for_loopback(self.configuration)
        self.api_client: Any = k8s.ApiClient(configuration=self.configuration)
        # The discovery cache lives with this client: the library default is a file in the shared temp
        # directory keyed by server URL, which a previous cluster on the same port would have filled.
        self._discovery_dir = tempfile.TemporaryDirectory(prefix="egress-conformance-discovery-")
        self._dynamic_client: Any = None
        self._discovery_lock = threading.RLock()

    @property
    def host(self) -> str:
        return str(self.configuration.host)

    def describe_config(self) -> str:
        where = f"context {self.context!r} of " if self.context else ""
        return f"{where}kubeconfig {self.kubeconfig}"

    def close(self) -> None:
        self.api_client.close()
        self._discovery_dir.cleanup()

    # ---- calls --------------------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run one API call, turning library and transport errors into KubeApiError naming ``what``."""
        try:
            return fn()
        except ApiException as exc:
            if not exc.status:  # the client library's wrapping of a TLS or transport failure: no answer
                raise self._unreachable(what, str(exc.reason or exc)) from exc
            raise api_error(what, exc.status, exc.reason, exc.body) from exc
        except (Urllib3Error, OSError) as exc:
            raise self._unreachable(what, _short_reason(exc)) from exc

    def _unreachable(self, what: str, reason: str) -> KubeApiError:
        error = KubeApiError(f"{what}: API server {self.host} not reachable: {' '.join(reason.split())}", status=None)
        error.transport_reason = " ".join(reason.split())
        return error

    def call_json(self, what: str, fn: Callable[[], Any]) -> Response:
        """``call`` for a request made with ``_preload_content=False`` / ``serialize=False``."""
        return self.call(what, lambda: _decode(fn()))

    def check_reachable(self) -> str:
        """GET /version once, never retried, within ``REACHABILITY_TIMEOUT``; returns its gitVersion."""
        configuration = copy.deepcopy(self.configuration)
        configuration.retries = False
        api_client: Any = k8s.ApiClient(configuration=configuration)
        try:
            response = self.call_json(
                "GET /version",
                lambda: k8s.VersionApi(api_client).get_code(
                    _preload_content=False, _request_timeout=REACHABILITY_TIMEOUT
                ),
            )
        except KubeApiError as exc:
            if exc.status is not None:
                raise KubeApiError(
                    f"the Kubernetes API server {self.host} ({self.describe_config()}) refused GET /version: {exc}",
                    exc.status,
                    reason=exc.reason,
                    server_message=exc.server_message,
                ) from exc
            raise KubeUnreachableError(
                f"the Kubernetes API server {self.host} cannot be reached ({self.describe_config()}): "
                f"{exc.transport_reason}"
            ) from exc
        finally:
            api_client.close()
        return str(response.body.get("gitVersion") or "")

    # ---- discovery ----------------------------------------------------------------------------------------

    @property
    def dynamic(self) -> Any:
        with self._discovery_lock:
            if self._dynamic_client is None:
                cache_file = str(Path(self._discovery_dir.name) / "discovery.json")
                self._dynamic_client = self.call(
                    f"discovery of {self.host}", lambda: _DynamicClient(self.api_client, cache_file=cache_file)
                )
            return self._dynamic_client

    def resource(self, api_version: str, kind: str) -> Any:
        """Resource type from discovery; the library re-reads discovery once itself on a miss.

        Raises KindNotServedError when discovery does not list the kind.
        """
        with self._discovery_lock:
            dynamic = self.dynamic
            if "/" in api_version:
                group, version = api_version.split("/", 1)
                lookup = {"group": group, "api_version": version, "kind": kind}
            else:
                # Core kinds: restrict the search to /api so every /apis group is not listed first.
                lookup = {"prefix": "api", "api_version": api_version, "kind": kind}
            try:
                return self.call(f"discovery of {kind} ({api_version})", lambda: dynamic.resources.get(**lookup))
            except ResourceNotFoundError:
                raise KindNotServedError(f"{kind} ({api_version}) is not served by {self.host}") from None
            except ResourceNotUniqueError as exc:
                raise KubeError(f"{kind} ({api_version}) is ambiguous in discovery: {exc}") from exc

    def resource_or_none(self, ref: ObjectRef) -> Any:
        """Resource type of ``ref``; None when the kind is not served (so no object of it exists)."""
        try:
            resource = self.resource(ref.api_version, ref.kind)
        except KindNotServedError:
            return None
        if resource.namespaced and not ref.namespace:
            raise KubeError(f"{ref}: {ref.kind} is namespaced but the reference has no namespace")
        return resource

    # ---- object verbs -------------------------------------------------------------------------------------

    def get(self, resource: Any, ref: ObjectRef, timeout: float | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.call_json(
                f"get {ref}",
                lambda: self.dynamic.get(
                    resource,
                    name=ref.name,
                    namespace=ref.namespace,
                    serialize=False,
                    _request_timeout=timeout or self.request_timeout,
                ),
            ).body
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, resource: Any, namespace: str | None, label_selector: str | None, what: str) -> list[dict[str, Any]]:
        listing = self.call_json(
            what,
            lambda: self.dynamic.get(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                serialize=False,
                _request_timeout=self.request_timeout,
            ),
        ).body
        return [item for item in listing.get("items") or [] if isinstance(item, dict)]

    def server_side_apply(
        self, resource: Any, ref: ObjectRef, body: dict[str, Any], field_manager: str, *, dry_run: bool
    ) -> Response:
        """Server-side apply without force: a field owned by another manager is a 409 conflict."""
        # A fresh list every call: the library appends fieldManager (and dryRun) to the list it is given.
        # Its field_validation= keyword would be dropped silently, hence the query parameter.
        query: list[tuple[str, str]] = [("fieldValidation", "Strict")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.call_json(
            f"apply {ref}" + (" (dry run)" if dry_run else ""),
            lambda: self.dynamic.server_side_apply(
                resource,
                body=body,
                name=ref.name,
                namespace=ref.namespace,
                field_manager=field_manager,
                query_params=query,
                serialize=False,
                _request_timeout=self.request_timeout,
            ),
        )

    def merge_patch(self, resource: Any, ref: ObjectRef, patch: dict[str, Any], field_manager: str) -> dict[str, Any]:
        return self.call_json(
            f"merge patch {ref}",
            lambda: self.dynamic.patch(
                resource,
                body=patch,
                name=ref.name,
                namespace=ref.namespace,
                content_type="application/merge-patch+json",
                field_manager=field_manager,
                serialize=False,
                _request_timeout=self.request_timeout,
            ),
        ).body

    def delete(self, resource: Any, ref: ObjectRef, timeout: float) -> bool:
        """Issue the delete (background propagation); False when the object was already gone."""
        try:
            self.call_json(
                f"delete {ref}",
                lambda: self.dynamic.delete(
                    resource,
                    name=ref.name,
                    namespace=ref.namespace,
                    propagation_policy="Background",
                    serialize=False,
                    _request_timeout=timeout,
                ),
            )
        except KubeApiError as exc:
            if exc.not_found:
                return False
            raise
        return True


def _short_reason(error: BaseException) -> str:
    """The innermost reason urllib3 gives (``[Errno 111] Connection refused``, ``Read timed out``), without
    its repeated pool and URL prefixes."""
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    for marker in ("Failed to establish a new connection: ", "): "):
        _, found, rest = text.partition(marker)
        if found:
            text = rest
            break
    return f"{type(reason).__name__}: {text}"[:500]
