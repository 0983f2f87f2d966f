"""The whole instructor loop on a fixture class: collect → autograde → feedback → export → report.

Every kind of submission a real class hands in is in the class (tests/fixture_course.py):
correct, blank, wrong, partly right, looping, crashing, renamed, a duplicated
cell, a deleted test cell, invalid JSON, a missing notebook. Each student's
exact score and status are asserted.
"""
from __future__ import annotations

import csv
import json
import zipfile

import pytest

from fixture_course import MAX_SCORE, write_class
from grader.autograde.run import Autograder
from grader.records import SubmissionRecord
from grader.cli import main
from grader.course import open_course

pytestmark = pytest.mark.slow


def _records(course):
    return {p.stem: SubmissionRecord.load(p) for p in (course.root / ".grader" / "results" / "ps1").glob("*.json")}


def _gradebook_scores(course):
    with course.gradebook() as gradebook:
        return {s.student.id: (s.score, s.needs_manual_grade) for s in gradebook.find_assignment("ps1").submissions}


def test_whole_class_through_the_command_line(course_dir, tmp_path, capsys):
    download = tmp_path / "download"
    expected = write_class(course_dir, download)
    # The "nothing" student handed in a text file only: it is kept, and the notebook is missing.
    assert main(["collect", "--course", str(course_dir), "ps1", str(download)]) == 0
    out = capsys.readouterr().out
    assert "renamed from 'Copy of ps1 (1).ipynb'" in out
    assert "skipped" not in out
    assert "nothing: notes.txt is not a notebook, kept, not graded (no notebook: missing, wrong file type" in out
    assert (course_dir / "submitted" / "nothing" / "ps1" / "notes.txt").is_file()

    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    summary = capsys.readouterr().out
    course = open_course(course_dir)
    records = _records(course)
    assert set(records) == set(expected)
    scores = _gradebook_scores(course)
    for student, (score, status) in expected.items():
        outcome = records[student].notebooks["ps1"]
        assert (outcome.status, outcome.score) == (status, score), student
        gradebook_score, needs_manual = scores[student]
        if score is None:
            assert needs_manual, f"{student} could not be graded and must not look like a 0"
        else:
            assert gradebook_score == pytest.approx(score), student
    assert "broken-json/ps1/ps1: invalid" in summary
    assert records["looping"].notebooks["ps1"].detail.startswith("cell")
    assert any("appears 2 times" in f for f in records["duplicated"].notebooks["ps1"].flags)
    assert any("was deleted" in f for f in records["deleted-test"].notebooks["ps1"].flags)
    assert not records["correct"].notebooks["ps1"].flags
    assert not records["windows"].notebooks["ps1"].flags  # CRLF line ends are not an edited test cell
    assert "no grading metadata" in records["stripped"].notebooks["ps1"].detail
    assert "fresh copy of the released notebook" in records["stripped"].notebooks["ps1"].detail

    # Feedback: a page per student; the hidden tests' code is not in it, their verdicts are.
    assert main(["feedback", "--course", str(course_dir)]) == 0
    page = (course_dir / "feedback" / "correct" / "ps1" / "ps1.html").read_text()
    assert "✓ square_grad: matches PyTorch on 4 inputs" in page
    assert "BEGIN HIDDEN TESTS" not in page and "_rng" not in page
    assert "Graded." in page
    broken = (course_dir / "feedback" / "broken-json" / "ps1" / "ps1.html").read_text()
    assert "could not be read as a notebook" in broken
    looping = (course_dir / "feedback" / "looping" / "ps1" / "ps1.html").read_text()
    assert "CellTimeoutError" in looping

    # Export: a row per student, failed grading marked, not 0.
    output = tmp_path / "grades.csv"
    assert main(["export", "--course", str(course_dir), "-o", str(output)]) == 0
    rows = {row["student"]: row for row in csv.DictReader(output.open())}
    assert rows["broken-json"]["ps1"] == "not graded"
    assert rows["correct"]["ps1"] == "5" and rows["correct"]["total"] == "5"
    assert rows["partly"]["ps1"] == "2"
    assert rows["nothing"]["ps1"] == "0" and "missing" in rows["nothing"]["notes"]
    assert main(["export", "--course", str(course_dir), "--format", "canvas", "-o", str(output)]) == 0
    canvas = list(csv.reader(output.open()))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][5] == f"{MAX_SCORE:g}"
    assert next(r for r in canvas if r[3] == "broken-json")[5] == ""

    # Report: pass rates per exercise and a histogram.
    assert main(["report", "--course", str(course_dir)]) == 0
    report = (course_dir / "reports" / "ps1.md").read_text()
    assert "| test-make-leaf | 1 |" in report
    assert (course_dir / "reports" / "ps1-scores.png").stat().st_size > 1000


