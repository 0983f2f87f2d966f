"""Sanitizing a submission with nbgrader's own preprocessors, before anything of it runs.

Clear outputs, de-duplicate cell ids, restore the kernel spec, restore test and
read-only cells from the gradebook and put back test cells the student deleted
(``OverwriteCells``); and note every test cell that was edited, duplicated,
renamed or deleted, before nbgrader repairs it.
"""
from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import nbformat

from grader.course import Course
from grader.notebooks import is_test_cell
from grader.text import printable


class Sanitizer:
    """nbgrader's sanitizing preprocessors, sharing one gradebook session for the whole run."""

    def __init__(self, course: Course, gradebook) -> None:
        gradebook = _CourseCells(gradebook)  # (the class's cells are read once, not per submission)
        from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells,
                                            OverwriteKernelspec)

        class SharedOverwriteCells(OverwriteCells):
            """nbgrader's OverwriteCells, on the grader's open gradebook instead of a new one per notebook."""

            def preprocess(self, nb, resources):
                # DeduplicateIds leaves `nbgrader: {}` on the copies it strips, on which nbgrader 0.9.6's
                # add_missing_task_cells raises KeyError: they are ordinary cells now, so say so.
                for cell in nb.cells:
                    if cell.get("metadata", {}).get("nbgrader", None) == {}:
                        del cell["metadata"]["nbgrader"]
                self.notebook_id = resources["nbgrader"]["notebook"]
                self.assignment_id = resources["nbgrader"]["assignment"]
                self.gradebook = gradebook
                nb, resources = super(OverwriteCells, self).preprocess(nb, resources)
                nb, resources = self.add_missing_grade_cells(nb, resources)
                return self.add_missing_task_cells(nb, resources)

        from nbgrader.nbgraderformat import MetadataValidator, ValidationError

        class ValidatedOnce(MetadataValidator):
            """nbgrader's validator, each cell's metadata validated once a run: the class's notebooks hold the
            same cells (and nbgrader checks the JSON schema itself again on every cell, 4 ms each)."""

            valid: set[tuple[str, str]] = set()

            def validate_cell(self, cell):
                if "nbgrader" not in cell.metadata:
                    return
                # What nbgrader's checks read of a cell (the source only goes into their error messages).
                key = (cell.cell_type, json.dumps(cell.metadata["nbgrader"], sort_keys=True, default=repr))
                if key not in self.valid:
                    super().validate_cell(cell)
                    self.valid.add(key)

        ValidatedOnce.valid = set()
        validator = ValidatedOnce()

        class SharedCheckCellMetadata(CheckCellMetadata):
            """nbgrader's CheckCellMetadata, with one validator for the run."""

            def preprocess(self, nb, resources):
                try:
                    validator.validate_nb(nb)
                except ValidationError as error:
                    raise ValidationError("Notebook failed to validate; the nbgrader metadata may be corrupted.") \
                        from error
                return nb, resources

        config = course.config
        self.gradebook = gradebook
        self.steps = [ClearOutput(config=config), DeduplicateIds(config=config),
                      OverwriteKernelspec(config=config), SharedOverwriteCells(config=config),
                      SharedCheckCellMetadata(config=config)]
        self.steps[2].preprocess = self._keep_kernelspec(self.steps[2])

    def _keep_kernelspec(self, step):
        """OverwriteKernelspec opens a gradebook per notebook too; do its work on the shared one."""
        def preprocess(nb, resources):
            notebook = self.gradebook.find_notebook(resources["nbgrader"]["notebook"],
                                                    resources["nbgrader"]["assignment"])
            if notebook.kernelspec:
                nb.metadata["kernelspec"] = json.loads(notebook.kernelspec)
            return nb, resources
        return preprocess

    def sanitize(self, nb, resources, released: dict[str, str]) -> tuple[nbformat.NotebookNode, list[str]]:
        flags = _test_cell_changes(nb, self.gradebook, resources, released)
        kept = _released_read_only_cells(nb, released)
        for step in self.steps:
            nb, resources = step.preprocess(nb, resources)
        for cell in nb.cells:  # OverwriteCells wrote the English source's read-only cells back
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in kept:
                cell.source = kept[grade_id]
        return nb, flags


def _released_read_only_cells(nb, released: dict[str, set[str]]) -> dict[str, str]:
    """grade id → source of each read-only cell (not a test) exactly as some edition released it.

    nbgrader's OverwriteCells restores read-only cells from the gradebook, which holds the English source;
    a cell of another edition (its comments in Japanese) that the student left as released keeps its text.
    """
    from nbgrader import utils

    kept = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id and meta.get("locked") and not is_test_cell(cell) and grade_id in released:
            if utils.compute_checksum(cell) in released[grade_id]:
                kept[grade_id] = cell.source
    return kept


