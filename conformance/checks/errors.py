"""What a check can do wrong before anything reaches the cluster."""

from __future__ import annotations


class ScenarioError(RuntimeError):
    """Scenario code asked for something that cannot be done (a bad manifest, an unknown curl flag)."""


class CrossReferenceError(AssertionError):
    """A step's configuration breaks a cross-reference rule its check does not declare: the check fails
    with the rule's message before anything of the step is applied."""
