"""Root conftest: loads the egress-conformance pytest plugin for this checkout (and pytester for its tests)."""

pytest_plugins = ("conformance.plugin", "pytester")
