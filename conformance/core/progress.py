"""Progress lines for long steps (cluster creation, Istio install, waits).

Lines go to stderr through the ``conformance`` logger, so they show live under pytest (``-s`` is not
needed: the plugin attaches a handler to the terminal) and in CI logs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("conformance")


def info(message: str) -> None:
    LOGGER.info(message)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Log ``description ...`` on entry and ``done in Ns`` / ``failed after Ns`` on exit."""
    started = time.monotonic()
    LOGGER.info("%s ...", description)
    try:
        yield
    except BaseException:
        LOGGER.error("%s: failed after %.1fs", description, time.monotonic() - started)
        raise
    LOGGER.info("%s: done in %.1fs", description, time.monotonic() - started)


def attach_terminal_handler(level: int = logging.INFO) -> None:
    """Print progress lines to stderr once (idempotent)."""
    if any(getattr(h, "_egress_progress", False) for h in LOGGER.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[egress-conformance %(asctime)s] %(message)s", "%H:%M:%S"))
    handler._egress_progress = True  # type: ignore[attr-defined]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
