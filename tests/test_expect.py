"""eventually / consistently on a fake clock: no real sleeping, every test runs in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from conformance.core.expect import ExpectationFailed, consistently, eventually
from conformance.core.timeouts import Timeouts
from conformance.probe.accesslog import AccessLogEntry
from conformance.probe.log_matchers import LogExpectation, Prefix
from conformance.probe.outcomes import CONN_REFUSED, TIMEOUT, Outcome, http

TIMEOUTS = Timeouts(converge=30.0, hold=10.0, poll_interval=1.0)


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Script:
    """A probe answering from a list; each call takes ``cost`` seconds of fake time."""

    clock: FakeClock
    answers: list[Outcome]
    cost: float = 0.25
    calls: int = 0
    repeat_last: bool = True

    def __call__(self) -> Outcome:
        self.clock.now += self.cost
        index = min(self.calls, len(self.answers) - 1) if self.repeat_last else self.calls % len(self.answers)
        self.calls += 1
        return self.answers[index]


def run_eventually(clock: FakeClock, probe: Callable[[], Outcome], expected: object, **kwargs: object) -> Outcome:
    return eventually(
        probe,
        expected,  # type: ignore[arg-type]
        timeouts=TIMEOUTS,
        description="EGW-03 sleep: curl -sI http://aliyun.com",
        clock=clock,
        sleep=clock.sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def sequence(*parts: tuple[Outcome, int]) -> list[Outcome]:
    return [outcome for outcome, count in parts for _ in range(count)]


# --------------------------------------------------------------------------------------------------
# eventually


def test_converges_after_k_failures() -> None:
    clock = FakeClock()
    probe = Script(clock, sequence((http(502), 4), (http(301), 1)))
    started = time.monotonic()
    assert run_eventually(clock, probe, http(301)) == http(301)
    assert time.monotonic() - started < 1.0  # the fake clock did the waiting
    assert probe.calls == 4 + 3  # three consecutive matches needed
    assert clock.sleeps == [1.0] * 6
    assert clock.now == pytest.approx(1000.0 + 7 * 0.25 + 6 * 1.0)


def test_first_probes_matching_return_without_sleeping_more_than_needed() -> None:
    clock = FakeClock()
    probe = Script(clock, [http(301)])
    run_eventually(clock, probe, http(301), consecutive=1)
    assert probe.calls == 1
    assert clock.sleeps == []


def test_flapping_never_gives_three_in_a_row() -> None:
    clock = FakeClock()
    flapping = sequence((http(301), 2), (http(502), 1))
    probe = Script(clock, flapping, repeat_last=False)
    with pytest.raises(ExpectationFailed) as failure:
        run_eventually(clock, probe, http(301))
    error = failure.value
    assert isinstance(error, AssertionError)
    assert error.best_run == 2
    assert error.needed == 3
    assert error.deadline_name == "converge"
    assert error.deadline_seconds == 30.0
    assert error.attempts == probe.calls
    # No attempt starts after the deadline.
    assert error.elapsed <= 30.0 + probe.cost
    message = str(error)
    assert message.startswith("EGW-03 sleep: curl -sI http://aliyun.com: not observed 3 times in a row")
    assert "expected: http(301) (3 consecutive)" in message
    assert "last observed: http(" in message
    assert f"attempts: {probe.calls}" in message
    assert "best run 2 of 3 needed" in message
    assert "deadline converge=30s" in message
    assert "http(301) x2 -> http(502) (no match) x1 -> http(301) x2" in message


def test_never_matching_says_never_observed() -> None:
    clock = FakeClock()
    probe = Script(clock, [http(502)])
    with pytest.raises(ExpectationFailed) as failure:
        run_eventually(clock, probe, http(301), deadline="hold")
    assert "never observed within the hold deadline" in str(failure.value)
    assert failure.value.deadline_seconds == 10.0
    assert "history (oldest first): http(502) (no match) x" in str(failure.value)


def test_predicate_and_described_expectation() -> None:
    clock = FakeClock()
    probe = Script(clock, [http(418)])

    def is_teapot(outcome: Outcome) -> bool:
        return outcome == http(418)

    assert run_eventually(clock, probe, is_teapot) == http(418)
    with pytest.raises(ExpectationFailed, match="expected: status is a redirect"):
        run_eventually(
            clock, probe, lambda o: o.status in (301, 302), expected_description="status is a redirect", consecutive=1
        )


def test_outcome_sets_as_expectations() -> None:
    clock = FakeClock()
    probe = Script(clock, sequence((http(301), 1), (TIMEOUT, 1), (CONN_REFUSED, 1), (TIMEOUT, 1)))
    assert run_eventually(clock, probe, TIMEOUT | CONN_REFUSED) == TIMEOUT
    assert probe.calls == 4


def test_long_history_is_shortened() -> None:
    clock = FakeClock()
    answers = [http(500 + i % 20) for i in range(40)]
    probe = Script(clock, answers, cost=0.0, repeat_last=False)
    with pytest.raises(ExpectationFailed) as failure:
        run_eventually(clock, probe, http(301))
    assert failure.value.history.startswith("... -> ")
    assert failure.value.history.count(" -> ") == 12


def test_tolerated_errors_count_as_mismatches() -> None:
    clock = FakeClock()
    calls: Iterator[Outcome | Exception] = iter([RuntimeError("exec stream closed"), http(301), http(301), http(301)])

    def probe() -> Outcome:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert run_eventually(clock, probe, http(301), tolerated=(RuntimeError,)) == http(301)

    def broken() -> Outcome:
        raise KeyError("not tolerated")

    with pytest.raises(KeyError):
        run_eventually(clock, broken, http(301), tolerated=(RuntimeError,))


def test_bad_arguments() -> None:
    clock = FakeClock()
    probe = Script(clock, [http(301)])
    with pytest.raises(ValueError, match="unknown deadline 'convergence'"):
        run_eventually(clock, probe, http(301), deadline="convergence")
    with pytest.raises(ValueError):
        run_eventually(clock, probe, http(301), consecutive=0)
    with pytest.raises(ValueError):
        run_eventually(clock, probe, http(301), interval=-1.0)


def test_log_observations() -> None:
    clock = FakeClock()
    entry = AccessLogEntry(upstream_cluster="outbound|80||aliyun.com", response_code=301)
    lookups: Iterator[AccessLogEntry | None] = iter([None, None, entry, entry, entry])

    def lookup() -> AccessLogEntry | None:
        clock.now += 0.1
        return next(lookups)

    found = eventually(
        lookup,
        LogExpectation({"upstream_cluster": Prefix("outbound|80||"), "response_code": 301}),
        timeouts=TIMEOUTS,
        clock=clock,
        sleep=clock.sleep,
    )
    assert found is entry


# --------------------------------------------------------------------------------------------------
# consistently


def run_consistently(clock: FakeClock, probe: Callable[[], Outcome], expected: object, **kwargs: object) -> Outcome:
    return consistently(
        probe,
        expected,  # type: ignore[arg-type]
        timeouts=TIMEOUTS,
        description="NSD-04 sleep: curl -sI http://www.aliyun.com",
        clock=clock,
        sleep=clock.sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def test_denial_holds() -> None:
    clock = FakeClock()
    probe = Script(clock, sequence((http(301), 3), (http(403), 1)))
    assert run_consistently(clock, probe, http(403)) == http(403)
    # 3 allowed, first denial, then denials until 3 in a row AND the 10 s hold have passed.
    first_denial_at = 1000.0 + 4 * 0.25 + 3 * 1.0
    assert clock.now - first_denial_at >= TIMEOUTS.hold
    assert probe.calls >= 3 + 3
    assert probe.calls <= 3 + 1 + 10  # one probe per ~1.25 s of hold


def test_hold_needs_n_probes_even_when_probes_are_slow() -> None:
    clock = FakeClock()
    probe = Script(clock, [TIMEOUT], cost=8.0)  # each blocked curl waits out its max-time
    run_consistently(clock, probe, TIMEOUT | CONN_REFUSED)
    assert probe.calls == 3


def test_denial_that_flips_back_after_converging_fails_at_once() -> None:
    clock = FakeClock()
    probe = Script(clock, sequence((http(301), 2), (http(403), 4), (http(301), 5)))
    with pytest.raises(ExpectationFailed) as failure:
        run_consistently(clock, probe, http(403))
    error = failure.value
    assert probe.calls == 7  # no retry after the flip
    assert error.deadline_name == "hold"
    message = str(error)
    assert "flipped back 5.2s into the run of denials it had converged to (during the hold phase)" in message
    assert "last observed: http(301)" in message
    assert "best run 4 of 3 needed" in message
    assert "http(301) (no match) x2 -> http(403) x4 -> http(301) (no match) x1" in message


def test_allowed_answers_while_the_denial_converges_only_reset_the_run() -> None:
    """A new filter chain reaches the proxy while connections opened before it still serve one more
    request each under the old one: seen on a live gateway as 301, 301, 403, 301, then 403 only."""
    clock = FakeClock()
    probe = Script(clock, sequence((http(301), 2), (http(403), 1), (http(301), 1), (http(403), 1)))
    assert run_consistently(clock, probe, http(403)) == http(403)
    assert probe.calls >= 4 + 3


def test_never_denied_fails_at_the_converge_deadline() -> None:
    clock = FakeClock()
    probe = Script(clock, [http(301)])
    with pytest.raises(ExpectationFailed) as failure:
        run_consistently(clock, probe, TIMEOUT | CONN_REFUSED)
    error = failure.value
    assert error.deadline_name == "converge"
    assert error.best_run == 0
    assert 29.0 <= error.elapsed <= 30.0 + probe.cost
    message = str(error)
    assert "never observed within the converge deadline" in message
    assert "expected: timeout or conn-refused (3 consecutive)" in message


def test_probe_errors_during_hold_restart_the_run_but_do_not_fail() -> None:
    clock = FakeClock()
    answers: list[Outcome | Exception] = [*([http(403)] * 3), RuntimeError("exec failed"), *([http(403)] * 20)]
    position = iter(answers)

    def probe() -> Outcome:
        clock.now += 0.25
        item = next(position)
        if isinstance(item, Exception):
            raise item
        return item

    assert run_consistently(clock, probe, http(403), tolerated=(RuntimeError,), hold="poll_interval") == http(403)


def test_persistent_probe_errors_during_hold_give_up() -> None:
    clock = FakeClock()
    denials = iter([http(403)] * 3)

    def probe() -> Outcome:
        clock.now += 0.25
        denial = next(denials, None)
        if denial is None:
            raise RuntimeError("exec failed")
        return denial

    with pytest.raises(ExpectationFailed, match="could not confirm it held"):
        run_consistently(clock, probe, http(403), tolerated=(RuntimeError,))
