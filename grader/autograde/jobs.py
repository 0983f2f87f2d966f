"""From a submitted notebook to a sandbox job: find it, sanitise it, plan its tests, list its cells.

Everything here runs in the grading process, before the student's code runs anywhere.
A notebook that cannot become a job (missing, unreadable, broken metadata) becomes a
:class:`~grader.records.NotebookOutcome` instead, with a reason, and is stored as such.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.authoring.release import released_checksums
from grader.autograde.diagnose import exercise_names, name_cells
from grader.autograde.plan import NotebookPlan, plan_notebook
from grader.autograde.preload import imported_modules
from grader.autograde.sanitize import Sanitizer, broken_metadata, drop_duplicate_tests
from grader.autograde.summary import Phases
from grader.autograde.tamper import scan
from grader.course import Course
from grader.deadlines import Lateness
from grader.errors import GraderError
from grader.intake.collect import NBGRADER_FILES, WRONG_TYPE, find_submitted
from grader.notebooks import is_demo_cell, is_test_cell, read_notebook
from grader.records import NotebookOutcome, Status, Submission, test_key
from grader.sandbox.execute import Job
from grader.sandbox.linux import Limits
from grader.text import printable

#: (assignment, notebook) → (grade id, source) of its test cells, in order, as the gradebook holds them.
TestSources = dict[tuple[str, str], list[tuple[str, str]]]
#: (assignment, notebook, seed) → a plan made already (when the run checked its tests), used by that job.
Planned = dict[tuple[str, str, str], NotebookPlan]


@dataclass
class Pending:
    """A submission being graded: its notebooks' outcomes so far, and what judging them needs."""

    submission: Submission
    fingerprint: str
    notebooks: dict[str, NotebookOutcome] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    sanitized: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    plans: dict[str, NotebookPlan] = field(default_factory=dict)
    lateness: Lateness = field(default_factory=Lateness)
    tests: dict[str, str] = field(default_factory=dict)
    seed: str = ""  # Autograder.seed(): the hidden inputs are drawn from it


