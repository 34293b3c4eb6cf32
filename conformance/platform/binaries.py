"""Resolving the executables the harness drives (kind, istioctl): option -> PATH -> pinned download.

Downloads land in ``<cache_dir>/<name>/<version>/<name>`` and are used only after their sha256 matched
either the pinned value or the release's own published checksum file. Beside each cached executable a small
record (``<name>.verified.json``) keeps the source URL, the verified source sha256 and the sha256 of the
executable itself, so a later run re-checks the cached bytes without any network access; a cached file that
no longer matches its record is downloaded again.

Transport: only HTTPS URLs are followed (also across redirects). Plain HTTP is accepted for loopback hosts
only, which is what the tests' local server uses; a checksum fetched over the network must not be open to
tampering on the way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from conformance.core import progress
from conformance.core.processes import is_safe_download_url


class BinaryError(RuntimeError):
    """A binary could not be resolved or downloaded; the message says what to install or pass."""


class ChecksumMismatch(BinaryError):
    """The downloaded bytes do not match the pinned or published sha256; nothing was cached."""


@dataclass(frozen=True)
class DownloadSpec:
    #: Executable name, e.g. "kind" or "istioctl".
    name: str
    version: str
    url: str
    #: Pinned sha256 (hex). When None, ``checksum_url`` must be given: the published checksum file.
    sha256: str | None = None
    checksum_url: str | None = None
    #: For a .tar.gz download: the member holding the executable (e.g. "istioctl"); None = raw binary.
    archive_member: str | None = None
    #: The option that chose ``version`` (e.g. "--istio-version"), named when the release does not exist.
    version_option: str | None = None

    @property
    def option(self) -> str:
        """The command-line option that points the harness at an installed copy instead."""
        return f"--{self.name}-bin"


#: (connect, read) seconds for every HTTP request; the read timeout bounds each chunk, not the whole file.
HTTP_TIMEOUT: tuple[float, float] = (10.0, 60.0)
_CHUNK_BYTES = 1 << 16
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

_OS_NAMES = {"linux": "linux", "darwin": "darwin"}
_ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_OPTION_BY_STYLE = {"kind": "--kind-bin", "istio": "--istioctl-bin"}


def current_platform(style: str = "kind") -> str:
    """``linux-amd64`` (kind style) or ``linux-amd64`` / ``osx-arm64`` (istio style) for this machine.

    Istio names its darwin archives ``osx`` (amd64) and ``osx-arm64`` (release/downloadIstioCtl.sh).
    """
    if style not in _OPTION_BY_STYLE:
        raise ValueError(f"unknown platform style {style!r} (expected one of {', '.join(_OPTION_BY_STYLE)})")
    system = platform.system().lower()
    machine = platform.machine().lower()
    os_name = _OS_NAMES.get(system)
    arch = _ARCH_NAMES.get(machine)
    if os_name is None or arch is None:
        tool = "kind" if style == "kind" else "istioctl"
        raise BinaryError(
            f"no pinned {tool} download for {platform.system()}/{platform.machine()} "
            f"(supported: linux and darwin on amd64 or arm64): install {tool} yourself and pass "
            f"{_OPTION_BY_STYLE[style]} PATH"
        )
    if style == "istio" and os_name == "darwin":
        return "osx" if arch == "amd64" else "osx-arm64"
    return f"{os_name}-{arch}"


def ensure_download(spec: DownloadSpec, cache_dir: Path) -> Path:
    """Return the cached executable for ``spec``, downloading and verifying it first if needed."""
    if spec.sha256 is None and spec.checksum_url is None:
        raise BinaryError(f"{spec.name} {spec.version}: neither a pinned sha256 nor a checksum URL is known")
    pinned = spec.sha256.lower() if spec.sha256 is not None else None
    if pinned is not None and not _SHA256_HEX.match(pinned):
        raise BinaryError(f"{spec.name} {spec.version}: pinned sha256 {spec.sha256!r} is not 64 hex digits")
    _require_safe_url(spec.url, spec)
    if pinned is None and spec.checksum_url is not None:
        _require_safe_url(spec.checksum_url, spec)

    target_dir = cache_dir / spec.name / spec.version
    target = target_dir / spec.name
    record_path = target_dir / f"{spec.name}.verified.json"
    if _cached_copy_is_valid(spec, pinned, target, record_path):
        return target
    # A stale or unverifiable copy goes before the download, so a failed download leaves nothing behind.
    target.unlink(missing_ok=True)
    record_path.unlink(missing_ok=True)

    created_dirs = _make_dirs(target_dir)
    try:
        with progress.step(f"downloading {spec.name} {spec.version} from {spec.url}"):
            expected = pinned if pinned is not None else _published_sha256(spec)
            _download_verified(spec, expected, target, record_path)
    except BaseException:
        _remove_empty_dirs(created_dirs)
        raise
    return target


def resolve_binary(
    spec: DownloadSpec,
    explicit: Path | None,
    cache_dir: Path,
    accept_on_path: Callable[[Path], bool] | None = None,
) -> Path:
    """``explicit`` (used as is) -> ``spec.name`` on PATH (if ``accept_on_path`` says yes) -> download."""
    if explicit is not None:
        return explicit
    found = find_on_path(spec.name, accept_on_path)
    if found is not None:
        return found
    return ensure_download(spec, cache_dir)


def find_on_path(name: str, accept: Callable[[Path], bool] | None = None) -> Path | None:
    """``name`` on PATH when present and accepted by ``accept`` (which may log why it refuses)."""
    found = shutil.which(name)
    if found is None:
        return None
    path = Path(found)
    if accept is not None and not accept(path):
        progress.info(f"not using {path} from PATH; falling back to the pinned {name} download")
        return None
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum_file(text: str, asset_name: str) -> str:
    """The sha256 for ``asset_name`` from a ``sha256sum``-style file.

    kind publishes ``<hex>  kind-linux-amd64`` (two spaces), Istio ``<hex> istioctl-<v>-<p>.tar.gz`` (one
    space, istio/release-builder pkg/util CreateSha); a ``*`` before the name marks binary mode. A file
    with a single line and no name at all is taken as the digest of the asset it sits beside.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    candidates: list[str] = []
    for fields in lines:
        digest = fields[0].lower()
        named = fields[1].removeprefix("*") if len(fields) > 1 else None
        sole_unnamed_line = named is None and len(lines) == 1
        if sole_unnamed_line or (named is not None and Path(named).name == asset_name):
            candidates.append(digest)
    if len(candidates) != 1 or not _SHA256_HEX.match(candidates[0]):
        raise BinaryError(f"the published checksum file lists no single sha256 for {asset_name}")
    return candidates[0]


