"""Throughput of access-log lookups on a 100 000-line proxy log.

Run: ``python tests/bench_accesslog.py`` (not a pytest module). Prints lines per second for the token
lookup (substring prefilter, one JSON parse per candidate line), the time-window lookup of TCP lines and
a full parse of every line, for comparison.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.probe.accesslog import entries_in_window, entries_with_token, parse_lines
from tests.fakes.accesslogs import synthetic_log

LINES = 100_000


def measure(name: str, lines: int, action: Callable[[], object], repeat: int = 5) -> None:
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    count = len(result) if isinstance(result, list) else result
    print(f"{name:<34} {best * 1000:8.1f} ms  {lines / best:14,.0f} lines/s  (found {count})")


def main() -> None:
    text, tokens = synthetic_log(LINES, seed=1)
    token = tokens[len(tokens) // 2]
    started = datetime(2026, 11, 20, 10, 15, 20, 200000, tzinfo=UTC)
    print(f"{LINES:,} lines, {len(text) / 1e6:.1f} MB, {len(tokens):,} tokens")
    measure("token lookup", LINES, lambda: entries_with_token(text, token))
    measure(
        "window lookup with SNI",
        LINES,
        lambda: entries_in_window(
            text, started, started, skew=timedelta(seconds=1), requested_server_name="www.httpbin.org"
        ),
    )
    measure("window lookup without SNI", LINES, lambda: entries_in_window(text, started, started))
    measure("full parse (reference)", LINES, lambda: list(parse_lines(text)), repeat=1)


if __name__ == "__main__":
    main()
