"""Judging the oracle's raw predictions against each check's expectations of the plan: outcomes, access logs,
RBAC decisions and ``istioctl analyze`` messages, down to one verdict per check and mode."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.engine.oracle_verdicts import CheckVerdict, ProbeVerdict, Verdict
from conformance.probe.outcomes import AnyOutcome, NotOutcome, Outcome, OutcomeKind, parse_expected

#: HTTP codes Envoy itself answers with on a blocked request: a positive prediction (the origin answers)
#: cannot agree with them unless the origin is asked for that very code.
_ENVOY_CODES = frozenset({403, 404, 502, 503})

#: Log fields the oracle predicts, and the key in a hop's ``log`` object holding the prediction.
_PREDICTED_LOG_FIELDS: Mapping[str, str] = {
    "upstream_cluster": "upstream_cluster",
    "upstream_host": "upstream_host_port",
    "authority": "authority",
    "method": "method",
    "response_code": "response_code",
    "route_name": "route_name",
    "requested_server_name": "requested_server_name",
    "downstream_remote_address": "downstream_remote_host",
}


def describe_path(prediction: Mapping[str, Any]) -> str:
    """One line per prediction: each hop's listener/chain, route and cluster, then where it ends."""
    parts: list[str] = []
    for hop in prediction.get("hops") or []:
        name = f"{hop.get('proxy')} {hop.get('workload')}"
        if not hop.get("simulated"):
            parts.append(f"{name} (not simulated)")
            continue
        call = hop.get("call") or {}
        detail = [
            f"{call.get('tls', '?')}:{call.get('port', '?')}",
            hop.get("filterChain") or hop.get("listener") or "",
            hop.get("route") or "",
            hop.get("cluster") or "",
        ]
        up = hop.get("upstream")
        if up:
            detail.append(f"-> {up.get('transport')}")
        if hop.get("error"):
            detail.append(f"error: {hop['error']}")
        rbac = hop.get("rbac")
        if rbac and rbac.get("decision") != "allow":
            detail.append(f"rbac {rbac.get('decision')}")
        parts.append(f"{name} [{' '.join(d for d in detail if d)}]")
    outcome = prediction.get("outcome", {})
    origin = outcome.get("origin")
    if origin:
        where = origin.get("host") or origin.get("address")
        parts.append(f"origin {where}:{origin.get('port')}")
    else:
        parts.append(f"{outcome.get('class')} {outcome.get('clientObserves') or ''}".strip())
    return " -> ".join(parts)


def _hop_label(hop: Mapping[str, Any]) -> str:
    return f"{hop.get('proxy')} {hop.get('workload')}"


def _field_matches(matcher: Mapping[str, Any], value: Any, key: str) -> bool | None:
    """True/False when the matcher can be judged on the predicted value; None when it cannot."""
    if "not" in matcher:
        inner = _field_matches(matcher["not"], value, key)
        return None if inner is None else not inner
    if "absent" in matcher:
        return value is None
    if "present" in matcher:
        return value is not None
    if "equals" in matcher:
        if key == "upstream_host_port":
            return None
        expected = matcher["equals"]
        return value == expected if value is not None or expected is None else False
    if "portOf" in matcher:
        return value == matcher["portOf"] if key == "upstream_host_port" and value else None
    if "hostOf" in matcher:
        return value == matcher["hostOf"] if key == "downstream_remote_host" and value else None
    if "prefix" in matcher:
        return isinstance(value, str) and value.startswith(matcher["prefix"])
    if "contains" in matcher:
        return isinstance(value, str) and matcher["contains"] in value
    return None


@dataclass
class _Judgement:
    verdict: Verdict = Verdict.AGREES
    reasons: list[str] = field(default_factory=list)
    hop: str | None = None

    def disagree(self, reason: str, hop: str | None) -> None:
        if self.verdict is not Verdict.DISAGREES:
            self.hop = hop
        self.verdict = Verdict.DISAGREES
        self.reasons.append(reason)

    def cannot_judge(self, reason: str) -> None:
        if self.verdict is Verdict.AGREES:
            self.verdict = Verdict.NOT_PREDICTED
        self.reasons.append(reason)


