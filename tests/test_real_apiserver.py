"""tests/real_apiserver.py itself: the build cache, the processes it starts and stops, skip vs fail without Go.

The build and process handling run here against fake ``go``, ``etcd`` and ``kube-apiserver`` executables,
so these tests need no Go; the last one starts the real control plane (skipped without Go).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import real_apiserver
from tests.real_apiserver import Binaries, RealApiServer, RealApiServerError, ensure_binaries, module_versions

pytest_plugins = ("pytester",)


def test_versions_come_from_go_mod() -> None:
    versions = module_versions()
    assert versions.kubernetes == "v1.35.4"
    assert versions.etcd == "v3.6.5"
    go_mod = (real_apiserver.MODULE_DIR / "go.mod").read_text(encoding="utf-8")
    # Every staging module k8s.io/kubernetes replaces with a local path is replaced here at its v0 release.
    for staging in ("api", "apimachinery", "apiserver", "client-go", "component-base", "kube-aggregator"):
        assert f"k8s.io/{staging} => k8s.io/{staging} v0.35.4" in go_mod


def test_version_is_stamped_into_both_version_packages() -> None:
    flags = real_apiserver.version_ldflags("v1.35.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.35.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=35" in flags


# --------------------------------------------------------------------------------------------- build cache

FAKE_GO = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps({{"args": args, "cwd": os.getcwd(), "cgo": os.environ.get("CGO_ENABLED")}}) + "\\n")
if os.environ.get("FAKE_GO_FAIL"):
    sys.stderr.write("compile: something broke\\n")
    sys.exit(2)
out = args[args.index("-o") + 1]
with open(out, "w") as binary:
    binary.write("#!/bin/sh\\n")
os.chmod(out, 0o755)
"""


