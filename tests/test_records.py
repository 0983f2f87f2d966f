"""The grader's one vocabulary: every status is documented, explained to students, and survives a record's round trip."""
from __future__ import annotations

import re
from pathlib import Path

from grader.course import open_course
from grader.outputs.feedback import STATUS_TEXT
from grader.records import NotebookKey, NotebookOutcome, Status, Submission, SubmissionRecord, load_record

README = Path(__file__).resolve().parent.parent / "README.md"
STORED = set(Status) - {Status.PENDING}  # pending is never stored: a notebook is pending only while it runs


def test_the_readme_table_lists_every_stored_status_and_no_other():
    text = README.read_text()
    table = text[text.index("| status | meaning |"):]
    table = table[:table.index("\n\n")]
    documented = {name for row in table.splitlines()[2:] for name in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert documented == {str(status) for status in STORED}


def test_feedback_explains_every_stored_status():
    assert set(STATUS_TEXT) == STORED


def test_a_record_round_trips_and_keys_are_values(course_dir):
    course = open_course(course_dir)
    outcome = NotebookOutcome("ps1", Status.TIMEOUT, "cell 3 ran too long", flags=["x"], tests={"t": False},
                              score=1.0, max_score=5.0, seconds=2.5, memory_mb=300.0)
    SubmissionRecord("alice", "ps1", "f" * 64, {"ps1": outcome}, 1.0, late="late by 2 h").save(course)
    loaded = load_record(course, "ps1", "alice")
    assert loaded.notebooks["ps1"] == outcome and loaded.notebooks["ps1"].status == "timeout"
    key = Submission("alice", "ps1").notebook("ps1")
    assert key == NotebookKey("alice", "ps1", "ps1") and key.submission == ("alice", "ps1")
    assert str(key) == "alice/ps1/ps1"