class JobMaker:
    """Makes the sandbox jobs of one run (caching what every submission of a notebook shares)."""

    def __init__(self, course: Course, limits: Limits, sanitizer: Sanitizer, tests: TestSources,
                 preload: list[str], phases: Phases | None = None) -> None:
        self.course, self.limits, self.sanitizer, self.tests, self.preload = course, limits, sanitizer, tests, preload
        self.planned: Planned = {}  # plans made already (when the run checked its tests), each for one job
        self.checked: set[tuple[str, str]] = set()  # (assignment, notebook) whose tests the run checked
        self.shared: dict[tuple[str, str], dict] = {}  # per notebook: checks that are the same for every seed
        self.phases = phases if phases is not None else Phases()
        self._released: dict[tuple[str, str], dict[str, set[str]]] = {}
        self._files: dict[str, dict[str, bytes]] = {}

    def job(self, entry: Pending, notebook: str, folder: Path) -> Job | NotebookOutcome:
        student, assignment = entry.submission
        # Matched as collect matches ("Copy of …", "… (1)"): submissions also arrive through
        # nbgrader's exchange or by hand, without collect.
        path = find_submitted(folder, notebook, self.course.notebooks(assignment))
        if path is None:
            others = sorted(printable(p.name, newlines=False) for p in folder.glob("*.ipynb"))
            uploads = sorted(printable(p.name, newlines=False) for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() != ".ipynb" and p.name not in NBGRADER_FILES)
            if uploads and not others:
                return NotebookOutcome(notebook, Status.MISSING, f"{WRONG_TYPE} ({', '.join(uploads)})")
            hint = f" (the folder has: {', '.join(others)})" if others else ""
            return NotebookOutcome(notebook, Status.MISSING, f"no {notebook}.ipynb was submitted{hint}")
        renamed = f"graded from {printable(path.name, newlines=False)!r}" if path.name != f"{notebook}.ipynb" else ""
        try:
            with self.phases.timed("read notebook"):
                nb = read_notebook(path)
        except GraderError as error:
            return NotebookOutcome(notebook, Status.INVALID,
                                   printable(str(error).replace(str(self.course.root) + os.sep, "")))
        resources = {"nbgrader": {"notebook": notebook, "assignment": assignment, "student": student,
                                  "db_url": self.course.db_url}}
        try:
            with self.phases.timed("sanitize"):
                nb, flags = self.sanitizer.sanitize(nb, resources, self._released_checksums(assignment, notebook))
        except Exception as error:
            return NotebookOutcome(notebook, Status.INVALID, broken_metadata(nb, error))
        nb = nbformat.from_dict(nb)  # cells nbgrader put back are plain dicts inside
        drop_duplicate_tests(nb)
        entry.sanitized[notebook] = nb
        try:
            # The submission's own seed (which holds the course secret) seeds the hidden inputs: each
            # submission, and each resubmission, is tested on inputs of its own.
            with self.phases.timed("plan"):
                plan = self.planned.pop((assignment, notebook, entry.seed), None) or self.plan(assignment, notebook,
                                                                                              entry.seed)
        except Exception as error:
            return NotebookOutcome(notebook, Status.ERROR, f"the hidden tests could not be prepared: {error}")
        entry.plans[notebook] = plan
        with self.phases.timed("job and tamper scan"):
            return self._job(entry, notebook, nb, plan, flags, renamed)

    def plan(self, assignment: str, notebook: str, seed: str) -> NotebookPlan:
        """The notebook's tests planned for this seed (what does not depend on it is computed once per run)."""
        return plan_notebook(self.tests[(assignment, notebook)], salt=seed,
                             shared=self.shared.setdefault((assignment, notebook), {}))

    def _job(self, entry: Pending, notebook: str, nb, plan: NotebookPlan, flags: list[str], renamed: str) -> Job:
        cells = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                cells.append({"index": index, "kind": "skip"})
            elif is_test_cell(cell):
                probes = [check.spec for check in plan.checks.get(cell.metadata.nbgrader.grade_id, [])]
                cells.append({"index": index, "kind": "test", "probes": probes})
            elif is_demo_cell(cell) and not self.limits.run_demo_cells:
                cells.append({"index": index, "kind": "skip"})
            else:
                cells.append({"index": index, "kind": "code", "source": cell.source})
                if not cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
                    flags += [name_cells(f"cell {index}, line {line}: {finding}", exercise_names(nb.cells))
                              for line, finding in scan(cell.source)]
        entry.notebooks[notebook] = NotebookOutcome(notebook, Status.PENDING, renamed, flags=flags)
        return Job(key=entry.submission.notebook(notebook), cells=cells, limits=self.limits,
                   hidden=[str(self.course.root)], files=self._assignment_files(entry.submission.assignment),
                   preload=self.preload)

    def _released_checksums(self, assignment: str, notebook: str) -> dict[str, set[str]]:
        """Checksums of the graded cells in every version released to students (to tell an edited test cell)."""
        key = (assignment, notebook)
        if key not in self._released:
            self._released[key] = released_checksums(self.course, assignment, notebook)
        return self._released[key]

    def _assignment_files(self, assignment: str) -> dict[str, bytes]:
        """The assignment's other files (data a notebook reads), as released to students."""
        if assignment not in self._files:
            folder = self.course.release / assignment
            files = {}
            for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if path.is_file() and path.suffix != ".ipynb" and ".ipynb_checkpoints" not in path.parts:
                    files[str(path.relative_to(folder))] = path.read_bytes()
            self._files[assignment] = files
        return self._files[assignment]


def gradebook_tests(gradebook, assignments: set[str]) -> TestSources:
    """The trusted test code of every notebook, from the gradebook (as nbgrader restores it)."""
    tests = {}
    for assignment in assignments:
        for notebook in gradebook.find_assignment(assignment).notebooks:
            solutions = {cell.name for cell in notebook.solution_cells}
            grade_ids = {cell.name for cell in notebook.grade_cells if cell.name not in solutions}
            order = {cell.name: index for index, cell in enumerate(notebook.source_cells)}  # the gradebook keeps none
            cells = sorted((c for c in notebook.source_cells if c.name in grade_ids and c.cell_type == "code"),
                           key=lambda c: order.get(c.name, 0))
            tests[(assignment, notebook.name)] = [(cell.name, cell.source) for cell in cells]
    return tests


def test_digests(tests: TestSources, assignment: str) -> dict[str, str]:
    """"notebook/grade id" → a digest of that test's code, to tell which tests changed since a submission was graded.

    (The keys are the stored records' format: ``SubmissionRecord.tests``.)
    """
    return {test_key(notebook, grade_id): hashlib.sha256(source.encode()).hexdigest()[:16]
            for (name, notebook), cells in tests.items() if name == assignment for grade_id, source in cells}


def course_imports(gradebook, assignments: set[str]) -> list[str]:
    """Modules the course's own cells import: the zygote imports them once, up front."""
    modules: set[str] = set()
    for assignment in assignments:
        for notebook in gradebook.find_assignment(assignment).notebooks:
            for cell in notebook.source_cells:
                if cell.cell_type == "code":
                    modules |= imported_modules(cell.source)
    return sorted(modules)
