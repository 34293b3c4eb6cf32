"""Convergence and consistency checks: poll an observation until it holds, within a named deadline.

* ``eventually``: positive checks. Poll until the expectation matched ``consecutive`` times in a row; a
  mismatch resets the run. Fails at the deadline (default ``Timeouts.converge``).
* ``consistently``: negative checks (deny, drop, block). First wait (within the converge deadline) until
  the expected denial is observed ``consecutive`` times in a row, as a positive check converges, then
  require that run of denials to go on until it spans ``Timeouts.hold`` seconds. A probe that flips back
  then (e.g. the request is allowed again) fails at once: a converged drop is never retried into a
  success. Before convergence a mismatch only resets the run: while a new filter chain reaches a proxy,
  connections opened earlier still serve each one more request under the old one (Envoy drains them
  with the next response), so allowed and denied answers mix for a moment on every data plane.

Both poll with ``conformance.core.poll.poll`` (the harness's one polling loop): the clock and the sleep are
injectable, so tests run on a fake clock without sleeping. An attempt may start no later than the deadline.
A probe error of a ``tolerated`` type counts as an attempt that observed nothing.

Failures raise ``ExpectationFailed`` (an AssertionError) whose message names the check, the expected
state, the last observation, attempts, the consecutive matches reached, elapsed time and the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from conformance.core.poll import poll
from conformance.core.timeouts import Timeouts

LOGGER = logging.getLogger("conformance.core.expect")

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

#: Runs of identical observations shown in a failure message.
HISTORY_RUNS_SHOWN = 12
_OBSERVATION_TEXT_LIMIT = 1000


@runtime_checkable
class Expectation(Protocol[T_contra]):
    """An expected state; ``str()`` describes it for failure messages."""

    def matches(self, observation: T_contra, /) -> bool: ...


class ExpectationFailed(AssertionError):
    def __init__(
        self,
        *,
        description: str,
        expected: str,
        reason: str,
        last_observation: str,
        attempts: int,
        consecutive: int,
        best_run: int,
        needed: int,
        elapsed: float,
        deadline_name: str,
        deadline_seconds: float,
        history: str,
    ) -> None:
        self.description = description
        self.expected = expected
        self.reason = reason
        self.last_observation = last_observation
        self.attempts = attempts
        self.consecutive = consecutive
        self.best_run = best_run
        self.needed = needed
        self.elapsed = elapsed
        self.deadline_name = deadline_name
        self.deadline_seconds = deadline_seconds
        self.history = history
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(
            [
                f"{self.description}: {self.reason}",
                f"  expected: {self.expected} ({self.needed} consecutive)",
                f"  last observed: {self.last_observation}",
                f"  attempts: {self.attempts}; consecutive matches at the end: {self.consecutive} "
                f"(best run {self.best_run} of {self.needed} needed); elapsed {self.elapsed:.1f}s; "
                f"deadline {self.deadline_name}={self.deadline_seconds:g}s",
                f"  history (oldest first): {self.history}",
            ]
        )


def _label(observation: Any) -> str:
    """Short grouping key of an observation for the history line."""
    if observation is None:
        return "nothing"
    label = getattr(observation, "label", None)
    if callable(label):
        return str(label())
    outcome = getattr(observation, "outcome", None)
    if outcome is not None:
        return str(outcome)
    return str(observation)[:120]


def _describe(observation: Any) -> str:
    if observation is None:
        return "nothing"
    text = str(observation)
    return text if len(text) <= _OBSERVATION_TEXT_LIMIT else text[:_OBSERVATION_TEXT_LIMIT] + "..."


@dataclass
class _Tally(Generic[T]):
    """Running record of one check's observations."""

    needed: int
    attempts: int = 0
    consecutive: int = 0
    best_run: int = 0
    last: T | None = None
    last_text: str = "nothing yet"
    last_matched: bool = False
    #: Runs of [label, matched, count].
    runs: list[list[Any]] = field(default_factory=list)

    def record(self, observation: T | None, matched: bool, label: str, text: str) -> None:
        self.attempts += 1
        self.last = observation
        self.last_text = text
        self.last_matched = matched
        self.consecutive = self.consecutive + 1 if matched else 0
        self.best_run = max(self.best_run, self.consecutive)
        if self.runs and self.runs[-1][0] == label and self.runs[-1][1] == matched:
            self.runs[-1][2] += 1
        else:
            self.runs.append([label, matched, 1])

    def history(self) -> str:
        shown = self.runs[-HISTORY_RUNS_SHOWN:]
        text = " -> ".join(f"{label}{'' if ok else ' (no match)'} x{n}" for label, ok, n in shown)
        return ("... -> " if len(self.runs) > len(shown) else "") + (text or "no attempt")


