"""Two runs of one course side by side: each submission is graded by one of them, and named if busy."""
from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from fixture_course import CORRECT, WRONG, _answered
from grader.autograde.run import Autograder
from grader.autograde.summary import print_summary
from grader.records import SubmissionRecord, record_path
from grader.course import open_course
from grader.locks import Locks


def test_a_lock_names_its_holder_and_is_released(tmp_path):
    first, second = Locks(tmp_path), Locks(tmp_path)
    assert first.take("ps1", "alice") is None
    holder = second.take("ps1", "alice")
    assert holder and f"process {os.getpid()}" in holder
    assert second.take("ps1", "bob") is None  # the grain is one student's submission
    first.release_all()
    assert second.take("ps1", "alice") is None


def test_a_lock_of_a_process_that_ended_is_free(tmp_path):
    """The kernel drops a lock with its process, however it ends: a killed run locks nothing."""
    code = ("import os, sys; sys.path.insert(0, %r); from grader.locks import Locks; "
            "assert Locks(__import__('pathlib').Path(%r)).take('ps1', 'alice') is None; os._exit(9)"
            % (str(os.getcwd()), str(tmp_path)))
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert Locks(tmp_path).take("ps1", "alice") is None


@pytest.mark.slow
def test_a_second_run_leaves_what_another_run_grades_to_it(course_dir):
    course = open_course(course_dir)
    for student, answers in (("alice", CORRECT), ("bob", WRONG)):
        (course.submitted / student / "ps1").mkdir(parents=True)
        nbformat.write(_answered(course_dir, answers), course.submitted / student / "ps1" / "ps1.ipynb")
    other_run = Locks(course.locks)  # another run, grading alice right now
    assert other_run.take("ps1", "alice") is None
    half_written = record_path(course, "ps1", "alice").with_name(".alice.json.99999.tmp")
    half_written.parent.mkdir(parents=True, exist_ok=True)
    half_written.write_text("{")  # the other run's file, being written

    lines: list[str] = []
    summary = Autograder(course, workers=1, progress=False, report=lines.append).run()
    print_summary(summary, report=lines.append)
    assert SubmissionRecord.load(record_path(course, "ps1", "bob")).notebooks["ps1"].score == 0.0
    assert not record_path(course, "ps1", "alice").exists() and half_written.exists()
    assert any(line.strip().startswith("alice/ps1: left to another run") and f"process {os.getpid()}" in line
               for line in lines), lines

    other_run.release_all()
    Autograder(course, workers=1, progress=False, report=lambda _: None).run()
    assert SubmissionRecord.load(record_path(course, "ps1", "alice")).notebooks["ps1"].score == 5.0
