"""What grading leaves behind, in one place: statuses, outcomes and the record of each submission.

``autograde`` writes a :class:`SubmissionRecord` per (student, assignment) to
``course.results``, last and atomically; ``feedback``, ``export``, ``report``
(and anything else that reads grades) read it from here, never from the
orchestrator. A submission travels through the pipeline as a :class:`Submission`
value, and one of its notebooks as a :class:`NotebookKey`: never as a
"/"-joined string that is split again.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Iterator, NamedTuple

from grader.course import Course, write_atomically


class Status(StrEnum):
    """What happened to one notebook (README.md, "The statuses are", has the same table)."""

    GRADED = "graded"  # ran to the end; its tests were judged
    TIMEOUT = "timeout"  # a cell ran longer than its limit and was stopped
    NOTEBOOK_TIMEOUT = "notebook-timeout"  # the notebook's limits: graded as far as it ran
    CPU_LIMIT = "cpu-limit"
    MEMORY_LIMIT = "memory-limit"
    DISK_LIMIT = "disk-limit"
    OUTPUT_LIMIT = "output-limit"
    DIED = "died"  # the kernel stopped (os._exit, a signal): graded as far as it ran
    MISSING = "missing"  # no notebook was submitted: 0 points
    INVALID = "invalid"  # not a readable notebook: no score, the instructor must look
    ERROR = "error"  # the grader itself failed: no score (a bug to report)
    PENDING = "pending"  # prepared, not yet run (never stored)


#: Statuses with which nothing could be judged: no score is recorded; the instructor must look.
UNGRADABLE = frozenset({Status.INVALID, Status.ERROR})
#: Statuses of a notebook that was never run: nothing to re-run while its files are unchanged.
NOT_RUN = frozenset({Status.MISSING, Status.INVALID})


class Submission(NamedTuple):
    """One student's submission of one assignment."""

    student: str
    assignment: str

    def notebook(self, name: str) -> "NotebookKey":
        return NotebookKey(self.student, self.assignment, name)

    def __str__(self) -> str:
        return f"{self.student}/{self.assignment}"


class NotebookKey(NamedTuple):
    """One notebook of one submission: what a grading job is about."""

    student: str
    assignment: str
    notebook: str

    @property
    def submission(self) -> Submission:
        return Submission(self.student, self.assignment)

    def __str__(self) -> str:
        return f"{self.student}/{self.assignment}/{self.notebook}"


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
    memory_mb: float = 0.0  # the peak resident memory of the sandbox's largest process
    penalty: float = 0.0  # nbgrader's late_submission_penalty, already taken off in the gradebook's total
    diagnoses: dict[str, str] = field(default_factory=dict)  # failed test → grader.autograde.diagnose.diagnosis()


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

    def save(self, course: Course) -> None:
        write_atomically(record_path(course, self.assignment, self.student),
                         json.dumps(asdict(self), indent=1).encode())


def test_key(notebook: str, grade_id: str) -> str:
    """How a record names one test (``SubmissionRecord.tests``): "notebook/grade id", a stored format."""
    return f"{notebook}/{grade_id}"


def split_test_key(key: str) -> tuple[str, str]:
    """(notebook, grade id) of a :func:`test_key`."""
    notebook, _, grade_id = key.partition("/")
    return notebook, grade_id


def record_path(course: Course, assignment: str, student: str) -> Path:
    return course.results / assignment / f"{student}.json"


def load_record(course: Course, assignment: str, student: str) -> SubmissionRecord | None:
    return SubmissionRecord.load(record_path(course, assignment, student))


def assignment_records(course: Course, assignment: str) -> Iterator[tuple[str, SubmissionRecord | None]]:
    """(student, record) for every record of an assignment, by student id; None for an unreadable record."""
    for path in sorted((course.results / assignment).glob("*.json")):
        yield path.stem, SubmissionRecord.load(path)