@pytest.fixture
def fake_go(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "go-calls.jsonl"
    go = tmp_path / "bin" / "go"
    go.parent.mkdir()
    go.write_text(FAKE_GO.format(python=sys.executable, log=str(log)), encoding="utf-8")
    go.chmod(0o755)
    return go, log


@pytest.fixture
def module_copy(tmp_path: Path) -> Path:
    module = tmp_path / "module"
    module.mkdir()
    for name in ("go.mod", "go.sum"):
        shutil.copy(real_apiserver.MODULE_DIR / name, module / name)
    return module


def calls(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_build_once_into_the_versioned_cache_then_reuse(
    fake_go: tuple[Path, Path], module_copy: Path, tmp_path: Path
) -> None:
    go, log = fake_go
    lines: list[str] = []

    first = ensure_binaries(str(go), module_dir=module_copy, cache=tmp_path / "cache", report=lines.append)

    assert first.etcd == tmp_path / "cache" / "kubernetes-v1.35.4-etcd-v3.6.5" / "etcd"
    assert first.kube_apiserver.is_file() and first.kube_controller_manager.is_file()
    built = calls(log)
    assert [c["args"][-1] for c in built] == [  # type: ignore[index]
        "go.etcd.io/etcd/server/v3",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ]
    assert all(c["cwd"] == str(module_copy) and c["cgo"] == "0" for c in built)
    assert any("first time only" in line for line in lines)
    assert sum("done in" in line for line in lines) == 3

    lines.clear()
    second = ensure_binaries(str(go), module_dir=module_copy, cache=tmp_path / "cache", report=lines.append)

    assert second == first
    assert len(calls(log)) == 3  # nothing built again
    assert lines == []


def test_a_changed_go_sum_builds_again(fake_go: tuple[Path, Path], module_copy: Path, tmp_path: Path) -> None:
    go, log = fake_go
    ensure_binaries(str(go), module_dir=module_copy, cache=tmp_path / "cache", report=lambda _: None)
    with open(module_copy / "go.sum", "a", encoding="utf-8") as go_sum:
        go_sum.write("example.com/extra v1.0.0 h1:AAAA=\n")

    ensure_binaries(str(go), module_dir=module_copy, cache=tmp_path / "cache", report=lambda _: None)

    assert len(calls(log)) == 6


def test_a_failed_build_leaves_no_cache_entry_and_shows_the_compiler_output(
    fake_go: tuple[Path, Path], module_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go, _ = fake_go
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(RealApiServerError, match=r"(?s)exited with 2.*compile: something broke"):
        ensure_binaries(str(go), module_dir=module_copy, cache=tmp_path / "cache", report=lambda _: None)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".lock"]


def test_cache_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(real_apiserver.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert real_apiserver.cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv(real_apiserver.CACHE_ENV)
    assert real_apiserver.cache_root() == Path("~/.cache/egress-conformance/kube-apiserver").expanduser()


# ------------------------------------------------------------------------------------ processes, stopping

FAKE_ETCD = """#!{python}
# Answers /health like etcd, and leaves a grandchild behind that only a process-group kill ends.
import http.server, os, subprocess, sys
port = int([a for a in sys.argv if a.startswith("--listen-client-urls=")][0].rsplit(":", 1)[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open({pids!r}, "a").write(f"{{os.getpid()}} {{child.pid}}\\n")
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"health":"true"}}')
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""

FAKE_APISERVER = """#!/bin/sh
echo "E1130 error: unable to load client CA file" >&2
exit 1
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def fake_binaries(tmp_path: Path) -> tuple[Binaries, Path]:
    pids = tmp_path / "pids"
    etcd = tmp_path / "etcd"
    etcd.write_text(FAKE_ETCD.format(python=sys.executable, pids=str(pids)), encoding="utf-8")
    apiserver = tmp_path / "kube-apiserver"
    apiserver.write_text(FAKE_APISERVER, encoding="utf-8")
    for path in (etcd, apiserver):
        path.chmod(0o755)
    return Binaries(etcd, apiserver, tmp_path / "kube-controller-manager"), pids


def test_a_failed_start_names_the_process_and_stops_everything(fake_binaries: tuple[Binaries, Path]) -> None:
    binaries, pids = fake_binaries
    server = RealApiServer(binaries)

    with pytest.raises(RealApiServerError, match=r"(?s)kube-apiserver exited with 1.*unable to load client CA file"):
        server.__enter__()

    etcd_pid, grandchild_pid = (int(p) for p in pids.read_text(encoding="utf-8").split())
    deadline = time.monotonic() + 5
    while (_alive(etcd_pid) or _alive(grandchild_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(etcd_pid)
    assert not _alive(grandchild_pid)  # the whole process group went, not only etcd
    assert not server.workdir.exists()


def test_stop_is_safe_when_nothing_started(fake_binaries: tuple[Binaries, Path]) -> None:
    server = RealApiServer(fake_binaries[0])
    server.stop()
    server.stop()
    assert not server.workdir.exists()


# ------------------------------------------------------------------------------------ without Go on PATH

USES_THE_FIXTURE = """
def test_needs_it(real_apiserver):
    pass
"""


@pytest.fixture
def no_go(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.Pytester]:
    empty = pytester.mkdir("empty-path")
    monkeypatch.setenv("PATH", str(empty))
    pytester.makeconftest('pytest_plugins = ("tests.real_apiserver",)')
    pytester.makepyfile(USES_THE_FIXTURE)
    yield pytester


def test_without_go_the_tests_skip_saying_why(no_go: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(real_apiserver.REQUIRE_ENV, raising=False)
    result = no_go.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*Go is not installed*"])


def test_without_go_the_tests_fail_where_the_real_server_is_required(
    no_go: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(real_apiserver.REQUIRE_ENV, "1")
    result = no_go.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*Go is not installed*{real_apiserver.REQUIRE_ENV}=1 requires them to run*"])


def test_the_tier_can_be_left_out_by_its_marker(no_go: pytest.Pytester) -> None:
    no_go.makepyfile(test_offline="def test_plain():\n    pass\n")
    result = no_go.runpytest("-p", "no:cacheprovider", "-m", "not real_apiserver")
    result.assert_outcomes(passed=1, deselected=1)


# ---------------------------------------------------------------------------------------- the real thing


def test_the_real_control_plane_serves_its_version_and_leaves_nothing_behind(
    real_apiserver: RealApiServer,
) -> None:
    status, body = real_apiserver.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == "v1.35.4"
    # A second control plane from the same binaries starts and stops cleanly beside the session's.
    with RealApiServer(real_apiserver.binaries) as other:
        assert other.get("/readyz") == (200, "ok")
        pids = [p.popen.pid for p in other.processes]
        workdir = other.workdir
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert not workdir.exists()
