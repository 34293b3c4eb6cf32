"""Large, realistic access logs for scale tests and the benchmark, built from tests/data/accesslog/."""

from __future__ import annotations

import random
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "accesslog"
SAMPLES = ("egress-gateway.log", "sidecar-client.log", "waypoint.log", "noise.log")


def synthetic_log(lines: int, seed: int = 7) -> tuple[str, list[str]]:
    """``lines`` lines drawn from the samples, each probe line with a fresh token; returns text and tokens."""
    rng = random.Random(seed)
    templates = [line for name in SAMPLES for line in (SAMPLE_DIR / name).read_text().splitlines()]
    tokens: list[str] = []
    out: list[str] = []
    for _ in range(lines):
        line = rng.choice(templates)
        if "egress-conformance/" in line:
            token = f"{rng.getrandbits(64):016x}"
            tokens.append(token)
            line = line.replace(line.split("egress-conformance/")[1][:16], token)
        out.append(line)
    return "\n".join(out) + "\n", tokens
