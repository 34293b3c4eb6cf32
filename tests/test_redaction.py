"""No private key or registered secret value survives in any text the harness writes."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.core import evidence, redaction
from conformance.world.external import new_pki


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    redaction.forget_secrets()
    yield
    redaction.forget_secrets()


@pytest.fixture(scope="module")
def key_pem() -> str:
    return new_pki().client.private_key_pem()


def body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_a_pem_private_key_is_removed_without_registration(key_pem: str) -> None:
    text = f"before\n{key_pem}after"
    cleaned = redaction.scrub(text)
    assert "PRIVATE KEY" not in cleaned.replace(redaction.REDACTED_KEY, "")
    assert cleaned.startswith("before\n") and cleaned.endswith("after")
    # Cut off before its end line (a bounded log), it still goes.
    assert body_lines(key_pem)[0] not in redaction.scrub(key_pem[: len(key_pem) // 2])


def test_a_registered_secret_goes_in_every_form_it_may_take(key_pem: str) -> None:
    encoded = base64.b64encode(key_pem.encode()).decode()
    redaction.register_secret(encoded)  # as the scenarios receive it: ${TEST_CLIENT_TLS_KEY}
    samples = [
        f"value: {encoded}",
        f"decoded: {key_pem}",
        f"one line of it: {body_lines(key_pem)[1]}",
        json.dumps({"key": key_pem}),  # newlines escaped
        f"joined: {''.join(body_lines(key_pem))}",
    ]
    for sample in samples:
        cleaned = redaction.scrub(sample)
        assert encoded not in cleaned
        assert not any(line in cleaned for line in body_lines(key_pem)), cleaned


def test_short_values_are_not_registered() -> None:
    redaction.register_secret("abc")
    assert redaction.scrub("abc abc") == "abc abc"


def test_kubeconfig_credentials_are_registered(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "users:\n- name: u\n  user: {token: sekrit-token-0123456789, client-key-data: "
        + base64.b64encode(b"not really a key but long").decode()
        + "}\n"
    )
    redaction.register_kubeconfig_secrets(path)
    assert (
        redaction.scrub("Authorization: Bearer sekrit-token-0123456789")
        == f"Authorization: Bearer {redaction.REDACTED}"
    )
    assert "not really a key" not in redaction.scrub("oops: not really a key but long")


def test_scrub_tree_rewrites_text_files_only(tmp_path: Path, key_pem: str) -> None:
    (tmp_path / "sub").mkdir()
    text_file = tmp_path / "sub" / "result.json"
    text_file.write_text(json.dumps({"message": key_pem}))
    binary = tmp_path / "shot.png"
    binary.write_bytes(b"\x89PNG\x00\x00" + key_pem.encode())
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing to see")
    assert redaction.scrub_tree(tmp_path) == [text_file]
    assert "PRIVATE KEY" not in text_file.read_text().replace(redaction.REDACTED_KEY, "")
    json.loads(text_file.read_text())  # still JSON
    assert binary.read_bytes().endswith(key_pem.encode())


def test_categories_sort_failures_by_their_message(tmp_path: Path) -> None:
    categories = json.loads(evidence.write_categories(tmp_path).read_text())
    assert [c["name"] for c in categories] == ["Infrastructure", "Documentation deviation", "Product defect"]

    def category(status: str, message: str) -> str | None:
        # Allure 2 matches with Java's full match; a Python full match behaves the same for these patterns.
        for rule in categories:
            regex = rule.get("messageRegex")
            if status in rule["matchedStatuses"] and (regex is None or re.fullmatch(regex, message)):
                return str(rule["name"])
        return None

    assert category("broken", "conformance.kube.api.KubeError: list pods: API server not reachable") == "Infrastructure"
    assert category("broken", "TypeError: unsupported operand") is None  # a harness defect is not infrastructure
    deviation = "AssertionError: p1 is conn-refused\ndocumentation deviation of ETP-02: the documentation says"
    assert category("failed", deviation) == "Documentation deviation"
    assert category("failed", "conformance.core.expect.ExpectationFailed: p1 did not converge") == "Product defect"


def test_environment_properties_are_one_line_each(tmp_path: Path) -> None:
    path = evidence.write_environment_properties(tmp_path, {"istio.version": "1.30.3", "odd key": "a\nb"})
    assert path.read_text() == "istio.version=1.30.3\nodd_key=a\\nb\n"
