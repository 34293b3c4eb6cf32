"""What the Kubernetes API server's answers mean: the harness's API errors and which of them are transient.

The classification follows what a real kube-apiserver sends (the harness's own tests reproduce each case
on one):

* transient, worth another attempt within a deadline: no answer at all (connection refused or reset,
  timeout), 429 from priority-and-fairness (a plain-text body), any 5xx except the server-side apply schema
  error, among them a validating webhook whose Service has no endpoints yet (500 right after an Istio
  install), 403 from the NamespaceLifecycle admission while a namespace is still being terminated, and
  409 AlreadyExists "object is being deleted" (a create racing the deletion of the same name);
* never transient: every other 4xx (validation, CEL rules, conflicts, missing namespace) and the 500
  "failed to create typed patch object" with which a server-side apply answers an unknown field or a wrong
  type (it is a schema error, however the status code reads).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Server-side apply's answer to a body that does not fit the schema (HTTP 500, Status without reason).
SCHEMA_ERROR_MARKER = "failed to create typed patch object"
#: NamespaceLifecycle admission: creating content in a namespace that is being deleted (HTTP 403).
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"


class KubeError(RuntimeError):
    """An API call failed or a wait ran out; the message says which object and which deadline."""


class KubeUnreachableError(KubeError):
    """The API server did not answer at all (refused, reset, timed out, TLS failed)."""


@dataclass(frozen=True)
class StatusCause:
    """One ``details.causes`` entry of a ``metav1.Status``."""

    reason: str
    message: str
    field: str


class KubeApiError(KubeError):
    """The API server answered with an error status, or (``status`` None) could not be reached."""

    def __init__(
        self,
        message: str,
        status: int | None,
        *,
        reason: str | None = None,
        causes: tuple[StatusCause, ...] = (),
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        #: ``reason`` of the Status body (``NotFound``, ``Conflict``, ``Invalid``, ...); None without one.
        self.reason = reason
        self.causes = causes
        #: The Status ``message`` (or the plain-text body) exactly as the server sent it.
        self.server_message = server_message
        #: Without an answer (``status`` None): why the transport failed, in one line.
        self.transport_reason = ""

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def schema_error(self) -> bool:
        return SCHEMA_ERROR_MARKER in (self.server_message or "")

    @property
    def namespace_terminating(self) -> bool:
        return self.status == 403 and any(c.reason == NAMESPACE_TERMINATING_CAUSE for c in self.causes)

    @property
    def being_deleted(self) -> bool:
        """409 AlreadyExists "object is being deleted": a create raced with the deletion of its namesake."""
        return (
            self.status == 409
            and self.reason == "AlreadyExists"
            and (self.server_message or "").startswith("object is being deleted")
        )

    @property
    def uid_precondition_failed(self) -> bool:
        """An apply carrying ``metadata.uid`` found no object (409 "uid mismatch") or another one (422)."""
        message = self.server_message or ""
        if self.status == 409:
            return "uid mismatch" in message
        return self.status == 422 and any(c.field == "metadata.uid" for c in self.causes)

    @property
    def transient(self) -> bool:
        """Worth another attempt (see the module docstring for the rules and why)."""
        if self.status is None or self.status == 429:
            return True
        if self.status >= 500:
            return not self.schema_error
        return self.namespace_terminating or self.being_deleted


class KubeConflictError(KubeApiError):
    """Server-side apply refused: fields of the object are owned by another field manager."""

    @property
    def managers(self) -> tuple[str, ...]:
        """The conflicting field managers, as the server names them."""
        names = [manager_of_conflict(c.message) for c in self.causes if c.reason == "FieldManagerConflict"]
        return tuple(dict.fromkeys(name for name in names if name))


def is_transient(error: BaseException) -> bool:
    """The one rule every wait and retry in the harness uses for API errors."""
    return isinstance(error, KubeApiError) and error.transient


def manager_of_conflict(message: str) -> str | None:
    """``kubectl`` from the cause message ``conflict with "kubectl" using v1``."""
    first, quote, rest = message.partition('"')
    if not quote or not first.startswith("conflict with"):
        return None
    name, closing, _ = rest.partition('"')
    return name if closing else None


@dataclass(frozen=True)
class ParsedStatus:
    message: str | None
    reason: str | None
    causes: tuple[StatusCause, ...]


def parse_status(body: str | bytes | None) -> ParsedStatus:
    """The message, reason and causes of a ``metav1.Status`` body; a body that is not one is its own message."""
    if body is None:
        return ParsedStatus(None, None, ())
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, Mapping):
        return ParsedStatus(text.strip()[:2000] or None, None, ())
    details = parsed.get("details")
    if not isinstance(details, Mapping):
        details = {}
    causes = tuple(
        StatusCause(str(c.get("reason") or ""), str(c.get("message") or ""), str(c.get("field") or ""))
        for c in (details.get("causes") or [])
        if isinstance(c, Mapping)
    )
    message = parsed.get("message")
    reason = parsed.get("reason")
    return ParsedStatus(
        str(message) if message else (text.strip()[:2000] or None),
        str(reason) if reason else None,
        causes,
    )


def status_message(body: str | bytes | None) -> str | None:
    """The ``message`` of a Status body, or the body itself when it is not one."""
    return parse_status(body).message


def api_error(what: str, status: int | None, http_reason: str | None, body: str | bytes | None) -> KubeApiError:
    """``<what>: HTTP 422 Unprocessable Entity: <Status message>`` as the matching error class."""
    parsed = parse_status(body)
    head = f"HTTP {status} {http_reason or ''}".strip()
    message = f"{what}: {head}: {parsed.message}" if parsed.message else f"{what}: {head}"
    error_class = KubeConflictError if status == 409 and parsed.reason == "Conflict" and parsed.causes else KubeApiError
    if error_class is KubeConflictError:
        fields = ", ".join(
            f"{c.field} ({manager_of_conflict(c.message) or c.message})"
            for c in parsed.causes
            if c.reason == "FieldManagerConflict"
        )
        if fields:
            message += f"\n  fields owned by another manager: {fields}"
    return error_class(message, status, reason=parsed.reason, causes=parsed.causes, server_message=parsed.message)
