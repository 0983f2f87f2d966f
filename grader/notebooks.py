"""Reading notebooks, and running them as a student would: in a real Jupyter kernel.

This is the *plain* way to run a notebook (nbclient, one kernel, every cell, test
cells included, exactly like stock ``nbgrader autograde``). ``release`` uses it to
check the course as students will meet it; the tests use it to run every notebook
top to bottom.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.errors import GraderError
from grader.plan import is_test_cell


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook; a broken file gives an error that says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise GraderError(f"{path} is not a text file (UTF-8): {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraderError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from error
    if not isinstance(data, dict) or "cells" not in data:
        raise GraderError(f"{path} is JSON but not a Jupyter notebook (no 'cells')")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:
        raise GraderError(f"{path} is not a notebook nbformat can read: {error}") from error


def test_passed(cell: dict) -> bool:
    """nbgrader's rule for a test cell: full marks unless it shows an error or writes to stderr."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return False
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return False
    return True


@dataclass
class PlainRun:
    notebook: nbformat.NotebookNode
    seconds: float

    def test_results(self) -> dict[str, bool]:
        """Passed or not, by grade id, for every test cell."""
        return {
            cell.metadata.nbgrader.grade_id: test_passed(cell)
            for cell in self.notebook.cells
            if is_test_cell(cell)
        }

    def errors_outside_tests(self) -> list[tuple[int, str]]:
        """(cell index, error) for every cell that is not a test cell and raised."""
        found = []
        for index, cell in enumerate(self.notebook.cells):
            if cell.cell_type != "code" or is_test_cell(cell):
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    found.append((index, f"{output.get('ename')}: {output.get('evalue')}"))
        return found


def run_plain(path: Path, *, timeout: int = 120) -> PlainRun:
    """Execute a notebook top to bottom in a fresh kernel (errors recorded, not raised)."""
    import time

    from nbclient import NotebookClient

    notebook = read_notebook(path)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return PlainRun(notebook, time.perf_counter() - start)
