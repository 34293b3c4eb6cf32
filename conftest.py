"""Root conftest: loads the egress-conformance pytest plugin, and the fixtures of the harness's own tests."""

pytest_plugins = (
    "conformance.plugin",
    "pytester",
    # Fake executables on PATH (kind, istioctl, docker) and a loopback fake API server.
    "tests.fakes.executables",
    "tests.fake_apiserver",
    # A real etcd + kube-apiserver + kube-controller-manager, built with Go on first use.
    "tests.real_apiserver",
)
