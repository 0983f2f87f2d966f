"""One autograde run: find and lock the submissions, make their jobs, grade them in parallel, store each.

The stages are modules of their own: :mod:`~grader.autograde.sanitize` and
:mod:`~grader.autograde.plan` (via :mod:`~grader.autograde.jobs`) before the
student's code runs, :mod:`grader.sandbox` while it runs, and
:mod:`~grader.autograde.store` after. This module only sequences them.
"""
from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import json
import os
import resource
import secrets
import stat
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from grader.authoring.release import unreleased_test_changes
from grader.autograde.preload import DEFAULT_PRELOAD
from grader.autograde.jobs import JobMaker, Pending, TestSources, course_imports, gradebook_tests, test_digests
from grader.autograde.sanitize import Sanitizer
from grader.autograde.store import Store, failure
from grader.autograde.summary import Summary, counts_text
from grader.course import Course, write_atomically
from grader.deadlines import CourseDeadlines, Lateness, lateness
from grader.errors import GraderError
from grader.intake.collect import Intake
from grader.locks import Locks
from grader.records import (NOT_RUN, NotebookOutcome, Status, Submission, SubmissionRecord, load_record, record_path,
                            split_test_key)
from grader.sandbox.execute import Job
from grader.sandbox.linux import Limits, Sandbox
from grader.text import printable

GRADER_VERSION = "1"


def course_secret(course: Course) -> str:
    """A random secret of this course, mixed into the hidden tests' random inputs (kept out of git).

    Only the grader's user may read it (0600): with it, anyone could compute every hidden input.
    """
    path = course.secret_file
    if not path.exists():
        write_atomically(path, secrets.token_hex(16).encode(), private=True)
    os.chmod(path, 0o600)  # a secret made by an older version was readable by all
    return path.read_text().strip()