def _is_positive_http(expected: Outcome | AnyOutcome | NotOutcome) -> bool:
    options = expected.options if isinstance(expected, AnyOutcome) else (expected,)
    return all(isinstance(o, Outcome) and o.kind is OutcomeKind.HTTP for o in options)


def _origin_may_answer(expected: Outcome | AnyOutcome | NotOutcome, path: str) -> bool:
    """The expected HTTP code(s) can come from the origin: not one of Envoy's own, or asked for."""
    options = expected.options if isinstance(expected, AnyOutcome) else (expected,)
    for option in options:
        if not isinstance(option, Outcome) or option.kind is not OutcomeKind.HTTP or option.status is None:
            return False
        if option.status in _ENVOY_CODES and not path.split("?")[0].endswith(f"/status/{option.status}"):
            return False
    return True


def _judge_outcome(action: Mapping[str, Any], prediction: Mapping[str, Any], judgement: _Judgement) -> None:
    expect = action["expect"]
    expected = parse_expected(expect["outcome"])
    outcome = prediction["outcome"]
    observed = outcome.get("clientObserves") or ""
    at = outcome.get("at")
    path = _request_path(action["request"]["url"])
    if outcome.get("class") == "config-rejected":
        # No check documents a rejected configuration: the apply that the probe follows fails on a cluster.
        judgement.disagree(outcome.get("detail") or "Istio's validation rejects this configuration", "istio validation")
        return
    if outcome.get("class") == "not-predicted" or not observed:
        judgement.cannot_judge(outcome.get("detail") or "the oracle could not walk this probe")
        return
    if observed == "origin":
        origin = outcome.get("origin") or {}
        if _is_positive_http(expected) and _origin_may_answer(expected, path):
            return
        if outcome.get("class") == "direct":
            judgement.cannot_judge(
                f"no mesh proxy is on the path ({outcome.get('detail')}): whether the client gets {expected} "
                "depends on the external world or the network, outside the oracle"
            )
            return
        if origin.get("known") == "external mTLS ingress" and origin.get("transport") == "mutual-tls":
            judgement.cannot_judge(
                f"the request is predicted to reach the external mTLS ingress ({outcome.get('detail')}); "
                f"whether it answers {expected} is the external world's own policy, outside the oracle"
            )
            return
        judgement.disagree(
            f"expected {expected}, but the request is predicted to reach the origin: {outcome.get('detail')}",
            _last_hop(prediction),
        )
        return
    if observed == "loop":
        # A loop never reaches the origin: it contradicts an origin's answer, satisfies "not <answer>",
        # and its exact failure (timeout, 502, 503, ...) is not predicted.
        if isinstance(expected, NotOutcome):
            return
        if _is_positive_http(expected) and _origin_may_answer(expected, path):
            judgement.disagree(f"expected {expected}, but {outcome.get('detail')}", at)
            return
        judgement.cannot_judge(f"the request loops ({outcome.get('detail')}); the exact failure is not predicted")
        return
    predicted = (
        # A connection Envoy resets before answering: curl calls it conn-reset on http, tls-reset on https.
        [Outcome.parse(observed)]
        if observed != "reset"
        else [Outcome(OutcomeKind.CONN_RESET), Outcome(OutcomeKind.TLS_RESET)]
    )
    if not any(expected.matches(p) for p in predicted):
        judgement.disagree(f"expected {expected}, predicted {observed}: {outcome.get('detail')}", at)
        return
    body = expect.get("bodyContains")
    if body and outcome.get("bodyContains") and body not in outcome["bodyContains"]:
        judgement.disagree(f"expected a body with {body!r}, Envoy answers {outcome['bodyContains']!r}", at)


def _request_path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def _last_hop(prediction: Mapping[str, Any]) -> str | None:
    hops = prediction.get("hops") or []
    return _hop_label(hops[-1]) if hops else None


def _hops_at(prediction: Mapping[str, Any], proxy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        h
        for h in prediction.get("hops") or []
        if h.get("proxy") == proxy["kind"] and h.get("workload") == proxy["workload"]
    ]