class _CourseCells:
    """The gradebook's notebooks and their cells as the sanitizer reads them, each read from the database once.

    Every submission of a notebook is compared with the same cells, which do not change while a run
    grades: read once (plain copies of the fields nbgrader's preprocessors use), not once per submission
    and cell (a query each, about a millisecond).
    """

    def __init__(self, gradebook) -> None:
        self._gradebook = gradebook
        self._notebooks: dict[tuple[str, str], SimpleNamespace] = {}

    def find_notebook(self, notebook: str, assignment: str) -> SimpleNamespace:
        key = (notebook, assignment)
        if key not in self._notebooks:
            found = self._gradebook.find_notebook(notebook, assignment)

            def plain(cells, *fields):
                return [SimpleNamespace(**{name: getattr(cell, name) for name in fields}) for cell in cells]

            self._notebooks[key] = SimpleNamespace(
                kernelspec=found.kernelspec,
                source_cells=plain(found.source_cells, "name", "cell_type", "source", "checksum", "locked"),
                grade_cells=plain(found.grade_cells, "name", "cell_type", "max_score"),
                solution_cells=plain(found.solution_cells, "name"),
                task_cells=plain(found.task_cells, "name", "cell_type", "max_score"))
        return self._notebooks[key]

    def find_source_cell(self, name: str, notebook: str, assignment: str) -> SimpleNamespace:
        return self._find(self.find_notebook(notebook, assignment).source_cells, name, "source cell")

    def find_graded_cell(self, name: str, notebook: str, assignment: str) -> SimpleNamespace:
        found = self.find_notebook(notebook, assignment)
        return self._find(found.grade_cells + found.task_cells, name, "graded cell")

    @staticmethod
    def _find(cells: list[SimpleNamespace], name: str, what: str) -> SimpleNamespace:
        from nbgrader.api import MissingEntry

        for cell in cells:
            if cell.name == name:
                return cell
        raise MissingEntry(f"no such {what}: {name}")


def _test_cell_changes(nb, gradebook, resources, released: dict[str, str]) -> list[str]:
    """What the student did to test cells: edited, duplicated, renamed or deleted (before nbgrader repairs it).

    ``released`` maps grade ids to the checksums of every version of the cells students received: a
    test the instructor fixed after release is not the student's edit.
    """
    from nbgrader import utils

    notebook_id, assignment = resources["nbgrader"]["notebook"], resources["nbgrader"]["assignment"]
    source = gradebook.find_notebook(notebook_id, assignment)
    tests = {cell.name: cell for cell in source.grade_cells if not _is_solution_name(source, cell.name)}
    source_cells = {cell.name: cell for cell in source.source_cells}
    seen: Counter = Counter()
    flags = []
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        seen[grade_id] += 1
        if grade_id in tests:
            if grade_id in released and utils.compute_checksum(cell) not in released[grade_id]:
                flags.append(f"test cell {grade_id} was edited (the original was restored)")
        elif grade_id not in source_cells:
            flags.append(f"a cell carries an unknown grading id {grade_id!r} (a renamed or copied cell; ignored)")
    for grade_id, count in seen.items():
        if count > 1 and grade_id in tests:
            flags.append(f"test cell {grade_id} appears {count} times (only one copy is used)")
    for grade_id in tests:
        if grade_id not in seen:
            flags.append(f"test cell {grade_id} was deleted (it was put back)")
    return flags


#: What a student whose notebook lost its grading metadata should do.
_FRESH_COPY = ("copy your answers into a fresh copy of the released notebook (with Jupyter or Colab, not an editor "
               "that drops cell metadata) and submit that")


def broken_metadata(nb, error: Exception) -> str:
    """Why nbgrader could not read the notebook's grading metadata, and what the student should do."""
    marked = [cell for cell in nb.cells if cell.get("metadata", {}).get("nbgrader")]
    if not marked:
        return ("the notebook has no grading metadata: its cells lost the marks that say which are answers and which "
                f"are tests (made in another editor, or cells pasted into a new notebook); {_FRESH_COPY}")
    if isinstance(error, KeyError):
        return (f"the grading metadata of cell {printable(str(error.args[0]), newlines=False)[:80]!r} is missing or "
                f"changed; {_FRESH_COPY}")
    return f"the notebook's grading metadata is broken ({printable(str(error), newlines=False)[:200]}); {_FRESH_COPY}"


def _is_solution_name(source, name: str) -> bool:
    return any(cell.name == name for cell in source.solution_cells)


def drop_duplicate_tests(nb) -> None:
    """A copy of a test cell is the course's code, not the student's: remove extra copies, keep one."""
    seen = set()
    kept = []
    for cell in nb.cells:
        if is_test_cell(cell):
            grade_id = cell.metadata.nbgrader.grade_id
            if grade_id in seen:
                continue
            seen.add(grade_id)
        kept.append(cell)
    nb.cells = kept
