"""No private key or secret value in any file the harness writes: one scrub rule for every report file.

Two layers: PEM private keys are removed wherever they appear, and every secret value the run knows
(the test client's key as the scenarios receive it, the kubeconfig's credentials) is registered here and
replaced wherever it appears — raw, base64-encoded, or as a line of its PEM body. Reports, summaries,
evidence files and Allure attachments are scrubbed before they are written; at the end of the run every
file under the report directory is scrubbed once more, which covers what other plugins wrote (JUnit,
Allure's own result files holding failure messages).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import yaml

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
#: A PEM private key header whose end was cut off (a truncated log or message).
_PRIVATE_KEY_HEAD = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:(?:\s|\\n)*[A-Za-z0-9+/=]{16,})*")
REDACTED_KEY = "<private key redacted>"
REDACTED = "<secret redacted>"
#: Shorter fragments are too likely to occur by chance (and carry too little of a key to matter).
MIN_SECRET_LENGTH = 12
#: Files scrubbed by the final pass: everything text-like the harness or its plugins write.
_TEXT_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".txt", ".xml", ".md", ".properties", ".log", ".html", ""})

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret value (and its encoded forms) so that no report file ever shows it."""
    forms = _forms(value)
    with _lock:
        _secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        register_secret(value)


def register_kubeconfig_secrets(path: Path) -> None:
    """The credentials of a kubeconfig's users (client keys, tokens, passwords)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return
    users = data.get("users") if isinstance(data, dict) else None
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in ("client-key-data", "token", "password"):
            value = user.get(key)
            if isinstance(value, str) and value:
                register_secret(value)


def forget_secrets() -> None:
    """Drop every registered secret (a new run in the same process, or a test)."""
    with _lock:
        _secrets.clear()


def scrub(text: str) -> str:
    """The text without PEM private keys and without any registered secret value."""
    text = _PRIVATE_KEY.sub(REDACTED_KEY, text)
    text = _PRIVATE_KEY_HEAD.sub(REDACTED_KEY, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_bytes(data: bytes) -> bytes:
    return scrub(data.decode("utf-8", "replace")).encode("utf-8")


def scrub_tree(directory: Path) -> list[Path]:
    """Scrub every text file under ``directory`` in place; the files that changed."""
    changed: list[Path] = []
    if not directory.is_dir():
        return changed
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in _TEXT_SUFFIXES:
            continue
        try:
            original = path.read_bytes()
        except OSError:
            continue
        if b"\x00" in original[:4096]:
            continue
        cleaned = scrub_bytes(original)
        if cleaned != original:
            path.write_bytes(cleaned)
            changed.append(path)
    return changed


def _forms(value: str) -> set[str]:
    """The value, what it decodes to when it is base64, and the base64 lines of a PEM body."""
    forms = {value.strip()}
    decoded = _b64decode(value)
    if decoded is not None:
        forms.add(decoded.strip())
    for text in list(forms):
        if "-----BEGIN" in text:
            body = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")]
            forms.update(body)
            forms.add("".join(body))
            # The same PEM as it appears inside JSON text: newlines escaped.
            forms.add(text.replace("\n", "\\n"))
        else:
            forms.add(base64.b64encode(text.encode()).decode())
    return {f for f in forms if f}


def _b64decode(value: str) -> str | None:
    compact = "".join(value.split())
    if len(compact) < MIN_SECRET_LENGTH or len(compact) % 4:
        return None
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
