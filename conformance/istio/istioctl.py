"""The istioctl binary of the run: ``--istioctl-bin``, else istioctl on PATH if its client version is
``--istio-version``, else the pinned release (downloaded, verified, cached).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
from pathlib import Path

from conformance.core import progress, versions
from conformance.core.processes import output_tail, run_bounded
from conformance.core.timeouts import PROBE_SECONDS
from conformance.platform import binaries
from conformance.settings.run_settings import Settings


def istioctl_download_spec(version: str) -> binaries.DownloadSpec:
    """The istioctl release archive for ``version`` on this machine (raises BinaryError if unsupported)."""
    release = versions.istio_release(version)
    platform = binaries.current_platform("istio")
    return binaries.DownloadSpec(
        name="istioctl",
        version=release.version,
        url=release.archive_url(platform),
        sha256=release.sha256.get(platform),
        checksum_url=release.checksum_url(platform),
        archive_member="istioctl",
        version_option="--istio-version",
    )


def istioctl_client_version(istioctl: Path) -> str | None:
    """The client version ``istioctl version --remote=false -o json`` reports, or None (said why).

    The JSON is ``{"clientVersion": {"version": "1.30.3", ...}}`` (pkg/version/cobra.go).
    """
    command = [str(istioctl), "version", "--remote=false", "-o", "json"]
    try:
        result = run_bounded(command, PROBE_SECONDS)
    except (subprocess.TimeoutExpired, OSError) as exc:
        progress.info(f"`{shlex.join(command)}` failed ({exc})")
        return None
    version: object = None
    if result.returncode == 0:
        with contextlib.suppress(ValueError, AttributeError):
            version = json.loads(result.stdout).get("clientVersion", {}).get("version")
    if not isinstance(version, str) or not version:
        progress.info(f"`{shlex.join(command)}` gave no client version: {output_tail(result.stdout + result.stderr)}")
        return None
    return version


def resolve_istioctl(settings: Settings) -> Path:
    """--istioctl-bin -> istioctl on PATH if its client version is --istio-version -> pinned download."""
    wanted = settings.istio_version

    def same_version(path: Path) -> bool:
        found = istioctl_client_version(path)
        if found != wanted:
            progress.info(f"{path} is istioctl {found or '(unknown version)'}, not {wanted}")
        return found == wanted

    if settings.istioctl_bin is not None:
        found = istioctl_client_version(settings.istioctl_bin)
        if found is not None and found != wanted:
            progress.info(
                f"--istioctl-bin {settings.istioctl_bin} is istioctl {found}; it installs Istio {found}, "
                f"not the --istio-version {wanted}"
            )
        return settings.istioctl_bin
    return binaries.resolve_pinned_or_path(
        "istioctl", lambda: istioctl_download_spec(wanted), settings.cache_dir, same_version
    )
