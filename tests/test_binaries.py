"""Binary resolution and verified downloads, against a loopback HTTP server and fake executables on PATH."""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conformance.platform import binaries
from conformance.platform.binaries import BinaryError, ChecksumMismatch, DownloadSpec
from tests.fakes.executables import FakeBin

BINARY = b"#!/bin/sh\necho genuine kind\n"
TAMPERED = b"#!/bin/sh\necho tampered kind\n"
ISTIOCTL = b"#!/bin/sh\necho genuine istioctl\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ReleaseServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 and records every requested path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval keeps shutdown (once per test) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReleaseServer]:
    for proxy in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    release = ReleaseServer()
    release.files["/v0.31.0/kind-linux-amd64"] = BINARY
    release.files["/v0.31.0/kind-linux-amd64.sha256sum"] = f"{sha256(BINARY)}  kind-linux-amd64\n".encode()
    release.files["/tampered/kind-linux-amd64"] = TAMPERED
    release.files["/tampered/kind-linux-amd64.sha256sum"] = f"{sha256(BINARY)}  kind-linux-amd64\n".encode()
    archive = tar_gz({"istioctl": ISTIOCTL})
    release.files["/1.30.3/istioctl-1.30.3-linux-amd64.tar.gz"] = archive
    # Istio's release builder writes "<hex> <name>" with a single space.
    release.files["/1.30.3/istioctl-1.30.3-linux-amd64.tar.gz.sha256"] = (
        f"{sha256(archive)} istioctl-1.30.3-linux-amd64.tar.gz\n".encode()
    )
    release.files["/1.30.3/no-member.tar.gz"] = tar_gz({"README.md": b"no istioctl here"})
    yield release
    release.close()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*"))


def kind_spec(server: ReleaseServer, base: str = "/v0.31.0", *, pinned: str | None = None) -> DownloadSpec:
    url = server.url(f"{base}/kind-linux-amd64")
    return DownloadSpec(
        name="kind",
        version="v0.31.0",
        url=url,
        sha256=pinned,
        checksum_url=None if pinned else url + ".sha256sum",
    )


def istioctl_spec(server: ReleaseServer, asset: str = "istioctl-1.30.3-linux-amd64.tar.gz") -> DownloadSpec:
    url = server.url(f"/1.30.3/{asset}")
    return DownloadSpec(
        name="istioctl",
        version="1.30.3",
        url=url,
        checksum_url=server.url("/1.30.3/istioctl-1.30.3-linux-amd64.tar.gz.sha256"),
        archive_member="istioctl",
    )


# --- verified downloads -----------------------------------------------------------------------------------


def test_pinned_sha256_download_is_cached_executable(server: ReleaseServer, cache_dir: Path) -> None:
    path = binaries.ensure_download(kind_spec(server, pinned=sha256(BINARY)), cache_dir)

    assert path == cache_dir / "kind" / "v0.31.0" / "kind"
    assert path.read_bytes() == BINARY
    assert os.access(path, os.X_OK)
    assert server.requests == ["/v0.31.0/kind-linux-amd64"]  # a pin needs no checksum file


def test_pinned_sha256_mismatch_caches_nothing(server: ReleaseServer, cache_dir: Path) -> None:
    with pytest.raises(ChecksumMismatch, match=f"does not match the pinned sha256 {sha256(BINARY)}"):
        binaries.ensure_download(kind_spec(server, "/tampered", pinned=sha256(BINARY)), cache_dir)

    assert cache_files(cache_dir) == []


def test_published_kind_checksum_is_fetched_and_verified(server: ReleaseServer, cache_dir: Path) -> None:
    path = binaries.ensure_download(kind_spec(server), cache_dir)

    assert path.read_bytes() == BINARY
    assert server.requests == ["/v0.31.0/kind-linux-amd64.sha256sum", "/v0.31.0/kind-linux-amd64"]


