"""The queue's one consumer: grades submissions with ``autograde``'s own pipeline, on workers kept all term.

For each batch of queued submissions (at most one per student and assignment), it

1. puts each notebook where ``autograde`` grades from, ``submitted/<student>/<assignment>/``,
   with its time of arrival as the submission's time (a ``grader.intake.collect.Intake``, so the
   due date, extension and late penalty are ``autograde``'s);
2. runs :class:`grader.autograde.Autograder` on them (the same sanitizing, sandbox,
   checks and gradebook), on pre-warmed workers made once when the server starts;
3. reads each one's verdict from its record and graded notebook: per exercise, the
   messages ``feedback`` shows (test outputs, never test code), the score, the late penalty;
4. keeps the gradebook on the attempt that counts: when the policy is "best" and the new
   attempt scored less, the best one is put back in ``submitted/`` and graded again (on the
   same hidden inputs, which are drawn from its own files), so ``feedback``, ``export``,
   ``report`` and formgrader all see the grade.

A submission another ``autograde`` run holds (its lock) goes back to the queue and is
tried again a few seconds later.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import traceback
from typing import Callable

import nbformat

from autograd_lab.i18n import N_, _
from grader.autograde.jobs import course_imports
from grader.autograde.run import DEFAULT_PRELOAD, Autograder
from grader.course import Course, write_atomically
from grader.intake.collect import Intake
from grader.locks import Locks
from grader.notebooks import is_test_cell
from grader.records import UNGRADABLE, NotebookOutcome, Status
from grader.server.policy import CoursePolicy
from grader.server.store import BUSY_TIMEOUT_MS, Store, Submission
from grader.text import printable

RETRY_BUSY_SECONDS = 5.0
#: Submissions graded in one autograde run, per worker: each run has a fixed cost (opening the gradebook,
#: planning every notebook's tests once), which a rush before a deadline shares out.
BATCH_PER_WORKER = 8


def share_gradebook(course: Course) -> None:
    """Let the server, ``autograde``, ``feedback`` and formgrader use one SQLite gradebook at the same time.

    WAL mode (kept in the file, so every later connection of every program has it) lets readers go on
    while one writes; and every connection this process opens waits up to 30 s for another's write
    instead of failing at once with "database is locked". A PostgreSQL gradebook needs neither.
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    path = course.sqlite_path
    if path is None:
        return
    with course.gradebook():  # made (0600) and migrated as autograde makes it
        pass
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()

    @event.listens_for(Engine, "connect")
    def _wait_for_writers(connection, record):
        if isinstance(connection, sqlite3.Connection):
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def preload_for(course: Course) -> list[str]:
    """What the workers import up front: autograde's defaults and every module the course's cells import."""
    with course.gradebook() as gradebook:
        released = {a.name for a in gradebook.assignments}
        return DEFAULT_PRELOAD + course_imports(gradebook, released)


def counting(submissions: list[Submission], counts: str) -> Submission | None:
    """The attempt that is the grade: the best (latest among equals) or the last, of those that have a score."""
    scored = [s for s in submissions if s.state == "done" and s.score is not None]
    if not scored:
        return None
    if counts == "last":
        return max(scored, key=lambda s: s.id)
    return max(scored, key=lambda s: (s.score - (s.verdict_data() or {}).get("penalty", 0.0), s.id))


