"""The pytest plugin: options, the run's settings, the e2e gate, and the session fixtures.

Plain ``pytest`` runs the harness's own tests and skips every e2e scenario with one reason.
``pytest -m egress`` runs the scenarios: it checks up front that a cluster can be had (a container engine
for kind, or ``--kubeconfig``) and stops within seconds with one message when not.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from conformance.core import evidence, progress, redaction
from conformance.harness import fixtures as scenario_fixtures
from conformance.harness.collector import ReportCollector, abort_run
from conformance.harness.failures import FailureHandling
from conformance.harness.fixtures import ENVIRONMENT_KEY, RUN_KIND_KEY, check_of, run_environment
from conformance.harness.keep import kept
from conformance.harness.live_run import LiveRun
from conformance.harness.run_kinds import Mesh, PlannedRun, RunKind
from conformance.harness.scenario_modules import load_scenarios
from conformance.images.image_list import load as load_image_list
from conformance.images.image_map import run_images
from conformance.images.kind_loading import Commands, ImageLoadError, find_tools, load_local_images
from conformance.istio.install import IstioInstaller
from conformance.kube.api import Kube, KubeUnreachableError
from conformance.platform.binaries import BinaryError
from conformance.platform.cluster import (
    ClusterError,
    ClusterHandle,
    container_engine_problem,
    kind_version_of,
    provide_cluster,
    resolve_kind,
)
from conformance.report.environment import RunEnvironment
from conformance.settings.options import OPTIONS, MeshMode, SettingsError, option_values
from conformance.settings.run_settings import Settings
from conformance.settings.value_checks import check_writable_directory
from conformance.spec.catalogue import CATALOGUE, CatalogueError
from conformance.spec.model import Tier
from conformance.world.external import ExternalWorld, new_pki, provide_external_world
from conformance.world.pki import RunPKI

SETTINGS_KEY = pytest.StashKey[Settings]()
E2E_REQUESTED_KEY = pytest.StashKey[bool]()

E2E_SKIP_REASON = (
    "e2e conformance scenario: run `pytest -m egress` (needs a container engine for kind, or --kubeconfig)"
)
#: Markers that select e2e scenarios when named positively in ``-m``.
_E2E_MARKERS = ("egress", "sidecar", "ambient", "egress_sidecar", "egress_ambient", "external_world")
_MODE_MARKERS = {MeshMode.SIDECAR: "sidecar", MeshMode.AMBIENT: "ambient"}
#: Registered by the plugin too, so it works when loaded outside this checkout (pyproject lists them here).
MARKERS = (
    "egress: end-to-end conformance scenario; needs a kind cluster (container engine) or --kubeconfig",
    "sidecar: runs on the sidecar data plane",
    "ambient: runs on the ambient data plane",
    "egress_sidecar: profile EGRESS-SIDECAR",
    "egress_ambient: profile EGRESS-AMBIENT",
    "external_world: checks of the in-cluster external world itself",
    "check(id): stable conformance check ID from the scenario catalogue",
    "egress_other_mode(reason): a check of a data-plane mode the run did not select (deselected)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("egress-conformance", "egress conformance harness")
    for opt in OPTIONS:
        help_text = f"{opt.help} [env {opt.env}]"
        if opt.default is not None and not opt.is_flag:
            help_text += f" (default: {opt.default})"
        if opt.is_flag:
            group.addoption(opt.flag, action="store_true", dest=opt.dest, default=False, help=help_text)
        else:
            group.addoption(opt.flag, action="store", dest=opt.dest, default=None, help=help_text)


def e2e_requested(markexpr: str) -> bool:
    """True when ``-m`` names an e2e marker other than behind ``not``."""
    tokens = re.findall(r"[\w]+", markexpr or "")
    for index, token in enumerate(tokens):
        if token in _E2E_MARKERS and (index == 0 or tokens[index - 1] != "not"):
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    # The scenario modules declare the catalogue's records; everything below may read it.
    try:
        load_scenarios()
    except CatalogueError as exc:
        raise pytest.UsageError(f"the check catalogue: {exc}") from None
    requested = e2e_requested(config.getoption("markexpr", "") or "")
    try:
        settings = Settings.from_sources(option_values(config.getoption))
        if requested:
            # Checked before Allure or JUnit try to create anything there.
            check_writable_directory("--report-dir", settings.report_dir)
            check_writable_directory("--cache-dir", settings.cache_dir)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    config.stash[RUN_KIND_KEY] = run_kind_for(settings)
    config.stash[E2E_REQUESTED_KEY] = requested
    if not config.pluginmanager.is_registered(scenario_fixtures):
        config.pluginmanager.register(scenario_fixtures, "egress-conformance-fixtures")
    if requested and not config.option.collectonly:
        _attach_live_progress(config)
        _default_report_outputs(config, settings)
        redaction.forget_secrets()
        if settings.kubeconfig is not None:
            redaction.register_kubeconfig_secrets(settings.kubeconfig)
        config.stash[ENVIRONMENT_KEY] = RunEnvironment()
        config.pluginmanager.register(ReportCollector(settings, config), "egress-conformance-report")
        config.pluginmanager.register(FailureHandling(settings), "egress-conformance-failures")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """The run's kind sees each check that ran to its end (a plan reports it skipped, as planned, in every
    channel: pytest's summary, JUnit, Allure)."""
    result = yield
    kind = pyfuncitem.config.stash.get(RUN_KIND_KEY, None)
    if kind is not None and pyfuncitem.get_closest_marker("egress"):
        kind.check_passed()
    return result


