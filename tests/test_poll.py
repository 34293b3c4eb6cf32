"""conformance.core.poll: the one polling loop, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from conformance.core.poll import poll


@dataclass
class FakeClock:
    now: float = 100.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky(Exception):
    pass


def test_returns_at_the_first_done_result_without_sleeping_after_it() -> None:
    clock = FakeClock()
    results = iter([1, 2, 3, 4])

    polled = poll(lambda: next(results), lambda n: n == 3, seconds=10, interval=1, clock=clock, sleep=clock.sleep)

    assert polled.done and polled.last == 3 and polled.attempts == 3
    assert clock.sleeps == [1, 1]


def test_last_attempt_starts_at_the_deadline_and_none_after_it() -> None:
    clock = FakeClock()
    started_at: list[float] = []

    def attempt() -> int:
        started_at.append(clock.now - 100.0)
        return 0

    polled = poll(attempt, lambda _: False, seconds=2.5, interval=1, clock=clock, sleep=clock.sleep)

    assert not polled.done
    assert started_at == [0.0, 1.0, 2.0, 2.5]  # the last sleep is only what was left
    assert polled.elapsed == 2.5
    assert polled.last_seen() == "0"


def test_an_attempt_that_ends_past_the_deadline_is_the_last() -> None:
    clock = FakeClock()
    started_at: list[float] = []

    def attempt() -> int:
        started_at.append(clock.now - 100.0)
        clock.now += 0.4
        return 0

    polled = poll(attempt, lambda _: False, seconds=3, interval=1, clock=clock, sleep=clock.sleep)

    assert started_at == pytest.approx([0.0, 1.4, 2.8])
    assert polled.elapsed == pytest.approx(3.2)


def test_transient_errors_count_as_not_done_and_are_reported() -> None:
    clock = FakeClock()
    answers: list[int | Exception] = [Flaky("busy"), Flaky("busy"), 7]
    seen: list[str] = []

    def attempt() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    polled = poll(
        attempt,
        lambda n: n == 7,
        seconds=10,
        interval=1,
        transient=lambda error: isinstance(error, Flaky),
        on_transient=lambda error: seen.append(str(error)),
        clock=clock,
        sleep=clock.sleep,
    )

    assert polled.done and polled.attempts == 3
    assert seen == ["busy", "busy"]


def test_a_wait_ending_on_a_transient_error_names_it() -> None:
    clock = FakeClock()

    def attempt() -> int:
        raise Flaky("API server not reachable")

    polled = poll(
        attempt, lambda _: True, seconds=2, interval=1, transient=lambda _: True, clock=clock, sleep=clock.sleep
    )

    assert not polled.done and polled.last is None
    assert polled.last_seen() == "Flaky: API server not reachable"


def test_other_errors_end_the_wait_at_once() -> None:
    clock = FakeClock()
    calls = []

    def attempt() -> int:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        poll(attempt, lambda _: True, seconds=10, interval=1, transient=lambda e: isinstance(e, Flaky), clock=clock)
    assert len(calls) == 1


def test_deadline_counts_from_the_given_start() -> None:
    clock = FakeClock()
    polled = poll(lambda: 0, lambda _: False, seconds=5, interval=1, clock=clock, sleep=clock.sleep, started=97.0)
    assert polled.attempts == 3  # at 100, 101, 102 (= 97 + 5)


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        poll(lambda: 0, lambda _: True, seconds=1, interval=-1)
