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


def pytest_configure(config: object) -> None:
    """The Go builds some tests need first (the routing oracle: minutes, cold) say so on the terminal, past
    pytest's capture, while they run."""
    import logging

    import pytest

    from conformance.core import progress
    from conformance.harness.plugin import _LiveProgressHandler

    assert isinstance(config, pytest.Config)
    handler = _LiveProgressHandler(config)
    handler.addFilter(lambda record: record.getMessage().startswith(("building the routing oracle", "go test -c")))
    progress.LOGGER.addHandler(handler)
    if progress.LOGGER.level == logging.NOTSET or progress.LOGGER.level > logging.INFO:
        progress.LOGGER.setLevel(logging.INFO)
    config.add_cleanup(lambda: progress.LOGGER.removeHandler(handler))
