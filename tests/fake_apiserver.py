"""A loopback fake Kubernetes API server, for what no real API server here can do: exec into and logs of
running containers, and scripted faults (a webhook without endpoints, throttling, a server going away).

Everything a real kube-apiserver can show runs against one (tests/real_apiserver.py, tests/test_kube_real.py);
this fake only has to be truthful where it is used, so its answers are the real server's: the canned
statuses below (``schema_error_status``, ``webhook_unavailable_status``, ...) are compared with the real
server's answers to the same requests in tests/test_kube_real.py.

It is a real HTTP/1.1 server on 127.0.0.1 (``ThreadingHTTPServer`` in a background thread; HTTPS when
given an ``ssl.SSLContext``) that records every request and answers:

* discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``) and ``/version``;
* server-side apply (PATCH ``application/apply-patch+yaml``: 422 without a field manager, 404 into a
  namespace that does not exist, else stored with a managedFields entry and echoed, 201 or 200; it knows
  no schemas), JSON merge patch, GET (object and label-selected list) and DELETE (a Status; a Namespace
  returns itself, Terminating, and stays so: there is no namespace controller);
* pod logs as plain text;
* pod exec over WebSocket (RFC 6455 handshake and framing written out here), for pods bound to a node
  (400 "does not have a host assigned" otherwise, as the API server says): the subprotocol is chosen the
  way the API server's wsstream does it (the first one the client offers that the server supports; since
  Kubernetes 1.30 the API server accepts only ``v5.channel.k8s.io``). Frames are binary with a channel byte
  (1 stdout, 2 stderr, 3 error: a ``metav1.Status`` as JSON); the first frame is an empty stdout frame, and
  after the Status the server sends a close frame and waits for the client's, as the API server does.

Tests script behaviour per call with ``respond`` (canned replies for one method and path), ``exec_script``
(per pod) and ``set_pod_log``. Use the ``fake_apiserver`` and ``fake_kubeconfig`` fixtures (registered by
the root conftest), or ``FakeApiServer`` + ``write_kubeconfig`` directly.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import ssl
import struct
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

#: Token written into the fake kubeconfig; tests can check it reaches both REST and WebSocket requests.
FAKE_TOKEN = "fake-apiserver-token"
FAKE_GIT_VERSION = "v1.35.0"
V5_CHANNEL_PROTOCOL = "v5.channel.k8s.io"
V4_CHANNEL_PROTOCOL = "v4.channel.k8s.io"
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "pods", "Pod", True, ("exec", "log", "status")),
    ResourceType("", "v1", "configmaps", "ConfigMap", True),
    ResourceType("", "v1", "services", "Service", True, ("status",)),
    ResourceType("", "v1", "namespaces", "Namespace", False, ("status",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("status", "scale")),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("status",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("status", "scale")),
    ResourceType(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ("status",)
    ),
    ResourceType("networking.istio.io", "v1", "serviceentries", "ServiceEntry", True, ("status",)),
    ResourceType("networking.istio.io", "v1", "gateways", "Gateway", True, ("status",)),
    ResourceType("networking.istio.io", "v1", "virtualservices", "VirtualService", True, ("status",)),
    ResourceType("networking.istio.io", "v1", "destinationrules", "DestinationRule", True, ("status",)),
    ResourceType("security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy", True, ("status",)),
    ResourceType("gateway.networking.k8s.io", "v1", "gateways", "Gateway", True, ("status",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    #: Header names lower-cased; repeated headers joined with ", ".
    headers: dict[str, str]
    #: Parsed JSON/YAML body, or None.
    body: Any
    raw_body: bytes = b""
    #: WebSocket subprotocol the server chose (exec only).
    subprotocol: str | None = None

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    """A canned answer: ``body`` dict/list is sent as JSON, str/bytes as text."""

    status: int = 200
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class ExecOutcome(Enum):
    SUCCESS = "success"  # Status Success
    NON_ZERO_EXIT = "non-zero-exit"  # Status Failure, reason NonZeroExitCode, cause ExitCode
    ERROR = "error"  # Status Failure, reason InternalError (e.g. the runtime could not start the command)
    HANG = "hang"  # frames are sent, then nothing: no Status, no close (only the client's close ends it)
    DROP = "drop"  # frames are sent, then the TCP connection is cut: no Status, no close frame
    REJECT = "reject"  # upgrade refused with an HTTP error and a Status body (e.g. unknown container)
    HANG_HANDSHAKE = "hang-handshake"  # the upgrade request is never answered


@dataclass(frozen=True)
class ExecScript:
    """What one exec session sends: ``frames`` in order as (channel, bytes), then the outcome."""

    frames: tuple[tuple[int, bytes], ...] = ()
    outcome: ExecOutcome = ExecOutcome.SUCCESS
    exit_code: int = 0
    message: str = ""
    http_status: int = 400
    #: Send the close frame after the Status (False: leave the connection open, as a misbehaving proxy might).
    close_after_status: bool = True

    @classmethod
    def success(cls, stdout: str | bytes = b"", stderr: str | bytes = b"") -> ExecScript:
        return cls(frames=_output_frames(stdout, stderr))

    @classmethod
    def exit(cls, code: int, stdout: str | bytes = b"", stderr: str | bytes = b"") -> ExecScript:
        return cls(frames=_output_frames(stdout, stderr), outcome=ExecOutcome.NON_ZERO_EXIT, exit_code=code)

    @classmethod
    def error(cls, message: str) -> ExecScript:
        return cls(outcome=ExecOutcome.ERROR, message=message)

    @classmethod
    def hang(cls, stdout: str | bytes = b"") -> ExecScript:
        return cls(frames=_output_frames(stdout, b""), outcome=ExecOutcome.HANG)

    @classmethod
    def drop(cls, stdout: str | bytes = b"") -> ExecScript:
        return cls(frames=_output_frames(stdout, b""), outcome=ExecOutcome.DROP)

    @classmethod
    def reject(cls, message: str, http_status: int = 400) -> ExecScript:
        return cls(outcome=ExecOutcome.REJECT, message=message, http_status=http_status)

    @classmethod
    def hang_handshake(cls) -> ExecScript:
        return cls(outcome=ExecOutcome.HANG_HANDSHAKE)

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` the server writes on channel 3 (json.Marshal of it: no kind/apiVersion)."""
        if self.outcome is ExecOutcome.SUCCESS:
            return {"metadata": {}, "status": "Success"}
        if self.outcome is ExecOutcome.NON_ZERO_EXIT:
            return {
                "metadata": {},
                "status": "Failure",
                "message": f"command terminated with non-zero exit code: command terminated with exit code "
                f"{self.exit_code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(self.exit_code)}]},
            }
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {self.message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": self.message}]},
            "code": 500,
        }


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _output_frames(stdout: str | bytes, stderr: str | bytes) -> tuple[tuple[int, bytes], ...]:
    frames = []
    if stdout:
        frames.append((1, _as_bytes(stdout)))
    if stderr:
        frames.append((2, _as_bytes(stderr)))
    return tuple(frames)