def pytest_itemcollected(item: pytest.Item) -> None:
    """``-k EGW-04`` selects the check: its ID is a keyword of the test."""
    marker = item.get_closest_marker("check")
    if marker is not None and marker.args:
        item.extra_keyword_matches.add(str(marker.args[0]))


def pytest_report_collectionfinish(config: pytest.Config, items: Sequence[pytest.Item]) -> list[str]:
    """A check that ``-k`` names but that has no test (not applicable, not implemented) says why nothing of it
    runs, rather than leaving a bare "no tests ran"."""
    keyword = str(config.getoption("keyword", "") or "")
    if not keyword or not config.stash.get(E2E_REQUESTED_KEY, False):
        return []
    selected = {str(m.args[0]) for item in items if (m := item.get_closest_marker("check")) and m.args}
    lines = []
    for token in re.findall(r"[A-Z]+(?:-[A-Z]+)?-\w+", keyword):
        check = CATALOGUE.get(token)
        if check is None or token in selected:
            continue
        if check.not_applicable:
            lines.append(f"egress-conformance: {token} has no test to run: not applicable: {check.not_applicable}")
        else:
            lines.append(f"egress-conformance: {token} has no test selected in this run (mode or markers)")
    return lines


def _default_report_outputs(config: pytest.Config, settings: Settings) -> None:
    """JUnit and Allure results land in --report-dir unless the user chose other places."""
    if getattr(config.option, "xmlpath", None) is None:
        config.option.xmlpath = str(settings.report_dir / "junit.xml")
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(settings.report_dir / "allure-results")