# --- internals ------------------------------------------------------------------------------------------


def _require_safe_url(url: str, spec: DownloadSpec) -> None:
    if is_safe_download_url(url):
        return
    raise BinaryError(
        f"refusing to download {spec.name} from {url}: only https:// URLs are used; "
        f"install {spec.name} {spec.version} yourself and pass {spec.option} PATH"
    )


def _cached_copy_is_valid(spec: DownloadSpec, pinned: str | None, target: Path, record_path: Path) -> bool:
    if not target.is_file() or not record_path.is_file():
        return False
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("url") != spec.url:
        return False
    if pinned is not None and record.get("source_sha256") != pinned:
        return False
    if record.get("sha256") != file_sha256(target):
        progress.info(f"cached {target} does not match its recorded sha256; downloading it again")
        return False
    return os.access(target, os.X_OK)


def _published_sha256(spec: DownloadSpec) -> str:
    assert spec.checksum_url is not None
    try:
        response = requests.get(spec.checksum_url, timeout=HTTP_TIMEOUT)
        _require_safe_url(response.url, spec)
        response.raise_for_status()
    except requests.RequestException as exc:
        _raise_if_not_published(spec, exc, spec.checksum_url)
        raise BinaryError(
            f"could not fetch the published checksum {spec.checksum_url} ({exc}); "
            f"install {spec.name} {spec.version} yourself and pass {spec.option} PATH"
        ) from None
    return parse_checksum_file(response.text, _asset_name(spec.url))


