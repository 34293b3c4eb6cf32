"""The plan's printout: one line per recorded action, in the words of the check."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.engine.runtime import Until


def describe_action(action: Mapping[str, Any], placeholders: Mapping[str, str] | None = None) -> str:
    """One line per action, for the plan's printout; ``placeholders`` name the values a plan invents (its
    addresses), so the printout never shows them as facts."""
    names = placeholders or {}

    def named(text: str) -> str:
        for value, name in sorted(names.items(), key=lambda item: -len(item[0])):
            text = re.sub(rf"(?<![\d.]){re.escape(value)}(?![\d])", name, text)
        return text

    def shown(matcher: Mapping[str, Any]) -> str:
        if "portOf" in matcher:
            return f"*:{matcher['portOf']}"
        if "hostOf" in matcher:
            return named(str(matcher["hostOf"]))
        return named(str(next(iter(matcher.values()))))

    kind = action["type"]
    if kind == "mesh":
        return f"set mesh outboundTrafficPolicy {action['outboundTrafficPolicy']}"
    if kind == "apply":
        objects = ", ".join(
            f"{r['kind']} {r['metadata'].get('namespace', '')}/{r['metadata']['name']}".replace(" /", " ")
            for r in action["resources"]
        )
        note = f" [adaptation: {action['adaptation']}]" if action.get("adaptation") else ""
        return f"apply {', '.join(action['sources'])}: {objects}{note}"
    if kind == "delete":
        objects = ", ".join(
            f"{r['kind']} {r.get('namespace', '')}/{r['name']}".replace(" /", " ") for r in action["resources"]
        )
        return ("clean up: delete " if action.get("cleanup") else "delete ") + objects
    if kind == "wait":
        return f"wait for {action['what']}"
    if kind == "probe":
        until = "converges to" if action["until"] == Until.CONVERGES.value else "is denied and holds"
        command = named(action["request"]["display"])
        return f"{action['probe']}: in {action['client']}: {command} {until} {action['expect']['outcome']}"
    if kind == "log":
        proxy = action["proxy"]
        if not action["present"]:
            control = action["controlProbe"]
            return f"{proxy['kind']} {proxy['workload']} has no entry for {action['probe']} (control {control})"
        fields = ", ".join(f"{k}={shown(v)}" for k, v in action["fields"].items())
        return f"{proxy['kind']} {proxy['workload']} logs {action['probe']} with {fields}"
    return str(dict(action))


#: The actions that state what a check expects (the others change or wait for the configuration).
EXPECTATION_ACTIONS = ("probe", "log")


def describe_expectations(
    actions: Iterable[Mapping[str, Any]], placeholders: Mapping[str, str] | None = None
) -> list[str]:
    """What a check expects of upstream Istio, one line per recorded expectation: its probes and log checks."""
    return [describe_action(a, placeholders) for a in actions if a["type"] in EXPECTATION_ACTIONS]
