"""Evidence of a check for the Allure results: labels, documented steps, attachments.

One place talks to Allure, so the rest of the library stays typed and every attachment passes the same
redaction rule: nothing that looks like a private key is ever attached.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import allure

_dynamic: Any = allure.dynamic
_attach: Any = allure.attach
_step: Any = allure.step
_types: Any = allure.attachment_type

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
REDACTED_KEY = "<private key redacted>"


def scrub(text: str) -> str:
    """The text without PEM private keys (a last line of defence; secrets are redacted at the source)."""
    return _PRIVATE_KEY.sub(REDACTED_KEY, text)


def label_check(*, title: str, epic: str, feature: str, story: str, tags: tuple[str, ...]) -> None:
    _dynamic.title(title)
    _dynamic.epic(epic)
    _dynamic.feature(feature)
    _dynamic.story(story)
    for tag in tags:
        _dynamic.tag(tag)


@contextmanager
def step(title: str) -> Iterator[None]:
    with _step(title):
        yield


def attach_text(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.TEXT)


def attach_yaml(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.YAML)


def attach_json(text: str, name: str) -> None:
    _attach(scrub(text), name=name, attachment_type=_types.JSON)
