"""The image list: validation, the manifests cross-check, registry resolution and kind loading.

Registry resolution runs against a loopback fake registry (token service + manifest endpoint); loading
runs against fake ``docker`` and ``kind`` executables that record their argv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import progress, versions
from conformance.core.manifests import iter_manifest_files
from conformance.images.image_list import (
    Image,
    ImageListError,
    default_variables,
    dump,
    images_in_manifests,
    load,
    parse_image_list,
    reference,
    unlisted_images,
    validate_image_list,
)
from conformance.images.loading import main
from conformance.images.references import ImageName, parse_reference
from conformance.images.registry import (
    ACCEPT_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    RESOLVED_SOURCE_PREFIX,
    RegistryClient,
    RegistryError,
)
from tests.fakes.executables import FakeBin

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_list_data(*entries: dict[str, Any], group: str = "workloads") -> dict[str, Any]:
    return {"apiVersion": "egress-conformance/v1alpha1", "kind": "ImageList", "groups": {group: list(entries)}}


def entry(image: str, **extra: Any) -> dict[str, Any]:
    return {"image": image, "used_by": ["a test"], **extra}


# --- the repository's list ---------------------------------------------------------------------------


def test_repository_list_loads_and_pins_every_image_by_tag() -> None:
    image_list = load()
    rendered = image_list.images()
    assert rendered
    for image in rendered:
        name = parse_reference(image.name)
        assert name.tag and name.tag != "latest", image.name
        assert name.digest is None, f"{image.name}: digest belongs in `digest:`"


def test_repository_list_digests_are_well_formed_and_cited() -> None:
    for entry_ in load().entries:
        pins = [(entry_.digest, entry_.source)] if entry_.digest else []
        pins += [(pin.digest, pin.source) for pin in entry_.pins.values()]
        for digest, source in pins:
            assert digest is not None and _DIGEST.match(digest), f"{entry_.image}: {digest!r}"
            assert source and source.strip(), f"{entry_.image}: digest without a source"


def test_kind_node_image_is_the_pinned_kind_release_image() -> None:
    node = load().find(versions.KIND.node_image)
    assert node is not None and not node.kind_load
    assert reference(node) == versions.KIND.node_image


def test_istio_images_follow_the_requested_release() -> None:
    names = {image.name for image in load().images(default_variables("1.31.1"), ["istio-ambient"])}
    assert "docker.io/istio/ztunnel:1.31.1-distroless" in names
    assert all("1.31.1" in name for name in names)


def test_kind_node_images_in_manifests_are_listed_by_digest() -> None:
    image_list = load()
    for path in iter_manifest_files(MANIFESTS_DIR):
        text = path.read_text(encoding="utf-8")
        if "kind.x-k8s.io/" not in text:
            continue
        for doc in yaml.safe_load_all(text):
            if not (
                isinstance(doc, dict)
                and doc.get("kind") == "Cluster"
                and str(doc.get("apiVersion", "")).startswith("kind.x-k8s.io/")
            ):
                continue
            for node in doc.get("nodes") or []:
                if "image" in node:
                    listed = image_list.find(node["image"])
                    assert listed is not None and node["image"] == listed.reference, f"{path}: {node['image']}"


def test_every_image_used_in_manifests_is_listed() -> None:
    missing = unlisted_images(images_in_manifests(MANIFESTS_DIR), load())
    assert not missing, f"add these to manifests/images.yaml (tag, and digest with a source): {sorted(missing)}"


# --- validation of bad lists -------------------------------------------------------------------------


def test_minimal_valid_list_is_accepted() -> None:
    data = image_list_data(
        entry("docker.io/curlimages/curl:8.16.0", digest=DIGEST_A, source="a citation"),
        entry(
            "docker.io/istio/proxyv2:${ISTIO_VERSION}",
            pins={"docker.io/istio/proxyv2:1.30.3": {"digest": DIGEST_B, "source": "a citation"}},
        ),
    )
    assert validate_image_list(data) == []
    parsed = parse_image_list(data)
    assert [i.reference for i in parsed.images()] == [
        f"docker.io/curlimages/curl:8.16.0@{DIGEST_A}",
        f"docker.io/istio/proxyv2:1.30.3@{DIGEST_B}",
    ]
    # Another release of a templated image has no pin: tag only.
    assert parsed.images({"ISTIO_VERSION": "1.29.6"})[1].reference == "docker.io/istio/proxyv2:1.29.6"


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (entry("docker.io/curlimages/curl"), "no tag"),
        (entry("nginx"), "no tag"),
        (entry("docker.io/library/nginx:latest"), "`latest`"),
        (entry(f"docker.io/curlimages/curl:8.16.0@{DIGEST_A}"), "put the digest in `digest:`"),
        (entry("docker.io/curlimages/curl:8.16.0", digest="sha256:" + "A" * 64, source="s"), "not sha256:"),
        (entry("docker.io/curlimages/curl:8.16.0", digest="sha256:abc", source="s"), "not sha256:"),
        (entry("docker.io/curlimages/curl:8.16.0", digest=DIGEST_A), "needs a `source`"),
        (entry("docker.io/curlimages/curl:8.16.0", digest=DIGEST_A, source="  "), "needs a `source`"),
        (entry("docker.io/curlimages/curl:8.16.0", source="somewhere"), "no `digest` is given"),
        ({"image": "docker.io/curlimages/curl:8.16.0"}, "`used_by`"),
        (entry("docker.io/curlimages/curl:8.16.0", used_by=[]), "`used_by`"),
        (entry("docker.io/curlimages/curl:8.16.0", digets=DIGEST_A), "unknown keys ['digets']"),
        (entry("docker.io/curlimages/curl:8.16.0", kind_load="no"), "`kind_load`"),
        (entry("docker.io/istio/pilot:${ISTIO_VERSON}"), "unknown placeholder"),
        (entry("docker.io/istio/pilot:${ISTIO_VERSION}", digest=DIGEST_A, source="s"), "under `pins`"),
        (entry("docker.io/curlimages/curl:8.16.0", pins={}), "only for templated images"),
        (
            entry(
                "docker.io/istio/pilot:${ISTIO_VERSION}",
                pins={"docker.io/istio/proxyv2:1.30.3": {"digest": DIGEST_A, "source": "s"}},
            ),
            "not a rendering",
        ),
        (
            entry(
                "docker.io/istio/pilot:${ISTIO_VERSION}", pins={"docker.io/istio/pilot:1.30.3": {"digest": DIGEST_A}}
            ),
            "needs a `source`",
        ),
        (entry("Docker.io/Curl:8.16.0"), "not a valid repository path"),
    ],
)
def test_validator_rejects(bad: dict[str, Any], fragment: str) -> None:
    problems = validate_image_list(image_list_data(bad))
    assert any(fragment in problem for problem in problems), problems
    with pytest.raises(ImageListError, match=re.escape(fragment)):
        parse_image_list(image_list_data(bad))


def test_validator_rejects_the_same_image_listed_twice_under_another_spelling() -> None:
    data = image_list_data(entry("nginx:1.29.3"), entry("docker.io/library/nginx:1.29.3"))
    assert any("already listed" in p for p in validate_image_list(data))


@pytest.mark.parametrize(
    "data, fragment",
    [
        ([], "must be a mapping"),
        ({"apiVersion": "v1", "kind": "ImageList", "groups": {"g": [entry("a/b:1")]}}, "apiVersion/kind"),
        ({**image_list_data(entry("a/b:1")), "extra": 1}, "unknown top-level keys"),
        (image_list_data(), "non-empty list"),
    ],
)
def test_validator_rejects_malformed_documents(data: object, fragment: str) -> None:
    assert any(fragment in p for p in validate_image_list(data))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("nginx:1.29.3", ImageName("docker.io", "library/nginx", "1.29.3")),
        ("docker.io/library/nginx:1.29.3", ImageName("docker.io", "library/nginx", "1.29.3")),
        ("index.docker.io/curlimages/curl:8.16.0", ImageName("docker.io", "curlimages/curl", "8.16.0")),
        ("kindest/node:v1.35.0@" + DIGEST_A, ImageName("docker.io", "kindest/node", "v1.35.0", DIGEST_A)),
        ("localhost:5000/team/app:1", ImageName("localhost:5000", "team/app", "1")),
        ("registry.k8s.io/pause", ImageName("registry.k8s.io", "pause", None)),
    ],
)
def test_parse_reference(text: str, expected: ImageName) -> None:
    assert parse_reference(text) == expected


def test_reference_looks_up_any_spelling_and_refuses_unlisted_images() -> None:
    image_list = parse_image_list(
        image_list_data(entry("docker.io/library/nginx:1.29.3", digest=DIGEST_A, source="cited"))
    )
    assert reference("nginx:1.29.3", image_list) == f"docker.io/library/nginx:1.29.3@{DIGEST_A}"
    with pytest.raises(ImageListError, match=r"not in images\.yaml"):
        reference("nginx:1.28.0", image_list)


# --- images used in manifests ------------------------------------------------------------------------


def _write(path: Path, docs: list[dict[str, Any]] | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(docs if isinstance(docs, str) else yaml.safe_dump_all(docs), encoding="utf-8")


def _deployment(*images: str, init: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": init}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": spec}},
    }


def test_images_in_manifests_walks_every_container_list(tmp_path: Path) -> None:
    _write(
        tmp_path / "a.yaml",
        [
            _deployment("docker.io/curlimages/curl:8.16.0", init="nginx:1.29.3"),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "not/an-image:1"}},
        ],
    )
    _write(
        tmp_path / "nested" / "b.yml",
        [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "j"},
                "spec": {
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {"containers": [{"name": "j", "image": "docker.io/envoyproxy/envoy:v1.36.2"}]}
                            }
                        }
                    }
                },
            },
            # A CRD schema has an `image` property whose value is a schema, not an image.
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "x"},
                "spec": {
                    "versions": [
                        {
                            "schema": {
                                "openAPIV3Schema": {
                                    "properties": {
                                        "containers": {
                                            "type": "array",
                                            "items": {"properties": {"image": {"type": "string"}}},
                                        }
                                    }
                                }
                            }
                        }
                    ]
                },
            },
        ],
    )
    # Placeholders (anywhere, even in flow style) parse; templated images keep their ${NAME} form.
    _write(
        tmp_path / "c.yaml",
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {run: ${RUN_ID}}}\n"
            "spec:\n  containers:\n  - name: proxy\n    image: docker.io/istio/proxyv2:${ISTIO_VERSION}\n"
            '    args: ["--price=$$5"]\n'
        ),
    )
    assert images_in_manifests(tmp_path) == {
        "docker.io/curlimages/curl:8.16.0",
        "nginx:1.29.3",
        "docker.io/envoyproxy/envoy:v1.36.2",
        "docker.io/istio/proxyv2:${ISTIO_VERSION}",
    }


def test_unlisted_images_are_reported(tmp_path: Path) -> None:
    image_list = parse_image_list(
        image_list_data(
            entry("docker.io/library/nginx:1.29.3", digest=DIGEST_A, source="cited"),
            entry("docker.io/istio/proxyv2:${ISTIO_VERSION}"),
        )
    )
    _write(tmp_path / "ok.yaml", [_deployment("nginx:1.29.3", f"docker.io/library/nginx:1.29.3@{DIGEST_A}")])
    _write(
        tmp_path / "templated.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "  - {name: a, image: 'docker.io/istio/proxyv2:${ISTIO_VERSION}'}\n"
        "  - {name: b, image: 'docker.io/istio/ztunnel:${ISTIO_VERSION}'}\n"
        "  - {name: c, image: '${SOME_IMAGE}'}\n",
    )
    _write(
        tmp_path / "bad.yaml",
        [_deployment("docker.io/curlimages/curl:8.16.0", f"docker.io/library/nginx:1.29.3@{DIGEST_B}")],
    )
    assert unlisted_images(images_in_manifests(tmp_path), image_list) == {
        "docker.io/curlimages/curl:8.16.0",  # not listed
        f"docker.io/library/nginx:1.29.3@{DIGEST_B}",  # listed with another digest
        "docker.io/istio/ztunnel:${ISTIO_VERSION}",  # no such template
        "${SOME_IMAGE}",  # cannot be checked: manifests must name their images
    }


# --- resolve against a loopback fake registry --------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    """Registry + token service on 127.0.0.1 speaking the Docker token flow."""

    url: str = ""
    #: "repo:tag" -> (digest, media type); unknown tags answer 404.
    manifests: dict[str, tuple[str, str]] = field(default_factory=dict)
    send_digest_header: bool = True
    requests: list[Recorded] = field(default_factory=list)
    token: str = "anonymous-token-123"
    body: bytes = b'{"schemaVersion": 2}'

    def manifest_requests(self) -> list[Recorded]:
        return [r for r in self.requests if "/manifests/" in r.path]


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            registry.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers)))
            if parts.path == "/token":
                self._reply(
                    200,
                    {"Content-Type": "application/json"},
                    json.dumps({"token": registry.token, "expires_in": 300}).encode(),
                )
                return
            match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", parts.path)
            if not match:
                self._reply(404, {})
                return
            repo, tag = match.groups()
            if self.headers.get("Authorization") != f"Bearer {registry.token}":
                challenge = (
                    f'Bearer realm="{registry.url}/token",service="fake.registry",scope="repository:{repo}:pull"'
                )
                self._reply(401, {"WWW-Authenticate": challenge})
                return
            found = registry.manifests.get(f"{repo}:{tag}")
            if found is None:
                self._reply(404, {})
                return
            digest, media_type = found
            headers = {"Content-Type": media_type}
            if registry.send_digest_header:
                headers["Docker-Content-Digest"] = digest
            self._reply(200, headers, registry.body)

        do_GET = _handle
        do_HEAD = _handle

    return Handler


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    state = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _images_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_resolve_follows_the_token_flow_and_records_digests(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.manifests = {
        "curlimages/curl:8.16.0": (DIGEST_A, INDEX_MEDIA_TYPES[0]),
        "istio/ztunnel:1.30.3-distroless": (DIGEST_B, INDEX_MEDIA_TYPES[1]),
    }
    path = _images_file(
        tmp_path,
        image_list_data(
            entry("docker.io/curlimages/curl:8.16.0"),
            entry("docker.io/istio/ztunnel:${ISTIO_VERSION}-distroless"),
        ),
    )

    code = main(
        [
            "resolve",
            "--write",
            "--images-file",
            str(path),
            "--istio-version",
            "1.30.3",
            "--endpoint",
            f"docker.io={registry.url}",
        ]
    )

    assert code == 0
    first, token, authorized = registry.requests[:3]
    assert (first.method, first.path) == ("HEAD", "/v2/curlimages/curl/manifests/8.16.0")
    assert "Authorization" not in first.headers
    assert token.path == "/token"
    assert token.query == {"service": ["fake.registry"], "scope": ["repository:curlimages/curl:pull"]}
    assert (authorized.method, authorized.path) == ("HEAD", "/v2/curlimages/curl/manifests/8.16.0")
    assert authorized.headers["Authorization"] == "Bearer anonymous-token-123"
    accepted = [t.strip() for t in authorized.headers["Accept"].split(",")]
    assert set(INDEX_MEDIA_TYPES) <= set(accepted) and accepted == list(ACCEPT_MEDIA_TYPES)
    # HEAD answered with the digest header: no manifest body was downloaded.
    assert all(r.method == "HEAD" for r in registry.manifest_requests())

    written = load(path)
    curl, ztunnel = written.entries
    assert curl.digest == DIGEST_A
    assert curl.source is not None and re.fullmatch(
        re.escape(RESOLVED_SOURCE_PREFIX) + r"\d{4}-\d{2}-\d{2}", curl.source
    )
    assert ztunnel.digest is None
    assert ztunnel.pins["docker.io/istio/ztunnel:1.30.3-distroless"].digest == DIGEST_B
    assert written.images()[0].reference == f"docker.io/curlimages/curl:8.16.0@{DIGEST_A}"
    out = capsys.readouterr().out
    assert f"docker.io/curlimages/curl:8.16.0\tnew\t{DIGEST_A}" in out


def test_resolve_without_write_leaves_the_file_alone(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.manifests = {"curlimages/curl:8.16.0": (DIGEST_A, INDEX_MEDIA_TYPES[0])}
    path = _images_file(tmp_path, image_list_data(entry("docker.io/curlimages/curl:8.16.0")))
    before = path.read_text()
    assert main(["resolve", "--images-file", str(path), "--endpoint", f"docker.io={registry.url}"]) == 0
    assert path.read_text() == before


def test_resolve_never_overwrites_a_cited_digest(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.manifests = {
        "kindest/node:v1.35.0": (DIGEST_B, INDEX_MEDIA_TYPES[0]),
        "library/nginx:1.29.3": (DIGEST_C, INDEX_MEDIA_TYPES[0]),
    }
    data = image_list_data(
        entry("kindest/node:v1.35.0", digest=DIGEST_A, source="kind release notes"),
        entry("docker.io/library/nginx:1.29.3", digest=DIGEST_A, source=RESOLVED_SOURCE_PREFIX + "2026-01-01"),
    )
    path = _images_file(tmp_path, data)
    assert main(["resolve", "--write", "--images-file", str(path), "--endpoint", f"docker.io={registry.url}"]) == 1
    node, nginx = load(path).entries
    assert (node.digest, node.source) == (DIGEST_A, "kind release notes")  # conflict reported, kept
    assert nginx.digest == DIGEST_C  # re-pushed tag: the earlier resolve is refreshed
    out = capsys.readouterr().out
    assert "kindest/node:v1.35.0\tconflict" in out and "\tmoved\t" in out


def test_resolve_hashes_the_manifest_when_the_registry_sends_no_digest_header(registry: FakeRegistry) -> None:
    registry.send_digest_header = False
    registry.manifests = {"curlimages/curl:8.16.0": ("unused", INDEX_MEDIA_TYPES[1])}
    resolved = RegistryClient({"docker.io": registry.url}).manifest_digest("curlimages/curl:8.16.0")
    assert resolved.digest == "sha256:" + hashlib.sha256(registry.body).hexdigest()
    assert resolved.is_index
    assert [r.method for r in registry.manifest_requests()] == ["HEAD", "HEAD", "GET"]
    # The token was fetched once and reused.
    assert [r.path for r in registry.requests].count("/token") == 1


def test_resolve_reports_a_missing_tag(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _images_file(tmp_path, image_list_data(entry("docker.io/envoyproxy/envoy:v1.36.99")))
    assert main(["resolve", "--images-file", str(path), "--endpoint", f"docker.io={registry.url}"]) == 1
    assert "no such tag" in capsys.readouterr().out
    with pytest.raises(RegistryError, match="no such tag"):
        RegistryClient({"docker.io": registry.url}).manifest_digest("docker.io/envoyproxy/envoy:v1.36.99")


def test_resolve_refuses_non_bearer_challenges() -> None:
    client = RegistryClient()
    with pytest.raises(RegistryError, match="only anonymous pulls"):
        client._token('Basic realm="x"', parse_reference("a/b:1"))


def test_docker_hub_is_queried_on_its_api_host() -> None:
    assert RegistryClient().endpoint("docker.io") == "https://registry-1.docker.io"
    assert RegistryClient().endpoint("quay.io") == "https://quay.io"


# --- load with fake docker and kind ------------------------------------------------------------------

INSPECT = ("image", "inspect", "--format", "{{json .RepoDigests}}")


@pytest.fixture(autouse=True)
def _no_terminal_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI attaches a stderr handler to the shared logger; in tests caplog reads the lines instead.
    monkeypatch.setattr(progress, "attach_terminal_handler", lambda: None)


def _load_list(tmp_path: Path) -> Path:
    return _images_file(
        tmp_path,
        image_list_data(
            entry("kindest/node:v1.35.0", digest=DIGEST_A, source="kind release notes", kind_load=False),
            entry("docker.io/curlimages/curl:8.16.0", digest=DIGEST_B, source="cited"),
            entry("docker.io/library/nginx:1.29.3"),
        ),
    )


def test_load_pulls_missing_images_by_digest_and_loads_them_into_kind(
    fake_bin: FakeBin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conformance")
    fake_bin.isolate_path()
    docker, kind = fake_bin("docker"), fake_bin("kind")
    kind.on("get", "clusters", stdout="egress-conformance\n")
    docker.on(*INSPECT, "kindest/node:v1.35.0", exit_code=1, stderr="Error: No such image\n")
    docker.on(*INSPECT, "docker.io/curlimages/curl:8.16.0", exit_code=1, stderr="Error: No such image\n")
    docker.on(*INSPECT, "docker.io/library/nginx:1.29.3", stdout='["nginx@sha256:' + "d" * 64 + '"]\n')

    code = main(["load", "--cluster-name", "egress-conformance", "--images-file", str(_load_list(tmp_path))])

    assert code == 0
    assert docker.argvs() == [
        [*INSPECT, "kindest/node:v1.35.0"],
        ["pull", f"docker.io/kindest/node@{DIGEST_A}"],
        ["tag", f"docker.io/kindest/node@{DIGEST_A}", "kindest/node:v1.35.0"],
        [*INSPECT, "docker.io/curlimages/curl:8.16.0"],
        ["pull", f"docker.io/curlimages/curl@{DIGEST_B}"],
        ["tag", f"docker.io/curlimages/curl@{DIGEST_B}", "docker.io/curlimages/curl:8.16.0"],
        [*INSPECT, "docker.io/library/nginx:1.29.3"],  # present, no digest pinned: not pulled again
    ]
    assert any(f"[2/3] docker pull docker.io/curlimages/curl:8.16.0@{DIGEST_B}" in m for m in caplog.messages)
    assert "[3/3] docker.io/library/nginx:1.29.3: already present in Docker" in caplog.messages
    # The node image is the cluster itself: pulled for `kind create`, never loaded.
    assert kind.argvs() == [
        ["get", "clusters"],
        ["load", "docker-image", "docker.io/curlimages/curl:8.16.0", "--name", "egress-conformance"],
        ["load", "docker-image", "docker.io/library/nginx:1.29.3", "--name", "egress-conformance"],
    ]


def test_load_repulls_a_local_image_with_another_digest(fake_bin: FakeBin, tmp_path: Path) -> None:
    fake_bin.isolate_path()
    docker, kind = fake_bin("docker"), fake_bin("kind")
    kind.on("get", "clusters", stdout="c1\n")
    docker.on(*INSPECT, "kindest/node:v1.35.0", stdout=f'["kindest/node@{DIGEST_A}"]\n')
    docker.on(*INSPECT, "docker.io/curlimages/curl:8.16.0", stdout=f'["curlimages/curl@{DIGEST_C}"]\n')
    docker.on(*INSPECT, "docker.io/library/nginx:1.29.3", stdout="[]\n")

    assert (
        main(["load", "--cluster-name", "c1", "--images-file", str(_load_list(tmp_path)), "--group", "workloads"]) == 0
    )

    pulls = [argv for argv in docker.argvs() if argv[0] == "pull"]
    assert pulls == [["pull", f"docker.io/curlimages/curl@{DIGEST_B}"]]
    loaded = [argv[2] for argv in kind.argvs() if argv[0] == "load"]
    assert loaded == ["docker.io/curlimages/curl:8.16.0", "docker.io/library/nginx:1.29.3"]


def test_load_uses_the_given_kind_binary(fake_bin: FakeBin, tmp_path: Path) -> None:
    fake_bin.isolate_path()
    fake_bin("docker")
    custom = fake_bin("kind-v0.31.0")
    custom.on("get", "clusters", stdout="c1\n")
    path = _images_file(tmp_path, image_list_data(entry("docker.io/library/nginx:1.29.3")))
    assert main(["load", "--cluster-name", "c1", "--kind-bin", str(custom.path), "--images-file", str(path)]) == 0
    assert custom.argvs() == [
        ["get", "clusters"],
        ["load", "docker-image", "docker.io/library/nginx:1.29.3", "--name", "c1"],
    ]


def test_load_checks_kind_and_the_cluster_before_it_pulls_anything(
    fake_bin: FakeBin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bin.isolate_path()
    docker, kind = fake_bin("docker"), fake_bin("kind")
    kind.on("get", "clusters", stdout="other\n")
    assert main(["load", "--cluster-name", "c1", "--images-file", str(_load_list(tmp_path))]) == 1
    assert "--cluster-name: kind knows no cluster 'c1' (clusters: ['other'])" in capsys.readouterr().err
    assert docker.argvs() == []
    kind.on("get", "clusters", exit_code=1, stderr="ERROR: unknown command\n")
    broken = fake_bin("kind-broken")
    broken.on("get", "clusters", exit_code=1, stderr="ERROR: unknown command\n")
    argv = ["load", "--cluster-name", "c1", "--kind-bin", str(broken.path), "--images-file", str(_load_list(tmp_path))]
    assert main(argv) == 1
    assert "does not work as kind" in capsys.readouterr().err
    assert docker.argvs() == []


def test_load_fails_clearly_without_docker(
    fake_bin: FakeBin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bin.isolate_path()
    kind = fake_bin("kind")
    assert main(["load", "--cluster-name", "c1", "--images-file", str(_load_list(tmp_path))]) == 1
    assert "docker was not found on PATH" in capsys.readouterr().err
    assert kind.argvs() == []


def test_load_fails_clearly_without_kind(fake_bin: FakeBin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_bin.isolate_path()
    docker = fake_bin("docker")
    assert main(["load", "--cluster-name", "c1", "--images-file", str(_load_list(tmp_path))]) == 1
    assert "--kind-bin" in capsys.readouterr().err
    assert docker.argvs() == []


def test_load_stops_on_a_failed_pull(fake_bin: FakeBin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_bin.isolate_path()
    docker, kind = fake_bin("docker"), fake_bin("kind")
    kind.on("get", "clusters", stdout="c1\n")
    docker.on(*INSPECT, exit_code=1)
    docker.on("pull", exit_code=1, stderr="Error response from daemon: manifest unknown\n")
    path = _images_file(tmp_path, image_list_data(entry("docker.io/library/nginx:1.29.3")))
    assert main(["load", "--cluster-name", "c1", "--images-file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "docker pull docker.io/library/nginx:1.29.3" in err and "manifest unknown" in err
    assert kind.argvs() == [["get", "clusters"]]


# --- list --------------------------------------------------------------------------------------------


def test_list_prints_one_reference_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = image_list_data(
        entry("docker.io/curlimages/curl:8.16.0", digest=DIGEST_A, source="cited"),
        entry("docker.io/istio/pilot:${ISTIO_VERSION}-distroless"),
    )
    assert main(["list", "--images-file", str(_images_file(tmp_path, data)), "--istio-version", "1.29.6"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"docker.io/curlimages/curl:8.16.0@{DIGEST_A}",
        "docker.io/istio/pilot:1.29.6-distroless",
    ]


def test_list_rejects_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _images_file(tmp_path, image_list_data(entry("docker.io/library/nginx:latest")))
    assert main(["list", "--images-file", str(path)]) == 1
    assert "`latest`" in capsys.readouterr().err


def test_dump_round_trips() -> None:
    original = load()
    assert parse_image_list(yaml.safe_load(dump(original))) == original


def test_image_reference_property() -> None:
    assert Image("a/b:1", "g", ("x",)).reference == "a/b:1"
    assert Image("a/b:1", "g", ("x",), DIGEST_A, "s").reference == f"a/b:1@{DIGEST_A}"
