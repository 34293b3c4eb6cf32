"""Anonymous, read-only container registry client (Docker Registry HTTP API v2): tag -> manifest digest,
and recording the digests it answers in the image list.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import requests

from conformance.images.image_list import Image, ImageEntry, ImageList, Pin, default_variables
from conformance.images.references import DIGEST, DOCKER_HUB, ImageName, parse_reference

DOCKER_HUB_API = "https://registry-1.docker.io"

#: Manifest media types asked for, multi-platform ones first: the digest of an index (manifest list)
#: is the one that pulls correctly on every node architecture.
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
SINGLE_MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT_MEDIA_TYPES = INDEX_MEDIA_TYPES + SINGLE_MANIFEST_MEDIA_TYPES

RESOLVED_SOURCE_PREFIX = "resolved from registry on "


class RegistryError(RuntimeError):
    """A registry could not be asked for a digest; the message says which image and why."""


@dataclass(frozen=True)
class ResolvedDigest:
    digest: str
    media_type: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """Anonymous, read-only Docker Registry HTTP API v2 client: tag -> manifest digest.

    Authentication follows the registry token flow: a 401 carries ``WWW-Authenticate: Bearer realm=...,
    service=..., scope=...``; an anonymous token from the realm is sent back as ``Authorization: Bearer``.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout
        self.session = session or requests.Session()
        self._tokens: dict[tuple[str, str, str], str] = {}
        #: Last token that worked per (registry, repository): sent up front on the next request.
        self._repository_tokens: dict[tuple[str, str], str] = {}

    def endpoint(self, registry: str) -> str:
        if registry in self.endpoints:
            return self.endpoints[registry].rstrip("/")
        return DOCKER_HUB_API if registry == DOCKER_HUB else f"https://{registry}"

    def manifest_digest(self, image: str | ImageName) -> ResolvedDigest:
        name = parse_reference(image) if isinstance(image, str) else image
        label = name.canonical
        if not name.tag:
            raise RegistryError(f"{label}: no tag to resolve")
        url = f"{self.endpoint(name.registry)}/v2/{name.repository}/manifests/{name.tag}"
        headers = {"Accept": ", ".join(ACCEPT_MEDIA_TYPES)}
        response = self._request("HEAD", url, headers, name)
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest:
            # Not every registry sends the header on HEAD; the digest is the sha256 of the manifest bytes.
            response = self._request("GET", url, headers, name)
            digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or media_type
        if not DIGEST.match(digest):
            raise RegistryError(f"{label}: registry answered an unusable digest {digest!r}")
        return ResolvedDigest(digest, media_type)

    def _request(self, method: str, url: str, headers: dict[str, str], name: ImageName) -> requests.Response:
        label = name.canonical
        repository = (name.registry, name.repository)
        try:
            known = self._repository_tokens.get(repository)
            sent = {**headers, "Authorization": f"Bearer {known}"} if known else headers
            response = self.session.request(method, url, headers=sent, timeout=self.timeout)
            if response.status_code == 401:
                token = self._token(response.headers.get("WWW-Authenticate", ""), name)
                self._repository_tokens[repository] = token
                authorized = {**headers, "Authorization": f"Bearer {token}"}
                response = self.session.request(method, url, headers=authorized, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"{label}: cannot reach {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 404:
            raise RegistryError(f"{label}: the registry has no such tag (404 from {url})")
        if response.status_code != 200:
            raise RegistryError(f"{label}: {method} {url} answered HTTP {response.status_code}")
        return response

    def _token(self, challenge: str, name: ImageName) -> str:
        label = name.canonical
        scheme, _, params_text = challenge.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise RegistryError(
                f"{label}: the registry wants {scheme or 'unknown'} credentials; only anonymous pulls are supported"
            )
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{label}: the registry's Bearer challenge names no token realm")
        service = params.get("service", "")
        scope = params.get("scope") or f"repository:{name.repository}:pull"
        key = (realm, service, scope)
        if key not in self._tokens:
            query = {"scope": scope, **({"service": service} if service else {})}
            try:
                response = self.session.get(realm, params=query, timeout=self.timeout)
            except requests.RequestException as exc:
                raise RegistryError(f"{label}: cannot reach token service {realm}: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise RegistryError(f"{label}: token service {realm} answered HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise RegistryError(f"{label}: token service {realm} did not answer JSON") from None
            token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise RegistryError(f"{label}: token service {realm} answered no token")
            self._tokens[key] = token
        return self._tokens[key]


class ResolveStatus(enum.StrEnum):
    #: The recorded digest equals the registry's.
    UNCHANGED = "unchanged"
    #: No digest was recorded; the registry's is now (with --write).
    NEW = "new"
    #: A digest recorded by an earlier resolve differs: the tag was re-pushed.
    MOVED = "moved"
    #: A digest from a cited source differs from the registry's; never overwritten.
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class ResolveResult:
    image: Image
    status: ResolveStatus
    digest: str | None = None
    media_type: str = ""
    error: str = ""


def resolve(
    image_list: ImageList,
    client: RegistryClient,
    variables: Mapping[str, str] | None = None,
    groups: Iterable[str] | None = None,
    today: dt.date | None = None,
) -> tuple[list[ResolveResult], ImageList]:
    """Ask the registries for every image's digest; return the results and the list with them recorded.

    Digests cited from elsewhere (kind's release notes, say) are checked, never replaced.
    """
    values = dict(variables) if variables is not None else default_variables()
    wanted = set(groups) if groups is not None else None
    source = RESOLVED_SOURCE_PREFIX + (today or dt.datetime.now(dt.UTC).date()).isoformat()
    results: list[ResolveResult] = []
    entries: list[ImageEntry] = []
    for entry in image_list.entries:
        if wanted is not None and entry.group not in wanted:
            entries.append(entry)
            continue
        image = entry.render(values)
        try:
            resolved = client.manifest_digest(image.name)
        except RegistryError as exc:
            results.append(ResolveResult(image, ResolveStatus.FAILED, error=str(exc)))
            entries.append(entry)
            continue
        if image.digest == resolved.digest:
            status = ResolveStatus.UNCHANGED
        elif image.digest is None:
            status = ResolveStatus.NEW
        elif (image.source or "").startswith(RESOLVED_SOURCE_PREFIX):
            status = ResolveStatus.MOVED
        else:
            status = ResolveStatus.CONFLICT
        results.append(ResolveResult(image, status, resolved.digest, resolved.media_type))
        if status in (ResolveStatus.NEW, ResolveStatus.MOVED):
            if entry.templated:
                entry = replace(entry, pins={**entry.pins, image.name: Pin(resolved.digest, source)})
            else:
                entry = replace(entry, digest=resolved.digest, source=source)
        entries.append(entry)
    return results, ImageList(tuple(entries))