class GradingLoop:
    """A thread that grades whatever is queued, in batches, until stopped."""

    def __init__(self, course: Course, store: Store, policy: CoursePolicy, *, workers: int,
                 scheduler: str | None = None, log: Callable[[str], None] = print) -> None:
        from grader.sandbox.executors import make_executor

        self.course, self.store, self.policy = course, store, policy
        share_gradebook(course)
        self.workers, self.scheduler, self.log = workers, scheduler, log
        self._executor_context = make_executor(workers, scheduler, preload_for(course))
        self.executor = self._executor_context.__enter__()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._later: dict[tuple[str, str], float] = {}  # held by another autograde run: not before this time
        self.thread = threading.Thread(target=self._loop, name="grading", daemon=True)

    def start(self) -> None:
        requeued = self.store.requeue()
        if requeued:
            self.log(f"{requeued} submission(s) were being graded when the server last stopped: queued again")
        self.thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join()
        self._executor_context.__exit__(None, None, None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self._later = {key: when for key, when in self._later.items() if when > now}
            batch = self.store.claim(limit=BATCH_PER_WORKER * max(self.workers, 1), skip=set(self._later))
            if not batch:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            try:
                self.grade(batch)
            except Exception as error:  # the grader's own failure: recorded, and the server goes on
                self.log(f"error: grading {', '.join(f'#{s.id}' for s in batch)} failed: "
                         f"{printable(traceback.format_exc(limit=4), newlines=True)}")
                for submission in batch:
                    if (current := self.store.get(submission.id)) is not None and current.state == "grading":
                        self.store.finish(submission, status="error", score=None, max_score=0.0, seconds=0.0,
                                          verdict=_error_verdict(f"{type(error).__name__}: {error}"))

    def grade(self, batch: list[Submission]) -> None:
        by_assignment: dict[str, list[Submission]] = {}
        locks = Locks(self.course.root)
        for submission in batch:
            # Another autograde run grading this student's files now: leave them alone, try again later.
            if locks.take(submission.assignment, submission.student) is not None:
                self._wait_for_other_run(submission)
                continue
            locks.release(submission.assignment, submission.student)  # autograde takes it again to grade
            self._place(submission)
            by_assignment.setdefault(submission.assignment, []).append(submission)
        for assignment, submissions in sorted(by_assignment.items()):
            started = time.perf_counter()
            summary = self._run(assignment, [s.student for s in submissions])
            seconds = time.perf_counter() - started
            busy = {student for student, _, _ in summary.busy}
            outcomes = {(student, o.notebook): o for student, a, o in summary.outcomes if a == assignment}
            graded, restore = [], []
            for submission in submissions:
                if submission.student in busy:
                    self._wait_for_other_run(submission)
                    continue
                outcome = outcomes.get((submission.student, submission.notebook)) or NotebookOutcome(
                    submission.notebook, "error", "the grader recorded no result for this notebook")
                graded.append((submission, outcome, self.verdict(submission, outcome)))
                earlier = [s for s in self.store.history(submission.student, assignment) if s.id != submission.id]
                done = Submission(**{**vars(submission), "state": "done", "score": outcome.score})
                done.verdict = json.dumps({"penalty": outcome.penalty})
                best = counting(earlier + [done], self.policy[assignment].counts)
                settled = not any(s.state == "queued" for s in earlier)  # (when regrading all, the last one restores)
                if best is not None and best.id != submission.id and best.notebook == submission.notebook and settled:
                    restore.append(best)
            if restore:  # the gradebook holds the attempt that counts before the student is told which it is
                for submission in restore:
                    self._place(submission)
                self._run(assignment, [s.student for s in restore])
            for submission, outcome, verdict in graded:
                self.store.finish(submission, status=outcome.status, score=outcome.score,
                                  max_score=outcome.max_score, verdict=verdict, seconds=seconds)
                self.log(f"#{submission.id} {printable(submission.student, newlines=False)}/{assignment}: "
                         f"{outcome.status}, {verdict['score_text']} ({seconds:.1f} s for {len(submissions)})")

    def _wait_for_other_run(self, submission: Submission) -> None:
        self.store.release(submission)
        self._later[(submission.student, submission.assignment)] = time.time() + RETRY_BUSY_SECONDS
        self.log(f"#{submission.id}: another autograde run is grading {printable(submission.student, newlines=False)}"
                 f"/{submission.assignment}; trying again in {RETRY_BUSY_SECONDS:g} s")

    def _run(self, assignment: str, students: list[str]):
        grader = Autograder(self.course, workers=self.workers, scheduler=self.scheduler, progress=False, force=True,
                            report=lambda text: self.log(printable(text)), executor=self.executor)
        return grader.run([assignment], students)

    def _place(self, submission: Submission) -> None:
        """The submission where autograde grades from, with its time of arrival as the submission's time."""
        folder = self.course.submitted / submission.student / submission.assignment
        write_atomically(folder / f"{submission.notebook}.ipynb", self.store.data(submission))
        received = dt.datetime.fromtimestamp(submission.received, dt.timezone.utc)
        Intake(submission.student, submission.assignment, "server", received.isoformat(),
               f"received by the course server (submission #{submission.id})").save(self.course)

    def verdict(self, submission: Submission, outcome: NotebookOutcome) -> dict:
        """What the student is shown: per exercise, passed or not, its points and feedback's messages."""
        from grader.outputs.feedback import STATUS_TEXT

        path = self.course.autograded / submission.student / submission.assignment / f"{submission.notebook}.ipynb"
        exercises = []
        if path.exists() and outcome.status not in (Status.MISSING, *UNGRADABLE):
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                if not is_test_cell(cell):
                    continue
                grade_id = cell.metadata.nbgrader.grade_id
                points = float(cell.metadata.nbgrader.get("points", 0) or 0)
                passed = bool(outcome.tests.get(grade_id, False))
                exercises.append({"exercise": grade_id, "passed": passed, "points": points if passed else 0.0,
                                  "max_points": points, "messages": _messages(cell)})
        score = outcome.score
        penalty = outcome.penalty or 0.0
        return {
            "status": outcome.status,
            "summary": STATUS_TEXT.get(outcome.status, outcome.status),
            "detail": printable(outcome.detail) if outcome.status != Status.GRADED else "",
            "score": score, "max_score": outcome.max_score, "penalty": penalty,
            "score_text": score_text({"score": score, "max_score": outcome.max_score, "penalty": penalty}),
            "exercises": exercises,
        }


def score_text(verdict: dict) -> str:
    """A verdict's score as a student reads it (``4 / 5 (late penalty 1)``), in the current language: stored
    with the verdict (the log and the API, in English), and made again by each page in its reader's."""
    score, penalty = verdict.get("score"), verdict.get("penalty") or 0.0
    if score is None:
        return _("not graded")
    text = f"{score - penalty:g} / {verdict.get('max_score', 0.0):g}"
    return text + (" " + _("(late penalty {penalty})").format(penalty=f"{penalty:g}") if penalty else "")


def _messages(cell) -> list[str]:
    """A test cell's outputs as the feedback page shows them: what passed, then the failure's message."""
    messages = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            messages += [line for line in printable(output.get("text", "")).splitlines() if line.strip()]
        elif output.get("output_type") == "error":
            messages.append(printable(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"))
    return messages


def _error_verdict(why: str) -> dict:
    return {"status": "error", "summary": N_("Not graded: the grader had a problem with this submission. Your "
                                             "instructor has been told; it does not count as an attempt."),
            "detail": printable(why), "score": None, "max_score": 0.0, "penalty": 0.0,
            "score_text": score_text({"score": None}),
            "exercises": []}
