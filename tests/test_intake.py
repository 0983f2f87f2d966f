"""collect keeps what the download says about each submission: when, late or not, and what else was uploaded.

Nothing a student uploaded vanishes: a PDF instead of the notebook is kept, listed,
and the student is "missing, wrong file type uploaded"; an entry that belongs to no
one is listed as skipped, with why.
"""
from __future__ import annotations

import datetime as dt
import struct
import zipfile
from pathlib import Path

import pytest

from grader.intake.collect import WRONG_TYPE, Intake, collect, print_report
from grader.course import open_course
from grader.deadlines import CourseDeadlines, Lateness, parse_due, parse_extension
from grader.errors import GraderError
from traitlets.config import Config

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def _entry(name: str, when: dt.datetime | None = None, *, exact: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(when or dt.datetime(2026, 11, 30, 12, 0)).timetuple()[:6])
    if exact and when is not None:  # the extended-timestamp field: UTC seconds
        info.extra = struct.pack("<HHBl", 0x5455, 5, 1, int(when.timestamp()))
    return info


def _zip(path: Path, entries: dict[zipfile.ZipInfo | str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries.items():
            archive.writestr(info, data)
    return path


def test_a_pdf_instead_of_the_notebook_is_kept_listed_and_the_student_is_missing_wrong_type(course_dir, tmp_path,
                                                                                           capsys):
    download = _zip(tmp_path / "canvas.zip", {
        "doejane_101_9001_ps1.ipynb": NOTEBOOK,
        "roesam_102_9002_ps1.pdf": b"%PDF-1.4 my answers",
        "README.txt": "exported by Canvas",
    })
    course = open_course(course_dir)
    dry = collect(course, "ps1", download, dry_run=True)
    print_report(dry, "ps1", True)
    out = capsys.readouterr().out
    assert "102: ps1.pdf is not a notebook, would be kept" in out and WRONG_TYPE in out
    assert "skipped README.txt: not a notebook, and cannot tell whose it is" in out
    assert not course.submitted.exists()

    report = collect(course, "ps1", download)
    assert report.wrong_type == ["102"]
    assert (course.submitted / "102" / "ps1" / "ps1.pdf").read_bytes() == b"%PDF-1.4 my answers"
    assert not list((course.submitted / "102" / "ps1").glob("*.ipynb"))
    for student in ("101", "102"):  # what nbgrader's formgrader and release_feedback expect in a submission folder
        assert (course.submitted / student / "ps1" / "timestamp.txt").is_file()
        assert (course.submitted / student / "ps1" / "submission_secret.txt").is_file()
    assert Intake.load(course, "ps1", "102").not_notebooks == ["ps1.pdf"]


def test_a_download_with_no_notebook_at_all_is_refused_with_what_it_holds(course_dir, tmp_path):
    download = _zip(tmp_path / "photos.zip", {"holiday/beach.jpg": b"jpeg"})
    with pytest.raises(GraderError, match=r"no \.ipynb files .*holiday/beach\.jpg.*download of this assignment"):
        collect(open_course(course_dir), "ps1", download)
    assert not open_course(course_dir).submitted.exists()


def test_canvas_gives_the_late_mark_and_no_time(course_dir, tmp_path):
    download = _zip(tmp_path / "canvas.zip", {
        _entry("doejane_101_9001_ps1.ipynb", dt.datetime(2026, 12, 7, 9, 0)): NOTEBOOK,
        _entry("roesam_LATE_102_9002_ps1.ipynb", dt.datetime(2026, 12, 7, 9, 0)): NOTEBOOK,
    })
    course = open_course(course_dir)
    collect(course, "ps1", download)
    on_time, late = Intake.load(course, "ps1", "101"), Intake.load(course, "ps1", "102")
    # The zip entries' time is when Canvas made the download: never taken as a submission time.
    assert on_time.submitted_at is None and late.submitted_at is None
    assert "Canvas" in on_time.time_source
    assert (on_time.marked_late_by, late.marked_late_by) == ("", "Canvas")


def test_moodle_entry_times_are_the_submission_times(course_dir, tmp_path):
    handed_in = dt.datetime(2026, 12, 1, 22, 58, 7, tzinfo=dt.timezone.utc)
    download = _zip(tmp_path / "moodle.zip", {
        _entry("Zoë O'Brien_42_assignsubmission_file_/ps1.ipynb", handed_in, exact=True): NOTEBOOK,
        _entry("Sam Roe_43_assignsubmission_file_/answers.pdf", handed_in, exact=True): b"%PDF",
    })
    course = open_course(course_dir)
    collect(course, "ps1", download)
    intake = Intake.load(course, "ps1", "42")
    assert intake.time() == handed_in and intake.lms == "moodle"
    assert (course.submitted / "42" / "ps1" / "timestamp.txt").read_text().startswith("2026-12-01 22:58:07")
    assert Intake.load(course, "ps1", "43").not_notebooks == ["answers.pdf"]


def test_a_folder_download_takes_the_time_only_from_nbgraders_timestamp(course_dir, tmp_path):
    download = tmp_path / "folders"
    for student, stamp in [("alice", "2026-12-02 10:00:00.000000 UTC"), ("bob", None)]:
        (download / student).mkdir(parents=True)
        (download / student / "ps1.ipynb").write_text(NOTEBOOK)
        (download / student / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        if stamp:
            (download / student / "timestamp.txt").write_text(stamp)
            (download / student / "submission_secret.txt").write_text("0123456789abcdef0123456789abcdef")
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert not report.not_notebooks  # nbgrader's own files and the Finder's are not uploads
    # The exchange's secret is kept: it is how the student's fetch_feedback finds their pages.
    assert (course.submitted / "alice" / "ps1" / "submission_secret.txt").read_text() == "0123456789abcdef" * 2
    assert len((course.submitted / "bob" / "ps1" / "submission_secret.txt").read_text()) == 32
    assert Intake.load(course, "ps1", "alice").time() == dt.datetime(2026, 12, 2, 10, tzinfo=dt.timezone.utc)
    assert Intake.load(course, "ps1", "bob").submitted_at is None


# -- the deadline definition ------------------------------------------------------------------


def test_due_dates_need_a_time_zone_and_say_how_to_write_them():
    assert parse_due("2026-12-01 23:59 Europe/Berlin", "ps1") == dt.datetime(2026, 12, 1, 22, 59)
    assert parse_due("2026-12-01 23:59 +0100", "ps1") == dt.datetime(2026, 12, 1, 22, 59)
    for bad in ["2026-12-01 23:59", "2026-12-01 23:59 Mars/Olympus", "tomorrow"]:
        with pytest.raises(GraderError, match="Europe/Berlin"):
            parse_due(bad, "ps1")


def test_extensions_are_read_in_words():
    assert parse_extension("2 days", "x") == dt.timedelta(days=2)
    assert parse_extension("36 hours", "x") == dt.timedelta(hours=36)
    assert parse_extension(1.5, "x") == dt.timedelta(hours=1.5)
    with pytest.raises(GraderError, match="36 hours"):
        parse_extension("a fortnight", "x")
    config = Config()
    config.Deadlines.extensions = {"ps1": ["101"]}
    with pytest.raises(GraderError, match="must map student ids"):
        CourseDeadlines(config)


def test_lateness_in_words():
    assert Lateness(0.0).text() == "" and not Lateness(0.0).late
    assert Lateness(26 * 3600 + 120).text() == "late by 1 d 2 h 2 min"
    assert "marked by Canvas" in Lateness(0.0, "Canvas").text()
    assert Lateness(0.0, "Canvas").seconds_for_penalty() == 1.0


# -- the roster --------------------------------------------------------------------------------

CANVAS_ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,ps1 (5551),Midterm (5552)\n"
                 "    Points Possible,,,,,5,20\n"
                 '"Doe, Jane",101,s101,jdoe,A,,\n'
                 '"Roe, Sam",102,s102,sroe,A,,\n')
MOODLE_ROSTER = ("First name,Last name,ID number,Email address\n"
                 "Ann,Lee,A-1,ann@uni.example\nBo,Chen,A-2,bo@uni.example\n")


def _second_assignment(course_dir):
    import shutil

    from grader.authoring.release import generate

    shutil.copytree(course_dir / "source" / "ps1", course_dir / "source" / "ps2")
    (course_dir / "source" / "ps2" / "ps1.ipynb").rename(course_dir / "source" / "ps2" / "ps2.ipynb")
    generate(open_course(course_dir), "ps2")


def test_canvas_names_come_from_the_roster_and_are_never_none(course_dir, tmp_path):
    from grader.intake.roster import load

    roster = tmp_path / "canvas-roster.csv"
    roster.write_text(CANVAS_ROSTER)
    download = _zip(tmp_path / "canvas.zip", {"doejane_101_9001_ps1.ipynb": NOTEBOOK,
                                              "newkid_103_9003_ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    report = collect(course, "ps1", download, roster=load(roster))
    assert any("Canvas user 103 (newkid) is not on the roster" in w for w in report.warnings)
    with course.gradebook() as gradebook:
        jane, unknown = gradebook.find_student("101"), gradebook.find_student("103")
        assert (jane.first_name, jane.last_name, jane.lms_user_id) == ("Jane", "Doe", "101")
        assert (unknown.first_name, unknown.last_name) == ("", "newkid")  # not "newkid, None" in formgrader
    assert load(roster).columns == {"ps1": "ps1 (5551)", "Midterm": "Midterm (5552)"}


def test_moodle_people_are_one_student_across_assignments_with_a_roster(course_dir, tmp_path):
    from grader.intake.roster import load

    _second_assignment(course_dir)
    roster = tmp_path / "participants.csv"
    roster.write_text(MOODLE_ROSTER)
    course = open_course(course_dir)
    for assignment, participant in [("ps1", 42), ("ps2", 17)]:  # a participant id per assignment
        download = _zip(tmp_path / f"{assignment}.zip",
                        {f"Ann Lee_{participant}_assignsubmission_file_/{assignment}.ipynb": NOTEBOOK})
        collect(course, assignment, download, roster=load(roster))
    assert {p.name for p in course.submitted.iterdir()} == {"ann@uni.example"}
    with course.gradebook() as gradebook:
        ann = gradebook.find_student("ann@uni.example")
        assert (ann.first_name, ann.last_name, ann.email, ann.lms_user_id) == ("Ann", "Lee", "ann@uni.example", "A-1")
        assert len(gradebook.students) == 1


def test_without_a_roster_one_moodle_name_under_two_ids_is_a_warning(course_dir, tmp_path, capsys):
    _second_assignment(course_dir)
    course = open_course(course_dir)
    for assignment, participant in [("ps1", 42), ("ps2", 17)]:
        download = _zip(tmp_path / f"{assignment}.zip",
                        {f"Ann Lee_{participant}_assignsubmission_file_/{assignment}.ipynb": NOTEBOOK})
        print_report(collect(course, assignment, download), assignment, False)
    out = capsys.readouterr().out
    assert "warning: Ann Lee is student 17 here and 42 already" in out and "--roster" in out


def test_a_roster_the_grader_cannot_read_says_which_files_it_reads(tmp_path):
    from grader.intake.roster import load

    (tmp_path / "r.csv").write_text("name;mail\nAnn;a@b\n")
    with pytest.raises(GraderError, match="export Canvas's gradebook .* Moodle's participants"):
        load(tmp_path / "r.csv")
    (tmp_path / "twins.csv").write_text(MOODLE_ROSTER + "Ann,Lee,A-3,ann2@uni.example\n")
    with pytest.raises(GraderError, match="2 people named 'Ann Lee'"):
        load(tmp_path / "twins.csv").by_name("Ann Lee")


def test_a_report_with_nothing_graded_still_lists_the_missing():
    from grader.outputs.report import AssignmentReport, text

    report = AssignmentReport("ps1", missing=[("kim", "ps1", "missing, wrong file type uploaded (a.pdf)")])
    body = text(report)
    assert "No graded submissions yet." in body and "- kim / ps1: missing, wrong file type uploaded" in body
