"""The one polling loop behind every wait in the harness.

``poll`` calls an attempt until a ``done`` judgement accepts its result or the deadline passes. Between
attempts it sleeps the interval, or only what is left of the deadline, so the last attempt starts at the
deadline and none starts after it. An exception the ``transient`` judgement accepts (an API server that is
briefly unreachable, throttling, an exec stream that broke) counts as one more attempt that is not done
yet; any other exception ends the wait at once. The clock and the sleep are injectable, so tests run on
a fake clock without waiting.

Callers turn the returned ``Polled`` into their own failure: ``conformance.core.expect`` into an
``ExpectationFailed`` with its history, the Kubernetes waits into a ``KubeError`` naming the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def never(_error: BaseException) -> bool:
    """No exception is transient."""
    return False


@dataclass(frozen=True)
class Polled(Generic[T]):
    """How a wait ended: ``done``, or the deadline passed; with the last result or transient error."""

    done: bool
    #: Result of the last attempt that returned (None when every attempt raised a transient error).
    last: T | None
    #: Transient error of the last attempt, None when it returned a result.
    last_error: BaseException | None
    attempts: int
    elapsed: float

    def last_seen(self, describe: Callable[[T], str] = str) -> str:
        """The last result (or transient error), for a failure message."""
        if self.last_error is not None:
            return f"{type(self.last_error).__name__}: {self.last_error}"
        return "nothing" if self.last is None else describe(self.last)


def poll(
    attempt: Callable[[], T],
    done: Callable[[T], bool],
    *,
    seconds: float,
    interval: float,
    transient: Callable[[BaseException], bool] = never,
    on_transient: Callable[[BaseException], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    started: float | None = None,
) -> Polled[T]:
    """Attempt until ``done(result)``; give up when the next attempt would start after ``seconds``.

    ``seconds`` counts from ``started`` (default: now). The first attempt is immediate. A transient
    error is passed to ``on_transient`` (for a caller's record of attempts) and the polling goes on.
    """
    if interval < 0:
        raise ValueError("the polling interval must not be negative")
    begin = clock() if started is None else started
    attempts = 0
    last: T | None = None
    last_error: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = attempt()
        except Exception as error:
            if not transient(error):
                raise
            last_error = error
            if on_transient is not None:
                on_transient(error)
        else:
            last, last_error = result, None
            if done(result):
                return Polled(True, last, None, attempts, clock() - begin)
        remaining = seconds - (clock() - begin)
        if remaining <= 0:
            return Polled(False, last, last_error, attempts, clock() - begin)
        sleep(min(interval, remaining))
