"""End-to-end conformance scenarios (run with ``pytest -m egress``)."""