def test_published_checksum_mismatch_caches_nothing(server: ReleaseServer, cache_dir: Path) -> None:
    with pytest.raises(ChecksumMismatch, match=r"published at .*kind-linux-amd64\.sha256sum"):
        binaries.ensure_download(kind_spec(server, "/tampered"), cache_dir)

    assert cache_files(cache_dir) == []


def test_istioctl_member_is_extracted_from_verified_archive(server: ReleaseServer, cache_dir: Path) -> None:
    path = binaries.ensure_download(istioctl_spec(server), cache_dir)

    assert path == cache_dir / "istioctl" / "1.30.3" / "istioctl"
    assert path.read_bytes() == ISTIOCTL
    assert os.access(path, os.X_OK)
    assert sorted(p.name for p in path.parent.iterdir()) == ["istioctl", "istioctl.verified.json"]


def test_archive_without_the_member_caches_nothing(server: ReleaseServer, cache_dir: Path) -> None:
    archive = server.files["/1.30.3/no-member.tar.gz"]
    server.files["/1.30.3/no-member.tar.gz.sha256"] = f"{sha256(archive)} no-member.tar.gz\n".encode()
    spec = DownloadSpec(
        name="istioctl",
        version="1.30.3",
        url=server.url("/1.30.3/no-member.tar.gz"),
        checksum_url=server.url("/1.30.3/no-member.tar.gz.sha256"),
        archive_member="istioctl",
    )

    with pytest.raises(BinaryError, match="holds no file named 'istioctl'"):
        binaries.ensure_download(spec, cache_dir)
    assert cache_files(cache_dir) == []


def test_cache_hit_makes_no_request(server: ReleaseServer, cache_dir: Path) -> None:
    first = binaries.ensure_download(istioctl_spec(server), cache_dir)
    requests_after_download = list(server.requests)

    second = binaries.ensure_download(istioctl_spec(server), cache_dir)

    assert second == first
    assert server.requests == requests_after_download


def test_tampered_cache_entry_is_downloaded_again(server: ReleaseServer, cache_dir: Path) -> None:
    spec = kind_spec(server, pinned=sha256(BINARY))
    path = binaries.ensure_download(spec, cache_dir)
    path.write_bytes(TAMPERED)

    again = binaries.ensure_download(spec, cache_dir)

    assert again.read_bytes() == BINARY
    assert server.requests == ["/v0.31.0/kind-linux-amd64"] * 2


def test_failed_redownload_leaves_no_stale_copy(server: ReleaseServer, cache_dir: Path) -> None:
    spec = kind_spec(server, pinned=sha256(BINARY))
    binaries.ensure_download(spec, cache_dir).write_bytes(TAMPERED)
    server.files["/v0.31.0/kind-linux-amd64"] = TAMPERED

    with pytest.raises(ChecksumMismatch):
        binaries.ensure_download(spec, cache_dir)

    assert [p for p in cache_files(cache_dir) if p.is_file()] == []


def test_missing_asset_names_the_option(server: ReleaseServer, cache_dir: Path) -> None:
    spec = DownloadSpec(name="kind", version="v9.9.9", url=server.url("/nope/kind"), sha256="0" * 64)

    with pytest.raises(BinaryError, match=r"404.*pass --kind-bin PATH"):
        binaries.ensure_download(spec, cache_dir)
    assert cache_files(cache_dir) == []


def test_plain_http_is_refused_for_non_loopback_hosts(cache_dir: Path) -> None:
    spec = DownloadSpec(name="kind", version="v0.31.0", url="http://example.com/kind", sha256="0" * 64)

    with pytest.raises(BinaryError, match="only https:// URLs"):
        binaries.ensure_download(spec, cache_dir)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{'a' * 64}  kind-linux-amd64\n", "a" * 64),  # kind: two spaces
        (f"{'B' * 64} kind-linux-amd64\n", "b" * 64),  # Istio: one space; case-insensitive hex
        (f"{'c' * 64} *kind-linux-amd64\n", "c" * 64),  # binary-mode marker
        (f"{'d' * 64}  kind-darwin-arm64\n{'e' * 64}  kind-linux-amd64\n", "e" * 64),
        (f"{'f' * 64}\n", "f" * 64),  # a bare digest beside its asset
    ],
)
def test_checksum_file_formats(text: str, expected: str) -> None:
    assert binaries.parse_checksum_file(text, "kind-linux-amd64") == expected


