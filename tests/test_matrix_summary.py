"""The nightly summary: every cell of the matrix in one table, verdicts read from real conformance reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.core import versions
from conformance.report import matrix_summary
from conformance.report.check_records import CheckRecord, CheckResult
from conformance.report.document import build_report, write_report
from conformance.report.matrix_summary import Cell, parse_matrix, read_cell, render, summarize
from conformance.settings.run_settings import Settings

MATRIX = json.dumps({"include": [cell.as_dict() for cell in versions.VERSIONS.matrix()]})


def record(check_id: str, result: CheckResult, profile: str = "EGRESS-SIDECAR") -> CheckRecord:
    # Every result but a pass carries its reason, as the collector writes it.
    reason = None if result is CheckResult.PASSED else f"{result.value} in this cell"
    return CheckRecord(check_id, f"scenarios/test_x.py::test_{check_id}", profile, "sidecar", result, reason)


def write_cell(cells_dir: Path, cell: Cell, records: list[CheckRecord], summary: str | None = None) -> Path:
    folder = cells_dir / f"conformance-{cell.name}"
    write_report(build_report(records, Settings()), folder)
    if summary is not None:
        (folder / "conformance-summary.md").write_text(summary, encoding="utf-8")
    return folder


@pytest.fixture
def cells() -> list[Cell]:
    return parse_matrix(MATRIX)


def test_matrix_json_of_the_versions_command_is_understood(cells: list[Cell]) -> None:
    assert [(c.istio, c.mode, c.kubernetes) for c in cells] == [
        (c.istio, c.mode, c.kubernetes) for c in versions.VERSIONS.matrix()
    ]
    assert cells[0].name == "istio-1.29.6-sidecar-k8s-1.31"


@pytest.mark.parametrize(
    "text", ["", "[]", '{"include": []}', '{"include": [{"name": "x", "istio": "1.30.3", "mode": "sidecar"}]}']
)
def test_a_malformed_matrix_is_refused(text: str) -> None:
    with pytest.raises(matrix_summary.MatrixError):
        parse_matrix(text)


def test_verdict_is_the_worst_profile_and_failed_ids_are_collected(tmp_path: Path, cells: list[Cell]) -> None:
    write_cell(
        tmp_path,
        cells[0],
        [
            record("EGW-01", CheckResult.PASSED),
            record("EGW-03", CheckResult.FAILED),
            record("XW-02", CheckResult.SKIPPED, profile="EXTERNAL-WORLD"),
            record("NSD-06", CheckResult.FAILED),
        ],
    )
    result = read_cell(cells[0], tmp_path)
    assert (result.verdict, result.failed) == ("failure", ("EGW-03", "NSD-06"))


@pytest.mark.parametrize(
    "results, verdict",
    [
        ([CheckResult.PASSED, CheckResult.PASSED], "success"),
        ([CheckResult.PASSED, CheckResult.SKIPPED], "partial"),
        ([CheckResult.SKIPPED, CheckResult.FAILED], "failure"),
        ([], "no checks"),
    ],
)
def test_verdicts_from_real_reports(
    tmp_path: Path, cells: list[Cell], results: list[CheckResult], verdict: str
) -> None:
    write_cell(tmp_path, cells[1], [record(f"EGW-0{i}", r) for i, r in enumerate(results, start=1)])
    assert read_cell(cells[1], tmp_path).verdict == verdict


def test_missing_artifact_and_missing_report_stay_in_the_table(tmp_path: Path, cells: list[Cell]) -> None:
    write_cell(tmp_path, cells[0], [record("EGW-01", CheckResult.PASSED)], summary="### EGRESS-SIDECAR: success\n")
    without_report = tmp_path / f"conformance-{cells[1].name}"
    without_report.mkdir()
    (without_report / "junit.xml").write_text("<testsuites/>", encoding="utf-8")

    markdown = render(summarize(cells, tmp_path), "Nightly")

    rows = [line for line in markdown.splitlines() if line.startswith("| 1.")]
    assert len(rows) == len(cells) == 12
    assert rows[0] == "| 1.29.6 | sidecar | 1.31 | success | — |"
    assert rows[1].startswith("| 1.29.6 | sidecar | 1.35 | no report (the artifact has no conformance-report.yaml)")
    assert rows[2].startswith("| 1.29.6 | ambient | 1.31 | missing (no artifact")
    assert "12 cells: 10 missing, 1 no report, 1 success." in markdown
    assert f"<details><summary>{cells[0].name}: success</summary>\n\n### EGRESS-SIDECAR: success\n" in markdown


def test_an_unreadable_report_is_said_so(tmp_path: Path, cells: list[Cell]) -> None:
    folder = tmp_path / f"conformance-{cells[0].name}"
    folder.mkdir()
    (folder / "conformance-report.yaml").write_text("profiles: [\n", encoding="utf-8")
    result = read_cell(cells[0], tmp_path)
    assert result.verdict == "no report" and "unreadable" in result.detail


def test_failed_ids_are_listed_in_the_row(tmp_path: Path, cells: list[Cell]) -> None:
    write_cell(tmp_path, cells[3], [record("MTLS-04b", CheckResult.FAILED), record("EGW-01", CheckResult.PASSED)])
    (row,) = [line for line in render(summarize(cells[3:4], tmp_path)).splitlines() if line.startswith("| 1.")]
    assert row == "| 1.29.6 | ambient | 1.35 | failure | `MTLS-04b` |"


def test_command_line_writes_the_markdown(tmp_path: Path, cells: list[Cell]) -> None:
    write_cell(tmp_path / "cells", cells[0], [record("EGW-01", CheckResult.PASSED)])
    output = tmp_path / "out" / "summary.md"
    argv = ["--matrix", MATRIX, "--cells", str(tmp_path / "cells"), "--output", str(output), "--title", "Nightly"]
    assert matrix_summary.main(argv) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith("## Nightly\n\n| Istio | mode | Kubernetes | verdict | failed checks |\n")


def test_command_line_names_a_bad_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert matrix_summary.main(["--matrix", "{}", "--cells", str(tmp_path)]) == 2
    assert "--matrix" in capsys.readouterr().err