def _deadline_seconds(timeouts: Timeouts, name: str) -> float:
    names = {f.name for f in fields(timeouts)}
    if name not in names:
        raise ValueError(f"unknown deadline {name!r}; Timeouts has {sorted(names)}")
    return float(getattr(timeouts, name))


def _predicate_of(expected: Expectation[T] | Callable[[T], bool]) -> Callable[[T], bool]:
    if isinstance(expected, Expectation):
        return expected.matches
    return expected


def _expected_text(expected: object, given: str | None) -> str:
    if given:
        return given
    if isinstance(expected, Expectation):
        return str(expected)
    return getattr(expected, "__name__", None) or repr(expected)


@dataclass(frozen=True)
class _Check(Generic[T]):
    probe: Callable[[], T]
    predicate: Callable[[T], bool]
    description: str
    expected: str
    needed: int
    interval: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    tolerated: tuple[type[Exception], ...]

    def observe(self, tally: _Tally[T]) -> bool:
        """One probe, recorded; True when it matched. A tolerated error propagates to ``run``, which records it."""
        observation = self.probe()
        matched = bool(self.predicate(observation))
        tally.record(observation, matched, _label(observation), _describe(observation))
        LOGGER.debug("%s: attempt %d %s: %s", self.description, tally.attempts, matched, tally.last_text)
        return matched

    def run(
        self,
        tally: _Tally[T],
        attempt: Callable[[], _Tally[T]],
        done: Callable[[_Tally[T]], bool],
        started: float,
        seconds: float,
    ) -> None:
        def tolerated(error: BaseException) -> bool:
            return isinstance(error, self.tolerated) and not isinstance(error, ExpectationFailed)

        def record_error(error: BaseException) -> None:
            tally.record(None, False, f"error {type(error).__name__}", f"{type(error).__name__}: {error}")

        poll(
            attempt,
            done,
            seconds=seconds,
            interval=self.interval,
            transient=tolerated,
            on_transient=record_error,
            clock=self.clock,
            sleep=self.sleep,
            started=started,
        )

    def failure(
        self, tally: _Tally[T], reason: str, started: float, deadline_name: str, deadline_seconds: float
    ) -> ExpectationFailed:
        return ExpectationFailed(
            description=self.description,
            expected=self.expected,
            reason=reason,
            last_observation=tally.last_text,
            attempts=tally.attempts,
            consecutive=tally.consecutive,
            best_run=tally.best_run,
            needed=self.needed,
            elapsed=self.clock() - started,
            deadline_name=deadline_name,
            deadline_seconds=deadline_seconds,
            history=tally.history(),
        )