@pytest.mark.parametrize("text", ["", f"{'a' * 64}  kind-darwin-arm64\n", "not-a-digest  kind-linux-amd64\n"])
def test_checksum_file_without_the_asset_is_refused(text: str) -> None:
    with pytest.raises(BinaryError, match="no single sha256 for kind-linux-amd64"):
        binaries.parse_checksum_file(text, "kind-linux-amd64")


# --- resolution order ---------------------------------------------------------------------------------------


def test_explicit_path_wins_over_path(fake_bin: FakeBin, server: ReleaseServer, cache_dir: Path) -> None:
    fake_bin("kind")
    explicit = cache_dir / "my-kind"

    assert binaries.resolve_binary(kind_spec(server), explicit, cache_dir, lambda _: True) == explicit
    assert server.requests == []


def test_accepted_binary_on_path_is_used(fake_bin: FakeBin, server: ReleaseServer, cache_dir: Path) -> None:
    on_path = fake_bin("kind").path
    seen: list[Path] = []

    def accept(path: Path) -> bool:
        seen.append(path)
        return True

    assert binaries.resolve_binary(kind_spec(server), None, cache_dir, accept) == on_path
    assert seen == [on_path]
    assert server.requests == []


def test_path_binary_without_check_is_used(fake_bin: FakeBin, server: ReleaseServer, cache_dir: Path) -> None:
    on_path = fake_bin("kind").path

    assert binaries.resolve_binary(kind_spec(server), None, cache_dir) == on_path


def test_rejected_binary_on_path_falls_back_to_download(
    fake_bin: FakeBin, server: ReleaseServer, cache_dir: Path
) -> None:
    on_path = fake_bin("kind").path
    seen: list[Path] = []

    def reject(path: Path) -> bool:
        seen.append(path)
        return False

    resolved = binaries.resolve_binary(kind_spec(server), None, cache_dir, reject)

    assert seen == [on_path]
    assert resolved == cache_dir / "kind" / "v0.31.0" / "kind"
    assert resolved.read_bytes() == BINARY


def test_missing_from_path_downloads(fake_bin: FakeBin, server: ReleaseServer, cache_dir: Path) -> None:
    fake_bin.isolate_path()

    resolved = binaries.resolve_binary(kind_spec(server), None, cache_dir, lambda _: True)

    assert resolved.read_bytes() == BINARY


# --- platforms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "machine", "kind_style", "istio_style"),
    [
        ("Linux", "x86_64", "linux-amd64", "linux-amd64"),
        ("Linux", "aarch64", "linux-arm64", "linux-arm64"),
        ("Darwin", "arm64", "darwin-arm64", "osx-arm64"),
        ("Darwin", "x86_64", "darwin-amd64", "osx"),
    ],
)
def test_current_platform(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, kind_style: str, istio_style: str
) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)

    assert binaries.current_platform() == kind_style
    assert binaries.current_platform("kind") == kind_style
    assert binaries.current_platform("istio") == istio_style


@pytest.mark.parametrize(("style", "option"), [("kind", "--kind-bin"), ("istio", "--istioctl-bin")])
@pytest.mark.parametrize(("system", "machine"), [("Windows", "AMD64"), ("Linux", "ppc64le")])
def test_unsupported_platform_names_the_option(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, style: str, option: str
) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)

    with pytest.raises(BinaryError, match=f"pass {option} PATH"):
        binaries.current_platform(style)