def test_collect_understands_canvas_and_moodle(course_dir, tmp_path):
    from fixture_course import CORRECT, _answered
    import nbformat

    notebook = nbformat.writes(_answered(course_dir, CORRECT))
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.writestr("smithjane_1234_98765_ps1.ipynb", notebook)
        archive.writestr("smithjane_LATE_1234_98799_ps1-1.ipynb", notebook)  # a later resubmission
        archive.writestr("doejohn_777_55555_Copy of ps1.ipynb", notebook)
        archive.writestr("../escape.ipynb", notebook) if False else None
    main(["collect", "--course", str(course_dir), "ps1", str(canvas)])
    course = open_course(course_dir)
    # The LMS's user id is the student id; the name Canvas gives goes into the gradebook.
    assert sorted(p.name for p in course.submitted.iterdir()) == ["1234", "777"]
    with course.gradebook() as gradebook:
        assert gradebook.find_student("1234").lms_user_id == "1234"
        assert gradebook.find_student("777").last_name == "doejohn"
    moodle = tmp_path / "moodle"
    (moodle / "Zoë O'Brien_42_assignsubmission_file_").mkdir(parents=True)
    (moodle / "Zoë O'Brien_42_assignsubmission_file_" / "homework.ipynb").write_text(notebook)
    main(["collect", "--course", str(course_dir), "ps1", str(moodle)])
    assert (course.submitted / "42" / "ps1" / "ps1.ipynb").exists()
    with course.gradebook() as gradebook:
        zoe = gradebook.find_student("42")
        assert (zoe.first_name, zoe.last_name, zoe.lms_user_id) == ("Zoë", "O'Brien", "42")
    # Collecting again keeps the earlier submission, moved aside.
    main(["collect", "--course", str(course_dir), "ps1", str(moodle)])
    assert list((course.root / ".grader" / "replaced" / "ps1").glob("42-*"))


def test_collect_refuses_a_zip_that_escapes(course_dir, tmp_path, capsys):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../outside.ipynb", "{}")
    assert main(["collect", "--course", str(course_dir), "ps1", str(evil)]) == 1
    assert "outside the archive" in capsys.readouterr().err
    assert not (tmp_path / "outside.ipynb").exists()


def test_regrading_skips_what_is_unchanged_and_force_regrades(course_dir, tmp_path):
    download = tmp_path / "download"
    write_class(course_dir, download)
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    course = open_course(course_dir)
    first = Autograder(course, workers=1, progress=False, report=lambda _: None).run(students=["correct", "wrong"])
    assert first.skipped == 0 and len(first.outcomes) == 2
    again = Autograder(course, workers=1, progress=False, report=lambda _: None).run(students=["correct", "wrong"])
    assert again.skipped == 2
    forced = Autograder(course, workers=1, force=True, progress=False, report=lambda _: None).run(students=["correct"])
    assert forced.skipped == 0 and forced.outcomes[0][2].score == 5.0
    # A changed submission is regraded without --force.
    path = course.submitted / "wrong" / "ps1" / "ps1.ipynb"
    path.write_text(path.read_text().replace("return 2 * x + 1", "return 2 * x"))
    changed = Autograder(course, workers=1, progress=False, report=lambda _: None).run(students=["wrong"])
    assert changed.skipped == 0 and changed.outcomes[0][2].score == 2.0