class _LiveProgressHandler(logging.Handler):
    """Writes progress lines to the terminal even while pytest captures output."""

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(logging.INFO)
        self._config = config
        self.setFormatter(logging.Formatter("[egress-conformance %(asctime)s] %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        capman: Any = self._config.pluginmanager.getplugin("capturemanager")
        writer = self._config.get_terminal_writer()
        if capman is None:
            writer.line(line)
            return
        with capman.global_and_fixture_disabled():
            writer.line(line)


def _attach_live_progress(config: pytest.Config) -> None:
    handler = _LiveProgressHandler(config)
    progress.LOGGER.addHandler(handler)
    progress.LOGGER.setLevel(logging.INFO)
    config.add_cleanup(lambda: progress.LOGGER.removeHandler(handler))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e_items = [item for item in items if item.get_closest_marker("egress")]
    if not e2e_items:
        return
    for item in e2e_items:
        check = check_of(item)
        if check is not None:
            # Filed under its profile, family and ID in Allure and JUnit even when its set-up fails.
            for mark in evidence.check_marks(
                epic=check.profile.value, feature=check.family, story=check.id, core=check.tier is Tier.CORE
            ):
                item.add_marker(mark)
            item.user_properties += [("check", check.id), ("profile", check.profile.value)]
    other_mode = [item for item in e2e_items if item.get_closest_marker("egress_other_mode")]
    if other_mode:
        config.hook.pytest_deselected(items=other_mode)
        items[:] = [item for item in items if item not in other_mode]
        e2e_items = [item for item in e2e_items if item not in other_mode]
    # Sidecar checks first, then ambient, whatever the module order: each mode is one install, and the
    # order of installs stays the same from run to run (a stable sort keeps pytest's grouping).
    items.sort(key=_mode_rank)
    if not config.stash[E2E_REQUESTED_KEY]:
        skip = pytest.mark.skip(reason=E2E_SKIP_REASON)
        for item in e2e_items:
            item.add_marker(skip)
        return
    settings = config.stash[SETTINGS_KEY]
    if config.option.collectonly or not config.stash[RUN_KIND_KEY].reaches_cluster or settings.kubeconfig is not None:
        return
    problem = container_engine_problem()
    if problem is not None:
        abort_run(config, problem, items)


def _mode_rank(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    mode = callspec.params.get("mesh") if callspec is not None else None
    return list(MeshMode).index(mode) + 1 if isinstance(mode, MeshMode) else 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``mesh`` by the data-plane modes the run selected and the test supports."""
    if "mesh" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[SETTINGS_KEY]
    supported = {mode for mode, marker in _MODE_MARKERS.items() if metafunc.definition.get_closest_marker(marker)}
    if supported:
        modes = [mode for mode in settings.mesh_modes if mode in supported]
        params = [pytest.param(mode, id=mode.value) for mode in modes]
    else:
        # A check of the external world itself does not depend on the data plane: it runs once, in the
        # first mode of the run (after that mode's install, beside its checks), and carries that mode's
        # marker, so `-m "egress and sidecar"` selects it as the report files it.
        supported = set(MeshMode)
        modes = list(settings.mesh_modes[:1])
        params = [pytest.param(mode, id=mode.value, marks=getattr(pytest.mark, _MODE_MARKERS[mode])) for mode in modes]
    if params:
        metafunc.parametrize("mesh", params, indirect=True, scope="session")
    else:
        wanted = "/".join(sorted(m.value for m in supported))
        selected = ",".join(m.value for m in settings.mesh_modes)
        reason = f"runs on the {wanted} data plane; this run selected --mesh-mode {selected}"
        # Not a skip: the check is not part of this run (deselected at collection, "not selected" in the report).
        marks = pytest.mark.egress_other_mode(reason)
        metafunc.parametrize("mesh", [pytest.param(None, marks=marks, id=wanted)], indirect=True, scope="session")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def cluster(settings: Settings, pytestconfig: pytest.Config) -> Iterator[ClusterHandle]:
    def kept_because() -> str | None:
        failure = kept(pytestconfig)
        return failure.reason if failure is not None else None

    try:
        provided = provide_cluster(settings, kept_because)
        handle = provided.__enter__()
    except (ClusterError, BinaryError) as exc:
        abort_run(pytestconfig, str(exc))
    try:
        redaction.register_kubeconfig_secrets(handle.kubeconfig)
        if handle.managed:
            run_environment(pytestconfig).kind_version = _kind_version(settings)
            if settings.load_images:
                _load_images(settings, handle, pytestconfig)
        yield handle
    except BaseException as exc:
        if not provided.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        provided.__exit__(None, None, None)


def _load_images(settings: Settings, handle: ClusterHandle, config: pytest.Config) -> None:
    """--load-images: every image the run deploys, from the local Docker into the kind cluster."""
    references = [
        image.reference
        for image in run_images(
            load_image_list(),
            [mode.value for mode in settings.mesh_modes],
            settings.istio_version,
            istio_hub=settings.istio_hub,
            istio_tag=settings.istio_image_tag,
            image_map=settings.image_map,
        )
    ]
    try:
        docker, kind = find_tools(resolve_kind(settings))
        load_local_images(references, handle.name, Commands(docker, kind, settings.timeouts.image_load))
    except ImageLoadError as exc:
        abort_run(config, str(exc))
    run_environment(config).images_loaded = references


def _kind_version(settings: Settings) -> str | None:
    with contextlib.suppress(Exception):  # a fact for the report, never a reason to fail the run
        version = kind_version_of(resolve_kind(settings))
        return str(version) if version is not None else None
    return None


@pytest.fixture(scope="session")
def kube(settings: Settings, cluster: ClusterHandle, pytestconfig: pytest.Config) -> Iterator[Kube]:
    with Kube(cluster.kubeconfig, cluster.context, timeouts=settings.timeouts, image_map=settings.image_map) as client:
        try:
            client.check_reachable()
        except KubeUnreachableError as exc:
            abort_run(pytestconfig, str(exc))
        run_environment(pytestconfig).observe_cluster(client)
        yield client


@pytest.fixture(scope="session")
def pki() -> RunPKI:
    """The run's test CA, origin server certificates and the test.client certificate (in memory)."""
    return new_pki()


@pytest.fixture(scope="session")
def external_world(
    settings: Settings, cluster: ClusterHandle, kube: Kube, pki: RunPKI, pytestconfig: pytest.Config
) -> Iterator[ExternalWorld]:
    """The in-cluster stand-in for the Internet, with the public names resolving to it.

    Removed at the end from a cluster the harness does not manage (``--kubeconfig``); a kind cluster is
    either deleted whole or kept on request, with the external world in place for the next run.
    """

    def remove_on_exit() -> bool:
        if kept(pytestconfig) is not None:
            progress.info("the external world is left in place (--keep-on-failure)")
            return False
        return not cluster.managed

    with provide_external_world(kube, settings.timeouts, pki, remove_on_exit=remove_on_exit) as world:
        yield world


@pytest.fixture(scope="session")
def istio_installer(settings: Settings, cluster: ClusterHandle, kube: Kube) -> IstioInstaller:
    """One installer per cluster: it remembers which Gateway API CRDs it added, to remove only those."""
    return IstioInstaller.from_settings(settings, kube, cluster.kubeconfig, cluster.context)


@pytest.fixture(scope="session")
def mesh(request: pytest.FixtureRequest) -> Iterator[Mesh]:
    """Istio in the data-plane mode of this parameter, as the run's kind provides it. Parametrised by
    ``pytest_generate_tests``: with ``--mesh-mode both`` the sidecar checks run, Istio is removed, then the
    ambient checks run on a fresh install."""
    yield from request.config.stash[RUN_KIND_KEY].mesh(request, request.param)


def run_kind_for(settings: Settings) -> RunKind:
    """The one place a plan run and a live run part."""
    return PlannedRun(settings) if settings.plan else LiveRun(settings)