def _judge_log(
    log: Mapping[str, Any],
    prediction: Mapping[str, Any],
    judgement: _Judgement,
    control: Mapping[str, Any] | None = None,
) -> None:
    """One access-log assertion; ``control`` is the prediction of its positive-control probe, if any."""
    proxy = log["proxy"]
    label = f"{proxy['kind']} {proxy['workload']}"
    if proxy["kind"] == "ztunnel":
        judgement.cannot_judge(f"the {label} log: ztunnel is outside the oracle")
        return
    hops = _hops_at(prediction, proxy)
    if not log.get("present", True):
        if hops:
            judgement.disagree(f"expected no entry in the {label} log, but the request is predicted to pass it", label)
        if log.get("controlProbe") and control is None:
            judgement.cannot_judge(f"the control probe {log['controlProbe']} of the {label} log has no prediction")
        elif control is not None and not _hops_at(control, proxy):
            judgement.disagree(
                f"the control probe {log['controlProbe']} is predicted not to reach the {label} "
                f"({describe_path(control)}): its entry never shows, so no absence can be established",
                label,
            )
        return
    if not hops:
        where = describe_path(prediction)
        judgement.disagree(
            f"expected an entry in the {label} log, but the request is predicted not to reach it ({where})", label
        )
        return
    predicted_log: Mapping[str, Any] = hops[0].get("log") or {}
    if predicted_log.get("entry") == "unknown":
        judgement.cannot_judge(
            f"the {label} log: the connection is refused there, whether Envoy logs it is not predicted"
        )
        return
    _judge_rbac_details(log, hops[0], label, judgement)
    for name, matcher in (log.get("fields") or {}).items():
        key = _PREDICTED_LOG_FIELDS.get(name)
        if key is None:
            continue
        value = predicted_log.get(key)
        if key in (
            "upstream_host_port",
            "authority",
            "method",
            "response_code",
            "route_name",
            "requested_server_name",
            "downstream_remote_host",
        ) and value in (None, "", 0):
            continue
        ok = _field_matches(matcher, value, key)
        if ok is False:
            judgement.disagree(
                f"{label} log {name}: expected {json.dumps(matcher)}, predicted {json.dumps(value)}", label
            )


_RBAC_DENIED = "rbac_access_denied_matched_policy"


def _judge_rbac_details(log: Mapping[str, Any], hop: Mapping[str, Any], label: str, judgement: _Judgement) -> None:
    """A log that names an RBAC denial at a proxy whose RBAC filter the oracle predicts to allow (or the
    reverse): the proxy's own decision is predicted, whatever the origin behind it answers."""
    matcher = (log.get("fields") or {}).get("response_code_details")
    decision = (hop.get("rbac") or {}).get("decision")
    if not isinstance(matcher, Mapping) or decision not in ("allow", "deny"):
        return
    text = matcher.get("equals", matcher.get("prefix"))
    if not isinstance(text, str):
        return
    if text.startswith(_RBAC_DENIED) and decision == "allow":
        judgement.disagree(
            f"{label} log response_code_details: expected {json.dumps(matcher)}, but its RBAC filter is predicted "
            "to allow the request",
            label,
        )
    elif not text.startswith(_RBAC_DENIED) and decision == "deny":
        judgement.disagree(
            f"{label} log response_code_details: expected {json.dumps(matcher)}, but its RBAC filter is predicted "
            "to deny the request",
            label,
        )


def _declared_analyzer_errors(check_id: str) -> set[str]:
    """Analyzer codes the check's documented configuration raises on purpose (its catalogue record)."""
    from conformance.spec.catalogue import CATALOGUE

    record = CATALOGUE.get(check_id)
    return {code for code, _ in record.analyzer_errors} if record else set()


