"""``--keep-on-failure``: the first failed check stops the run and everything stays in place to inspect.

The failed check's objects are not removed, its clients keep running, Istio stays installed, the external
world and the kind cluster are kept. The run prints where to look: the kubeconfig, the namespaces, and the
``istioctl proxy-config`` commands for the check's proxies.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pytest

from conformance.runtimes.failure_evidence import PROXY_CONFIG_KINDS, ClusterAccess

#: Kinds worth listing in a kept check's namespaces (the configuration a scenario applies).
INSPECT_KINDS = "all,serviceentries,gateways,virtualservices,destinationrules,authorizationpolicies,networkpolicies"


@dataclass(frozen=True)
class KeptFailure:
    """The failed check left in place, and how to reach it."""

    check_id: str
    mode: str | None
    nodeid: str
    access: ClusterAccess | None
    namespaces: tuple[str, ...] = ()
    #: istioctl targets of the check's proxies: ``<pod>.<namespace>`` or ``deployment/<name>.<namespace>``.
    proxies: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        mode = f" ({self.mode})" if self.mode else ""
        return f"--keep-on-failure: {self.check_id}{mode} failed"

    def instructions(self) -> list[str]:
        """What to run to inspect the kept failure."""
        lines = [f"{self.reason}; its resources, Istio and the cluster were left in place and the run stopped."]
        if self.access is None:
            lines.append("The check failed before it reached the cluster: there is nothing of it to inspect.")
            return lines
        flags = shlex.join(self.access.flags())
        context = f" (context {self.access.context})" if self.access.context else ""
        lines.append(f"kubeconfig: {self.access.kubeconfig}{context}")
        if self.namespaces:
            lines.append(f"namespaces: {', '.join(self.namespaces)}")
            lines += [f"  kubectl {flags} -n {shlex.quote(ns)} get {INSPECT_KINDS}" for ns in self.namespaces]
            lines += [
                f"  kubectl {flags} -n {shlex.quote(ns)} get events --sort-by=.lastTimestamp" for ns in self.namespaces
            ]
        if self.proxies:
            lines.append("proxy configuration:")
            lines += [
                f"  istioctl proxy-config {kind} {shlex.quote(target)} {flags}"
                for target in self.proxies
                for kind in PROXY_CONFIG_KINDS
            ]
        lines.append(
            "When done, delete the kind cluster with the command printed above, or — on your own cluster — the "
            "namespaces listed (and Istio, if the harness installed it: istioctl uninstall --purge)."
        )
        return lines


KEPT_KEY = pytest.StashKey[KeptFailure]()


def kept(config: pytest.Config) -> KeptFailure | None:
    """The failed check kept for inspection in this run, if any."""
    return config.stash.get(KEPT_KEY, None)
