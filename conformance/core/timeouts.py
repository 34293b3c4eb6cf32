"""Named deadlines, in one place, scaled together by ``--timeout-scale``.

Every wait in the harness takes its deadline from here so a slow CI runner or a large vendor cluster can
stretch them all at once, and a failure message can name the deadline that ran out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

#: Bound of one local probe command (``docker info``, ``kind version``, ``istioctl version``): each answers
#: in about a second when healthy, and a wedged daemon socket or binary must not stall the run. Not
#: scaled: it runs before the settings are known.
PROBE_SECONDS = 15.0

#: Accepted ``--timeout-scale`` factors: below the minimum a deadline is shorter than one poll interval and
#: one curl attempt; above the maximum a stuck step would hold a CI runner for days.
TIMEOUT_SCALE_MIN = 0.1
TIMEOUT_SCALE_MAX = 100.0


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds."""

    cluster_create: float = 300.0
    istio_install: float = 600.0
    rollout: float = 300.0
    crd_established: float = 60.0
    #: A kind whose CRD was applied moments ago may take this long to show in the API server's discovery.
    discovery: float = 30.0
    #: One server-side apply kept retrying while the answer is transient (API server unreachable, 429, a
    #: webhook without endpoints right after an install, a namespace still terminating).
    apply: float = 90.0
    gateway_programmed: float = 180.0
    delete: float = 120.0
    dns_ready: float = 180.0
    #: Time for a configuration change to reach the data plane and give N consecutive matches.
    converge: float = 120.0
    #: How long a denial must keep holding once observed (negative checks).
    hold: float = 15.0
    #: One exec / curl attempt.
    request: float = 15.0
    #: curl's connect timeout in a probe that expects a denial: a blocked connection costs seconds.
    denied_connect: float = 3.0
    #: curl's whole-request limit in a probe that expects a denial.
    denied_request: float = 6.0
    #: Time for a proxy's access-log entry to be flushed and found.
    access_log: float = 60.0
    #: Pause between probe attempts (polling interval, not a fixed wait for a state).
    poll_interval: float = 1.0
    #: One ``kind load docker-image`` of every image a run deploys (--load-images): a few GB on a slow disk.
    image_load: float = 600.0
    #: One diagnostic command while collecting a failed check's evidence (istioctl proxy-config, analyze).
    diagnostics: float = 60.0

    def scaled(self, factor: float) -> Timeouts:
        if factor <= 0:
            raise ValueError("timeout scale must be a positive number")
        values = {f.name: getattr(self, f.name) * factor for f in fields(self) if f.name != "poll_interval"}
        return replace(self, **values)


DEFAULT_TIMEOUTS = Timeouts()
