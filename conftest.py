"""Root conftest: loads the egress-conformance pytest plugin, and the fixtures of the harness's own tests."""

pytest_plugins = (
    "conformance.plugin",
    "pytester",
    # Fake executables on PATH (kind, istioctl, docker) and a loopback fake API server.
    "tests.fakes.executables",
    "tests.fake_apiserver",
    # One plan run of the whole catalogue, shared by the tests that read plan.json and its report.
    "tests.plan_run",
)