def _download_verified(spec: DownloadSpec, expected: str, target: Path, record_path: Path) -> None:
    with _temporary_file(target.parent, f".{spec.name}-download-") as download:
        actual = _stream_to(spec, download)
        if actual != expected:
            source = "pinned" if spec.sha256 is not None else f"published at {spec.checksum_url}"
            raise ChecksumMismatch(
                f"{spec.url}: sha256 {actual} does not match the {source} sha256 {expected}; nothing was cached"
            )
        if spec.archive_member is None:
            executable_sha256 = actual
            _install(download, target)
        else:
            with _temporary_file(target.parent, f".{spec.name}-exe-") as executable:
                _extract_member(download, spec.archive_member, executable, spec)
                executable_sha256 = file_sha256(executable)
                _install(executable, target)
    # The record goes last: without it, a half-finished cache entry is simply downloaded again.
    record = {"url": spec.url, "source_sha256": expected, "sha256": executable_sha256}
    with _temporary_file(target.parent, f".{spec.name}-record-") as record_tmp:
        record_tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(record_tmp, record_path)


def _install(source: Path, target: Path) -> None:
    source.chmod(0o755)
    os.replace(source, target)


def _stream_to(spec: DownloadSpec, destination: Path) -> str:
    digest = hashlib.sha256()
    try:
        with requests.get(spec.url, stream=True, timeout=HTTP_TIMEOUT) as response:
            _require_safe_url(response.url, spec)
            response.raise_for_status()
            with destination.open("wb") as out:
                for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
    except requests.RequestException as exc:
        _raise_if_not_published(spec, exc, spec.url)
        raise BinaryError(
            f"download of {spec.url} failed ({exc}); "
            f"install {spec.name} {spec.version} yourself and pass {spec.option} PATH"
        ) from None
    return digest.hexdigest()


def _raise_if_not_published(spec: DownloadSpec, error: requests.RequestException, url: str) -> None:
    """A 404 means the release does not exist: say which option chose it."""
    response = getattr(error, "response", None)
    if response is None or response.status_code != 404:
        return
    install = f"install {spec.name} yourself and pass {spec.option} PATH"
    if spec.version_option:
        advice = f"check {spec.version_option} (it must name a released version), or {install}"
        chosen = f" (chosen by {spec.version_option})"
    else:
        advice, chosen = install, ""
    raise BinaryError(f"{spec.name} {spec.version}{chosen} is not published: {url} answers 404; {advice}") from None


def _extract_member(archive: Path, member_name: str, destination: Path, spec: DownloadSpec) -> None:
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                if member.name.removeprefix("./") == member_name and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None  # regular files always have a stream
                    with source, destination.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    return
    except (tarfile.TarError, OSError) as exc:
        raise BinaryError(f"{spec.url} is not a readable .tar.gz archive ({exc})") from None
    raise BinaryError(f"{spec.url} holds no file named {member_name!r}")


def _asset_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


@contextlib.contextmanager
def _temporary_file(directory: Path, prefix: str) -> Iterator[Path]:
    """A fresh file in ``directory`` (same filesystem as the target, so renames are atomic), removed on
    exit unless it was renamed away."""
    handle, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; return those created, deepest first."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty_dirs(created: list[Path]) -> None:
    for directory in created:
        try:
            directory.rmdir()
        except OSError:
            return


def resolve_pinned_or_path(
    name: str,
    make_spec: Callable[[], DownloadSpec],
    cache_dir: Path,
    accept_on_path: Callable[[Path], bool],
) -> Path:
    """``name`` on PATH if accepted, else the pinned download; where no pinned download exists for this
    platform (``make_spec`` raises), an accepted ``name`` on PATH is the only way."""
    try:
        spec = make_spec()
    except BinaryError:
        found = find_on_path(name, accept_on_path)
        if found is not None:
            return found
        raise
    return resolve_binary(spec, None, cache_dir, accept_on_path)
