"""Reading notebooks, and running them as a student would: in a real Jupyter kernel.

This is the *plain* way to run a notebook (nbclient, one kernel, every cell, test
cells included, exactly like stock ``nbgrader autograde``). ``release`` uses it to
check the course as students will meet it; the tests use it to run every notebook
top to bottom.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import nbformat

from grader.errors import GraderError


def is_test_cell(cell: dict) -> bool:
    """An autograded test cell: a graded, non-solution code cell (nbgrader's "Autograder tests").

    nbgrader's ``utils.is_grade``/``is_solution`` read ``cell.metadata`` as an attribute; this also takes
    the plain dicts of a notebook read as JSON (the release lint, the tests).
    """
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_demo_cell(cell: dict) -> bool:
    """A read-only cell tagged ``demo``: it only draws or times something, and grading skips it."""
    meta = cell.get("metadata", {})
    return "demo" in meta.get("tags", []) and bool(meta.get("nbgrader", {}).get("locked"))


def is_solution_cell(cell: dict) -> bool:
    """A cell the student writes (nbgrader's "Autograded answer"); dicts too, as :func:`is_test_cell`."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


#: One region of a solution cell that the student version replaces by a stub: (its indentation, its code).
SOLUTION_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?", re.S | re.M)
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def instructor_answers(source: nbformat.NotebookNode, *, region: Callable[[str, str], str] | None = None
                       ) -> dict[str, str]:
    """grade id → each solution cell of the instructor's notebook ``source`` as a student who answered as the
    instructor did hands it in: the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` kept, the markers
    removed. With ``region(indentation, code)``, each such region is written by it instead (a wrong answer, a loop)."""
    answers = {}
    for cell in source.cells:
        if is_solution_cell(cell):
            text = cell_source(cell)
            if region is None:
                text = "\n".join(line for line in text.split("\n") if line.strip() not in SOLUTION_MARKERS)
            else:
                text = SOLUTION_REGION.sub(lambda match: region(match.group(1), match.group(2)), text)
            answers[cell["metadata"]["nbgrader"]["grade_id"]] = text
    return answers


def fill_solutions(student: nbformat.NotebookNode, answers: Mapping[str, str]) -> nbformat.NotebookNode:
    """A copy of the student version ``student`` whose solution cells of ``answers`` hold those answers (grade id →
    the cell's code), the other cells as released: ``fill_solutions(release, instructor_answers(source))`` is the
    student version answered with the instructor's solutions."""
    filled = nbformat.from_dict(student)
    for cell in filled.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if is_solution_cell(cell) and grade_id in answers:
            cell.source = answers[grade_id]
    return filled


def cell_source(cell: dict) -> str:
    """A cell's source as one string (a notebook file may hold it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook; a broken file gives an error that says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark (some Windows editors) is fine
    except UnicodeDecodeError as error:
        raise GraderError(f"{path} is not a text file (UTF-8): {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraderError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                          f"{error.msg})") from error
    except RecursionError as error:
        raise GraderError(f"{path} is JSON nested too deeply to be a notebook") from error
    if not isinstance(data, dict) or "cells" not in data:
        raise GraderError(f"{path} is JSON but not a Jupyter notebook (no 'cells')")
    _check_shape(path, data)
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:
        raise GraderError(f"{path} is not a notebook nbformat can read: {error}") from error
    for cell in notebook.cells:  # Windows line ends are the same code: never an "edited" test cell
        if "\r" in cell.source:
            cell.source = cell.source.replace("\r\n", "\n").replace("\r", "\n")
    return notebook


MAX_DEPTH = 64  # JSON nesting; a real notebook's (widget state included) is far less


def _check_shape(path: Path, data: dict) -> None:
    """What the grader relies on, before nbformat reads it: bounded nesting, and cells that are cells."""
    stack = [(data, 1)]
    while stack:  # iterative: a hostile notebook must not exhaust the recursion limit here either
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraderError(f"{path} is JSON nested deeper than {MAX_DEPTH} levels: not a notebook")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    if not isinstance(data["cells"], list):
        raise GraderError(f"{path}: 'cells' is not a list")
    for number, cell in enumerate(data["cells"], 1):
        where = f"{path}: cell {number}"
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise GraderError(f"{where} is not a code, markdown or raw cell")
        source = cell.get("source", "")
        if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(line, str) for line in source)):
            raise GraderError(f"{where}: its source is a {type(source).__name__}, not text")
        if not isinstance(cell.get("metadata", {}), dict):
            raise GraderError(f"{where}: its metadata is not a mapping")
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            raise GraderError(f"{where}: its outputs are not a list")


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


def run_plain(path: Path, *, timeout: int = 120, folder: Path | None = None) -> PlainRun:
    """Execute a notebook top to bottom in a fresh kernel (errors recorded, not raised).

    It runs in a scratch copy of ``folder`` (the notebook's own by default; a translated edition runs
    with its source assignment's files): the other files of the assignment, not the notebooks, so that
    what a notebook writes (notebook 05 saves the student's engine, ``my_engine.py``) never lands in
    the course directory, nor changes the next run.
    """
    import shutil
    import time

    from nbclient import NotebookClient

    import tempfile

    from traitlets.config import Config

    notebook = read_notebook(path)
    with tempfile.TemporaryDirectory(prefix="kernel-") as scratch:
        scratch_folder = Path(scratch) / "notebook"
        shutil.copytree(Path(folder or Path(path).parent), scratch_folder, symlinks=True,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        # Local sockets, not TCP: nothing on the network can reach the kernel (and ipykernel has no
        # "running over TCP without encryption" warning to print).
        config = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(scratch) / "kernel")}})
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", allow_errors=True, config=config,
            resources={"metadata": {"path": str(scratch_folder)}},
        )
        start = time.perf_counter()
        client.execute()
    return PlainRun(notebook, time.perf_counter() - start)