def eventually(
    probe: Callable[[], T],
    expected: Expectation[T] | Callable[[T], bool],
    *,
    timeouts: Timeouts,
    deadline: str = "converge",
    consecutive: int = 3,
    interval: float | None = None,
    description: str = "check",
    expected_description: str | None = None,
    tolerated: tuple[type[Exception], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Poll ``probe`` until ``expected`` matches ``consecutive`` times in a row; return the last match.

    ``expected`` is an object with ``matches(observation)`` (an Outcome, a ResponseExpectation, a
    LogExpectation, ...) or a plain predicate. ``deadline`` names a Timeouts field.
    """
    check = _make_check(
        probe,
        expected,
        expected_description,
        description,
        consecutive,
        interval,
        timeouts,
        clock,
        sleep,
        tolerated,
    )
    seconds = _deadline_seconds(timeouts, deadline)
    started = clock()
    tally: _Tally[T] = _Tally(consecutive)

    def attempt() -> _Tally[T]:
        check.observe(tally)
        return tally

    check.run(tally, attempt, lambda t: t.consecutive >= consecutive, started, seconds)
    if tally.consecutive < consecutive:
        reason = (
            f"not observed {consecutive} times in a row within the {deadline} deadline"
            if tally.best_run
            else f"never observed within the {deadline} deadline"
        )
        raise check.failure(tally, reason, started, deadline, seconds)
    return cast(T, tally.last)


def consistently(
    probe: Callable[[], T],
    expected: Expectation[T] | Callable[[T], bool],
    *,
    timeouts: Timeouts,
    deadline: str = "converge",
    hold: str = "hold",
    consecutive: int = 3,
    interval: float | None = None,
    description: str = "check",
    expected_description: str | None = None,
    tolerated: tuple[type[Exception], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Wait until ``expected`` (a denial) is observed ``consecutive`` times in a row, then require it to
    hold; return the last observation.

    Holding means that run of matches going on, with no mismatch, until it spans the ``hold`` deadline
    (counted from its first match). Any mismatch once the run has converged fails immediately. A tolerated
    error (``tolerated``) during the hold does not fail but restarts the run of consecutive matches; the
    hold gives up after ``hold`` + ``deadline``.
    """
    check = _make_check(
        probe,
        expected,
        expected_description,
        description,
        consecutive,
        interval,
        timeouts,
        clock,
        sleep,
        tolerated,
    )
    converge_seconds = _deadline_seconds(timeouts, deadline)
    hold_seconds = _deadline_seconds(timeouts, hold)
    started = clock()
    tally: _Tally[T] = _Tally(consecutive)

    run_started = started

    def wait_attempt() -> _Tally[T]:
        nonlocal run_started
        probed_at = clock()
        if check.observe(tally) and tally.consecutive == 1:
            run_started = probed_at
        return tally

    check.run(tally, wait_attempt, lambda t: t.consecutive >= consecutive, started, converge_seconds)
    if tally.consecutive < consecutive:
        reason = (
            f"not observed {consecutive} times in a row within the {deadline} deadline"
            if tally.best_run
            else f"never observed within the {deadline} deadline"
        )
        raise check.failure(tally, reason, started, deadline, converge_seconds)

    def hold_attempt() -> _Tally[T]:
        if not check.observe(tally):
            held = clock() - run_started
            raise check.failure(
                tally,
                f"flipped back {held:.1f}s into the run of denials it had converged to (during the {hold} phase)",
                started,
                hold,
                hold_seconds,
            )
        return tally

    def held(t: _Tally[T]) -> bool:
        # The hold counts from the first denial of the run that converged: no mismatch since then.
        return t.consecutive >= consecutive and clock() - run_started >= hold_seconds

    if not held(tally):
        # The hold phase continues the polling rhythm: its first probe comes one interval later.
        check.sleep(check.interval)
        check.run(tally, hold_attempt, held, run_started, hold_seconds + converge_seconds)
    if not held(tally):
        raise check.failure(
            tally,
            f"observed, but could not confirm it held (probe errors) within {hold}+{deadline}",
            started,
            hold,
            hold_seconds + converge_seconds,
        )
    return cast(T, tally.last)


def _make_check(
    probe: Callable[[], T],
    expected: Expectation[T] | Callable[[T], bool],
    expected_description: str | None,
    description: str,
    consecutive: int,
    interval: float | None,
    timeouts: Timeouts,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    tolerated: tuple[type[Exception], ...],
) -> _Check[T]:
    if consecutive < 1:
        raise ValueError("consecutive must be at least 1")
    pause = timeouts.poll_interval if interval is None else interval
    if pause < 0:
        raise ValueError("interval must not be negative")
    return _Check(
        probe=probe,
        predicate=_predicate_of(expected),
        description=description,
        expected=_expected_text(expected, expected_description),
        needed=consecutive,
        interval=pause,
        clock=clock,
        sleep=sleep,
        tolerated=tolerated,
    )


__all__ = ["Expectation", "ExpectationFailed", "consistently", "eventually"]
