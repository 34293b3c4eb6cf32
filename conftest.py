"""Root conftest: the fixtures of the harness's own tests.

The egress-conformance plugin itself is not listed here: pytest loads it through its ``pytest11`` entry
point (pyproject.toml), wherever pytest runs.
"""

pytest_plugins = (
    "pytester",
    # Fake executables on PATH (kind, istioctl, docker) and a loopback fake API server.
    "tests.fakes.executables",
    "tests.fake_apiserver",
    # One plan run of the whole catalogue, shared by the tests that read plan.json and its report.
    "tests.plan_run",
    # A real etcd + kube-apiserver + kube-controller-manager, built with Go on first use.
    "tests.real_apiserver",
)
