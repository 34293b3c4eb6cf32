"""What the checks run on: the runtime seam, the action log of a check's run and its renderers, the
cross-reference rules and the routing oracle over that log."""
