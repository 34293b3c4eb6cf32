"""Inside running pods: exec with separate stdout, stderr and exit code (v5 WebSocket), and container logs."""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from websocket import (
    WebSocketBadStatusException,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketTimeoutException,
)

from conformance.kube.client import KubeClient
from conformance.kube.errors import KubeError, status_message
from conformance.kube.objects import ExecResult

#: How long closing an exec stream waits for the server's close frame.
_EXEC_CLOSE_TIMEOUT = 1.0


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


def exec_in_pod(
    client: KubeClient,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None,
    timeout: float,
    clock: Callable[[], float],
) -> ExecResult:
    """Run a command; stdout, stderr and exit code kept apart; bounded by ``timeout``.

    A non-zero exit is a result, not an error. Anything else the server reports on the error channel
    (container gone, runtime failure), a refused stream, or the deadline raises KubeError.
    """
    if not command:
        raise KubeError("exec needs a command")
    target = f"pod {namespace}/{pod}" + (f" container {container}" if container else "")
    what = f"exec {command!r} in {target}"
    deadline = clock() + timeout
    api_client, ws = _open_exec_stream(client, what, namespace, pod, command, container, deadline, timeout, clock)
    try:
        while ws.is_open():
            remaining = deadline - clock()
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
        _close_exec_stream(ws)
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
    client: KubeClient,
    what: str,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None,
    deadline: float,
    timeout: float,
    clock: Callable[[], float],
) -> tuple[Any, Any]:
    """Open the exec WebSocket within the deadline.

    A fresh ApiClient per stream: ``stream()`` swaps the client's ``call_api`` while it connects, which
    would race with any other request on a shared client. The library gives the handshake no timeout,
    so it runs on a daemon thread; if the deadline passes first, the late stream is closed on arrival.
    """
    api_client: Any = k8s.ApiClient(configuration=client.configuration)
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
                _close_exec_stream(ws)
                api_client.close()
                return
            outcome.put((ws, None))

    threading.Thread(target=connect, name=f"exec-handshake {namespace}/{pod}", daemon=True).start()
    try:
        ws, error = outcome.get(timeout=max(0.0, deadline - clock()))
    except queue.Empty:
        with lock:
            abandoned.set()
            if not outcome.empty():  # arrived between the timeout and the lock
                ws, _ = outcome.get_nowait()
                if ws is not None:
                    _close_exec_stream(ws)
        api_client.close()
        raise KubeError(f"{what}: the stream did not open within the exec deadline of {timeout:g}s") from None
    if error is not None:
        api_client.close()
        raise KubeError(f"{what}: could not open the stream: {_handshake_error(error)}") from error
    return api_client, ws


def _handshake_error(error: BaseException) -> str:
    """The API server's answer to a refused upgrade (e.g. unknown container: 400 with a Status)."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, WebSocketBadStatusException):
        status = getattr(cause, "status_code", None)
        message = status_message(getattr(cause, "resp_body", None))
        return f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if isinstance(error, ApiException):
        return str(error.reason or error)
    return f"{type(error).__name__}: {error}"


def _close_exec_stream(ws: Any) -> None:
    # Closing is best effort: the result (or the error) is already decided.
    with contextlib.suppress(Exception):
        ws.close(timeout=_EXEC_CLOSE_TIMEOUT)
    # After the server's close frame the library's close() returns early without closing the socket.
    sock = getattr(ws, "sock", None)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.shutdown()


def read_log(client: KubeClient, namespace: str, pod: str, container: str | None, since_seconds: int) -> str:
    """Log text of one pod's container over the last ``since_seconds``."""
    target = f"logs of pod {namespace}/{pod}" + (f" container {container}" if container else "")
    api: Any = k8s.CoreV1Api(client.api_client)
    kwargs: dict[str, Any] = {"since_seconds": since_seconds}
    if container:
        kwargs["container"] = container

    def read() -> bytes:
        response = api.read_namespaced_pod_log(
            pod, namespace, _preload_content=False, _request_timeout=client.request_timeout, **kwargs
        )
        try:
            return bytes(response.data)
        finally:
            response.release_conn()

    return client.call(target, read).decode("utf-8", "replace")
