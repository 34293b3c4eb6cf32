"""Waits and retries against the API server for ``conformance.kube.api.Kube``, through ``conformance.core.poll``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from conformance.core.poll import poll
from conformance.core.timeouts import Timeouts
from conformance.kube.client import KindNotServedError, KubeClient
from conformance.kube.errors import KubeApiError, KubeError, is_transient

_T = TypeVar("_T")


class KubePolling:
    """The waiting half of ``Kube``: ``Kube.__init__`` sets what is declared here."""

    timeouts: Timeouts
    _poll_interval: float
    _clock: Callable[[], float]
    _sleep: Callable[[float], None]
    _client: KubeClient

    @property
    def host(self) -> str:
        return self._client.host

    def _wait(
        self,
        description: str,
        deadline_name: str,
        timeout: float,
        check: Callable[[], str | None],
        *,
        started: float | None = None,
    ) -> None:
        """Call ``check`` until it returns None (done) within ``timeout`` (counted from ``started``).

        ``check`` returns what it is still waiting for; that text ends up in the timeout message. Transient
        API errors count as "not yet".
        """
        polled = poll(
            check,
            lambda pending: pending is None,
            seconds=timeout,
            interval=self._poll_interval,
            transient=is_transient,
            clock=self._clock,
            sleep=self._sleep,
            started=started,
        )
        if not polled.done:
            raise KubeError(
                f"{description}: not done within the {deadline_name} deadline of {timeout:g}s; "
                f"last seen: {polled.last_seen()}"
            )

    def _retry(
        self,
        deadline_name: str,
        seconds: float,
        call: Callable[[], _T],
        done: Callable[[_T], bool] = lambda _: True,
        not_done: str = "",
    ) -> _T:
        """``call`` again while it fails transiently (or ``done`` rejects its result) within ``seconds``.

        At the deadline the last error is raised again with the attempts and the deadline added; a result
        ``done`` kept rejecting raises KubeError with ``not_done``.
        """
        polled = poll(
            call,
            done,
            seconds=seconds,
            interval=self._poll_interval,
            transient=is_transient,
            clock=self._clock,
            sleep=self._sleep,
        )
        if polled.done:
            return polled.last  # type: ignore[return-value]  # done: the last attempt returned this
        after = f"still failing after {polled.attempts} attempts within the {deadline_name} deadline of {seconds:g}s"
        error = polled.last_error
        if isinstance(error, KubeApiError):
            raise type(error)(
                f"{error} ({after})",
                error.status,
                reason=error.reason,
                causes=error.causes,
                server_message=error.server_message,
            ) from error
        raise KubeError(f"{not_done} ({after})")

    def _resource(self, api_version: str, kind: str) -> Any:
        """Resource type of ``kind``; a kind not served yet is looked up again until the discovery deadline."""
        seconds = self.timeouts.discovery
        polled = poll(
            lambda: self._client.resource(api_version, kind),
            lambda _: True,
            seconds=seconds,
            interval=self._poll_interval,
            transient=lambda error: isinstance(error, KindNotServedError) or is_transient(error),
            clock=self._clock,
            sleep=self._sleep,
        )
        if not polled.done:
            raise KubeError(
                f"{kind} ({api_version}) is not served by {self.host} "
                f"(looked again for {seconds:g}s, the discovery deadline): {polled.last_seen()}"
            )
        return polled.last
