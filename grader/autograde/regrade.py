"""``regrade``: one exercise regraded across the class, after its test was fixed.

One command does what a fixed test needs: it releases the fix when ``source/`` holds it and
``release/`` does not yet (or says what to run), regrades every submission that was not yet
graded with the exercise's current test, and tells whose score for that exercise moved, up or
down. Underneath it is :class:`~grader.autograde.run.Autograder` on those submissions: a test's
probes need the student's kernel state, which no record keeps, so the notebook is run again. Its
hidden inputs are the same as before (:meth:`Autograder.seed` does not depend on the tests, and
each test draws its own, :func:`autograd_lab.checks.rng`); the gradebook, the records and the
graded notebooks are written as ``autograde`` writes them (a later ``autograde`` skips these
submissions; manual grades in formgrader are kept).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from grader.autograde.jobs import gradebook_tests, test_digests
from grader.autograde.run import Autograder
from grader.autograde.summary import Summary
from grader.course import Course
from grader.errors import GraderError
from grader.records import load_record, test_key

#: (score of the exercise, score of the whole submission) of a student; None when the gradebook has none.
Scores = tuple[float | None, float | None]


@dataclass
class Regrade:
    """What :func:`regrade` did."""

    assignment: str
    notebook: str
    grade_id: str
    released: bool = False
    current: int = 0  # submissions already graded with the current test: not run again
    first: list[str] = field(default_factory=list)  # students never graded before: graded now, nothing moved
    before: dict[str, Scores] = field(default_factory=dict)  # student → scores, of the submissions regraded
    after: dict[str, Scores] = field(default_factory=dict)
    summary: Summary | None = None

    def moved(self) -> dict[str, tuple[float | None, float | None]]:
        """student → (before, after) of the exercise, for every student whose score for it changed."""
        return {student: (self.before[student][0], scores[0]) for student, scores in self.after.items()
                if student not in self.first and self.before[student][0] != scores[0]}

    def others_moved(self) -> dict[str, tuple[float, float]]:
        """student → (before, after) of the rest of the submission, where it changed too (other tests released
        with this one, a cell that timed out once and not again, manual grades given meanwhile)."""
        moved = {}
        for student, (exercise, total) in self.after.items():
            if student in self.first:
                continue
            old_exercise, old_total = self.before.get(student, (None, None))
            rest = (total or 0.0) - (exercise or 0.0)
            old_rest = (old_total or 0.0) - (old_exercise or 0.0)
            if abs(rest - old_rest) > 1e-9:
                moved[student] = (old_rest, rest)
        return moved


def regrade(course: Course, assignment: str, grade_id: str, *, release_first: bool = True, force: bool = False,
            report: Callable[[str], None] = print, **autograder) -> Regrade:
    """Release ``grade_id``'s fixed test if needed, then regrade it for every submission of ``assignment``.

    ``release_first=False`` raises instead of releasing, saying what to run. ``force`` reruns submissions
    already graded with the current test too. ``autograder``: :class:`Autograder`'s options (workers, limits, …).
    """
    from grader.authoring.release import release, unreleased_test_changes

    course.select([assignment])  # an unknown assignment is an error naming the known ones
    notebook = _notebook_of(course, assignment, grade_id)
    result = Regrade(assignment, notebook, grade_id)
    key = test_key(notebook, grade_id)
    changed = unreleased_test_changes(course, assignment, _released_tests(course, assignment))
    if key in changed:
        if not release_first:
            raise GraderError(f"the test {grade_id} in source/ differs from the released one: run "
                              f"`python -m grader release {assignment}`, then "
                              f"`python -m grader regrade {assignment} {grade_id}` (or regrade without --no-release)")
        others = [name for name in changed if name != key]
        report(f"the test {grade_id} in source/ differs from the released one: releasing {assignment}"
               + (f" (this also releases the other changed tests: {', '.join(others)}; their scores may move too)"
                  if others else ""))
        try:
            release(course, [assignment], report=report)
        except GraderError as error:
            raise GraderError(f"{error}\nNothing was regraded. Once the source passes its checks, run "
                              f"`python -m grader regrade {assignment} {grade_id}` again.") from None
        result.released = True
    digest = test_digests(_released_tests(course, assignment), assignment).get(key)
    if digest is None:
        raise GraderError(f"{grade_id} is no longer a test of {assignment} (removed from source/ and released): "
                          f"`python -m grader autograde {assignment}` regrades the class without it")

    students = []
    for folder in sorted(course.submitted.glob(f"*/{assignment}")):
        record = load_record(course, assignment, folder.parent.name)
        if folder.is_dir() and (force or record is None or record.tests.get(key) != digest):
            students.append(folder.parent.name)
            if record is None:
                result.first.append(folder.parent.name)
        elif folder.is_dir():
            result.current += 1
    if not students and not result.current:
        report(f"no submissions of {assignment} to regrade (import them with `python -m grader collect` first)")
        return result
    if not students:
        report(f"every submission of {assignment} ({result.current}) is already graded with the current "
               f"{grade_id}: nothing to regrade (--force runs them again)")
        return result
    result.before = _scores(course, assignment, notebook, grade_id, students)
    result.summary = Autograder(course, force=True, report=report, **autograder).run([assignment], students)
    busy = {student for student, _, _ in result.summary.busy}
    result.after = {s: scores for s, scores in _scores(course, assignment, notebook, grade_id, students).items()
                    if s not in busy}
    return result


def print_regrade(result: Regrade, report: Callable[[str], None] = print) -> None:
    """What moved: how many students' scores for the exercise went up or down, and whose."""
    if result.summary is None:
        return
    moved = result.moved()
    up = sum(1 for before, after in moved.values() if (after or 0) > (before or 0))
    report(f"{result.grade_id} of {result.assignment}/{result.notebook} regraded with the current test for "
           f"{len(result.after)} submission(s)"
           + (f" ({result.current} already graded with it were not run again; --force runs them too)"
              if result.current else ""))
    first = [student for student in result.first if student in result.after]
    report(f"scores moved for {len(moved)} student(s): {up} up, {len(moved) - up} down; "
           f"{len(result.after) - len(moved) - len(first)} unchanged"
           + (f"; {len(first)} graded for the first time" if first else ""))
    for student, (before, after) in sorted(moved.items()):
        report(f"  {student}: {_points(before)} → {_points(after)}")
    others = result.others_moved()
    if others:
        report(f"other exercises' scores moved too for {len(others)} student(s) (see autograde's summary above):")
        for student, (before, after) in sorted(others.items()):
            report(f"  {student}: {before:g} → {after:g} (the rest of {result.notebook})")
    report("feedback pages are rewritten for the regraded submissions by "
           f"`python -m grader feedback {result.assignment}`")