def status_body(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """A ``metav1.Status`` failure as the API server sends it for an HTTP error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or HTTPStatus(code).phrase.replace(" ", ""),
        "code": code,
    }


# Statuses exactly as kube-apiserver v1.35.4 sends them; tests/test_kube_real.py compares each with the
# real server's answer to the same request.


def not_found_status(kind_plural: str, name: str) -> dict[str, Any]:
    return {
        **status_body(404, f'{kind_plural} "{name}" not found', "NotFound"),
        "details": {"name": name, "kind": kind_plural},
    }


def namespace_not_found_status(namespace: str) -> dict[str, Any]:
    """Server-side apply (or any create) into a namespace that does not exist."""
    return not_found_status("namespaces", namespace)


def apply_without_field_manager_status() -> dict[str, Any]:
    return {
        **status_body(
            422,
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            "Invalid",
        ),
        "details": {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }
            ],
        },
    }


def schema_error_status(object_key: str, group_version_kind: str, field_path: str) -> dict[str, Any]:
    """Server-side apply of an unknown field: HTTP 500, and a Status without ``reason``.

    ``object_key`` is ``<namespace>/<name>`` with the namespace of the body (``/<name>`` without one, as for
    cluster-scoped objects); ``group_version_kind`` as Go prints it (``/v1, Kind=ConfigMap``,
    ``gateway.networking.k8s.io/v1, Kind=Gateway``).
    """
    body = status_body(
        500,
        f"failed to create typed patch object ({object_key}; {group_version_kind}): "
        f"{field_path}: field not declared in schema",
    )
    del body["reason"]
    return body


def webhook_unavailable_status(webhook: str, service: str, namespace: str, path: str) -> dict[str, Any]:
    """A validating webhook (failurePolicy Fail) whose Service has no endpoints, e.g. istiod starting up."""
    cause = (
        f'failed calling webhook "{webhook}": failed to call webhook: Post '
        f'"https://{service}.{namespace}.svc:443{path}?timeout=10s": no endpoints available for service "{service}"'
    )
    return {
        **status_body(500, f"Internal error occurred: {cause}", "InternalError"),
        "details": {"causes": [{"message": cause}]},
    }


def namespace_terminating_status(kind_plural: str, name: str, namespace: str) -> dict[str, Any]:
    """Creating content in a namespace that is being deleted (NamespaceLifecycle admission)."""
    return {
        **status_body(
            403,
            f'{kind_plural} "{name}" is forbidden: unable to create new content in namespace {namespace} '
            "because it is being terminated",
            "Forbidden",
        ),
        "details": {
            "name": name,
            "kind": kind_plural,
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
    }


def conflict_status(manager: str, field_path: str) -> dict[str, Any]:
    """Server-side apply (without force) of a field another manager owns with another value."""
    return {
        **status_body(409, f'Apply failed with 1 conflict: conflict with "{manager}": {field_path}', "Conflict"),
        "details": {
            "causes": [{"reason": "FieldManagerConflict", "message": f'conflict with "{manager}"', "field": field_path}]
        },
    }


#: Priority and fairness rejecting a request (apiserver/pkg/server/filters/priority-and-fairness.go,
#: tooManyRequests): Go's http.Error, so plain text with a newline, not a Status.
TOO_MANY_REQUESTS_TEXT = "Too many requests, please try again later.\n"


#: ``respond`` with this to close the connection without any HTTP answer (a server restarting mid-request).
DROP_CONNECTION = Reply(status=0)


def too_many_requests() -> Reply:
    return Reply(429, TOO_MANY_REQUESTS_TEXT, "text/plain; charset=utf-8", headers={"Retry-After": "1"})


def delete_success_status(kind_plural: str, name: str, uid: str) -> dict[str, Any]:
    """What DELETE of an object without finalizers returns (a Namespace returns itself instead)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": kind_plural, "uid": uid},
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches_selector(labels: Mapping[str, str], selector: str | None) -> bool:
    """Equality-based selectors (``a=b,c!=d,e``), which is what the harness uses."""
    if not selector:
        return True
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


# --------------------------------------------------------------------------------------------------------
# WebSocket framing (RFC 6455): the server sends unmasked frames and reads masked ones.


def encode_frame(opcode: int, payload: bytes) -> bytes:
    first = 0x80 | opcode  # FIN: the API server sends every message as one frame
    length = len(payload)
    if length < 126:
        header = bytes([first, length])
    elif length < 1 << 16:
        header = bytes([first, 126]) + struct.pack(">H", length)
    else:
        header = bytes([first, 127]) + struct.pack(">Q", length)
    return header + payload


def _read_exact(stream: Any, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(stream: Any) -> tuple[int, bytes] | None:
    """One client frame as (opcode, unmasked payload); None at end of stream."""
    header = _read_exact(stream, 2)
    if header is None:
        return None
    opcode = header[0] & 0x0F
    masked = bool(header[1] & 0x80)
    length = header[1] & 0x7F
    if length == 126:
        extended = _read_exact(stream, 2)
        if extended is None:
            return None
        length = struct.unpack(">H", extended)[0]
    elif length == 127:
        extended = _read_exact(stream, 8)
        if extended is None:
            return None
        length = struct.unpack(">Q", extended)[0]
    mask = _read_exact(stream, 4) if masked else b"\0\0\0\0"
    payload = _read_exact(stream, length) if length else b""
    if mask is None or payload is None:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# --------------------------------------------------------------------------------------------------------


@dataclass
class FakeApiServer:
    """The fake; ``start()``/``stop()`` or use it as a context manager."""

    resources: list[ResourceType] = field(default_factory=lambda: list(DEFAULT_RESOURCES))
    #: Subprotocols the exec endpoint accepts (the API server since 1.30: v5 only).
    exec_subprotocols: tuple[str, ...] = (V5_CHANNEL_PROTOCOL,)
    git_version: str = FAKE_GIT_VERSION
    #: Serve HTTPS with this context (e.g. one requiring client certificates, as kind's API server does).
    tls: ssl.SSLContext | None = None

    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._replies: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._exec_scripts: dict[tuple[str, str], ExecScript] = {}
        self._default_exec = ExecScript.success()
        self._logs: dict[tuple[str, str, str | None], str] = {}
        self._stopping = threading.Event()
        self._open_sockets: set[socket.socket] = set()
        self._resource_version = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            # The handshake then runs on the first read, in the request's own thread, not in accept().
            self._httpd.socket = self.tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-apiserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._open_sockets)
        for sock in sockets:  # wakes exec sessions blocked reading the client
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        host, port = self._httpd.server_address[:2]
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    # ---- scripting ------------------------------------------------------------------------------------

    def respond(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests for ``method path`` (no query) with ``replies``, then as usual."""
        with self._lock:
            self._replies[(method.upper(), path)].extend(replies)

    def exec_script(self, namespace: str, pod: str, script: ExecScript) -> None:
        with self._lock:
            self._exec_scripts[(namespace, pod)] = script

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        with self._lock:
            self._logs[(namespace, pod, container)] = text

    def add_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object directly (as if created earlier); returns the stored copy."""
        rt = self.resource_type(str(obj["apiVersion"]), str(obj["kind"]))
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace", "") if rt.namespaced else ""
        with self._lock:
            stored = self._store(rt, namespace, str(metadata["name"]), copy.deepcopy(dict(obj)))
        return stored

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        for rt in self.resources:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise KeyError(f"fake API server does not serve {kind} ({api_version})")

    # ---- inspection -----------------------------------------------------------------------------------

    def find(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        rt = self.resource_type(api_version, kind)
        with self._lock:
            return self.objects.get((rt.api_version, rt.plural, namespace or "", name))

    # ---- internals (called from handler threads, under the lock) ----------------------------------------

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _store(self, rt: ResourceType, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        key = (rt.api_version, rt.plural, namespace, name)
        previous = self.objects.get(key)
        metadata = obj.setdefault("metadata", {})
        metadata["name"] = name
        if rt.namespaced:
            metadata["namespace"] = namespace
        old_meta = (previous or {}).get("metadata", {})
        metadata["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        metadata["creationTimestamp"] = old_meta.get("creationTimestamp") or "2026-01-01T00:00:00Z"
        metadata["resourceVersion"] = self._next_resource_version()
        generation = int(old_meta.get("generation") or 0)
        spec_changed = previous is None or previous.get("spec") != obj.get("spec")
        metadata.setdefault("generation", generation + 1 if spec_changed else max(generation, 1))
        self.objects[key] = obj
        return obj

    def _served(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.resources if rt.group == group and rt.version == version]


def api_resource_list(group_version: str, types: list[ResourceType]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rt in types:
        resources.append(
            {
                "name": rt.plural,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            }
        )
        for sub in rt.subresources:
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeApiServer
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs add ~40 ms
        # to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the requests are recorded instead

    # every method goes through one dispatcher
    def do_GET(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    # ---- plumbing -------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = yaml.safe_load(raw.decode("utf-8"))  # JSON is YAML too
            except (yaml.YAMLError, UnicodeDecodeError):
                body = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RecordedRequest(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), headers, body, raw
        )
        with fake._lock:
            fake.requests.append(record)
            queued = fake._replies.get((self.command, split.path))
            reply = queued.popleft() if queued else None
        if reply is not None:
            self._send_reply(reply)
            return
        try:
            self._route(record)
        except Exception as exc:  # a bug in the fake must show up in the test, not hang it
            self._send_json(500, status_body(500, f"fake API server error: {type(exc).__name__}: {exc}"))

    def _send(self, code: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, code: int, body: Any) -> None:
        self._send(code, json.dumps(body).encode("utf-8"), "application/json")

    def _send_reply(self, reply: Reply) -> None:
        if reply.status == 0:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(reply.body, (dict, list)):
            payload = json.dumps(reply.body).encode("utf-8")
            self._send(reply.status, payload, reply.content_type or "application/json", reply.headers)
        else:
            payload = _as_bytes(reply.body or b"")
            self._send(reply.status, payload, reply.content_type or "text/plain; charset=utf-8", reply.headers)

    def _not_found(self) -> None:
        self._send_json(404, status_body(404, "the server could not find the requested resource", "NotFound"))

    # ---- routing --------------------------------------------------------------------------------------

    def _route(self, record: RecordedRequest) -> None:
        fake = self.fake
        parts = [p for p in record.path.split("/") if p]
        if parts == ["version"]:  # the generated client asks for /version/
            major, minor = fake.git_version.lstrip("v").split(".")[:2]
            self._send_json(
                200,
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": fake.git_version,
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.25.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
            return
        if parts == ["api"]:
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
                },
            )
            return
        if parts == ["apis"]:
            with fake._lock:
                self._send_json(200, self._group_list())
            return
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            self._not_found()
            return
        with fake._lock:
            served = fake._served(group, version)
        if not served:
            self._not_found()
            return
        if not rest:
            if record.method != "GET":
                self._send_json(405, status_body(405, "method not allowed"))
                return
            self._send_json(200, api_resource_list(served[0].api_version, served))
            return

        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        rt = next((r for r in served if r.plural == plural), None)
        if rt is None or (rt.namespaced and not namespace and name is not None) or (not rt.namespaced and namespace):
            self._not_found()
            return
        if sub == "exec":
            self._exec(record, namespace, str(name))
        elif sub == "log":
            self._log(record, namespace, str(name))
        elif sub is not None:
            self._not_found()
        elif name is None:
            self._collection(record, rt, namespace)
        else:
            self._item(record, rt, namespace, name)

    def _group_list(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for rt in self.fake.resources:
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
                for group, versions in groups.items()
            ],
        }

    def _collection(self, record: RecordedRequest, rt: ResourceType, namespace: str) -> None:
        if record.method != "GET":
            self._send_json(405, status_body(405, f"{record.method} on a collection is not supported by the fake"))
            return
        selector = record.param("labelSelector")
        with self.fake._lock:
            items = [
                copy.deepcopy(obj)
                for (api_version, plural, ns, _), obj in sorted(self.fake.objects.items())
                if api_version == rt.api_version
                and plural == rt.plural
                and (not namespace or ns == namespace)
                and _matches_selector((obj.get("metadata") or {}).get("labels") or {}, selector)
            ]
            version = self.fake._next_resource_version()
        self._send_json(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _item(self, record: RecordedRequest, rt: ResourceType, namespace: str, name: str) -> None:
        fake = self.fake
        key = (rt.api_version, rt.plural, namespace, name)
        if record.method == "GET":
            with fake._lock:
                obj = fake.objects.get(key)
                view = None if obj is None else copy.deepcopy(obj)
            if view is None:
                self._send_json(404, not_found_status(rt.plural, name))
            else:
                self._send_json(200, view)
        elif record.method == "DELETE":
            self._delete(rt, key, name)
        elif record.method == "PATCH":
            self._patch(record, rt, namespace, name)
        else:
            self._send_json(405, status_body(405, f"{record.method} is not supported by the fake"))

    def _delete(self, rt: ResourceType, key: tuple[str, str, str, str], name: str) -> None:
        """As the API server: a Status for most objects; a Namespace returns itself, now Terminating (and,
        with no namespace controller here, stays so)."""
        fake = self.fake
        with fake._lock:
            obj = fake.objects.get(key)
            if obj is None:
                answer: tuple[int, dict[str, Any]] = (404, not_found_status(rt.plural, name))
            elif rt.kind == "Namespace":
                obj["metadata"].setdefault("deletionTimestamp", "2026-01-01T00:00:01Z")
                obj["status"] = {"phase": "Terminating"}
                obj["metadata"]["resourceVersion"] = fake._next_resource_version()
                answer = (200, copy.deepcopy(obj))
            else:
                del fake.objects[key]
                answer = (200, delete_success_status(rt.plural, name, str(obj["metadata"].get("uid", ""))))
        self._send_json(*answer)

    def _patch(self, record: RecordedRequest, rt: ResourceType, namespace: str, name: str) -> None:
        fake = self.fake
        content_type = (record.content_type or "").split(";")[0].strip()
        body = record.body
        key = (rt.api_version, rt.plural, namespace, name)
        if content_type == "application/apply-patch+yaml":
            self._apply(record, rt, namespace, name)
        elif content_type == "application/merge-patch+json":
            if not isinstance(body, dict):
                self._send_json(400, status_body(400, "the patch body is not an object", "BadRequest"))
                return
            with fake._lock:
                current = fake.objects.get(key)
                stored = (
                    None
                    if current is None
                    else copy.deepcopy(fake._store(rt, namespace, name, merge_patch(current, body)))
                )
            if stored is None:
                self._send_json(404, not_found_status(rt.plural, name))
            else:
                self._send_json(200, stored)
        else:
            self._send_json(
                415, {**status_body(415, "415: Unsupported Media Type", "UnsupportedMediaType"), "details": {}}
            )

    def _apply(self, record: RecordedRequest, rt: ResourceType, namespace: str, name: str) -> None:
        """Server-side apply, checked as the API server checks it before any schema: a field manager, a
        namespace that exists. The fake knows no schemas: tests of what a schema rejects run on the real
        server (tests/test_kube_real.py)."""
        fake = self.fake
        body = record.body
        manager = record.param("fieldManager")
        if not manager:
            self._send_json(422, apply_without_field_manager_status())
            return
        if not isinstance(body, dict) or body.get("apiVersion") != rt.api_version or body.get("kind") != rt.kind:
            self._send_json(400, status_body(400, "the body does not match the resource of the URL", "BadRequest"))
            return
        key = (rt.api_version, rt.plural, namespace, name)
        with fake._lock:
            if rt.namespaced and ("v1", "namespaces", "", namespace) not in fake.objects:
                answer: tuple[int, dict[str, Any]] = (404, namespace_not_found_status(namespace))
            else:
                previous = fake.objects.get(key)
                obj = copy.deepcopy(body)
                if previous is not None and "status" in previous and "status" not in obj:
                    obj["status"] = previous["status"]
                entries = [
                    e
                    for e in ((previous or {}).get("metadata") or {}).get("managedFields") or []
                    if e.get("manager") != manager
                ]
                obj.setdefault("metadata", {})["managedFields"] = [
                    {"manager": manager, "operation": "Apply", "apiVersion": rt.api_version, "fieldsType": "FieldsV1"},
                    *entries,
                ]
                if record.param("dryRun") == "All":
                    answer = (201 if previous is None else 200, obj)
                else:
                    answer = (201 if previous is None else 200, copy.deepcopy(fake._store(rt, namespace, name, obj)))
        self._send_json(*answer)

    # ---- pod logs -------------------------------------------------------------------------------------

    def _log(self, record: RecordedRequest, namespace: str, pod: str) -> None:
        fake = self.fake
        with fake._lock:
            exists = ("v1", "pods", namespace, pod) in fake.objects
            container = record.param("container")
            text = fake._logs.get((namespace, pod, container), fake._logs.get((namespace, pod, None), ""))
        if not exists:
            self._send_json(404, not_found_status("pods", pod))
            return
        self._send(200, text.encode("utf-8"), "text/plain")

    # ---- pod exec over WebSocket ----------------------------------------------------------------------

    def _exec(self, record: RecordedRequest, namespace: str, pod: str) -> None:
        fake = self.fake
        with fake._lock:
            script = fake._exec_scripts.get((namespace, pod), fake._default_exec)
            stored = fake.objects.get(("v1", "pods", namespace, pod))
            node = ((stored or {}).get("spec") or {}).get("nodeName")
        upgrade = record.headers.get("upgrade", "").lower() == "websocket"
        if not upgrade or "upgrade" not in record.headers.get("connection", "").lower():
            self._send_json(400, status_body(400, "Upgrade request required", "BadRequest"))
            return
        if stored is None:
            self._send_json(404, not_found_status("pods", pod))
            return
        if not node:  # as the API server: exec needs the kubelet of the pod's node
            self._send_json(400, status_body(400, f"pod {pod} does not have a host assigned", "BadRequest"))
            return
        if script.outcome is ExecOutcome.HANG_HANDSHAKE:
            self.close_connection = True
            with fake._lock:
                fake._open_sockets.add(self.connection)
            fake._stopping.wait()
            return
        if script.outcome is ExecOutcome.REJECT:
            self._send_json(script.http_status, status_body(script.http_status, script.message))
            return
        offered = [p.strip() for p in record.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        chosen = next((p for p in offered if p in fake.exec_subprotocols), None)
        if chosen is None:
            self._send(
                403,
                f"requested protocol(s) are not supported: {offered}; supports {list(fake.exec_subprotocols)}".encode(),
                "text/plain",
            )
            return
        key = record.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WEBSOCKET_GUID).encode("ascii")).digest()).decode()
        record.subprotocol = chosen
        self.close_connection = True
        sock = self.connection
        with fake._lock:
            fake._open_sockets.add(sock)
        try:
            self.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {chosen}\r\n\r\n".encode()
            )
            send = self.wfile.write
            send(encode_frame(_OP_BINARY, bytes([1])))  # empty stdout frame: "connection established"
            for channel, data in script.frames:
                send(encode_frame(_OP_BINARY, bytes([channel]) + data))
            if script.outcome is ExecOutcome.DROP:
                sock.shutdown(socket.SHUT_RDWR)
                return
            if script.outcome is not ExecOutcome.HANG:
                send(encode_frame(_OP_BINARY, bytes([3]) + json.dumps(script.status()).encode()))
                if script.close_after_status:
                    send(encode_frame(_OP_CLOSE, struct.pack(">H", 1000)))
                    sock.settimeout(5)
            self._read_until_close(closing=script.outcome is not ExecOutcome.HANG and script.close_after_status)
        except OSError:
            pass  # the client went away; nothing to report
        finally:
            with fake._lock:
                fake._open_sockets.discard(sock)

    def _read_until_close(self, closing: bool) -> None:
        """Serve the client's frames until it closes (answering its close frame unless we sent ours)."""
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            opcode, payload = frame
            if opcode == _OP_CLOSE:
                if not closing:
                    self.wfile.write(encode_frame(_OP_CLOSE, payload[:2] or struct.pack(">H", 1000)))
                return
            if opcode == _OP_PING:
                self.wfile.write(encode_frame(_OP_PONG, payload))


# --------------------------------------------------------------------------------------------------------


def write_kubeconfig(path: Path, server_url: str, *, token: str | None = FAKE_TOKEN, context: str = "fake") -> Path:
    """A kubeconfig for ``server_url`` (plain http: the client accepts it and needs no certificates)."""
    user: dict[str, Any] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
        "users": [{"name": "fake", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def fake_kubeconfig(fake_apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The client honours proxy variables; a proxy must never sit between the tests and 127.0.0.1.
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return write_kubeconfig(tmp_path / "kubeconfig", fake_apiserver.url)
