"""The cluster under test: an existing one (``--kubeconfig``) or a kind cluster the harness manages.

A small wrapper over the kind CLI (flags as defined in kubernetes-sigs/kind pkg/cmd/kind: ``create
cluster``, ``export kubeconfig``, ``get clusters``, ``delete cluster``; images are loaded into a cluster
by ``conformance.images.kind_loading``). kind's output is captured; a failing command raises ``ClusterError`` naming
the command and the tail of its stderr. The kubeconfig of a kind cluster goes to a per-cluster file under
the cache directory, never to ``~/.kube/config``.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conformance import MANIFESTS_DIR
from conformance.core import progress, version_model, versions
from conformance.core.processes import output_tail, run_bounded, run_tool
from conformance.core.timeouts import PROBE_SECONDS, Timeouts
from conformance.platform import binaries
from conformance.settings.run_settings import Settings

#: kind's own config for the cluster it creates (single node, default CNI with NetworkPolicy enforcement).
KIND_CONFIG = MANIFESTS_DIR / "kind" / "cluster.yaml"

#: kindnetd enforces NetworkPolicy from kind v0.24.0 on (kind PR #3612); the NetworkPolicy checks need it.
KIND_MIN_VERSION = (0, 24, 0)

_KIND_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.+-]+)?")
# KIND_EXPERIMENTAL_PROVIDER values kind understands, mapped to the engine CLI it then drives
# (kind pkg/internal/runtime GetDefault); unknown values are ignored by kind, which then auto-detects.
_PROVIDER_ENGINES = {
    "docker": "docker",
    "podman": "podman",
    "nerdctl": "nerdctl",
    "finch": "finch",
    "nerdctl.lima": "nerdctl.lima",
}
# kind's auto-detection order when no provider is set (kind pkg/cluster/provider.go DetectNodeProvider).
_AUTODETECT_ENGINES = ("docker", "nerdctl", "podman")


class ClusterError(RuntimeError):
    """kind or the container engine failed; the message names the command and what it printed."""


@dataclass(frozen=True)
class ClusterHandle:
    """The cluster a run talks to."""

    name: str
    kubeconfig: Path
    #: Kubeconfig context to use; None means the file's current-context.
    context: str | None
    #: The harness created this cluster during this run.
    created: bool
    #: A kind cluster under the harness's control (False for ``--kubeconfig``: nothing is created/deleted).
    managed: bool


@dataclass(frozen=True)
class KindVersion:
    major: int
    minor: int
    patch: int
    prerelease: str | None = None

    @classmethod
    def parse(cls, text: str) -> KindVersion | None:
        """From ``kind version`` output such as ``kind v0.31.0 go1.25.5 linux/amd64``."""
        match = _KIND_VERSION.search(text)
        if match is None:
            return None
        major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
        return cls(major, minor, patch, match.group(4))

    def at_least(self, minimum: tuple[int, int, int]) -> bool:
        core = (self.major, self.minor, self.patch)
        # A pre-release of the minimum itself (v0.24.0-alpha) predates it.
        return core > minimum or (core == minimum and self.prerelease is None)

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}{self.prerelease or ''}"


# --- kind binary ----------------------------------------------------------------------------------------


def kind_download_spec(release: version_model.KindRelease | None = None) -> binaries.DownloadSpec:
    """A pinned kind release (default: the default node image's) for this machine (raises BinaryError naming
    --kind-bin if unsupported)."""
    chosen = release or versions.KIND
    platform = binaries.current_platform("kind")
    return binaries.DownloadSpec(
        name="kind",
        version=chosen.version,
        url=chosen.binary_url(platform),
        sha256=chosen.sha256.get(platform),
        checksum_url=chosen.checksum_url(platform),
    )


def kind_version_of(kind_bin: Path) -> KindVersion | None:
    """What ``kind version`` reports; None (with a progress line saying why) when it cannot tell."""
    try:
        result = run_bounded([str(kind_bin), "version"], PROBE_SECONDS)
    except (subprocess.TimeoutExpired, OSError) as exc:
        progress.info(f"`{kind_bin} version` failed ({exc}); using the pinned kind {versions.KIND.version}")
        return None
    version = KindVersion.parse(result.stdout) if result.returncode == 0 else None
    if version is None:
        progress.info(
            f"`{kind_bin} version` gave no version ({output_tail(result.stdout + result.stderr)!r}); "
            f"using the pinned kind {versions.KIND.version}"
        )
        return None
    return version


def kind_supports_network_policy(kind_bin: Path) -> bool:
    """True when ``kind version`` reports at least v0.24.0; says why otherwise (a progress line)."""
    version = kind_version_of(kind_bin)
    if version is None:
        return False
    if not version.at_least(KIND_MIN_VERSION):
        minimum = "v{}.{}.{}".format(*KIND_MIN_VERSION)
        progress.info(
            f"{kind_bin} is kind {version}; NetworkPolicy enforcement needs kind >= {minimum}, "
            f"so the pinned kind {versions.KIND.version} is used instead"
        )
        return False
    return True


def kind_is_pinned_release(kind_bin: Path, release: version_model.KindRelease | None = None, image: str = "") -> bool:
    """True when ``kind`` is of the minor of ``release`` (default: the default node image's), the release that
    publishes the node image: kind does not promise a node image works with other releases."""
    chosen = release or versions.KIND
    node_image = image or chosen.node_image
    version = kind_version_of(kind_bin)
    if version is None:
        return False
    pinned = KindVersion.parse(chosen.version)
    if pinned is None or (version.major, version.minor) != (pinned.major, pinned.minor):
        progress.info(
            f"{kind_bin} is kind {version}, but the node image {node_image} is published for kind {chosen.version}: "
            f"the pinned kind {chosen.version} is used instead (or pass --kind-bin with a matching --kind-image)"
        )
        return False
    return True


def resolve_kind(settings: Settings) -> Path:
    """--kind-bin -> kind on PATH -> the pinned kind release (downloaded, verified, cached).

    For a node image listed in manifests/versions.yaml the kind release is the one that publishes that
    image, on PATH only when of that release's minor. For any other image (the user's own) a kind on PATH
    of at least v0.24.0 is used, else the default release.
    """
    if settings.kind_bin is not None:
        return settings.kind_bin
    release = versions.kind_release_for_image(settings.kind_image)
    if release is None:
        return binaries.resolve_pinned_or_path(
            "kind", kind_download_spec, settings.cache_dir, kind_supports_network_policy
        )
    return binaries.resolve_pinned_or_path(
        "kind",
        lambda: kind_download_spec(release),
        settings.cache_dir,
        lambda path: kind_is_pinned_release(path, release, settings.kind_image),
    )


# --- container engine -----------------------------------------------------------------------------------


def container_engine_problem(timeout: float = PROBE_SECONDS) -> str | None:
    """None when the container engine kind will use answers ``<engine> info``; else one message, starting
    with "no container engine:", saying what to install, start or pass instead. Bounded by ``timeout``;
    immediate when no engine is installed.
    """
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "")
    instead = "or pass --kubeconfig PATH to run against an existing cluster"
    engine = _PROVIDER_ENGINES.get(provider)
    if engine is None:
        engine = next((name for name in _AUTODETECT_ENGINES if shutil.which(name)), None)
        if engine is None:
            return (
                "no container engine: install Docker (or Podman and set KIND_EXPERIMENTAL_PROVIDER=podman) "
                f"so that `docker info` works, {instead}"
            )
    executable = shutil.which(engine)
    if executable is None:
        reason = f"KIND_EXPERIMENTAL_PROVIDER={provider} but `{engine}` is not on PATH"
        return f"no container engine: {reason}: install it, unset the variable to use Docker, {instead}"
    try:
        result = run_bounded([executable, "info"], timeout)
    except subprocess.TimeoutExpired:
        reason = f"`{engine} info` did not answer within {timeout:g}s"
        return f"no container engine: {reason}: check that the {engine} daemon is healthy, {instead}"
    except OSError as exc:
        reason = f"`{engine} info` could not be run ({exc})"
        return f"no container engine: {reason}: repair the {engine} installation, {instead}"
    if result.returncode != 0:
        said = output_tail(result.stderr or result.stdout, lines=3)
        reason = f"`{engine} info` failed (exit code {result.returncode}: {said})"
        return f"no container engine: {reason}: start the {engine} daemon and make sure this user may use it, {instead}"
    return None


# --- kind cluster ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindCluster:
    """One kind cluster, driven through the kind CLI."""

    name: str
    kind_bin: Path
    kubeconfig_path: Path
    config_path: Path
    node_image: str
    timeouts: Timeouts

    @property
    def context(self) -> str:
        """kind names the kubeconfig context ``kind-<cluster name>``."""
        return f"kind-{self.name}"

    def exists(self) -> bool:
        # One cluster name per line on stdout; "No kind clusters found." goes to stderr.
        result = self._kind(["get", "clusters"], self.timeouts.delete, "delete")
        return self.name in (line.strip() for line in result.stdout.splitlines())

    def create(self) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        wait = f"{math.ceil(self.timeouts.cluster_create)}s"
        # --wait covers the control plane becoming Ready; pulling the node image comes before it, hence
        # the process deadline of twice that.
        self._kind(
            [
                "create",
                "cluster",
                "--name",
                self.name,
                "--kubeconfig",
                str(self.kubeconfig_path),
                "--config",
                str(self.config_path),
                "--image",
                self.node_image,
                "--wait",
                wait,
            ],
            2 * self.timeouts.cluster_create,
            "cluster_create",
        )

    def export_kubeconfig(self) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self._kind(
            ["export", "kubeconfig", "--name", self.name, "--kubeconfig", str(self.kubeconfig_path)],
            self.timeouts.delete,
            "delete",
        )

    def delete(self) -> None:
        self._kind(self._delete_args(), self.timeouts.delete, "delete")

    def _delete_args(self) -> list[str]:
        return ["delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig_path)]

    def delete_command(self) -> str:
        """The command line that deletes this cluster (and its entries in the kubeconfig file)."""
        return shlex.join([str(self.kind_bin), *self._delete_args()])

    def _kind(self, args: list[str], deadline: float, deadline_name: str) -> subprocess.CompletedProcess[str]:
        return run_tool([str(self.kind_bin), *args], deadline, error=ClusterError, deadline_name=deadline_name)


def kubeconfig_path_for(settings: Settings) -> Path:
    """Per-cluster kubeconfig file of a harness-managed kind cluster."""
    return settings.cache_dir / "kubeconfig" / settings.cluster_name


def _never_kept() -> str | None:
    return None


@contextmanager
def provide_cluster(settings: Settings, kept: Callable[[], str | None] = _never_kept) -> Iterator[ClusterHandle]:
    """The cluster for this run, set up on entry and (when the harness created it) deleted on exit.

    ``--kubeconfig``: that cluster as is; nothing is created or deleted. Otherwise a kind cluster named
    ``--cluster-name``: reused with ``--reuse-cluster`` when it exists, refused when it exists without
    that option (it may be someone else's), created when absent. A cluster the harness created is deleted
    on exit, also when the body raised or creation failed half-way, unless ``--keep-cluster`` — or unless
    ``kept()``, asked on exit, gives a reason to keep it (a failed check left in place to inspect).
    """
    if settings.kubeconfig is not None:
        yield _existing_cluster(settings, settings.kubeconfig)
        return

    problem = container_engine_problem()
    if problem is not None:
        raise ClusterError(problem)
    cluster = KindCluster(
        name=settings.cluster_name,
        kind_bin=resolve_kind(settings),
        kubeconfig_path=kubeconfig_path_for(settings),
        config_path=settings.kind_config or KIND_CONFIG,
        node_image=settings.kind_image,
        timeouts=settings.timeouts,
    )
    created = False
    if cluster.exists():
        if not settings.reuse_cluster:
            raise ClusterError(
                f"a kind cluster named {cluster.name!r} already exists and the harness does not touch a "
                "cluster it did not create: pass --reuse-cluster to run on it (it is kept afterwards), "
                "choose another --cluster-name, or delete it with "
                f"`{shlex.join([str(cluster.kind_bin), 'delete', 'cluster', '--name', cluster.name])}`"
            )
        with progress.step(f"reusing kind cluster {cluster.name!r}: exporting its kubeconfig"):
            cluster.kubeconfig_path.unlink(missing_ok=True)
            cluster.export_kubeconfig()
    else:
        created = True
        try:
            with progress.step(f"creating kind cluster {cluster.name!r} ({settings.kind_image})"):
                cluster.kubeconfig_path.unlink(missing_ok=True)
                cluster.create()
        except BaseException:
            _finish(cluster, settings, created=True, failing=True)
            raise

    handle = ClusterHandle(
        name=cluster.name,
        kubeconfig=cluster.kubeconfig_path,
        context=cluster.context,
        created=created,
        managed=True,
    )
    try:
        yield handle
    except BaseException:
        _finish(cluster, settings, created=created, failing=True, kept_because=kept())
        raise
    _finish(cluster, settings, created=created, failing=False, kept_because=kept())


def _finish(
    cluster: KindCluster, settings: Settings, *, created: bool, failing: bool, kept_because: str | None = None
) -> None:
    """Delete a cluster the harness created unless kept; otherwise say how to reach and delete it.

    While another exception is on its way (``failing``), a failed delete is reported, not raised, so the
    original error stays the one the user sees.
    """
    if created and not settings.keeps_cluster and kept_because is None:
        try:
            with progress.step(f"deleting kind cluster {cluster.name!r}"):
                cluster.delete()
        except ClusterError as exc:
            if not failing:
                raise
            progress.info(f"could not delete kind cluster {cluster.name!r}: {exc}")
        else:
            cluster.kubeconfig_path.unlink(missing_ok=True)
        return
    why = f"kept ({kept_because})" if kept_because else "kept (--keep-cluster)" if created else "left in place (reused)"
    progress.info(
        f"kind cluster {cluster.name!r} {why}: reach it with "
        f"`kubectl --kubeconfig {shlex.quote(str(cluster.kubeconfig_path))} --context {cluster.context} "
        f"get nodes`; delete it with `{cluster.delete_command()}`"
    )


def _existing_cluster(settings: Settings, kubeconfig: Path) -> ClusterHandle:
    context = settings.kube_context or _current_context(kubeconfig)
    progress.info(
        f"using the existing cluster of {kubeconfig} (context {context or 'current'}); nothing is created or deleted"
    )
    return ClusterHandle(
        name=context or kubeconfig.name,
        kubeconfig=kubeconfig,
        context=settings.kube_context,
        created=False,
        managed=False,
    )


def _current_context(kubeconfig: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    value = data.get("current-context") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


# --- processes ------------------------------------------------------------------------------------------