@contextlib.contextmanager
def _collector_frozen() -> Iterator[None]:
    """What is imported by now (torch, nbgrader, the gradebook's ORM) lives as long as the run: out of the
    collector's sight, a full collection while planning walks only what planning made (ms, not 100 ms).
    Collected again afterwards (the course server's process grades again and again)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Autograder:
    """Grades a class.

    ``executor``: workers made once and kept across runs (the course server's, grader/server/); by default each
    run starts its own. ``store``: where finished jobs go (a seam: tests give one that fails on purpose).
    """

    def __init__(self, course: Course, *, workers: int | None = None, scheduler: str | None = None,
                 force: bool = False, limits: Limits | None = None, progress: bool = True,
                 report: Callable[[str], None] = print, store: type[Store] = Store, executor=None) -> None:
        self.course = course
        self.workers = workers or os.cpu_count() or 1
        self.scheduler = scheduler
        self.force = force
        self.limits = limits or Sandbox(config=course.config).limits()
        self.progress = progress
        self.report = report
        self.salt = course_secret(course)
        self.deadlines = CourseDeadlines(course.config)
        self._store_class = store
        self._kept_executor = executor
        self._bar = None

    def run(self, assignments: list[str] | None = None, students: list[str] | None = None) -> Summary:
        started = time.perf_counter()
        summary = Summary(workers=self.workers, started_at=time.time())
        selected = self.course.select(assignments)
        if not assignments:  # every assignment that has submissions (one never released has none)
            selected = [a for a in selected if any(self.course.submitted.glob(f"*/{a}"))]
        locks = Locks(self.course.locks)
        try:
            return self._run_locked(selected, students, summary, locks, started)
        finally:
            locks.release_all()

    def _run_locked(self, selected: list[str], students: list[str] | None, summary: Summary, locks: Locks,
                    started: float) -> Summary:
        with self.course.gradebook() as gradebook:
            with summary.phases.timed("find and lock"):
                submissions = self._lock(self._find(selected, students, gradebook), locks, summary)
            self._remove_half_written_files(submissions)
            if not submissions:
                if not summary.busy:
                    self.report("no submissions to grade (import them with `python -m grader collect` first)")
                return summary
            assignments = {submission.assignment for submission in submissions}
            # Shown from the start: the workers take a while to start (they import torch).
            self._bar = self._progress(sum(len(self.course.notebooks(s.assignment)) for s in submissions))
            for assignment in sorted(assignments):
                self.deadlines.sync_assignment(gradebook, assignment, self.report)
            store = self._store_class(self.course, gradebook, self.limits, self.deadlines.penalty_plugin(),
                                      self.report, summary.phases)
            preload = DEFAULT_PRELOAD + course_imports(gradebook, assignments)
            # The workers start (and import torch) while this process plans the tests.
            with self._executor(preload) as executor:
                import torch

                # This process computes small references for every submission: one thread is
                # fastest for them, and leaves the other cores to the workers.
                torch.set_num_threads(1)
                with _collector_frozen():
                    with summary.phases.timed("read tests"):
                        tests = gradebook_tests(gradebook, assignments)
                    self._warn_unreleased(tests, assignments)
                    maker = JobMaker(self.course, self.limits, Sanitizer(self.course, gradebook), tests, preload,
                                     summary.phases)
                    first = self._first_submissions(submissions)
                    pending: dict[Submission, Pending] = {}
                    jobs = self._prepare(submissions, gradebook, maker, store, pending, summary, first)
                    for result in executor.run(jobs):
                        with summary.phases.timed("check plans"):  # (done after the first results are in)
                            self._check_plans(maker, first)
                        entry = pending[result.key.submission]
                        outcome = store.finished(entry, result.key.notebook, result)
                        summary.isolation = result.isolation or summary.isolation
                        summary.cgroups = result.cgroups or summary.cgroups
                        summary.worker_phases.update(result.phases)
                        summary.worker_rss_mb = max(summary.worker_rss_mb, result.worker_rss_mb)
                        summary.sandbox_rss_mb = max(summary.sandbox_rss_mb, result.max_rss_mb)
                        summary.sandbox_cpu += result.cpu_seconds
                        if result.worker:
                            summary.worker_spans.setdefault(result.worker, []).append((result.started_at,
                                                                                       result.ended_at))
                        self._finish_notebook(entry, result.key.notebook, outcome, summary)
            unfinished = [str(key) for key, entry in pending.items() if entry.waiting]
            if unfinished:
                raise GraderError(f"internal error: {', '.join(unfinished)} not finished; run autograde again")
            if self._bar is not None:
                self._bar.close()
        summary.seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        summary.process_cpu = usage.ru_utime + usage.ru_stime
        return summary

    def _warn_unreleased(self, tests: TestSources, assignments: set[str]) -> None:
        for assignment in sorted(assignments):
            changed = unreleased_test_changes(self.course, assignment, tests)
            if changed:
                self.report(f"warning: tests of {assignment} in source/ differ from the released ones "
                            f"({', '.join(changed)}): grading with the released ones. To grade with the "
                            f"fixed ones, run `python -m grader release {assignment}`, then autograde again")

    def _executor(self, preload: list[str]):
        """Where this run's notebooks are graded (a context manager)."""
        if self._kept_executor is not None:
            return contextlib.nullcontext(self._kept_executor)
        from grader.sandbox.executors import make_executor

        return make_executor(self.workers, self.scheduler, preload)

    def _lock(self, submissions: list[Submission], locks: Locks, summary: Summary) -> list[Submission]:
        """The submissions this run may grade: those no other run holds (the others are named, with who)."""
        mine = []
        for submission in submissions:
            holder = locks.take(submission.assignment, submission.student)
            if holder is None:
                mine.append(submission)
            else:
                summary.busy.append((*submission, holder))
        return mine

    def _remove_half_written_files(self, submissions: list[Submission]) -> None:
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

    def _find(self, assignments: list[str], students: list[str] | None, gradebook) -> list[Submission]:
        from nbgrader.api import MissingEntry

        found = []
        for assignment in assignments:
            try:
                gradebook.find_assignment(assignment)
            except MissingEntry:
                raise GraderError(f"{assignment} is not in the gradebook: "
                                  f"run `python -m grader release {assignment}` first")
            for folder in sorted(self.course.submitted.glob(f"*/{assignment}")):
                student = folder.parent.name
                if folder.is_dir() and (not students or student in students):
                    found.append(Submission(student, assignment))
        if students:
            missing = set(students) - {s.student for s in found}
            for student in sorted(missing):
                self.report(f"warning: no submission from {student} for {', '.join(assignments)}")
        return found

    @staticmethod
    def _first_submissions(submissions: list[Submission]) -> dict[str, Submission]:
        first: dict[str, Submission] = {}
        for submission in submissions:
            first.setdefault(submission.assignment, submission)
        return first

    def _check_plans(self, maker: JobMaker, first: dict[str, Submission], only: str | None = None) -> None:
        """Plan every notebook (``only``: of this assignment) once here, so a broken test stops the run before
        its results are stored.

        Streamed: the first assignment's notebooks are planned before its jobs are made, so the workers start on
        them at once, and the others (seconds, the first plans of a run import parts of PyTorch) while those jobs
        run, before the first result is stored; a notebook never planned before is planned here before its jobs.
        Each with the seed of the assignment's first submission: the job of that submission's notebook
        takes its plan from here (``maker.planned``) rather than planning it again. Planned once a run.
        """
        for assignment, notebook in maker.tests:
            if (assignment, notebook) in maker.checked or (only is not None and assignment != only):
                continue
            maker.checked.add((assignment, notebook))
            seed = self.seed(*first[assignment]) if assignment in first else self.salt
            try:
                maker.planned[(assignment, notebook, seed)] = maker.plan(assignment, notebook, seed)
            except Exception as error:
                raise GraderError(f"the tests of {assignment}/{notebook} cannot be run: {error}\n"
                                  f"Fix the source and run `python -m grader release {assignment}`.") from error

    def seed(self, student: str, assignment: str) -> str:
        """What a submission's hidden inputs are drawn from: the course secret and the submission's own files.

        Not its tests or deadline: a test fixed after release, or a new extension, regrades the
        submission on the same inputs for the other exercises.
        """
        limits = json.dumps(asdict(self.limits), sort_keys=True)
        digest = hashlib.sha256(f"{GRADER_VERSION}\0{self.salt}\0{limits}".encode())
        folder = self.course.submitted / student / assignment
        for path in sorted(folder.rglob("*")):
            if stat.S_ISREG(path.lstat().st_mode):  # a link is never followed (nor graded)
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def fingerprint(self, student: str, assignment: str, tests: TestSources, seed: str | None = None) -> str:
        """What a grade depends on (regraded when it changes): the seed, the tests, the deadline, the intake."""
        digest = hashlib.sha256((seed or self.seed(student, assignment)).encode())
        for notebook in self.course.notebooks(assignment):
            digest.update(json.dumps(tests.get((assignment, notebook), [])).encode())
        digest.update(self.deadlines.describe(assignment, student).encode())  # a new deadline regrades
        intake = Intake.load(self.course, assignment, student)
        digest.update(json.dumps(asdict(intake) if intake else None, sort_keys=True).encode())
        return digest.hexdigest()

    def _unchanged(self, submission: Submission, record: SubmissionRecord | None, fingerprint: str) -> bool:
        """Graded before from the same files, tests, deadline and intake, and its graded notebooks still there."""
        if self.force or record is None or record.fingerprint != fingerprint:
            return False
        autograded = self.course.autograded / submission.student / submission.assignment
        return all((autograded / f"{n}.ipynb").exists() or record.notebooks.get(n, NotebookOutcome(n, "")).status
                   in NOT_RUN for n in self.course.notebooks(submission.assignment))

    def _prepare(self, submissions: list[Submission], gradebook, maker: JobMaker, store: Store,
                 pending: dict[Submission, Pending], summary: Summary,
                 first: dict[str, Submission]) -> Iterator[Job]:
        for submission in submissions:
            student, assignment = submission
            with summary.phases.timed("check plans"):
                self._check_plans(maker, first, only=assignment)
            with summary.phases.timed("fingerprint"):
                seed = self.seed(student, assignment)
                fingerprint = self.fingerprint(student, assignment, maker.tests, seed)
                record = load_record(self.course, assignment, student)
            if self._unchanged(submission, record, fingerprint):
                summary.skipped += 1
                if record.late:
                    summary.late[submission] = record.late
                for outcome in record.notebooks.values():
                    summary.outcomes.append((student, assignment, outcome))
                if self._bar is not None:
                    self._bar.update(len(self.course.notebooks(assignment)))
                continue
            digests = test_digests(maker.tests, assignment)
            if record is not None and record.tests and record.tests != digests:
                summary.regraded_for_tests += 1
                for key in {*digests, *record.tests}:
                    if digests.get(key) != record.tests.get(key):
                        notebook, grade_id = split_test_key(key)
                        summary.tests_changed.setdefault((assignment, notebook), set()).add(grade_id)
            folder = self.course.submitted / student / assignment
            gradebook.update_or_create_student(student)
            entry = Pending(submission, fingerprint, tests=digests, seed=seed)
            entry.lateness = self._lateness(gradebook, submission, folder)
            pending[submission] = entry
            notebooks = self.course.notebooks(assignment)
            entry.waiting = set(notebooks)
            for notebook in notebooks:
                try:
                    job = maker.job(entry, notebook, folder)
                except Exception as error:  # the grader's own failure: this notebook only
                    gradebook.db.rollback()
                    job = NotebookOutcome(notebook, Status.ERROR, failure("preparing this notebook", error))
                if isinstance(job, NotebookOutcome):
                    store.not_run(entry, job)
                    self._finish_notebook(entry, notebook, job, summary)
                else:
                    yield job

    def _lateness(self, gradebook, submission: Submission, folder: Path) -> Lateness:
        """The submission's time and extension into the gradebook, and how late nbgrader finds it.

        The time is collect's (what the download says, or nothing); without collect (nbgrader's
        exchange, or copied by hand) it is the folder's ``timestamp.txt``, as nbgrader reads it.
        """
        from nbgrader import utils

        student, assignment = submission
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
                self.report(f"warning: {submission}/timestamp.txt is not a time ({printable(text[:40])!r}); "
                            "the submission is taken as on time")
                timestamp = None
        stored = self.deadlines.sync_submission(gradebook, assignment, student, timestamp)
        return lateness(stored, intake.marked_late_by if intake else "")

    # -- progress and records --------------------------------------------------------------------

    def _progress(self, total: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="notebook", desc="autograde", dynamic_ncols=True)

    def _finish_notebook(self, entry: Pending, notebook: str, outcome: NotebookOutcome, summary: Summary) -> None:
        entry.waiting.discard(notebook)
        student, assignment = entry.submission
        summary.outcomes.append((student, assignment, outcome))
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(counts_text(summary.counts()), refresh=False)
        if not entry.waiting:
            if entry.lateness.text():  # late, or marked late by the LMS and not penalised
                summary.late[entry.submission] = entry.lateness.text()
            with summary.phases.timed("records"):
                SubmissionRecord(student, assignment, entry.fingerprint, entry.notebooks, time.time(),
                                 late=entry.lateness.text(), tests=entry.tests).save(self.course)
