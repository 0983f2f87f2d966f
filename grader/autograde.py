"""``autograde``: grade a whole class, fast and safely, into nbgrader's gradebook.

For each submitted notebook (``submitted/<student>/<assignment>/<notebook>.ipynb``):

1. *sanitize*, in this process, with nbgrader's own preprocessors: clear outputs,
   de-duplicate cell ids, restore the kernel spec, restore test and read-only
   cells from the gradebook and put back test cells the student deleted
   (``OverwriteCells``); note every test cell that was edited, duplicated,
   renamed or deleted, and read the student's code for signs of tampering;
2. *grade*, in parallel (``--workers``, or a Dask cluster with ``--scheduler``):
   run it in a sandbox forked from a pre-warmed zygote, with the tests judged
   outside it (``grader/execute.py``);
3. *store*, in this process only (SQLite allows one writer): the scores, by
   nbgrader's own rule (``determine_grade``), in one transaction per notebook;
   the graded notebook in ``autograded/``; and a record with the status and
   flags in ``.grader/results/``, written last and atomically.

A submission is never modified in place. Killed at any moment (even kill -9)
and run again, it finishes the class: what was fully recorded is skipped, what
was not is graded again (grading is idempotent). A submission that cannot be
graded is recorded as such, with a reason, never as a silent 0.
"""
from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import secrets
import stat
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import nbformat

from autograd_lab.checks import judge_cell
from grader.collect import NBGRADER_FILES, WRONG_TYPE, Intake, find_submitted
from grader.course import Course, write_atomically
from grader.deadlines import CourseDeadlines, Lateness, lateness, penalty
from grader.diagnose import blank, defined_names, diagnosis, exercise_names, name_cells
from grader.errors import GraderError
from grader.execute import Job, Result
from grader.inert import inert_notebook
from grader.locks import Locks
from grader.notebooks import read_notebook
from grader.plan import NotebookPlan, is_demo_cell, is_test_cell, plan_notebook
from grader.release import released_checksums, unreleased_test_changes
from grader.sandbox import Limits, Sandbox
from grader.tamper import scan
from grader.text import printable, python_source

GRADER_VERSION = "1"
#: Statuses with which a notebook's tests were judged (its score stands, with a note).
JUDGED = {"graded", "timeout", "notebook-timeout", "output-limit", "cpu-limit", "memory-limit", "disk-limit", "died"}
#: Statuses with which nothing could be judged: no score is recorded; the instructor must look.
UNGRADABLE = {"invalid", "error"}
DEFAULT_PRELOAD = ["torch", "numpy", "matplotlib.pyplot", "autograd_lab", "autograd_lab.checks", "IPython"]


@dataclass
class NotebookOutcome:
    notebook: str
    status: str
    detail: str = ""
    flags: list[str] = field(default_factory=list)
    tests: dict[str, bool] = field(default_factory=dict)
    score: float | None = None
    max_score: float = 0.0
    seconds: float = 0.0
    penalty: float = 0.0  # nbgrader's late_submission_penalty, already taken off in the gradebook's total
    diagnoses: dict[str, str] = field(default_factory=dict)  # failed test → grader.diagnose.diagnosis()


