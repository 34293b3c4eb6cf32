"""The documented curl command line, read the way curl reads it, as the harness's typed request."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from conformance.checks.errors import ScenarioError
from conformance.probe.curl import CurlRequest

_CURL_FLAGS_WITH_VALUE = {
    "-H": "header",
    "--header": "header",
    "-X": "method",
    "--request": "method",
    "-d": "data",
    "--data": "data",
    "--data-raw": "data",
    "--cacert": "cacert",
    "--cert": "cert",
    "--key": "key",
    "--resolve": "resolve",
    # Output shaping of the documented command; the harness reads the whole response itself.
    "-o": "ignored",
    "--output": "ignored",
    "-w": "ignored",
    "--write-out": "ignored",
}
_CURL_SHORT_SWITCHES = set("sSiI")
_PLACEHOLDER = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)\}?")


def parse_curl(args: Sequence[str], variables: Mapping[str, str]) -> CurlRequest:
    """The documented curl command (without the leading ``curl``) as a CurlRequest.

    ``$NAME`` / ``${NAME}`` in arguments take the run's variables (``$INGRESS_GATEWAY_IP``). Flags that
    would change what is being verified (``-k``, ``-L``, ...) are refused rather than ignored.
    """
    method: str | None = None
    head = False
    headers: list[tuple[str, str]] = []
    data: str | None = None
    files: dict[str, str] = {}
    resolve: list[str] = []
    url: str | None = None
    words = [_substitute(a, variables) for a in args]
    index = 0
    while index < len(words):
        word = words[index]
        if word in _CURL_FLAGS_WITH_VALUE:
            if index + 1 >= len(words):
                raise ScenarioError(f"curl {word} needs a value")
            value = words[index + 1]
            kind = _CURL_FLAGS_WITH_VALUE[word]
            if kind == "header":
                name, sep, rest = value.partition(":")
                if not sep:
                    raise ScenarioError(f"curl header {value!r} lacks ':'")
                headers.append((name.strip().lower(), rest.strip()))
            elif kind == "method":
                method = value.upper()
            elif kind == "data":
                data = value
            elif kind in ("cacert", "cert", "key"):
                files[kind] = value
            elif kind == "resolve":
                resolve.append(value)
            index += 2
            continue
        if (
            word.startswith("-")
            and not word.startswith("--")
            and len(word) > 1
            and set(word[1:]) <= _CURL_SHORT_SWITCHES
        ):
            head = head or "I" in word
            index += 1
            continue
        if word.startswith("-"):
            raise ScenarioError(f"curl option {word!r} is not supported by the harness's probes")
        if url is not None:
            raise ScenarioError(f"curl command has two URLs: {url!r} and {word!r}")
        url = word
        index += 1
    if url is None:
        raise ScenarioError("curl command has no URL")
    if method is None:
        method = "HEAD" if head else ("POST" if data is not None else "GET")
    try:
        return CurlRequest(
            url=url,
            method=method,
            headers=tuple(headers),
            data=data,
            cacert=files.get("cacert"),
            cert=files.get("cert"),
            key=files.get("key"),
            resolve=tuple(resolve),
        )
    except ValueError as exc:
        raise ScenarioError(f"curl {' '.join(args)}: {exc}") from None


def _substitute(word: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ScenarioError(f"no value for ${name} in curl argument {word!r}")
        return variables[name]

    return _PLACEHOLDER.sub(value, word)