def test_autograded_copy_never_changes_the_submission(course_dir, tmp_path):
    download = tmp_path / "download"
    write_class(course_dir, download)
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    course = open_course(course_dir)
    before = {p: p.read_bytes() for p in course.submitted.rglob("*") if p.is_file()}
    Autograder(course, workers=1, progress=False, report=lambda _: None).run(students=["correct", "looping"])
    after = {p: p.read_bytes() for p in course.submitted.rglob("*") if p.is_file()}
    assert before == after
    graded = json.loads((course.autograded / "correct" / "ps1" / "ps1.ipynb").read_text())
    texts = ["".join(o.get("text", "")) for c in graded["cells"] for o in c.get("outputs", [])]
    assert any(text.startswith("✓") for text in texts)


def test_feedback_goes_on_past_a_broken_student_and_skips_what_is_current(course_dir, tmp_path, capsys):
    download = tmp_path / "download"
    write_class(course_dir, download)
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    course = open_course(course_dir)
    Autograder(course, workers=1, progress=False, report=lambda _: None).run(students=["correct", "wrong", "partly"])
    (course.autograded / "wrong" / "ps1" / "ps1.ipynb").write_text("{ not json")  # damaged after grading

    assert main(["feedback", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "could not make feedback for wrong/ps1" in out
    pages = {s: course.feedback / s / "ps1" / "ps1.html" for s in ("correct", "partly")}
    assert all(page.exists() for page in pages.values())
    assert not (course.feedback / "wrong" / "ps1" / "ps1.html").exists()

    # Run again: the two written students are current and left alone; the broken one is tried again.
    written = {s: page.stat().st_mtime_ns for s, page in pages.items()}
    assert main(["feedback", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 submission(s) already up to date" in out and "wrong/ps1" in out
    assert {s: page.stat().st_mtime_ns for s, page in pages.items()} == written

    # Regrading makes a student's pages stale: they are rewritten, the others' are not.
    Autograder(course, workers=1, force=True, progress=False, report=lambda _: None).run(students=["wrong", "correct"])
    assert main(["feedback", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert "2 page(s) written" in capsys.readouterr().out
    assert "Graded." in (course.feedback / "wrong" / "ps1" / "ps1.html").read_text()
    assert pages["correct"].stat().st_mtime_ns != written["correct"]
    assert pages["partly"].stat().st_mtime_ns == written["partly"]
    # --force rewrites everyone's.
    assert main(["feedback", "--course", str(course_dir), "--force", "--no-progress"]) == 0
    assert "3 page(s) written" in capsys.readouterr().out


def test_every_submission_gets_hidden_inputs_of_its_own(course_dir, tmp_path):
    """Hidden inputs seen in one feedback page are of no use to another submission, or a resubmission."""
    from fixture_course import CORRECT, _answered
    import nbformat

    hard_coded = dict(CORRECT, **{"square-grad": "return 6.0 if x == 3.0 else 0.0"})  # passes the visible test only
    download = tmp_path / "download"
    for student in ("ann", "bob"):
        (download / student).mkdir(parents=True)
        nbformat.write(_answered(course_dir, hard_coded), download / student / "ps1.ipynb")
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    course = open_course(course_dir)

    def hidden_failure(student: str) -> str:
        graded = nbformat.read(course.autograded / student / "ps1" / "ps1.ipynb", as_version=4)
        cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-square-grad")
        (error,) = [o for o in cell.outputs if o.output_type == "error"]
        return error.evalue

    def grade(*students: str, force: bool = False) -> None:
        Autograder(course, workers=1, force=force, progress=False, report=lambda _: None).run(students=list(students))

    grade("ann", "bob")
    ann, bob = hidden_failure("ann"), hidden_failure("bob")
    assert "square_grad" in ann and ann != bob  # same code, different inputs
    grade("ann", force=True)
    assert hidden_failure("ann") == ann  # regrading the same submission is reproducible
    path = course.submitted / "ann" / "ps1" / "ps1.ipynb"
    path.write_text(path.read_text().replace("else 0.0", "else 0.0  # resubmitted"))
    grade("ann")
    assert hidden_failure("ann") != ann  # a resubmission meets new inputs
    assert {r.notebooks["ps1"].score for r in _records(course).values()} == {3.0}


def test_cells_checked_once_a_run_still_refuse_broken_metadata(course_dir):
    """The sanitizer validates each distinct cell metadata once a run: a broken copy of a valid one is still refused."""
    import copy

    import nbformat
    from nbgrader.nbgraderformat import ValidationError

    from grader.autograde.sanitize import Sanitizer

    course = open_course(course_dir)
    released = nbformat.read(course.release / "ps1" / "ps1.ipynb", as_version=4)
    resources = {"nbgrader": {"notebook": "ps1", "assignment": "ps1", "student": "s", "db_url": course.db_url}}
    with course.gradebook() as gradebook:
        sanitizer = Sanitizer(course, gradebook)
        for _ in range(2):
            sanitizer.sanitize(copy.deepcopy(released), resources, {})
        broken = copy.deepcopy(released)
        next(cell for cell in broken.cells if cell.metadata.get("nbgrader", {}).get("grade"))\
            .metadata.nbgrader["unknown"] = 1
        with pytest.raises(ValidationError):
            sanitizer.sanitize(broken, resources, {})


def test_timings_give_the_grading_process_cpu_seconds_beside_its_seconds():
    import time

    from grader.autograde.summary import Phases, Summary, print_timings

    summary = Summary(phases=Phases(), sandbox_cpu=12.5)
    with summary.phases.timed("plan"):
        started = time.thread_time()
        while time.thread_time() - started < 0.05:  # busy: CPU time
            pass
    with summary.phases.timed("gradebook"):
        time.sleep(0.05)  # waiting: no CPU time
    lines: list[str] = []
    print_timings(summary, report=lines.append)
    assert summary.phases.cpu["plan"] >= 0.05 and summary.phases.cpu["gradebook"] < 0.02
    assert any(line.startswith("| grading process | plan |") and line.endswith(f"| {summary.phases.cpu['plan']:.2f} |")
               for line in lines)
    assert "CPU-seconds of the sandboxes (every process of each, measured outside it): 12.5" in lines


def test_a_test_that_cannot_be_planned_stops_the_run_before_anything_is_stored(course_dir, tmp_path):
    """The plans are checked streamed (the first assignment's before its first job): a broken test still stops the
    run with what to do, and no grade, record or graded notebook is written."""
    from grader.errors import GraderError

    download = tmp_path / "download"
    write_class(course_dir, download)
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    course = open_course(course_dir)
    with course.gradebook() as gradebook:
        cell = gradebook.find_source_cell("test-make-leaf", "ps1", "ps1")
        cell.source = "from autograd_lab import checks\nchecks.close(1 / 0, 0.0)\n"
        gradebook.db.commit()
    with pytest.raises(GraderError, match="the tests of ps1/ps1 cannot be run"):
        Autograder(course, workers=2, progress=False, report=lambda _: None).run()
    assert _records(course) == {}
    assert _gradebook_scores(course) == {}
    assert not any(course.autograded.glob("*/ps1/*.ipynb"))


def test_timings_give_the_workers_timeline():
    from grader.autograde.summary import Summary, timeline

    summary = Summary(started_at=1000.0, seconds=10.0,
                      worker_spans={"a:1": [(1002.0, 1005.0), (1005.0, 1010.0)], "a:2": [(1002.5, 1007.0)]})
    text = timeline(summary)
    assert "the first notebook started at 2.0 s, the last ended at 10.0 s" in text
    assert "worker 1: 2 notebooks, busy 8.0 s, first from 2.0 s, idle 0.0 s at the end" in text
    assert "worker 2: 1 notebooks, busy 4.5 s, first from 2.5 s, idle 3.0 s at the end" in text