@dataclass
class SubmissionRecord:
    student: str
    assignment: str
    fingerprint: str
    notebooks: dict[str, NotebookOutcome]
    graded_at: float
    late: str = ""  # grader.deadlines.Lateness.text(): "late by 2 h", or "" when on time
    tests: dict[str, str] = field(default_factory=dict)  # "notebook/grade id" → digest of the test graded with

    @staticmethod
    def load(path: Path) -> "SubmissionRecord | None":
        try:
            data = json.loads(path.read_text())
            data["notebooks"] = {k: NotebookOutcome(**v) for k, v in data["notebooks"].items()}
            return SubmissionRecord(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def record_path(course: Course, assignment: str, student: str) -> Path:
    return course.root / ".grader" / "results" / assignment / f"{student}.json"


def course_secret(course: Course) -> str:
    """A random secret of this course, mixed into the hidden tests' random inputs (kept out of git).

    Only the grader's user may read it (0600): with it, anyone could compute every hidden input.
    """
    path = course.root / ".grader" / "secret"
    if not path.exists():
        write_atomically(path, secrets.token_hex(16).encode(), private=True)
    os.chmod(path, 0o600)  # a secret made by an older version was readable by all
    return path.read_text().strip()


# --- sanitizing, with nbgrader's preprocessors --------------------------------------------------

class _Sanitizer:
    """nbgrader's sanitizing preprocessors, sharing one gradebook session for the whole run."""

    def __init__(self, course: Course, gradebook) -> None:
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

        config = course.config
        self.gradebook = gradebook
        self.steps = [ClearOutput(config=config), DeduplicateIds(config=config),
                      OverwriteKernelspec(config=config), SharedOverwriteCells(config=config),
                      CheckCellMetadata(config=config)]
        self.steps[2].preprocess = self._keep_kernelspec(self.steps[2])

    def _keep_kernelspec(self, step):
        """OverwriteKernelspec opens a gradebook per notebook too; do its work on the shared one."""
        def preprocess(nb, resources):
            notebook = self.gradebook.find_notebook(resources["nbgrader"]["notebook"], resources["nbgrader"]["assignment"])
            if notebook.kernelspec:
                nb.metadata["kernelspec"] = json.loads(notebook.kernelspec)
            return nb, resources
        return preprocess

    def sanitize(self, nb, resources, released: dict[str, str]) -> tuple[nbformat.NotebookNode, list[str]]:
        flags = _test_cell_changes(nb, self.gradebook, resources, released)
        for step in self.steps:
            nb, resources = step.preprocess(nb, resources)
        return nb, flags


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


def _broken_metadata(nb, error: Exception) -> str:
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


def _drop_duplicate_tests(nb) -> None:
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


# --- the run ------------------------------------------------------------------------------------

@dataclass
class _Pending:
    student: str
    assignment: str
    fingerprint: str
    notebooks: dict[str, NotebookOutcome] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    sanitized: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    plans: dict[str, NotebookPlan] = field(default_factory=dict)
    lateness: Lateness = field(default_factory=Lateness)
    tests: dict[str, str] = field(default_factory=dict)
    seed: str = ""  # Autograder.seed(): the hidden inputs are drawn from it


@dataclass
class Summary:
    outcomes: list[tuple[str, str, NotebookOutcome]] = field(default_factory=list)  # (student, assignment, outcome)
    late: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, assignment) → "late by 2 h"
    tests_changed: dict[str, set[str]] = field(default_factory=dict)  # "assignment/notebook" → grade ids
    regraded_for_tests: int = 0
    skipped: int = 0
    busy: list[tuple[str, str, str]] = field(default_factory=list)  # (student, assignment, who grades it)
    seconds: float = 0.0
    workers: int = 1
    isolation: str = ""
    cgroups: str = ""  # "v1"/"v2", or "none: why" (from the workers' zygotes)

    def counts(self) -> Counter:
        return Counter(outcome.status for _, _, outcome in self.outcomes)


