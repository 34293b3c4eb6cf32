"""Routing oracle: Istio's own code predicts every check's traffic path from the plan.

The Go program in ``oracle/`` (a ``go test`` binary built against the release-1.30 or release-1.31 branch
of ``istio.io/istio``) reads ``plan.json``, replays each check's actions, builds the xDS istiod would push
for every state a probe runs in (``pilot/test/xds`` + ``pilot/pkg/simulation``) and walks each probe hop by
hop: the client's sidecar (listener, route, cluster, mTLS or plaintext to the next hop), the egress
gateway (the filter chain that matches what the sidecar sends, route, cluster, RBAC filters) or an
ambient waypoint (its ``inbound-vip|...`` chain), down to the origin or to where Envoy stops the request.
It also runs ``istioctl analyze`` (in-process, file mode) over each state.

This module builds that binary on demand, runs it and compares its predictions with each check's
expectations (the judging is in ``oracle_judgement``, the verdict types in ``oracle_verdicts``)::

    report = run_oracle(plan_path, cache_dir=settings.cache_dir, timeouts=OracleTimeouts().scaled(scale))
    verdict = report.verdicts[("EGW-04", "sidecar")]
    verdict.verdict            # Verdict.AGREES | Verdict.DISAGREES | Verdict.NOT_PREDICTED
    verdict.as_dict()          # for the plan report: verdict, predicted path per probe, where they part
    report.as_dict()           # everything, incl. the Istio branch used and istioctl analyze warnings

* Build: ``go test -c`` into ``<cache_dir>/oracle/<branch>/oracle-<key>.test``; the key hashes the branch's
  go.mod/go.sum, every Go source of ``oracle/`` and the Go version, so an unchanged tree reuses the binary.
  ``go`` missing raises ``OracleError`` naming it.
* Branch: the plan's ``istioVersion`` minor (1.30 or 1.31). The Go module proxy serves no 1.29 code:
  a 1.29 plan is predicted with release-1.30 and the report says so (``OracleReport.branch_note``).
* Verdicts: a positive check (``until: converges``, an HTTP answer the origin gives) agrees when the request
  is predicted to reach an origin and every access-log assertion on a field the oracle predicts
  (``upstream_cluster``, ``upstream_host`` port, ``authority``, ``method``, Envoy's own ``response_code``,
  ``downstream_remote_address`` host) holds for the predicted hop; ``present: false`` agrees when the
  proxy is not on the predicted path. A negative check agrees when the request is predicted to stop the
  way it expects (``http(502)``: REGISTRY_ONLY ``block_all``; ``http(403)``: an RBAC deny; ``tls-reset``:
  BlackHoleCluster or a refused TLS connection; ...). Whatever the oracle cannot judge (ztunnel,
  NetworkPolicy, DNS, the external world, a TLS handshake with the origin) makes the check
  ``not-predicted`` with the reason (and what the mesh part alone gives); it never counts as agreeing.
  ``present: false`` with a ``controlProbe`` also needs the control request predicted to reach that
  proxy. An ``istioctl analyze`` error in a probe's state is a disagreement; its warnings are listed.
* A disagreement names the hop where prediction and expectation part (``ProbeVerdict.hop``: e.g.
  ``egress-gateway istio-system/istio-egressgateway``, ``sidecar default/sleep``, ``istioctl analyze``).
* The plan is checked against ``conformance/schemas/plan.schema.json`` first (``load_plan``).
* ``run_manifest_generate`` renders ``manifests/istio/{sidecar,ambient}.yaml`` with the same binary's
  istioctl and lists every failed assertion on the rendered egress gateway, mesh config and ambient parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from conformance.core import progress
from conformance.engine.oracle_build import (
    PLAN_SCHEMA,
    Branch,
    OracleError,
    OracleTimeouts,
    branch_for,
    build_oracle,
    run_predictions,
)
from conformance.engine.oracle_judgement import compare
from conformance.engine.oracle_verdicts import CheckVerdict, Verdict

DEFAULT_ORACLE_TIMEOUTS = OracleTimeouts()


@dataclass
class OracleReport:
    branch: Branch
    istio_module: str
    verdicts: dict[tuple[str, str], CheckVerdict]
    predictions: dict[str, Any] = field(repr=False)
    run_errors: list[str] = field(default_factory=list)

    @property
    def branch_note(self) -> str | None:
        return self.branch.note

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "istioBranch": self.branch.name,
            "istioModule": self.istio_module,
            "checks": [v.as_dict() for v in self.verdicts.values()],
            "summary": {
                verdict.value: sum(1 for v in self.verdicts.values() if v.verdict is verdict) for verdict in Verdict
            },
        }
        if self.branch.note:
            data["branchNote"] = self.branch.note
        if self.run_errors:
            data["runErrors"] = self.run_errors
        return data


def load_plan(plan_path: Path) -> dict[str, Any]:
    """The plan, checked against conformance/schemas/plan.schema.json (OracleError names what is wrong)."""
    try:
        plan: dict[str, Any] = json.loads(plan_path.read_text())
    except (OSError, ValueError) as exc:
        raise OracleError(f"plan {plan_path}: {exc}") from None
    validator = jsonschema.Draft202012Validator(json.loads(PLAN_SCHEMA.read_text()))
    problems = sorted(validator.iter_errors(plan), key=lambda e: list(e.absolute_path))
    if problems:
        shown = "; ".join(f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in problems[:5])
        raise OracleError(f"plan {plan_path} does not follow {PLAN_SCHEMA.name}: {shown}")
    return plan


def run_oracle(
    plan_path: Path,
    *,
    cache_dir: Path,
    timeouts: OracleTimeouts = DEFAULT_ORACLE_TIMEOUTS,
    analyze: bool = True,
) -> OracleReport:
    """Build (or reuse) the oracle for the plan's Istio version, run it and judge every check.

    ``cache_dir`` is the harness's cache directory (``--cache-dir``); binaries go to
    ``<cache_dir>/oracle/<branch>/``.
    """
    plan = load_plan(plan_path)
    branch = branch_for(str(plan.get("istioVersion", "")))
    if branch.note:
        progress.info(f"routing oracle: {branch.note}")
    binary = build_oracle(branch, cache_dir=cache_dir, timeouts=timeouts)
    predictions = run_predictions(binary, plan_path, timeouts=timeouts, analyze=analyze)
    return OracleReport(
        branch=branch,
        istio_module=str(predictions.get("istioModule", "")),
        verdicts=compare(plan, predictions),
        predictions=predictions,
        run_errors=list(predictions.get("runErrors", [])),
    )
