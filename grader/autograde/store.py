"""Judging and storing, in the grading process only (SQLite allows one writer).

The verdicts are decided here, from what the sandbox observed, by the checks' own
judge; the scores go into nbgrader's gradebook by nbgrader's rule
(``determine_grade``), one transaction per notebook; the graded notebook, made
inert, into ``autograded/``. The submission's record is written last (by the run).
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

import nbformat

from autograd_lab import i18n
from autograd_lab.checks import judge_cell
from grader.autograde.diagnose import defined_names, diagnosis, exercise_names, name_cells
from grader.autograde.jobs import Pending
from grader.authoring.translate import edition_of
from grader.autograde.summary import Phases
from grader.course import Course, write_atomically
from grader.deadlines import penalty
from grader.errors import GraderError
from grader.notebooks import is_test_cell, read_notebook
from grader.outputs.inert import inert_notebook
from grader.records import UNGRADABLE, NotebookOutcome, Status
from grader.sandbox.execute import Result
from grader.sandbox.linux import Limits
from grader.text import printable


class Store:
    """Judges each finished job and stores its grades, graded notebook and outcome."""

    def __init__(self, course: Course, gradebook, limits: Limits, late_penalty,
                 report: Callable[[str], None], phases: Phases | None = None) -> None:
        self.course, self.gradebook, self.limits, self.late_penalty, self.report = (
            course, gradebook, limits, late_penalty, report)
        self.phases = phases if phases is not None else Phases()
        self._markdown: dict[tuple[str, str], frozenset[str]] = {}

    def finished(self, entry: Pending, notebook: str, result: Result) -> NotebookOutcome:
        """:meth:`judge_and_save`; if judging or storing fails, the notebook is recorded as "error" and the run goes on.

        The outcome keeps what the sandbox found (its flags and detail), so a failure of the grader
        never hides a submission's tampering. Should even recording the error fail (a gradebook that
        cannot be written), the notebook is reported as error and graded again on the next run.
        """
        try:
            return self.judge_and_save(entry, notebook, result)
        except Exception as error:
            self.gradebook.db.rollback()
            earlier = entry.notebooks.get(notebook, NotebookOutcome(notebook, ""))
            flags = list(dict.fromkeys(earlier.flags + result.flags))
            detail = "; ".join(filter(None, [failure("judging this notebook", error), result.detail]))
            outcome = NotebookOutcome(notebook, Status.ERROR, detail, flags=flags, seconds=result.seconds)
            try:
                self.not_run(entry, outcome)
            except Exception as again:
                self.gradebook.db.rollback()
                outcome.detail = "; ".join([detail, failure("recording the error", again)])
                self.report(f"warning: {entry.submission.notebook(notebook)}: {outcome.detail}")
            return outcome

    def judge_and_save(self, entry: Pending, notebook: str, result: Result) -> NotebookOutcome:
        from nbgrader.preprocessors import LimitOutput

        with self.phases.timed("judge"):
            nb, outcome = self._judge(entry, notebook, result)
        with self.phases.timed("clean graded notebook"):
            nb, _ = LimitOutput(config=self.course.config).preprocess(nb, {})
            # formgrader renders it in the instructor's Jupyter: nothing in it may run (the course's text is trusted)
            nb = inert_notebook(nb, trusted=self._released_markdown(entry.submission.assignment, notebook))
        with self.phases.timed("gradebook"):
            outcome.score, outcome.max_score = self.save_grades(entry, notebook, nb, outcome)
        with self.phases.timed("write graded notebook"):
            write_atomically(self._graded_path(entry, notebook), nbformat.writes(nb).encode())
        return outcome

    def _judge(self, entry: Pending, notebook: str, result: Result) -> tuple[nbformat.NotebookNode, NotebookOutcome]:
        """The verdicts on the test cells, and the notebook with every cell's outputs as a notebook would show."""
        nb = entry.sanitized.pop(notebook)
        plan = entry.plans.pop(notebook)
        outcome = entry.notebooks[notebook]
        outcome.status, outcome.seconds, outcome.memory_mb = result.status, result.seconds, result.max_rss_mb
        names = exercise_names(nb.cells)  # "cell 42" shifts with the Colab cells; the exercise's name does not
        outcome.detail = name_cells("; ".join(filter(None, [result.detail, outcome.detail])), names)
        outcome.flags = outcome.flags + [name_cells(flag, names) for flag in result.flags]
        defined = None
        language = edition_of(nb)  # the checks' messages in the language of the edition the student used
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell) and result.status != Status.ERROR:
                grade_id = cell.metadata.nbgrader.grade_id
                with i18n.speaking(language):  # the verdict's words, and its labels (rendered by _test_outputs)
                    lines, verdict = judge_cell(plan.checks.get(grade_id, []), result.observations.get(index))
                    outcomes = _test_outputs(lines, verdict)
                outcome.tests[grade_id] = verdict is None
                if verdict is not None:
                    if defined is None:
                        defined = defined_names([c.source for c in nb.cells
                                                 if c.cell_type == "code" and not is_test_cell(c)])
                    outcome.diagnoses[grade_id] = diagnosis(verdict, defined)
            else:
                outcomes = list(result.outputs.get(index, []))
            if index in result.timed_out:
                outcomes = [o for o in outcomes
                            if o.get("output_type") != "error" or o.get("ename") == "AssertionError"]
                outcomes.append(_error("CellTimeoutError", f"This cell ran longer than {self.limits.cell_timeout:g} s "
                                                           "and was stopped. Look for a loop that never ends."))
            if index == result.stopped_at and result.status not in (Status.GRADED, Status.TIMEOUT):
                outcomes.append(_error(result.status, result.detail))
            cell.outputs = [nbformat.from_dict(output) for output in outcomes]
            cell.execution_count = None
        return nb, outcome

    def not_run(self, entry: Pending, outcome: NotebookOutcome) -> None:
        """A missing or unreadable notebook: recorded with its status (missing: 0 points; invalid: no score)."""
        entry.notebooks[outcome.notebook] = outcome
        stale = self._graded_path(entry, outcome.notebook)
        stale.unlink(missing_ok=True)  # an earlier graded copy no longer matches what was submitted
        outcome.score, outcome.max_score = self.save_grades(entry, outcome.notebook, None, outcome)

    def save_grades(self, entry: Pending, notebook: str, nb, outcome: NotebookOutcome):
        """Scores by nbgrader's rule, all of one notebook in one transaction."""
        from nbgrader import utils

        student, assignment = entry.submission
        submitted = self.gradebook.find_submission_notebook(notebook, assignment, student)
        cells = {cell.metadata.nbgrader.grade_id: cell for cell in (nb.cells if nb is not None else [])
                 if "nbgrader" in cell.metadata and "grade_id" in cell.metadata.nbgrader}
        total = maximum = 0.0
        for grade in submitted.grades:
            maximum += grade.max_score
            cell = cells.get(grade.name)
            if outcome.status in UNGRADABLE:
                grade.auto_score, grade.needs_manual_grade = None, True
            elif cell is None:
                grade.auto_score, grade.needs_manual_grade = 0.0, grade.manual_score is not None
            else:
                grade.auto_score, _ = utils.determine_grade(cell)
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            score = grade.manual_score if grade.manual_score is not None else grade.auto_score
            total += score or 0.0
        for comment in submitted.comments:
            cell = cells.get(comment.name)
            if cell is not None:
                unchanged = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
                comment.auto_comment = "No response." if unchanged else None
        submitted.flagged = bool(outcome.flags)
        # nbgrader's own late penalty (AssignLatePenalties' plugin), in the gradebook, so formgrader and
        # nbgrader's export take it off as this grader's export and report do.
        late = (None if outcome.status in UNGRADABLE or self.late_penalty is None else
                penalty(self.late_penalty, student, total, entry.lateness))
        submitted.late_submission_penalty = late
        outcome.penalty = late or 0.0
        self.gradebook.db.commit()
        return (None if outcome.status in UNGRADABLE else total), maximum

    def _graded_path(self, entry: Pending, notebook: str) -> Path:
        student, assignment = entry.submission
        return self.course.autograded / student / assignment / f"{notebook}.ipynb"

    def _released_markdown(self, assignment: str, notebook: str) -> frozenset[str]:
        """The Markdown cells of the student version as released: the course's own text, not a student's."""
        key = (assignment, notebook)
        if key not in self._markdown:
            from grader.authoring.translate import LANGUAGES, edition_release

            cells = []
            for folder in [self.course.release, *(edition_release(self.course.root, lang) for lang in LANGUAGES)]:
                path = folder / assignment / f"{notebook}.ipynb"
                try:
                    cells += read_notebook(path).cells if path.is_file() else []
                except GraderError:
                    pass
            self._markdown[key] = frozenset(c.source for c in cells if c.cell_type == "markdown")
        return self._markdown[key]


def failure(doing: str, error: Exception) -> str:
    """An "error" status's detail: what failed, and where in the grader (for a bug report)."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return printable(f"the grader failed while {doing}: {type(error).__name__}: {error}{where}", newlines=False)[:500]


def _test_outputs(lines: list[str], verdict) -> list[dict]:
    """A test cell's outputs, as they would look had it run in a notebook: pass lines, then the failure."""
    outputs = []
    if lines:
        outputs.append({"output_type": "stream", "name": "stdout", "text": "\n".join(lines) + "\n"})
    if verdict is not None:
        outputs.append(_error("AssertionError", verdict.message))
    return outputs


def _error(name: str, message: str) -> dict:
    return {"output_type": "error", "ename": name, "evalue": message, "traceback": [f"{name}: {message}"]}