class Autograder:
    def __init__(self, course: Course, *, workers: int | None = None, scheduler: str | None = None,
                 force: bool = False, limits: Limits | None = None, progress: bool = True,
                 report: Callable[[str], None] = print) -> None:
        self.course = course
        self.workers = workers or os.cpu_count() or 1
        self.scheduler = scheduler
        self.force = force
        self.limits = limits or Sandbox(config=course.config).limits()
        self.progress = progress
        self.report = report
        self.salt = course_secret(course)
        self.deadlines = CourseDeadlines(course.config)
        self._late_penalty = None
        self._bar = None
        self._released: dict[tuple[str, str], dict[str, set[str]]] = {}
        self._markdown: dict[tuple[str, str], frozenset[str]] = {}

    def run(self, assignments: list[str] | None = None, students: list[str] | None = None) -> Summary:
        started = time.perf_counter()
        summary = Summary(workers=self.workers)
        selected = self.course.select(assignments)
        if not assignments:  # every assignment that has submissions (one never released has none)
            selected = [a for a in selected if any(self.course.submitted.glob(f"*/{a}"))]
        locks = Locks(self.course.root)
        try:
            return self._run_locked(selected, students, summary, locks, started)
        finally:
            locks.release_all()

    def _run_locked(self, selected: list[str], students: list[str] | None, summary: "Summary", locks: Locks,
                    started: float) -> "Summary":
        with self.course.gradebook() as gradebook:
            submissions = self._lock(self._find(selected, students, gradebook), locks, summary)
            self._remove_half_written_files(submissions)
            if not submissions:
                if not summary.busy:
                    self.report("no submissions to grade (import them with `python -m grader collect` first)")
                return summary
            assignments = {a for _, a in submissions}
            # Shown from the start: the workers take a while to start (they import torch).
            self._bar = self._progress(sum(len(self.course.notebooks(a)) for _, a in submissions))
            for assignment in sorted(assignments):
                self.deadlines.sync_assignment(gradebook, assignment, self.report)
            self._late_penalty = self.deadlines.penalty_plugin()
            preload = DEFAULT_PRELOAD + self._imports(gradebook, assignments)
            # The workers start (and import torch) while this process plans the tests.
            with self._executor(preload) as executor:
                import torch

                # This process computes small references for every submission: one thread is
                # fastest for them, and leaves the other cores to the workers.
                torch.set_num_threads(1)
                sanitizer = _Sanitizer(self.course, gradebook)
                tests = self._test_sources(gradebook, assignments)
                for assignment in sorted(assignments):
                    changed = unreleased_test_changes(self.course, assignment, tests)
                    if changed:
                        self.report(f"warning: tests of {assignment} in source/ differ from the released ones "
                                    f"({', '.join(changed)}): grading with the released ones. To grade with the "
                                    f"fixed ones, run `python -m grader release {assignment}`, then autograde again")
                self._check_plans(tests)
                pending: dict[str, _Pending] = {}
                jobs = self._prepare(submissions, gradebook, sanitizer, tests, preload, pending, summary)
                for result in executor.run(jobs):
                    student, assignment, notebook = result.key.split("/")
                    entry = pending[f"{student}/{assignment}"]
                    outcome = self._store_safely(gradebook, entry, notebook, result)
                    summary.isolation = result.isolation or summary.isolation
                    summary.cgroups = result.cgroups or summary.cgroups
                    self._finish_notebook(entry, notebook, outcome, summary)
            unfinished = [key for key, entry in pending.items() if entry.waiting]
            if unfinished:
                raise GraderError(f"internal error: {', '.join(unfinished)} not finished; run autograde again")
            if self._bar is not None:
                self._bar.close()
        summary.seconds = time.perf_counter() - started
        return summary

    def _executor(self, preload: list[str]):
        """Where this run's notebooks are graded (a context manager): new workers per run, here; the course
        server (grader/server/) keeps one set of pre-warmed workers for all its runs."""
        from grader.executors import make_executor

        return make_executor(self.workers, self.scheduler, preload)

    def _lock(self, submissions: list[tuple[str, str]], locks: Locks, summary: "Summary") -> list[tuple[str, str]]:
        """The submissions this run may grade: those no other run holds (the others are named, with who)."""
        mine = []
        for student, assignment in submissions:
            holder = locks.take(assignment, student)
            if holder is None:
                mine.append((student, assignment))
            else:
                summary.busy.append((student, assignment, holder))
        return mine

    def _remove_half_written_files(self, submissions: list[tuple[str, str]]) -> None:
        """A grader killed while writing leaves a temporary file behind (never a half-written record).

        Only of the submissions this run holds: another run's are its own, and still being written.
        """
        for student, assignment in submissions:
            record = record_path(self.course, assignment, student)
            graded = self.course.autograded / student / assignment
            for path in [*record.parent.glob(f".{glob.escape(record.name)}.*.tmp"),
                         *(graded.glob(".*.tmp") if graded.is_dir() else [])]:
                path.unlink(missing_ok=True)

    # -- finding and preparing -------------------------------------------------------------------

    def _find(self, assignments: list[str], students: list[str] | None, gradebook) -> list[tuple[str, str]]:
        from nbgrader.api import MissingEntry

        found = []
        for assignment in assignments:
            try:
                gradebook.find_assignment(assignment)
            except MissingEntry:
                raise GraderError(f"{assignment} is not in the gradebook: run `python -m grader release {assignment}` first")
            for folder in sorted(self.course.submitted.glob(f"*/{assignment}")):
                student = folder.parent.name
                if folder.is_dir() and (not students or student in students):
                    found.append((student, assignment))
        if students:
            missing = set(students) - {s for s, _ in found}
            for student in sorted(missing):
                self.report(f"warning: no submission from {student} for {', '.join(assignments)}")
        return found

    def _test_sources(self, gradebook, assignments: set[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """The trusted test code of every notebook, from the gradebook (as nbgrader restores it)."""
        tests = {}
        for assignment in assignments:
            for notebook in gradebook.find_assignment(assignment).notebooks:
                solutions = {cell.name for cell in notebook.solution_cells}
                grade_ids = {cell.name for cell in notebook.grade_cells if cell.name not in solutions}
                cells = sorted((c for c in notebook.source_cells if c.name in grade_ids and c.cell_type == "code"),
                               key=lambda c: _order(notebook, c.name))
                tests[(assignment, notebook.name)] = [(cell.name, cell.source) for cell in cells]
        return tests

    def _check_plans(self, tests: dict) -> None:
        """Plan every notebook once here, so a broken test stops the run before anything is graded."""
        for (assignment, notebook), sources in tests.items():
            try:
                plan_notebook(sources, salt=self.salt)
            except Exception as error:
                raise GraderError(f"the tests of {assignment}/{notebook} cannot be run: {error}\n"
                                  f"Fix the source and run `python -m grader release {assignment}`.") from error

    def _imports(self, gradebook, assignments: set[str]) -> list[str]:
        """Modules the course's own cells import: the zygote imports them once, up front."""
        modules: set[str] = set()
        for assignment in assignments:
            for notebook in gradebook.find_assignment(assignment).notebooks:
                for cell in notebook.source_cells:
                    if cell.cell_type == "code":
                        modules |= _imported_modules(cell.source)
        return sorted(modules)

    def seed(self, student: str, assignment: str) -> str:
        """What a submission's hidden inputs are drawn from: the course secret and the submission's own files.

        Not its tests or deadline: a test fixed after release, or a new extension, regrades the
        submission on the same inputs for the other exercises.
        """
        digest = hashlib.sha256(f"{GRADER_VERSION}\0{self.salt}\0{json.dumps(asdict(self.limits), sort_keys=True)}".encode())
        folder = self.course.submitted / student / assignment
        for path in sorted(folder.rglob("*")):
            if stat.S_ISREG(path.lstat().st_mode):  # a link is never followed (nor graded)
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def fingerprint(self, student: str, assignment: str, tests: dict, seed: str | None = None) -> str:
        """What a grade depends on (regraded when it changes): the seed, the tests, the deadline, the intake."""
        digest = hashlib.sha256((seed or self.seed(student, assignment)).encode())
        for notebook in self.course.notebooks(assignment):
            digest.update(json.dumps(tests.get((assignment, notebook), [])).encode())
        digest.update(self.deadlines.describe(assignment, student).encode())  # a new deadline regrades
        intake = Intake.load(self.course, assignment, student)
        digest.update(json.dumps(asdict(intake) if intake else None, sort_keys=True).encode())
        return digest.hexdigest()

    def _prepare(self, submissions, gradebook, sanitizer, tests, preload, pending, summary) -> Iterator[Job]:
        for student, assignment in submissions:
            seed = self.seed(student, assignment)
            fingerprint = self.fingerprint(student, assignment, tests, seed)
            record = SubmissionRecord.load(record_path(self.course, assignment, student))
            autograded = self.course.autograded / student / assignment
            if (not self.force and record is not None and record.fingerprint == fingerprint
                    and all((autograded / f"{n}.ipynb").exists() or record.notebooks.get(n, NotebookOutcome(n, "")).status in ("missing", "invalid")
                            for n in self.course.notebooks(assignment))):
                summary.skipped += 1
                if record.late:
                    summary.late[(student, assignment)] = record.late
                for outcome in record.notebooks.values():
                    summary.outcomes.append((student, assignment, outcome))
                if self._bar is not None:
                    self._bar.update(len(self.course.notebooks(assignment)))
                continue
            digests = _test_digests(tests, assignment)
            if record is not None and record.tests and record.tests != digests:
                summary.regraded_for_tests += 1
                for key in {*digests, *record.tests}:
                    if digests.get(key) != record.tests.get(key):
                        notebook, _, grade_id = key.partition("/")
                        summary.tests_changed.setdefault(f"{assignment}/{notebook}", set()).add(grade_id)
            folder = self.course.submitted / student / assignment
            gradebook.update_or_create_student(student)
            entry = _Pending(student, assignment, fingerprint, tests=digests, seed=seed)
            entry.lateness = self._lateness(gradebook, student, assignment, folder)
            pending[f"{student}/{assignment}"] = entry
            notebooks = self.course.notebooks(assignment)
            entry.waiting = set(notebooks)
            for notebook in notebooks:
                try:
                    job = self._prepare_notebook(entry, notebook, folder, gradebook, sanitizer, tests, preload)
                except Exception as error:  # the grader's own failure: this notebook only
                    gradebook.db.rollback()
                    job = NotebookOutcome(notebook, "error", _failure("preparing this notebook", error))
                if isinstance(job, NotebookOutcome):
                    self._store_without_running(gradebook, entry, job)
                    self._finish_notebook(entry, notebook, job, summary)
                else:
                    yield job

    def _lateness(self, gradebook, student: str, assignment: str, folder: Path) -> Lateness:
        """The submission's time and extension into the gradebook, and how late nbgrader finds it.

        The time is collect's (what the download says, or nothing); without collect (nbgrader's
        exchange, or copied by hand) it is the folder's ``timestamp.txt``, as nbgrader reads it.
        """
        from nbgrader import utils

        intake = Intake.load(self.course, assignment, student)
        if intake is not None:
            when = intake.time()
            timestamp = utils.parse_utc(when) if when else None
        else:
            stamp = folder / "timestamp.txt"
            text = stamp.read_text().strip() if stamp.is_file() and not stamp.is_symlink() else ""
            try:
                timestamp = utils.parse_utc(text) if text else None
            except (ValueError, OverflowError):
                self.report(f"warning: {student}/{assignment}/timestamp.txt is not a time ({printable(text[:40])!r}); "
                            "the submission is taken as on time")
                timestamp = None
        submission = self.deadlines.sync_submission(gradebook, assignment, student, timestamp)
        return lateness(submission, intake.marked_late_by if intake else "")

    def _prepare_notebook(self, entry: _Pending, notebook: str, folder: Path, gradebook, sanitizer, tests, preload):
        # Matched as collect matches ("Copy of …", "… (1)"): submissions also arrive through
        # nbgrader's exchange or by hand, without collect.
        path = find_submitted(folder, notebook, self.course.notebooks(entry.assignment))
        if path is None:
            others = sorted(printable(p.name, newlines=False) for p in folder.glob("*.ipynb"))
            uploads = sorted(printable(p.name, newlines=False) for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() != ".ipynb" and p.name not in NBGRADER_FILES)
            if uploads and not others:
                return NotebookOutcome(notebook, "missing", f"{WRONG_TYPE} ({', '.join(uploads)})")
            hint = f" (the folder has: {', '.join(others)})" if others else ""
            return NotebookOutcome(notebook, "missing", f"no {notebook}.ipynb was submitted{hint}")
        renamed = f"graded from {printable(path.name, newlines=False)!r}" if path.name != f"{notebook}.ipynb" else ""
        try:
            nb = read_notebook(path)
        except GraderError as error:
            return NotebookOutcome(notebook, "invalid", printable(str(error).replace(str(self.course.root) + os.sep, "")))
        resources = {"nbgrader": {"notebook": notebook, "assignment": entry.assignment, "student": entry.student,
                                  "db_url": self.course.db_url}}
        try:
            nb, flags = sanitizer.sanitize(nb, resources, self._released_checksums(entry.assignment, notebook))
        except Exception as error:
            return NotebookOutcome(notebook, "invalid", _broken_metadata(nb, error))
        nb = nbformat.from_dict(nb)  # cells nbgrader put back are plain dicts inside
        _drop_duplicate_tests(nb)
        entry.sanitized[notebook] = nb
        try:
            # The submission's own seed (which holds the course secret) seeds the hidden inputs: each
            # submission, and each resubmission, is tested on inputs of its own.
            plan = plan_notebook(tests[(entry.assignment, notebook)], salt=entry.seed)
        except Exception as error:
            return NotebookOutcome(notebook, "error", f"the hidden tests could not be prepared: {error}")
        entry.plans[notebook] = plan
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
        entry.notebooks[notebook] = NotebookOutcome(notebook, "pending", renamed, flags=flags)
        return Job(
            key=f"{entry.student}/{entry.assignment}/{notebook}", cells=cells, limits=self.limits,
            hidden=[str(self.course.root)], files=_assignment_files(self.course, entry.assignment), preload=preload,
        )

    def _released_checksums(self, assignment: str, notebook: str) -> dict[str, set[str]]:
        """Checksums of the graded cells in every version released to students (to tell an edited test cell)."""
        key = (assignment, notebook)
        if key not in self._released:
            self._released[key] = released_checksums(self.course, assignment, notebook)
        return self._released[key]

    def _released_markdown(self, assignment: str, notebook: str) -> frozenset[str]:
        """The Markdown cells of the student version as released: the course's own text, not a student's."""
        key = (assignment, notebook)
        if key not in self._markdown:
            path = self.course.release / assignment / f"{notebook}.ipynb"
            try:
                cells = read_notebook(path).cells if path.is_file() else []
            except GraderError:
                cells = []
            self._markdown[key] = frozenset(c.source for c in cells if c.cell_type == "markdown")
        return self._markdown[key]

    # -- running ---------------------------------------------------------------------------------

    def _progress(self, total: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="notebook", desc="autograde", dynamic_ncols=True)

    # -- storing (this process only) ------------------------------------------------------------

    def _store_safely(self, gradebook, entry: _Pending, notebook: str, result: Result) -> NotebookOutcome:
        """:meth:`_store`; if judging or storing fails, the notebook is recorded as "error" and the run goes on.

        The outcome keeps what the sandbox found (its flags and detail), so a failure of the grader
        never hides a submission's tampering. Should even recording the error fail (a gradebook that
        cannot be written), the notebook is reported as error and graded again on the next run.
        """
        try:
            return self._store(gradebook, entry, notebook, result)
        except Exception as error:
            gradebook.db.rollback()
            earlier = entry.notebooks.get(notebook, NotebookOutcome(notebook, ""))
            flags = list(dict.fromkeys(earlier.flags + result.flags))
            detail = "; ".join(filter(None, [_failure("judging this notebook", error), result.detail]))
            outcome = NotebookOutcome(notebook, "error", detail, flags=flags, seconds=result.seconds)
            try:
                self._store_without_running(gradebook, entry, outcome)
            except Exception as again:
                gradebook.db.rollback()
                outcome.detail = "; ".join([detail, _failure("recording the error", again)])
                self.report(f"warning: {entry.student}/{entry.assignment}/{notebook}: {outcome.detail}")
            return outcome

    def _store(self, gradebook, entry: _Pending, notebook: str, result: Result) -> NotebookOutcome:
        from nbgrader.preprocessors import LimitOutput

        nb = entry.sanitized.pop(notebook)
        plan = entry.plans.pop(notebook)
        outcome = entry.notebooks[notebook]
        outcome.status, outcome.seconds = result.status, result.seconds
        names = exercise_names(nb.cells)  # "cell 42" shifts with the Colab cells; the exercise's name does not
        outcome.detail = name_cells("; ".join(filter(None, [result.detail, outcome.detail])), names)
        outcome.flags = outcome.flags + [name_cells(flag, names) for flag in result.flags]
        defined = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell) and result.status != "error":
                grade_id = cell.metadata.nbgrader.grade_id
                lines, failure = judge_cell(plan.checks.get(grade_id, []), result.observations.get(index))
                outcomes = _test_outputs(lines, failure)
                outcome.tests[grade_id] = failure is None
                if failure is not None:
                    if defined is None:
                        defined = defined_names([c.source for c in nb.cells
                                                 if c.cell_type == "code" and not is_test_cell(c)])
                    outcome.diagnoses[grade_id] = diagnosis(failure, defined)
            else:
                outcomes = list(result.outputs.get(index, []))
            if index in result.timed_out:
                outcomes = [o for o in outcomes if o.get("output_type") != "error" or o.get("ename") == "AssertionError"]
                outcomes.append(_error("CellTimeoutError", f"This cell ran longer than {self.limits.cell_timeout:g} s "
                                                           "and was stopped. Look for a loop that never ends."))
            if index == result.stopped_at and result.status not in ("graded", "timeout"):
                outcomes.append(_error(result.status, result.detail))
            cell.outputs = [nbformat.from_dict(output) for output in outcomes]
            cell.execution_count = None
        nb, _ = LimitOutput(config=self.course.config).preprocess(nb, {})
        # formgrader renders it in the instructor's Jupyter: nothing in it may run (the course's own text is trusted)
        nb = inert_notebook(nb, trusted=self._released_markdown(entry.assignment, notebook))
        outcome.score, outcome.max_score = self._save_grades(gradebook, entry, notebook, nb, outcome)
        path = self.course.autograded / entry.student / entry.assignment / f"{notebook}.ipynb"
        write_atomically(path, nbformat.writes(nb).encode())
        return outcome

    def _store_without_running(self, gradebook, entry: _Pending, outcome: NotebookOutcome) -> None:
        """A missing or unreadable notebook: recorded with its status (missing: 0 points; invalid: no score)."""
        entry.notebooks[outcome.notebook] = outcome
        stale = self.course.autograded / entry.student / entry.assignment / f"{outcome.notebook}.ipynb"
        stale.unlink(missing_ok=True)  # an earlier graded copy no longer matches what was submitted
        outcome.score, outcome.max_score = self._save_grades(gradebook, entry, outcome.notebook, None, outcome)

    def _save_grades(self, gradebook, entry: _Pending, notebook: str, nb, outcome: NotebookOutcome):
        """Scores by nbgrader's rule, all of one notebook in one transaction."""
        from nbgrader import utils

        submitted = gradebook.find_submission_notebook(notebook, entry.assignment, entry.student)
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
        late = (None if outcome.status in UNGRADABLE or self._late_penalty is None else
                penalty(self._late_penalty, entry.student, total, entry.lateness))
        submitted.late_submission_penalty = late
        outcome.penalty = late or 0.0
        gradebook.db.commit()
        return (None if outcome.status in UNGRADABLE else total), maximum

    def _finish_notebook(self, entry: _Pending, notebook: str, outcome: NotebookOutcome, summary: Summary) -> None:
        entry.waiting.discard(notebook)
        summary.outcomes.append((entry.student, entry.assignment, outcome))
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(_counts_text(summary.counts()), refresh=False)
        if not entry.waiting:
            if entry.lateness.text():  # late, or marked late by the LMS and not penalised
                summary.late[(entry.student, entry.assignment)] = entry.lateness.text()
            record = SubmissionRecord(entry.student, entry.assignment, entry.fingerprint, entry.notebooks, time.time(),
                                      late=entry.lateness.text(), tests=entry.tests)
            data = asdict(record)
            write_atomically(record_path(self.course, entry.assignment, entry.student),
                             json.dumps(data, indent=1).encode())


def _test_digests(tests: dict, assignment: str) -> dict[str, str]:
    """"notebook/grade id" → a digest of that test's code, to tell which tests changed since a submission was graded."""
    return {f"{notebook}/{grade_id}": hashlib.sha256(source.encode()).hexdigest()[:16]
            for (name, notebook), cells in tests.items() if name == assignment for grade_id, source in cells}


def _failure(doing: str, error: Exception) -> str:
    """An "error" status's detail: what failed, and where in the grader (for a bug report)."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return printable(f"the grader failed while {doing}: {type(error).__name__}: {error}{where}", newlines=False)[:500]


def _test_outputs(lines: list[str], failure) -> list[dict]:
    """A test cell's outputs, as they would look had it run in a notebook: pass lines, then the failure."""
    outputs = []
    if lines:
        outputs.append({"output_type": "stream", "name": "stdout", "text": "\n".join(lines) + "\n"})
    if failure is not None:
        outputs.append(_error("AssertionError", failure.message))
    return outputs


def _error(name: str, message: str) -> dict:
    return {"output_type": "error", "ename": name, "evalue": message, "traceback": [f"{name}: {message}"]}


def _order(notebook, name: str) -> int:
    """Position of a cell in the source notebook (the gradebook does not keep cell order)."""
    order = getattr(notebook, "_grader_order", None)
    if order is None:
        order = {cell.name: index for index, cell in enumerate(notebook.source_cells)}
        notebook._grader_order = order
    return order.get(name, 0)


def _imported_modules(source: str) -> set[str]:
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _assignment_files(course: Course, assignment: str) -> dict[str, bytes]:
    """The assignment's other files (data a notebook reads), as released to students."""
    folder = course.release / assignment
    files = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and path.suffix != ".ipynb" and ".ipynb_checkpoints" not in path.parts:
            files[str(path.relative_to(folder))] = path.read_bytes()
    return files


def _counts_text(counts: Counter) -> str:
    return " ".join(f"{status} {count}" for status, count in sorted(counts.items()))


def print_summary(summary: Summary, report: Callable[[str], None] = print) -> None:
    graded = [o for _, _, o in summary.outcomes if o.status not in ("missing",)]
    ran = [o for o in graded if o.seconds]
    report("")
    report(f"{len(summary.outcomes)} notebook(s) of {len({(s, a) for s, a, _ in summary.outcomes})} submission(s) "
           f"in {summary.seconds:.1f} s" + (f" ({1000 * summary.seconds / len(ran):.0f} ms per notebook run, "
                                          f"{summary.workers} worker(s))" if ran else "")
           + (f"; {summary.skipped} submission(s) unchanged since last graded (use --force to regrade)"
              if summary.skipped else ""))
    report("status: " + (_counts_text(summary.counts()) or "nothing"))
    if summary.tests_changed:
        report("tests changed since last graded: " + ", ".join(
            f"{key} ({', '.join(sorted(ids))})" for key, ids in sorted(summary.tests_changed.items()))
            + f"; {summary.regraded_for_tests} submission(s) regraded")
    for student, assignment, holder in summary.busy:
        report(f"  {printable(student, newlines=False)}/{assignment}: left to another run, which is grading it "
               f"({printable(holder, newlines=False)}); run again when it is done")
    if summary.isolation == "none":
        report("warning: submissions ran WITHOUT a sandbox (no namespaces on this machine): see README, Grading safely")
    elif summary.cgroups.startswith("none"):
        report(f"note: no cgroup per sandbox ({summary.cgroups[len('none: '):]}). What still holds: each notebook's "
               "processes end with each cell and with the notebook, and its CPU time and memory are limited per "
               "process; but while a cell runs, its processes together may use more than one core and more memory "
               "than memory_mb (see README, Grading safely)")
    attention = [(s, a, o) for s, a, o in summary.outcomes if o.status not in ("graded",)]
    for student, assignment, outcome in attention:
        report(f"  {student}/{assignment}/{outcome.notebook}: {outcome.status}: {outcome.detail}")
    for student, assignment, outcome in summary.outcomes:
        if blank(outcome.diagnoses, outcome.tests):
            report(f"  {student}/{assignment}/{outcome.notebook}: blank, no exercise attempted")
        for grade_id, found in sorted(outcome.diagnoses.items()):
            if found.startswith(("misspelled", "not defined")):
                report(f"  {student}/{assignment}/{outcome.notebook}: {grade_id}: {found}")
    penalties = Counter()
    for student, assignment, outcome in summary.outcomes:
        penalties[(student, assignment)] += outcome.penalty
    for (student, assignment), late in sorted(summary.late.items()):
        taken = penalties[(student, assignment)]
        report(f"  {student}/{assignment}: {late}" + (f"; late penalty {taken:g} point(s)" if taken else ""))
    for student, assignment, outcome in summary.outcomes:
        if outcome.flags:
            report(f"  flagged {student}/{assignment}/{outcome.notebook}: " + "; ".join(outcome.flags[:3])
                   + (f" (+{len(outcome.flags) - 3} more)" if len(outcome.flags) > 3 else ""))
