"""``feedback``: an HTML report per student and notebook, without the hidden tests' code.

nbgrader's own feedback (``GenerateFeedback``) shows every test cell as the
grader ran it, hidden tests included, which hands students the hidden inputs and
checks. Here the same converter runs with nbgrader's ``ClearHiddenTests`` first
(the hidden part of each test cell is replaced by a one-line note; its verdict,
the output, stays), and a first cell that says how the notebook was graded:
its status, score, and what happened if it was stopped. A notebook that could
not be graded (missing, unreadable) gets a short page that says why.
"""
from __future__ import annotations

import html
from pathlib import Path

from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from grader.autograde import SubmissionRecord, record_path, write_atomically
from grader.course import Course
from grader.errors import GraderError

HIDDEN_NOTE = "# (hidden tests: their code is not shown; the result below is theirs too)"

STATUS_TEXT = {
    "graded": "Graded.",
    "timeout": "Graded; a cell ran too long and was stopped, so the tests that depend on it could not pass.",
    "notebook-timeout": "Graded as far as it ran: the notebook took too long and was stopped.",
    "output-limit": "Graded as far as it ran: the notebook printed too much and was stopped.",
    "cpu-limit": "Graded as far as it ran: the notebook used too much computing time and was stopped.",
    "memory-limit": "Graded as far as it ran: the notebook used too much memory and was stopped.",
    "disk-limit": "Graded as far as it ran: the notebook wrote too large a file and was stopped.",
    "died": "Graded as far as it ran: the kernel stopped unexpectedly.",
    "invalid": "Not graded: the file could not be read as a notebook. Your instructor has been told.",
    "missing": "Not submitted.",
    "error": "Not graded yet: the grader had a problem with this notebook. Your instructor has been told.",
}


class ShowHiddenTestsAsNote(NbGraderPreprocessor):
    """nbgrader's ClearHiddenTests, leaving a note where the hidden tests were."""

    def preprocess_cell(self, cell, resources, index):
        from nbgrader.preprocessors import ClearHiddenTests

        clear = ClearHiddenTests(config=self.config)
        before = cell.source
        cell, resources = clear.preprocess_cell(cell, resources, index)
        if cell.source != before:
            cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_NOTE
        return cell, resources


class GradingStatus(NbGraderPreprocessor):
    """A first cell saying how this notebook was graded."""

    course_root = Unicode("").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        student, assignment, notebook = info.get("student"), info.get("assignment"), info.get("notebook")
        record = SubmissionRecord.load(Path(self.course_root) / ".grader" / "results" / assignment / f"{student}.json")
        outcome = record.notebooks.get(notebook) if record else None
        if outcome is not None:
            nb.cells.insert(0, new_markdown_cell(status_markdown(outcome)))
        return nb, resources


def status_markdown(outcome) -> str:
    lines = [f"**Grading:** {STATUS_TEXT.get(outcome.status, outcome.status)}"]
    if outcome.score is not None:
        lines.append(f"**Score:** {outcome.score:g} / {outcome.max_score:g}")
    if outcome.detail and outcome.status != "graded":
        lines.append(f"**What happened:** {outcome.detail}")
    return "\n\n".join(lines)


def feedback(course: Course, assignments: list[str] | None, students: list[str] | None, say=print) -> int:
    """Write feedback/<student>/<assignment>/<notebook>.html; return how many pages were written."""
    from traitlets.config import Config

    written = 0
    for assignment in course.select(assignments):
        config = Config(course.config)
        config.GenerateFeedback.preprocessors = [ShowHiddenTestsAsNote, "nbgrader.preprocessors.GetGrades",
                                                 "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor", GradingStatus]
        config.GradingStatus.course_root = str(course.root)
        config.ClearHiddenTests.enforce_metadata = False
        api = _api(course, config)
        records = sorted((course.root / ".grader" / "results" / assignment).glob("*.json"))
        if not records:
            say(f"{assignment}: nothing graded yet (run `python -m grader autograde {assignment}`)")
            continue
        for path in records:
            student = path.stem
            if students and student not in students:
                continue
            record = SubmissionRecord.load(path)
            if record is None:
                continue
            if any((course.autograded / student / assignment / f"{n}.ipynb").exists() for n in record.notebooks):
                result = api.generate_feedback(assignment, student)
                if not result.get("success"):
                    raise GraderError(f"nbgrader could not make feedback for {student}/{assignment}:\n"
                                      f"{result.get('error') or result.get('log')}")
            for notebook, outcome in record.notebooks.items():
                target = course.feedback / student / assignment / f"{notebook}.html"
                if not (course.autograded / student / assignment / f"{notebook}.ipynb").exists():
                    write_atomically(target, _page(student, assignment, notebook, outcome).encode())
                written += 1
        say(f"{assignment}: feedback written to {course.feedback.relative_to(course.root)}/<student>/{assignment}/")
    return written


def _api(course: Course, config):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course.root)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _page(student: str, assignment: str, notebook: str, outcome) -> str:
    body = html.escape(STATUS_TEXT.get(outcome.status, outcome.status))
    detail = f"<p>{html.escape(outcome.detail)}</p>" if outcome.detail else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(notebook)}</title></head>"
            f"<body><h1>{html.escape(assignment)} / {html.escape(notebook)}</h1>"
            f"<p>Student: {html.escape(student)}</p><p>{body}</p>{detail}</body></html>")


__all__ = ["feedback", "record_path"]