def _points(score: float | None) -> str:
    return "no score" if score is None else f"{score:g}"


def _released_tests(course: Course, assignment: str):
    """The tests as released (the gradebook's), as autograde reads them."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gradebook:
        try:
            return gradebook_tests(gradebook, {assignment})
        except MissingEntry:
            raise GraderError(f"{assignment} is not in the gradebook: run `python -m grader release {assignment}` "
                              "first") from None


def _notebook_of(course: Course, assignment: str, grade_id: str) -> str:
    """The notebook whose test cell ``grade_id`` is (in source/ or as released); an error naming the tests if none."""
    from grader.autograde.plan import test_sources
    from grader.notebooks import read_notebook

    known: dict[str, str] = {}
    for (_, notebook), cells in _released_tests(course, assignment).items():
        known.update({test: notebook for test, _ in cells})
    for notebook in course.notebooks(assignment):
        path = course.source / assignment / f"{notebook}.ipynb"
        if path.is_file():
            known.update({test: notebook for test, _ in test_sources(read_notebook(path).cells)})
    if grade_id not in known:
        raise GraderError(f"{assignment} has no test cell {grade_id!r}; its tests: {', '.join(sorted(known))}")
    return known[grade_id]


def _scores(course: Course, assignment: str, notebook: str, grade_id: str, students: list[str]) -> dict[str, Scores]:
    """Each student's score for the exercise and for the whole submission, as the gradebook (and formgrader) has
    them."""
    from nbgrader.api import MissingEntry

    scores = {}
    with course.gradebook() as gradebook:
        for student in students:
            try:
                grade = gradebook.find_grade(grade_id, notebook, assignment, student)
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                scores[student] = (None, None)
                continue
            scores[student] = (grade.score, submission.score)
    return scores