def _judge_probe(
    check: Mapping[str, Any],
    action: Mapping[str, Any],
    predictions: Mapping[str, Mapping[str, Any]],
    analysis: Mapping[str, Any] | None,
    warnings: list[str],
) -> ProbeVerdict:
    """``predictions``: the check's predictions by probe id."""
    prediction = predictions[action["probe"]]
    mesh = _Judgement()
    _judge_outcome(action, prediction, mesh)
    walked = prediction.get("outcome", {}).get("class") not in ("not-predicted", "config-rejected")
    for log in check.get("actions", []) if walked else ():
        if log.get("type") == "log" and log.get("probe") == action["probe"]:
            _judge_log(log, prediction, mesh, predictions.get(log.get("controlProbe") or ""))
    unjudged = list(prediction.get("notPredicted") or ())
    if unjudged:
        # Part of the path is outside the oracle: what the mesh does is reported, never a verdict.
        mesh_part = [f"on the mesh part alone: {r}" for r in mesh.reasons] or [
            f"on the mesh part alone: {mesh.verdict.value}"
        ]
        judgement = _Judgement(Verdict.NOT_PREDICTED, unjudged + mesh_part)
    else:
        judgement = mesh
    if analysis is not None:
        declared = _declared_analyzer_errors(str(check.get("id", "")))
        for message in analysis.get("messages") or []:
            text = f"{message.get('code')} {message.get('origin', '')}: {message.get('message')}".strip()
            if message.get("level") == "Error" and message.get("code") not in declared:
                judgement.disagree(f"istioctl analyze: {text}", "istioctl analyze")
            elif text not in warnings:
                warnings.append(text)
        if analysis.get("error"):
            judgement.cannot_judge(f"istioctl analyze failed: {analysis['error']}")
    outcome = prediction.get("outcome", {})
    return ProbeVerdict(
        probe=action["probe"],
        verdict=judgement.verdict,
        predicted=describe_path(prediction),
        outcome=f"{outcome.get('class')}: {outcome.get('detail', '')}",
        reasons=tuple(judgement.reasons),
        hop=judgement.hop,
        assumptions=tuple(prediction.get("assumptions") or ()),
    )


def compare(plan: Mapping[str, Any], predictions: Mapping[str, Any]) -> dict[tuple[str, str], CheckVerdict]:
    """Verdict per (check ID, mode) of the plan, from the oracle's raw predictions."""
    by_probe: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (p["check"], p["mode"], p["probe"]): p for p in predictions.get("probes", [])
    }
    analyses: dict[tuple[str, str], Mapping[str, Any]] = {
        (a.get("check", ""), a.get("state", "")): a for a in predictions.get("analysis", [])
    }
    verdicts: dict[tuple[str, str], CheckVerdict] = {}
    for check in plan.get("checks", []):
        key = (check["id"], check["mode"])
        if check.get("notApplicable"):
            reason = f"not applicable: {check['notApplicable']}"
            verdicts[key] = CheckVerdict(*key, Verdict.NOT_PREDICTED, reasons=(reason,))
            continue
        probes = [a for a in check.get("actions", []) if a.get("type") == "probe"]
        if not probes:
            verdicts[key] = CheckVerdict(*key, Verdict.NOT_PREDICTED, reasons=("the check sends no request",))
            continue
        results: list[ProbeVerdict] = []
        warnings: list[str] = []
        mine = {a["probe"]: by_probe[(*key, a["probe"])] for a in probes if (*key, a["probe"]) in by_probe}
        for action in probes:
            prediction = mine.get(action["probe"])
            if prediction is None:
                results.append(ProbeVerdict(action["probe"], Verdict.NOT_PREDICTED, "", "", ("no prediction",)))
                continue
            analysis = analyses.get((check["id"], prediction.get("state", "")))
            results.append(_judge_probe(check, action, mine, analysis, warnings))
        verdicts[key] = CheckVerdict(
            *key, _worst(r.verdict for r in results), probes=tuple(results), warnings=tuple(warnings)
        )
    return verdicts


def _worst(verdicts: Iterable[Verdict]) -> Verdict:
    found = set(verdicts)
    for verdict in (Verdict.DISAGREES, Verdict.NOT_PREDICTED):
        if verdict in found:
            return verdict
    return Verdict.AGREES
