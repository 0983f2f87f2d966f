"""A term with the grader, end to end: deadlines and late work, extensions, a PDF, the LMS round trip.

Each test replays what an instructor does with real-looking downloads and checks
that autograde's summary, nbgrader's gradebook (what formgrader shows), the
export and the report tell the same story.
"""
from __future__ import annotations

import csv
import datetime as dt
import struct
import zipfile

import nbformat
import pytest

from fixture_course import CORRECT, MAX_SCORE, _answered
from grader.cli import main
from grader.course import open_course

pytestmark = pytest.mark.slow


def _entry(name: str, when: dt.datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.extra = struct.pack("<HHBl", 0x5455, 5, 1, int(when.timestamp()))  # exact UTC time, as Moodle writes it
    return info


def _folders(download, notebooks: dict) -> object:
    """A folder-per-student download of these notebooks."""
    for student, nb in notebooks.items():
        (download / student).mkdir(parents=True)
        nbformat.write(nb, download / student / "ps1.ipynb")
    return download


def _collect_and_grade(course_dir, capsys, *downloads) -> str:
    """collect every download into ps1, then autograde; autograde's summary."""
    for download in downloads:
        assert main(["collect", "--course", str(course_dir), "ps1", str(download)]) == 0
    capsys.readouterr()
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    return capsys.readouterr().out


def _fix_test(course_dir, grade_id: str, old: str, new: str, assignment: str = "ps1") -> None:
    """The instructor edits a test cell of the source (replacing ``old`` by ``new``); not released yet."""
    source_path = course_dir / "source" / assignment / f"{assignment}.ipynb"
    source = nbformat.read(source_path, as_version=4)
    cell = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert old in cell.source
    cell.source = cell.source.replace(old, new)
    nbformat.write(source, source_path)


def _utc(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=dt.timezone.utc)


def test_late_work_extensions_and_a_pdf_agree_in_summary_gradebook_export_and_report(course_dir, tmp_path, capsys):
    with open(course_dir / "nbgrader_config.py", "a") as config:
        config.write('\nc.Deadlines.due = {"ps1": "2026-12-01 23:59 UTC"}\n'
                     'c.Deadlines.extensions = {"ps1": {"44": "2 days"}}\n'
                     'c.LateSubmissionPlugin.penalty_method = "zero"\n')
    notebook = nbformat.writes(_answered(course_dir, CORRECT))
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as archive:
        archive.writestr(_entry("Ann Lee_42_assignsubmission_file_/ps1.ipynb", _utc(1, 22)), notebook)
        archive.writestr(_entry("Bo Chen_43_assignsubmission_file_/ps1.ipynb", _utc(2, 10)), notebook)
        archive.writestr(_entry("Cy Diaz_44_assignsubmission_file_/ps1.ipynb", _utc(2, 10)), notebook)
        archive.writestr(_entry("Di Evans_45_assignsubmission_file_/answers.pdf", _utc(1, 20)), b"%PDF-1.4")
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.writestr("foxeli_LATE_101_9001_ps1.ipynb", notebook)
        archive.writestr("grayfin_102_9002_ps1.ipynb", notebook)
    assert main(["collect", "--course", str(course_dir), "ps1", str(moodle)]) == 0
    assert "45: answers.pdf is not a notebook, kept, not graded (no notebook: missing, wrong file type uploaded)" \
        in capsys.readouterr().out
    summary = _collect_and_grade(course_dir, capsys, canvas)
    assert "43/ps1: late by 10 h 1 min; late penalty 5 point(s)" in summary
    assert "101/ps1: late (marked by Canvas, which does not say by how much); late penalty 5 point(s)" in summary
    assert "42/ps1:" not in summary and "44/ps1:" not in summary and "102/ps1:" not in summary
    assert "45/ps1/ps1: missing: missing, wrong file type uploaded (answers.pdf)" in summary

    # nbgrader's gradebook holds the same: due date, extension, time, and its own late penalty.
    course = open_course(course_dir)
    with course.gradebook() as gradebook:
        assert gradebook.find_assignment("ps1").duedate == dt.datetime(2026, 12, 1, 23, 59)
        late = {s: gradebook.find_submission("ps1", s) for s in ("42", "43", "44", "101", "102")}
        assert late["43"].total_seconds_late == 10 * 3600 + 60 and late["43"].late_submission_penalty == MAX_SCORE
        assert late["44"].extension == dt.timedelta(days=2) and late["44"].total_seconds_late == 0
        assert late["44"].late_submission_penalty == 0 and late["42"].late_submission_penalty == 0
        assert late["101"].late_submission_penalty == MAX_SCORE and late["102"].late_submission_penalty == 0
        assert late["101"].timestamp is None  # Canvas's download does not say when

    output = tmp_path / "grades.csv"
    assert main(["export", "--course", str(course_dir), "-o", str(output)]) == 0
    rows = {row["student"]: row for row in csv.DictReader(output.open())}
    assert (rows["42"]["ps1"], rows["43"]["ps1"], rows["44"]["ps1"], rows["101"]["ps1"]) == ("5", "0", "5", "0")
    assert "ps1: late by 10 h 1 min, late penalty 5" in rows["43"]["notes"]
    assert rows["45"]["ps1"] == "0" and "ps1: missing, wrong file type uploaded (answers.pdf)" in rows["45"]["notes"]

    assert main(["report", "--course", str(course_dir)]) == 0
    report = (course_dir / "reports" / "ps1.md").read_text()
    assert "- 43: late by 10 h 1 min, late penalty 5" in report
    assert r"- 45 / ps1: missing, wrong file type uploaded \(answers.pdf\)" in report  # Markdown-escaped
    assert "- 44:" not in report

    # A changed deadline is a regrade, without --force: the extension now covers Bo too.
    with open(course_dir / "nbgrader_config.py", "a") as config:
        config.write('c.Deadlines.extensions = {"ps1": {"44": "2 days", "43": "1 day"}}\n')
    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert "43/ps1: late" not in capsys.readouterr().out
    with open_course(course_dir).gradebook() as gradebook:
        assert gradebook.find_submission("ps1", "43").late_submission_penalty == 0


def test_a_test_fixed_after_release_is_not_a_students_edit_and_one_command_regrades_the_class(course_dir, tmp_path,
                                                                                                capsys):
    from fixture_course import WRONG
    from grader.authoring.release import generate

    started = {"early": _answered(course_dir, CORRECT), "editor": _answered(course_dir, CORRECT)}
    for cell in started["editor"].cells:  # a student who weakened a visible test
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test-make-leaf":
            cell.source = "pass"
    # The instructor fixes the visible test of square-grad and releases again.
    _fix_test(course_dir, "test-square-grad", "checks.close(square_grad(3.0), 6.0)",
              "checks.close(square_grad(-1.5), -3.0)")
    generate(open_course(course_dir), "ps1")
    started["late-starter"] = _answered(course_dir, dict(CORRECT, **{"square-grad": WRONG["square-grad"]}))
    summary = _collect_and_grade(course_dir, capsys, _folders(tmp_path / "download", started))
    assert "flagged editor/ps1/ps1: test cell test-make-leaf was edited" in summary
    assert "flagged early" not in summary and "flagged late-starter" not in summary
    from grader.records import SubmissionRecord, record_path

    course = open_course(course_dir)
    early = SubmissionRecord.load(record_path(course, "ps1", "early")).notebooks["ps1"]
    assert early.score == MAX_SCORE and not early.flags
    assert SubmissionRecord.load(record_path(course, "ps1", "late-starter")).notebooks["ps1"].score == MAX_SCORE - 2
    graded = nbformat.read(course.autograded / "early" / "ps1" / "ps1.ipynb", as_version=4)
    assert "square_grad(-1.5)" in next(c.source for c in graded.cells  # graded with the fixed test
                                       if c.metadata.get("nbgrader", {}).get("grade_id") == "test-square-grad")

    # Fixing a hidden test once more: release, then one autograde regrades the whole class with it.
    _fix_test(course_dir, "test-square-grad", "_rng.uniform(-5, 5, 4)", "_rng.uniform(-5, 5, 6)")
    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress", "ps1"]) == 0
    summary = capsys.readouterr().out  # not released yet: said, and nothing regraded
    assert "warning: tests of ps1 in source/ differ from the released ones (ps1/test-square-grad)" in summary
    assert "3 submission(s) unchanged since last graded" in summary
    assert main(["release", "--course", str(course_dir), "--no-check", "ps1"]) == 0
    capsys.readouterr()
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress", "ps1"]) == 0
    summary = capsys.readouterr().out
    assert "3 notebook(s) of 3 submission(s)" in summary and "unchanged since last graded" not in summary
    assert "tests changed since last graded: ps1/ps1 (test-square-grad); 3 submission(s) regraded" in summary
    assert "flagged early" not in summary and "differ from the released ones" not in summary


def _nbgrader(*args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True)


def test_through_nbgraders_exchange_stock_autograde_is_refused_and_feedback_is_released(course_dir, tmp_path):
    import getpass

    course = open_course(course_dir)
    exchange = ["--course", "autograd-lab", f"--Exchange.root={course_dir / 'exchange'}"]
    assert course.api().release_assignment("ps1")["success"]
    student_dir = tmp_path / "student"
    student_dir.mkdir()
    fetched = _nbgrader("fetch_assignment", "ps1", *exchange, cwd=student_dir)
    assert fetched.returncode == 0, fetched.stderr
    nbformat.write(_answered(course_dir, CORRECT), student_dir / "ps1" / "ps1.ipynb")
    submitted = _nbgrader("submit", "ps1", *exchange, cwd=student_dir)
    assert submitted.returncode == 0, submitted.stderr
    assert course.api().collect("ps1")["success"]
    student = getpass.getuser()
    assert (course.submitted / student / "ps1" / "timestamp.txt").exists()

    # Stock autograde (the command line and formgrader's button) stops before it touches anything.
    refused = _nbgrader("autograde", "ps1", "--force", cwd=course_dir)
    assert refused.returncode == 1 and "python -m grader autograde" in refused.stdout + refused.stderr
    button = course.api().autograde("ps1", student, force=True)
    assert not button["success"] and "python -m grader autograde" in button["log"]
    assert not course.autograded.exists()

    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert main(["feedback", "--course", str(course_dir)]) == 0
    page = (course.feedback / student / "ps1" / "ps1.html").read_text()
    button = course.api().generate_feedback("ps1", student, force=True)  # formgrader's Generate Feedback
    assert not button["success"] and "python -m grader feedback" in button["log"]
    assert (course.feedback / student / "ps1" / "ps1.html").read_text() == page  # the safe page is kept

    released = _nbgrader("release_feedback", "ps1", *exchange, cwd=course_dir)  # nbgrader's command line
    assert released.returncode == 0 and "Traceback" not in released.stderr, released.stderr
    assert len(list((course_dir / "exchange" / "autograd-lab" / "feedback").glob("*.html"))) == 1
    released = course.api().release_feedback("ps1", student)  # formgrader's Release Feedback, again
    assert released["success"], released.get("log")
    got = _nbgrader("fetch_feedback", "ps1", *exchange, cwd=student_dir)
    assert got.returncode == 0, got.stderr
    pages = list((student_dir / "ps1" / "feedback").glob("*/ps1.html"))
    assert len(pages) == 1 and pages[0].read_text() == page
    assert "BEGIN HIDDEN TESTS" not in page


@pytest.fixture(scope="module")
def postgres():
    from postgres import server_programs, throwaway_server

    if server_programs() is None:
        pytest.skip("PostgreSQL is not installed (on Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the psycopg driver (pyproject.toml's postgres extra) is not installed")
    with throwaway_server() as make_database:
        yield make_database


def test_the_whole_workflow_on_the_gradebook_db_url_configures_postgresql(course_dir, tmp_path, postgres, capsys):
    from nbgrader.api import Gradebook
    from grader.authoring.release import generate

    url = postgres("term")
    (course_dir / "gradebook.db").unlink()
    with open(course_dir / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {url!r}\n")
    course = open_course(course_dir)
    assert course.db_url == url
    generate(course, "ps1")  # nbgrader's generate_assignment writes the same gradebook
    from fixture_course import WRONG

    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.writestr("doejane_101_9001_ps1.ipynb", nbformat.writes(_answered(course_dir, CORRECT)))
        archive.writestr("roesam_102_9002_ps1.ipynb", nbformat.writes(_answered(course_dir, WRONG)))
        archive.writestr("kimlee_103_9003_ps1.pdf", b"%PDF-1.4")
    for command in (["collect", "ps1", str(canvas)], ["autograde", "--workers", "2", "--no-progress"],
                    ["feedback"], ["export", "-o", str(tmp_path / "grades.csv")], ["report"]):
        assert main([command[0], "--course", str(course_dir), *command[1:]]) == 0, command
    with Gradebook(url, course_id="autograd-lab") as gradebook:  # what formgrader reads
        scores = {s.student.id: s.score for s in gradebook.find_assignment("ps1").submissions}
        assert scores == {"101": MAX_SCORE, "102": 0.0, "103": 0.0}
    rows = {row["student"]: row for row in csv.DictReader((tmp_path / "grades.csv").open())}
    assert rows["101"]["ps1"] == "5" and "wrong file type" in rows["103"]["notes"]
    assert (course_dir / "feedback" / "101" / "ps1" / "ps1.html").exists()
    assert not (course_dir / "gradebook.db").exists()  # nothing went to a SQLite file beside the course


def test_an_unreachable_gradebook_server_is_a_clear_error(course_dir, capsys):
    with open(course_dir / "nbgrader_config.py", "a") as config:
        config.write("\nc.CourseDirectory.db_url = 'postgresql+psycopg://grader:secret@/nowhere?host=/nonexistent'\n")
    assert main(["export", "--course", str(course_dir)]) == 1
    err = capsys.readouterr().err
    assert "cannot open the gradebook at postgresql+psycopg://grader:***@/nowhere" in err
    assert "c.CourseDirectory.db_url" in err and "secret" not in err


#: The columns each LMS's grade import matches on (Canvas: "Importing grades", the gradebook export's layout;
#: Moodle: "Import grades from CSV", mapping a column to the user's email address).
CANVAS_IMPORT = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
#: Moodle's "Import grades from CSV" identifies each row by one column mapped to a user field (its mapping form:
#: userid, username, useridnumber, useremail); a grade cell must be a number, or empty or "-" for no grade.
MOODLE_USER_COLUMNS = {"Email address": "useremail", "ID number": "useridnumber"}


def test_exports_carry_what_each_lms_import_matches_on(course_dir, tmp_path, capsys):
    from fixture_course import WRONG

    right, wrong = (nbformat.writes(_answered(course_dir, a)) for a in (CORRECT, WRONG))
    canvas_roster = tmp_path / "canvas-gradebook.csv"
    canvas_roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,ps1 (5551)\n"
                             "    Points Possible,,,,,5\n" '"Doe, Jane",101,,jdoe,A,\n' '"Roe, Sam",102,,sroe,A,\n')
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.writestr("doejane_101_9001_ps1.ipynb", right)
        archive.writestr("roesam_102_9002_ps1.ipynb", wrong)
    assert main(["collect", "--course", str(course_dir), "--roster", str(canvas_roster), "ps1", str(canvas)]) == 0
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "canvas.csv"
    assert main(["export", "--course", str(course_dir), "--format", "canvas", "--roster", str(canvas_roster),
                 "-o", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == [*CANVAS_IMPORT, "ps1 (5551)"]  # Canvas updates its existing assignment 5551
    assert rows[1][:1] == ["Points Possible"] and rows[1][5] == "5"
    assert {row[1]: (row[0], row[5]) for row in rows[2:]} == {"101": ("Jane Doe", "5"), "102": ("Sam Roe", "0")}

    # Moodle: the same person is one student whatever their participant id; the export carries the email.
    moodle_course = tmp_path / "moodle-course"
    import shutil

    shutil.copytree(course_dir, moodle_course, ignore=shutil.ignore_patterns("submitted", "autograded", ".grader*"))
    (moodle_course / "gradebook.db").unlink()
    from grader.authoring.release import generate

    generate(open_course(moodle_course), "ps1")
    participants = moodle_course / "participants.csv"
    participants.write_text("First name,Last name,ID number,Email address\nAnn,Lee,A-1,ann@uni.example\n"
                            "Bo,Chen,,bo@uni.example\nCy,Diaz,A-3,cy@uni.example\n")
    with open(moodle_course / "nbgrader_config.py", "a") as config:
        config.write('\nc.Roster.file = "participants.csv"\n')
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as archive:
        archive.writestr("Ann Lee_42_assignsubmission_file_/ps1.ipynb", right)
        archive.writestr("Bo Chen_43_assignsubmission_file_/ps1.ipynb", wrong)
    assert main(["collect", "--course", str(moodle_course), "ps1", str(moodle)]) == 0
    assert main(["autograde", "--course", str(moodle_course), "--workers", "2", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "moodle.csv"
    assert main(["export", "--course", str(moodle_course), "--format", "moodle", "-o", str(out)]) == 0
    assert "needs attention" not in capsys.readouterr().err
    table = list(csv.DictReader(out.open()))
    assert {row["Email address"]: (row["ID number"], row["Full name"], row["ps1"]) for row in table} == {
        "ann@uni.example": ("A-1", "Ann Lee", "5"), "bo@uni.example": ("", "Bo Chen", "0")}
    assert main(["report", "--course", str(moodle_course)]) == 0  # the roster lists who handed in nothing
    assert r"- cy@uni.example \(Cy Diaz\) / —: no submission" in (moodle_course / "reports" / "ps1.md").read_text()


def test_the_summary_and_report_name_exercises_blank_notebooks_misspellings_and_common_mistakes(course_dir, tmp_path,
                                                                                                 capsys):
    from fixture_course import WRONG, _student_version

    misspelled = dict(CORRECT)
    class_ = {"blank": _student_version(course_dir), "right": _answered(course_dir, CORRECT),
              "sign": _answered(course_dir, dict(CORRECT, **{"norm-grad": WRONG["norm-grad"]})),
              "sign2": _answered(course_dir, dict(CORRECT, **{"norm-grad": WRONG["norm-grad"]})),
              "typo": _answered(course_dir, misspelled),
              "loops": _answered(course_dir, dict(CORRECT, **{"make-leaf": "while True:\n        pass"}))}
    for cell in class_["typo"].cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "square-grad":
            cell.source = cell.source.replace("def square_grad(", "def sqare_grad(")
    summary = _collect_and_grade(course_dir, capsys, _folders(tmp_path / "download", class_))
    assert "blank/ps1/ps1: blank, no exercise attempted" in summary
    assert "typo/ps1/ps1: test-square-grad: misspelled: sqare_grad defined, square_grad expected" in summary
    assert "right/ps1/ps1: blank" not in summary
    timeout = next(line for line in summary.splitlines() if "loops/ps1/ps1: timeout" in line)
    assert "(test-make-leaf) ran longer" in timeout  # the exercise, not only a cell number

    assert main(["report", "--course", str(course_dir)]) == 0
    report = (course_dir / "reports" / "ps1.md").read_text()
    norm = next(line for line in report.splitlines() if line.startswith("| test-norm-grad |"))
    # 6 notebooks: right, typo and loops pass; sign and sign2 flip the sign; blank did not attempt it.
    assert "| 3/6 | 50% | 2 | 1 |" in norm and "sign" in norm and "(33%)" in norm
    leaf = next(line for line in report.splitlines() if line.startswith("| test-make-leaf |"))
    assert "| 4/6 | 67% | 1 | 1 |" in leaf


def test_release_prints_no_kernel_transport_warnings(course_dir, capfd):
    assert main(["release", "--course", str(course_dir), "ps1"]) == 0
    out, err = capfd.readouterr()
    assert "checked ps1/ps1: ok" in out
    assert "TCP" not in out + err and "WARNING" not in out + err


def test_autograde_without_arguments_grades_what_has_submissions_and_counts_skipped_work(course_dir, tmp_path,
                                                                                        capsys):
    import shutil

    from grader.autograde.run import Autograder

    shutil.copytree(course_dir / "source" / "ps1", course_dir / "source" / "ps9")  # written, never released
    summary = _collect_and_grade(course_dir, capsys, _folders(tmp_path / "download", {
        "ann": _answered(course_dir, CORRECT), "bo": _answered(course_dir, CORRECT)}))
    assert "2 notebook(s) of 2 submission(s)" in summary
    again = Autograder(open_course(course_dir), workers=1, report=lambda _: None)
    assert again.run().skipped == 2
    assert (again._bar.n, again._bar.total) == (2, 2)  # skipped work moves the bar too


def test_release_puts_the_due_date_in_the_gradebook_and_refuses_a_mistyped_one(course_dir, capsys):
    config = course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.Deadlines.due = {"ps1": "2026-12-01 23:59 Europe/Berlin"}\n')
    assert main(["release", "--course", str(course_dir), "--no-check", "ps1"]) == 0
    assert "due 2026-12-01 22:59 UTC" in capsys.readouterr().out
    with open_course(course_dir).gradebook() as gradebook:
        assert gradebook.find_assignment("ps1").duedate == dt.datetime(2026, 12, 1, 22, 59)
    config.write_text(config.read_text() + '\nc.Deadlines.due = {"ps1": "Dec 1st"}\n')
    assert main(["release", "--course", str(course_dir), "--no-check", "ps1"]) == 1
    assert "Europe/Berlin" in capsys.readouterr().err


def test_a_term_replayed_canvas_roster_late_extended_pdf_fixed_test_feedback_released(course_dir, tmp_path,
                                                                                         capsys):
    """One assignment's term on Canvas, as an instructor lives it (Moodle's: the term replayed on Moodle, below)."""
    from fixture_course import WRONG
    from grader.authoring.release import generate

    config = course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.Deadlines.due = {"ps1": "2026-12-01 23:59 America/New_York"}\n'
                      'c.Deadlines.extensions = {"ps1": {"103": "3 days"}}\n'
                      'c.LateSubmissionPlugin.penalty_method = "zero"\nc.Roster.file = "roster.csv"\n')
    (course_dir / "roster.csv").write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Problem set 1 (7001)\n    Points Possible,,,,,5\n"
        + "".join(f'"{last}, {first}",{uid},,{login},A,\n' for last, first, uid, login in [
            ("Doe", "Jane", 101, "jdoe"), ("Roe", "Sam", 102, "sroe"), ("Poe", "Edgar", 103, "epoe"),
            ("Loe", "Kim", 104, "kloe"), ("Moe", "Ira", 105, "imoe")]))
    config.write_text(config.read_text() + 'c.Roster.columns = {"ps1": "Problem set 1 (7001)"}\n')
    right, wrong = (nbformat.writes(_answered(course_dir, a)) for a in (CORRECT, WRONG))
    canvas = tmp_path / "submissions.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.writestr("doejane_101_9001_ps1.ipynb", right)
        archive.writestr("roesam_LATE_102_9002_ps1.ipynb", right)
        archive.writestr("poeedgar_LATE_103_9003_Copy of ps1.ipynb", wrong)
        archive.writestr("loekim_104_9004_ps1.pdf", b"%PDF-1.4")
    summary = _collect_and_grade(course_dir, capsys, canvas)
    assert "102/ps1: late (marked by Canvas, which does not say by how much); late penalty 5 point(s)" in summary
    assert "103/ps1: marked late by Canvas, not penalised: the extension of 3 d given here" in summary
    assert "104/ps1/ps1: missing: missing, wrong file type uploaded (ps1.pdf)" in summary

    # A test fixed after release: one release and one autograde; no one is flagged for the course's change.
    _fix_test(course_dir, "test-norm-grad", "np.array([1.0, 2.0, 3.0])", "np.array([1.0, -2.0, 0.5])")
    generate(open_course(course_dir), "ps1")
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "tests changed since last graded: ps1/ps1 (test-norm-grad); 4 submission(s) regraded" in summary
    assert "flagged" not in summary

    # Feedback, released through nbgrader's exchange (what formgrader's button does).
    assert main(["feedback", "--course", str(course_dir)]) == 0
    course = open_course(course_dir)
    assert course.api().release_feedback("ps1")["success"]
    released = list((course_dir / "exchange" / "autograd-lab" / "feedback").glob("*.html"))
    assert len(released) == 4  # 101, 102, 103 and the page that says 104's notebook is missing

    # Canvas import: its columns, the existing assignment's header, rows by Canvas user id, penalties applied.
    out = tmp_path / "canvas.csv"
    assert main(["export", "--course", str(course_dir), "--format", "canvas", "-o", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == [*CANVAS_IMPORT, "Problem set 1 (7001)"]
    assert {row[1]: (row[0], row[5]) for row in rows[2:]} == {
        "101": ("Jane Doe", "5"), "102": ("Sam Roe", "0"), "103": ("Edgar Poe", "0"), "104": ("Kim Loe", "0")}
    assert main(["report", "--course", str(course_dir)]) == 0
    report = (course_dir / "reports" / "ps1.md").read_text()
    assert r"- 105 \(Ira Moe\) / —: no submission" in report
    assert r"- 104 / ps1: missing, wrong file type uploaded \(ps1.pdf\)" in report
    assert "- 102: late" in report and "- 103: marked late by Canvas, not penalised" in report


def test_fixing_one_test_or_an_extension_keeps_the_other_exercises_hidden_inputs(course_dir, tmp_path, capsys):
    from grader.authoring.release import generate

    hard_coded = dict(CORRECT, **{"square-grad": "return 6.0 if x == 3.0 else 0.0"})  # passes the visible test only
    _collect_and_grade(course_dir, capsys, _folders(tmp_path / "download", {"ann": _answered(course_dir, hard_coded)}))
    course = open_course(course_dir)

    def hidden_failure() -> str:
        graded = nbformat.read(course.autograded / "ann" / "ps1" / "ps1.ipynb", as_version=4)
        cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-square-grad")
        return next(o.evalue for o in cell.outputs if o.output_type == "error")

    before = hidden_failure()
    _fix_test(course_dir, "test-norm-grad", "np.array([1.0, 2.0, 3.0])", "np.array([1.0, -2.0, 0.5])")
    generate(course, "ps1")
    config = course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.Deadlines.extensions = {"ps1": {"ann": "1 day"}}\n')
    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert "1 submission(s) regraded" in capsys.readouterr().out
    assert hidden_failure() == before  # regraded, on the same hidden inputs for square-grad


def test_one_command_regrades_one_exercise_across_the_class_and_says_whose_score_moved(course_dir, tmp_path,
                                                                                        capsys):
    """A test released with a mistake, graded, then fixed in source/: `regrade` releases the fix and regrades."""
    from fixture_course import WRONG
    from grader.authoring.release import generate
    from grader.autograde.jobs import gradebook_tests, test_digests
    from grader.records import load_record

    # Released and graded with a wrong expected derivative (2x + 1): the wrong answer passes, the right one fails.
    _fix_test(course_dir, "test-square-grad", "checks.close(square_grad(3.0), 6.0)",
              "checks.close(square_grad(3.0), 7.0)")
    _fix_test(course_dir, "test-square-grad", "lambda x: 2 * x,", "lambda x: 2 * x + 1,")
    generate(open_course(course_dir), "ps1")
    hard_coded = dict(CORRECT, **{"square-grad": "return 6.0 if x == 3.0 else 0.0"})
    class_ = {"right": _answered(course_dir, CORRECT),
              "wrong": _answered(course_dir, dict(CORRECT, **{"square-grad": WRONG["square-grad"]})),
              "hard": _answered(course_dir, hard_coded)}
    _collect_and_grade(course_dir, capsys, _folders(tmp_path / "download", class_))
    course = open_course(course_dir)

    def scores() -> dict[str, float]:
        with course.gradebook() as gradebook:
            return {s.student.id: s.score for s in gradebook.find_assignment("ps1").submissions}

    def graded_test(student: str) -> str:  # the test-square-grad cell of the student's graded notebook
        graded = nbformat.read(course.autograded / student / "ps1" / "ps1.ipynb", as_version=4)
        cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-square-grad")
        return cell.source

    assert scores() == {"right": 3.0, "wrong": 5.0, "hard": 3.0}

    # The instructor fixes the test in source/. Without releasing, regrade says exactly what to run.
    _fix_test(course_dir, "test-square-grad", "checks.close(square_grad(3.0), 7.0)",
              "checks.close(square_grad(3.0), 6.0)")
    _fix_test(course_dir, "test-square-grad", "lambda x: 2 * x + 1,", "lambda x: 2 * x,")
    command = ["regrade", "--course", str(course_dir), "--workers", "2", "--no-progress", "ps1", "test-square-grad"]
    assert main([*command, "--no-release"]) == 1
    assert "run `python -m grader release ps1`, then `python -m grader regrade ps1 test-square-grad`" \
        in capsys.readouterr().err
    assert scores() == {"right": 3.0, "wrong": 5.0, "hard": 3.0}
    assert main(["regrade", "--course", str(course_dir), "ps1", "test-nothing"]) == 1
    assert "ps1 has no test cell 'test-nothing'; its tests: test-make-leaf, test-norm-grad, test-square-grad" \
        in capsys.readouterr().err

    # A submission that arrived since is graded too (with nothing to compare).
    newcomer = _folders(tmp_path / "download2", {"newcomer": _answered(course_dir, CORRECT)})
    assert main(["collect", "--course", str(course_dir), "ps1", str(newcomer)]) == 0

    # One command: released (and checked), regraded, and what moved.
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "the test test-square-grad in source/ differs from the released one: releasing ps1" in out
    assert "checked ps1/ps1: ok" in out
    assert "test-square-grad of ps1/ps1 regraded with the current test for 4 submission(s)" in out
    assert "scores moved for 2 student(s): 1 up, 1 down; 1 unchanged; 1 graded for the first time" in out
    assert "  right: 0 → 2" in out and "  wrong: 2 → 0" in out and "  hard:" not in out and "  newcomer:" not in out
    assert "other exercises' scores moved" not in out and "flagged" not in out
    assert scores() == {"right": 5.0, "wrong": 3.0, "hard": 3.0, "newcomer": 5.0}  # the gradebook formgrader reads

    # Records and graded notebooks agree with it: graded with the fixed test, a later autograde skips them.
    with course.gradebook() as gradebook:
        digest = test_digests(gradebook_tests(gradebook, {"ps1"}), "ps1")["ps1/test-square-grad"]
    for student, passed in {"right": True, "wrong": False, "hard": False}.items():
        record = load_record(course, "ps1", student)
        assert record.tests["ps1/test-square-grad"] == digest
        assert record.notebooks["ps1"].tests["test-square-grad"] is passed
        assert "checks.close(square_grad(3.0), 6.0)" in graded_test(student)
    assert load_record(course, "ps1", "right").notebooks["ps1"].score == 5.0
    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert "4 submission(s) unchanged since last graded" in capsys.readouterr().out

    # Run again: nothing left to regrade.
    assert main(command) == 0
    assert "every submission of ps1 (4) is already graded with the current test-square-grad" in \
        capsys.readouterr().out


def test_a_corrected_release_merged_into_a_started_notebook_keeps_the_answers_and_grades_unflagged(course_dir,
                                                                                                   tmp_path, capsys):
    import json

    from nbformat.v4 import new_code_cell

    from grader.authoring.release import generate

    started = _answered(course_dir, CORRECT)  # from the first release
    started.cells.insert(3, new_code_cell("square_grad(2.0)  # trying it"))
    path = tmp_path / "Copy of ps1.ipynb"
    nbformat.write(started, path)
    _fix_test(course_dir, "test-square-grad", "checks.close(square_grad(3.0), 6.0)",
              "checks.close(square_grad(-1.5), -3.0)")
    _fix_test(course_dir, "intro", "Three small exercises.", "Three small exercises on derivatives.")
    generate(open_course(course_dir), "ps1")

    merged_path = tmp_path / "merged" / "ps1.ipynb"
    assert main(["merge", "--course", str(course_dir), "ps1", str(path), "-o", str(merged_path)]) == 0
    assert "merged into release/ps1/ps1.ipynb" in capsys.readouterr().out
    merged = nbformat.read(merged_path, as_version=4)
    release = nbformat.read(course_dir / "release" / "ps1" / "ps1.ipynb", as_version=4)
    by_id = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in merged.cells}
    assert by_id["test-square-grad"] == next(c.source for c in release.cells  # the course's fixed test
                                             if c.metadata.get("nbgrader", {}).get("grade_id") == "test-square-grad")
    assert "on derivatives" in by_id["intro"]
    for grade_id, answer in CORRECT.items():  # the answers as the student wrote them
        assert answer in by_id[grade_id]
    sources = [cell.source for cell in merged.cells]
    assert sources.index("square_grad(2.0)  # trying it") == 3  # their own cell, where they put it
    assert len(merged.cells) == len(release.cells) + 1

    # Graded: full marks, and no one is flagged for the course's corrections.
    (tmp_path / "download" / "ann").mkdir(parents=True)
    merged_path.rename(tmp_path / "download" / "ann" / "ps1.ipynb")
    summary = _collect_and_grade(course_dir, capsys, tmp_path / "download")
    assert "flagged" not in summary
    with open_course(course_dir).gradebook() as gradebook:
        assert gradebook.find_submission("ps1", "ann").score == MAX_SCORE

    assert main(["merge", "--course", str(course_dir), "ps1", str(tmp_path / "nothing.ipynb"), "-o",
                 str(tmp_path / "out.ipynb")]) == 1
    assert "cannot read" in capsys.readouterr().err
    for cell in started.cells:  # saved by a tool older than nbformat 4.5: no cell ids to match by
        cell.pop("id", None)
    path.write_text(json.dumps({**started, "nbformat_minor": 4}))
    assert main(["merge", "--course", str(course_dir), "ps1", str(path), "-o", str(tmp_path / "out.ipynb")]) == 1
    assert "cells without ids" in capsys.readouterr().err and not (tmp_path / "out.ipynb").exists()


def _moodle_import(path, users: dict[str, str], items: list[str]) -> dict[tuple[str, str], float | None]:
    """What Moodle's "Import grades from CSV" does with the file (grade/import/csv/classes/load_data.php), with
    "Email address" mapped to the user's email and ``items`` to grade items: (user, item) → grade. ``users``: the
    course's participants, email → name. Stops where Moodle's import would abort (or silently misfile a row)."""
    header, *lines = list(csv.reader(path.open(encoding="utf-8")))
    assert set(MOODLE_USER_COLUMNS) <= set(header), header
    email, grades = header.index("Email address"), {}
    for line in lines:
        assert line[email].strip(), f"a row without a user: Moodle gives its grades to the row before ({line})"
        assert line[email] in users, f"Moodle aborts the import: no user with email address {line[email]!r}"
        for item in items:
            value = line[header.index(item)].strip()
            assert value in ("", "-") or float(value) is not None, f"Moodle aborts: bad grade {value!r}"
            grades[(line[email], item)] = None if value in ("", "-") else float(value)
    return grades


def test_a_term_replayed_on_moodle_two_assignments_roster_late_extended_pdf_fixed_test_feedback_released(
        course_dir, tmp_path, capsys):
    """Moodle's side of the term: participant ids that differ per assignment, file times, the roster, the import."""
    import shutil

    from fixture_course import WRONG
    from grader.authoring.release import generate

    shutil.copytree(course_dir / "source" / "ps1", course_dir / "source" / "ps2")
    (course_dir / "source" / "ps2" / "ps1.ipynb").rename(course_dir / "source" / "ps2" / "ps2.ipynb")
    generate(open_course(course_dir), "ps2")
    config = course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.Deadlines.due = {"ps1": "2026-12-01 23:59 UTC", '
                      '"ps2": "2026-12-08 23:59 UTC"}\n'
                      'c.Deadlines.extensions = {"ps2": {"cy@uni.example": "2 days"}}\n'
                      'c.LateSubmissionPlugin.penalty_method = "zero"\nc.Roster.file = "participants.csv"\n')
    people = {"ann@uni.example": "Ann Lee", "bo@uni.example": "Bo Chen", "cy@uni.example": "Cy Diaz",
              "di@uni.example": "Di Evans", "ed@uni.example": "Ed Fox"}
    (course_dir / "participants.csv").write_text(  # Moodle's participants export
        "First name,Last name,ID number,Email address\nAnn,Lee,A-1,ann@uni.example\nBo,Chen,,bo@uni.example\n"
        "Cy,Diaz,A-3,cy@uni.example\nDi,Evans,A-4,di@uni.example\nEd,Fox,A-5,ed@uni.example\n")
    right, wrong = (nbformat.writes(_answered(course_dir, a)) for a in (CORRECT, WRONG))
    downloads = {}
    for assignment, entries in {  # (participant id: a new one per assignment, as Moodle numbers them)
            "ps1": [("Ann Lee_42", "ps1.ipynb", right, _utc(1, 20)), ("Bo Chen_43", "ps1.ipynb", wrong, _utc(1, 21)),
                    ("Cy Diaz_44", "ps1.ipynb", right, _utc(2, 10)),
                    ("Di Evans_45", "answers.pdf", b"%PDF", _utc(1, 9))],
            "ps2": [("Ann Lee_71", "ps2.ipynb", right, _utc(8, 20)), ("Bo Chen_72", "ps2.ipynb", right, _utc(9, 12)),
                    ("Cy Diaz_73", "Copy of ps2.ipynb", right, _utc(9, 12)), ("Di Evans_74", "ps2.ipynb", wrong,
                                                                              _utc(8, 1))]}.items():
        downloads[assignment] = tmp_path / f"{assignment}-moodle.zip"
        with zipfile.ZipFile(downloads[assignment], "w") as archive:
            for folder, name, data, when in entries:
                archive.writestr(_entry(f"{folder}_assignsubmission_file_/{name}", when), data)
        assert main(["collect", "--course", str(course_dir), assignment, str(downloads[assignment])]) == 0
    assert "answers.pdf is not a notebook" in capsys.readouterr().out
    course = open_course(course_dir)
    # One student per person across both assignments, whatever the participant id: their email.
    assert sorted(p.name for p in course.submitted.iterdir()) == sorted(people)[:4]
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "cy@uni.example/ps1: late by 10 h 1 min; late penalty 5 point(s)" in summary
    assert "bo@uni.example/ps2: late by 12 h 1 min; late penalty 5 point(s)" in summary
    assert "cy@uni.example/ps2:" not in summary  # covered by the extension: not late
    assert "di@uni.example/ps1/ps1: missing: missing, wrong file type uploaded (answers.pdf)" in summary

    # A test of ps2 fixed after release: one command releases it and regrades the class with it.
    _fix_test(course_dir, "test-norm-grad", "np.array([1.0, 2.0, 3.0])", "np.array([1.0, -2.0, 0.5])", "ps2")
    assert main(["regrade", "--course", str(course_dir), "--workers", "2", "--no-progress", "ps2",
                 "test-norm-grad"]) == 0
    out = capsys.readouterr().out
    assert "test-norm-grad of ps2/ps2 regraded with the current test for 4 submission(s)" in out
    assert "scores moved for 0 student(s): 0 up, 0 down; 4 unchanged" in out  # a right test made righter
    assert "flagged" not in out

    # Feedback, released through nbgrader's exchange.
    assert main(["feedback", "--course", str(course_dir)]) == 0
    for assignment in ("ps1", "ps2"):
        assert course.api().release_feedback(assignment)["success"]
    assert len(list((course_dir / "exchange" / "autograd-lab" / "feedback").glob("*.html"))) == 8

    # Moodle's import: the rows it matches by email, the grades as the gradebook has them after penalties.
    out = tmp_path / "moodle.csv"
    assert main(["export", "--course", str(course_dir), "--format", "moodle", "-o", str(out)]) == 0
    assert "needs attention" not in capsys.readouterr().err
    grades = _moodle_import(out, people, ["ps1", "ps2"])
    assert grades == {
        ("ann@uni.example", "ps1"): 5.0, ("bo@uni.example", "ps1"): 0.0, ("cy@uni.example", "ps1"): 0.0,
        ("di@uni.example", "ps1"): 0.0, ("ann@uni.example", "ps2"): 5.0, ("bo@uni.example", "ps2"): 0.0,
        ("cy@uni.example", "ps2"): 5.0, ("di@uni.example", "ps2"): 0.0}
    table = {row["Email address"]: row for row in csv.DictReader(out.open())}
    assert (table["ann@uni.example"]["ID number"], table["bo@uni.example"]["ID number"]) == ("A-1", "")
    assert main(["report", "--course", str(course_dir)]) == 0
    report = (course_dir / "reports" / "ps2.md").read_text()
    assert r"- ed@uni.example \(Ed Fox\) / —: no submission" in report
    assert "- bo@uni.example: late by 12 h 1 min, late penalty 5" in report
