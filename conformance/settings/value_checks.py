"""The checks of single option values the run's settings are built from: booleans, choices, files and
directories, the kind config and Istio overlay, the image map, tool binaries and the kubeconfig. Each error
names the option and what it accepts."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from conformance.images.image_map import NO_IMAGE_MAP, ImageMap, ImageMapError, load_image_map
from conformance.settings.implementation import Implementation, ImplementationError, load_implementation
from conformance.settings.options import Option, SettingsError

KIND_API = "kind.x-k8s.io/v1alpha4"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(opt: Option, text: str) -> str:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return "true"
    if lowered in _FALSE:
        return "false"
    raise SettingsError(f"{opt.env}={text!r} ({opt.flag}): expected one of true/false/1/0/yes/no")


def choice(flag: str, value: str, accepted: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in accepted:
        raise SettingsError(f"{flag}: {value!r} is not one of {', '.join(accepted)}")
    return lowered


def existing_file(flag: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise SettingsError(f"{flag}: {value!r} does not exist or is not a file")
    return path.resolve()


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def directory_path(flag: str, value: str) -> Path:
    """A directory that exists or could be created: no part of it is a regular file."""
    path = Path(value).expanduser()
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        what = (
            "is not a directory" if existing == path.absolute() else f"lies under {existing}, which is not a directory"
        )
        raise SettingsError(f"{flag}: {value!r} {what}")
    return path


def check_writable_directory(flag: str, path: Path) -> None:
    """Raise SettingsError unless ``path`` is, or can be created as, a directory this process writes into.

    Asks the file system itself, by creating and removing an empty directory in the nearest existing part
    of the path: permission bits do not tell (root passes every access check, yet cannot write into
    ``/proc`` or a read-only mount). Nothing is left behind, whatever the answer.
    """
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        raise SettingsError(f"{flag}: {str(path)!r} lies under {existing}, which is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".egress-conformance-write-check-", dir=existing))
    except OSError as exc:
        raise SettingsError(
            f"{flag}: {str(path)!r} cannot be created or written: creating a directory in {existing} "
            f"fails ({exc.strerror or exc})"
        ) from None


def implementation_file(value: str | None) -> Implementation | None:
    path = existing_file("--implementation-file", value)
    if path is None:
        return None
    try:
        return load_implementation(path)
    except ImplementationError as exc:
        raise SettingsError(f"--implementation-file: {exc}") from None


def _yaml_documents(flag: str, path: Path) -> list[object]:
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{flag}: {path} is not a readable YAML file ({exc})") from None


def kind_config_file(value: str | None) -> Path | None:
    path = existing_file("--kind-config", value)
    if path is None:
        return None
    documents = _yaml_documents("--kind-config", path)
    config = documents[0] if len(documents) == 1 else None
    if not isinstance(config, dict) or config.get("kind") != "Cluster" or config.get("apiVersion") != KIND_API:
        raise SettingsError(f"--kind-config: {path} is not one kind config (kind: Cluster, apiVersion: {KIND_API})")
    return path


def istio_overlay_file(value: str | None) -> Path | None:
    path = existing_file("--istio-overlay", value)
    if path is None:
        return None
    documents = _yaml_documents("--istio-overlay", path)
    overlay = documents[0] if len(documents) == 1 else None
    if not isinstance(overlay, dict) or overlay.get("kind") != "IstioOperator":
        raise SettingsError(f"--istio-overlay: {path} is not one IstioOperator (kind: IstioOperator)")
    return path


def image_map_file(value: str | None, istio_version: str) -> ImageMap:
    path = existing_file("--image-map", value)
    if path is None:
        return NO_IMAGE_MAP
    from conformance.images.image_list import default_variables, load

    try:
        return load_image_map(path, load(), default_variables(istio_version))
    except ImageMapError as exc:
        raise SettingsError(f"--image-map: {exc}") from None


#: What ``kind version`` prints (``kind v0.31.0 go1.25.5 linux/amd64``) and ``istioctl version --remote=false``
#: (``client version: 1.30.3`` or a bare ``1.30.3``).
KIND_VERSION_OUTPUT = re.compile(r"^kind v?\d+\.\d+\.\d+")
ISTIOCTL_OUTPUT = re.compile(r"^(client version: )?\d+\.\d+[\w.+-]*\s*$", re.IGNORECASE | re.MULTILINE)
_TOOL_CHECK_SECONDS = 15.0


def tool_binary(
    flag: str, value: str | None, version_args: list[str], output: re.Pattern[str], what: str
) -> Path | None:
    """An executable that answers its version command like ``what`` does (a wrong path fails here, named)."""
    import subprocess

    path = _executable(flag, value)
    if path is None:
        return None
    try:
        result = subprocess.run(
            [str(path), *version_args], capture_output=True, text=True, timeout=_TOOL_CHECK_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SettingsError(f"{flag}: {path} cannot be run as {what} ({exc})") from None
    said = (result.stdout or result.stderr).strip()
    if result.returncode != 0 or not output.search(said):
        first = said.splitlines()[0][:120] if said else "nothing"
        raise SettingsError(
            f"{flag}: {path} is not {what}: `{path.name} {' '.join(version_args)}` printed {first!r} "
            f"(exit code {result.returncode})"
        )
    return path


def _executable(flag: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file() and os.access(path, os.X_OK):
        return path.resolve()
    found = shutil.which(value)
    if found is None:
        raise SettingsError(f"{flag}: {value!r} is neither an executable file nor a command on PATH")
    return Path(found)


def check_kubeconfig(path: Path, context: str | None) -> None:
    """Fail early on a kubeconfig that cannot work: not YAML, no clusters, unknown context."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"--kubeconfig: {path} is not a readable YAML kubeconfig ({exc})") from None
    if not isinstance(data, dict) or not data.get("clusters") or not data.get("contexts"):
        raise SettingsError(f"--kubeconfig: {path} has no clusters or no contexts")
    names = [c.get("name") for c in data["contexts"] if isinstance(c, dict)]
    wanted = context or data.get("current-context")
    if not wanted:
        raise SettingsError(f"--kubeconfig: {path} has no current-context; pass --kube-context ({names})")
    if wanted not in names:
        raise SettingsError(f"--kube-context: {wanted!r} is not a context of {path} (contexts: {names})")
