"""One Markdown table for a matrix of conformance runs: Istio x mode x Kubernetes -> verdict, failed check IDs.

The nightly workflow runs one cell per (Istio release, data-plane mode, node image); each uploads its report
directory as an artifact named ``conformance-<cell name>``. Downloaded side by side under one folder, they
are read here: the verdict and failed IDs come from each cell's ``conformance-report.yaml``, and each cell's
own ``conformance-summary.md`` follows the table. A cell of the matrix with no artifact, or an artifact
with no report, is listed as such: a cell never disappears from the table.

    python -m conformance.report.matrix_summary --matrix "$MATRIX_JSON" --cells cells/ --output summary.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.report.document import REPORT_FILE
from conformance.report.summary import SUMMARY_FILE

#: Artifact name of a cell's report directory: this prefix and the cell's name.
ARTIFACT_PREFIX = "conformance-"

#: A cell's verdict: the worst profile result of its report (failure, partial, success), or why there is none.
MISSING = "missing"
NO_REPORT = "no report"
FAILURE = "failure"
PARTIAL = "partial"
SUCCESS = "success"
NO_CHECKS = "no checks"
#: Worst first: the order in which verdicts are combined and counted.
_WORST_FIRST = (MISSING, NO_REPORT, FAILURE, PARTIAL, NO_CHECKS, SUCCESS)
_PROFILE_RESULTS = {FAILURE, PARTIAL, SUCCESS}


class MatrixError(ValueError):
    """The matrix JSON is not what ``python -m conformance.core.versions matrix`` prints."""


@dataclass(frozen=True)
class Cell:
    name: str
    istio: str
    mode: str
    kubernetes: str


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    verdict: str
    failed: tuple[str, ...] = ()
    #: Why the verdict is what it is when there is no usable report.
    detail: str = ""
    summary_markdown: str | None = None


def parse_matrix(text: str) -> list[Cell]:
    """The cells of ``{"include": [{"name", "istio", "mode", "kubernetes", ...}, ...]}``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MatrixError(f"the matrix is not JSON: {exc}") from None
    include = data.get("include") if isinstance(data, dict) else None
    if not isinstance(include, list) or not include:
        raise MatrixError('the matrix must be {"include": [cell, ...]} with at least one cell')
    cells: list[Cell] = []
    for index, entry in enumerate(include):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) for key in ("name", "istio", "mode", "kubernetes")
        ):
            raise MatrixError(f"matrix cell {index} lacks one of name, istio, mode, kubernetes")
        cells.append(Cell(entry["name"], entry["istio"], entry["mode"], entry["kubernetes"]))
    return cells


def read_cell(cell: Cell, cells_dir: Path) -> CellResult:
    """The verdict of one cell from its downloaded artifact folder ``<cells_dir>/conformance-<name>/``."""
    folder = cells_dir / f"{ARTIFACT_PREFIX}{cell.name}"
    if not folder.is_dir():
        return CellResult(cell, MISSING, detail="no artifact: the job did not finish or upload its reports")
    summary = folder / SUMMARY_FILE
    summary_markdown = summary.read_text(encoding="utf-8") if summary.is_file() else None
    report_path = folder / REPORT_FILE
    if not report_path.is_file():
        return CellResult(
            cell, NO_REPORT, detail=f"the artifact has no {REPORT_FILE}", summary_markdown=summary_markdown
        )
    try:
        report = yaml.safe_load(report_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return CellResult(cell, NO_REPORT, detail=f"unreadable {REPORT_FILE}: {exc}", summary_markdown=summary_markdown)
    verdict, failed = verdict_of(report)
    return CellResult(cell, verdict, failed, summary_markdown=summary_markdown)


def verdict_of(report: object) -> tuple[str, tuple[str, ...]]:
    """The worst profile result of a conformance report and every failed check ID in it."""
    profiles = report.get("profiles") if isinstance(report, dict) else None
    if not isinstance(profiles, list) or not profiles:
        return NO_CHECKS, ()
    results: list[str] = []
    failed: set[str] = set()
    for profile in profiles:
        if not isinstance(profile, dict):
            continue
        summary = profile.get("summary")
        result = summary.get("result") if isinstance(summary, dict) else None
        results.append(result if result in _PROFILE_RESULTS else FAILURE)
        failed.update(str(check) for check in profile.get("failedChecks") or [])
    return _worst(results) if results else NO_CHECKS, tuple(sorted(failed))


def _worst(verdicts: Iterable[str]) -> str:
    return min(verdicts, key=_WORST_FIRST.index)


def render(results: Sequence[CellResult], title: str = "Conformance matrix") -> str:
    """The Markdown: the table (Istio x mode x Kubernetes -> verdict, failed IDs), a tally, then each cell's
    own summary."""
    lines = [
        f"## {title}",
        "",
        "| Istio | mode | Kubernetes | verdict | failed checks |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        failed = ", ".join(f"`{check}`" for check in result.failed) or "—"
        verdict = f"{result.verdict} ({result.detail})" if result.detail else result.verdict
        lines.append(
            f"| {result.cell.istio} | {result.cell.mode} | {result.cell.kubernetes} | {_cell_text(verdict)} "
            f"| {failed} |"
        )
    tally = Counter(result.verdict for result in results)
    counted = ", ".join(f"{tally[v]} {v}" for v in _WORST_FIRST if tally[v])
    lines += ["", f"{len(results)} cells: {counted}."]
    for result in results:
        if result.summary_markdown is None:
            continue
        lines += [
            "",
            f"<details><summary>{result.cell.name}: {result.verdict}</summary>",
            "",
            result.summary_markdown.rstrip(),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summarize(cells: Sequence[Cell], cells_dir: Path) -> list[CellResult]:
    return [read_cell(cell, cells_dir) for cell in cells]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.report.matrix_summary", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--matrix", required=True, help="the matrix JSON (`python -m conformance.core.versions matrix` prints it)"
    )
    parser.add_argument(
        "--cells", type=Path, required=True, help="folder holding one conformance-<cell name>/ folder per cell"
    )
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: standard output)")
    parser.add_argument("--title", default="Conformance matrix", help="heading of the table")
    args = parser.parse_args(argv)
    try:
        cells = parse_matrix(args.matrix)
    except MatrixError as exc:
        print(f"error: --matrix: {exc}", file=sys.stderr)
        return 2
    markdown = render(summarize(cells, args.cells), args.title)
    if args.output is None:
        sys.stdout.write(markdown)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
