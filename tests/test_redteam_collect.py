"""Red team: ``collect`` loses nothing and follows nothing.

Student ids never merge two people and keep Unicode names readable; links in a
download are never followed; a bad entry is reported and the rest imported;
sizes are bounded before anything is read; autograde can match renamed notebooks
as collect does (``find_submitted``).
"""
from __future__ import annotations

import io
import os
import stat
import struct
import unicodedata
import zipfile
from pathlib import Path

import pytest

from grader.intake import collect as collect_module
from grader.cli import main
from grader.intake.collect import collect, find_submitted, normalize_name, print_report, student_id
from grader.course import open_course
from grader.errors import GraderError

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def _folders(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _zip(path: Path, files: dict[str | zipfile.ZipInfo, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def _patch_central_directory(path: Path, name: str, *, file_size: int | None = None, flag_bits: int | None = None):
    """Make the zip's central directory lie about an entry (what zipfile and collect believe)."""
    data = bytearray(path.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46: start + 46 + length] == name.encode():
            if flag_bits is not None:
                struct.pack_into("<H", data, start + 8, flag_bits)
            if file_size is not None:
                struct.pack_into("<I", data, start + 24, file_size)
            path.write_bytes(bytes(data))
            return
        start += 4
    raise KeyError(name)


def _students(course) -> set[str]:
    return {p.name for p in course.submitted.iterdir()} if course.submitted.is_dir() else set()


def _skipped(report) -> dict[str, str]:
    return dict(report.skipped)


# -- student ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("folder, student", [
    ("Zoë O'Brien", "Zoë O'Brien"),
    (unicodedata.normalize("NFD", "Zoë"), unicodedata.normalize("NFC", "Zoë")),
    ("王伟", "王伟"),
    ("Иван Петров", "Иван Петров"),
    ("a_b-c.d", "a_b-c.d"),
    ("a/b*c", "a_b_c"),
    ('x\\y+z?[1]<2>:"|', "x_y_z__1__2____"),
    ("Ann   Lee\t", "Ann Lee"),
    ("a\nb", "a b"),
    ("a\x1bb", "a_b"),
    ("a\u200bb", "a_b"),
    (".hidden ", "hidden"),
    ("...a", "a"),
    (". x", "x"),
    ("..", ""),
    ("   ", ""),
], ids=["apostrophe", "decomposed", "chinese", "cyrillic", "punctuation-kept", "slash-star", "every-unsafe",
        "white-space-runs", "newline", "control", "zero-width", "hidden", "dots", "dot-space", "dot-dot", "blank"])
def test_student_id(folder, student):
    assert student_id(folder) == student


def test_unicode_names_are_kept_readable_and_never_merge(course_dir, tmp_path):
    names = ["王伟", "李娜", "Иван Петров", "Zoë", "Zoe"]
    download = _folders(tmp_path / "download", {f"{name}/ps1.ipynb": NOTEBOOK for name in names})
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert sorted(i.student for i in report.imported) == sorted(names)
    assert _students(course) == set(names)
    assert not report.skipped
    with course.gradebook() as gradebook:
        assert {s.id for s in gradebook.students} == set(names)


def test_canvas_users_of_the_same_name_stay_two_students(course_dir, tmp_path):
    download = _zip(tmp_path / "canvas.zip", {"smithjane_101_9001_ps1.ipynb": NOTEBOOK + " ",
                                              "smithjane_202_9002_ps1.ipynb": NOTEBOOK,
                                              "王伟_303_9003_ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert not report.skipped  # nobody's notebook is "an older copy" of someone else's
    assert _students(course) == {"101", "202", "303"}
    assert (course.submitted / "101" / "ps1" / "ps1.ipynb").read_text() == NOTEBOOK + " "
    with course.gradebook() as gradebook:
        people = {s.id: (s.last_name, s.lms_user_id) for s in gradebook.students}
    assert people == {"101": ("smithjane", "101"), "202": ("smithjane", "202"), "303": ("王伟", "303")}


@pytest.mark.parametrize("first, second", [
    ("Ann", "ann"), (unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë"))],
    ids=["case", "normalisation"])
def test_two_folders_that_would_share_an_id_are_an_error_naming_both(course_dir, tmp_path, first, second):
    download = _folders(tmp_path / "download", {f"{first}/ps1.ipynb": NOTEBOOK, f"{second}/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    with pytest.raises(GraderError) as error:
        collect(course, "ps1", download)
    message = str(error.value)
    assert ascii(first) in message and ascii(second) in message  # told apart even where they print the same
    assert "nothing was imported" in message
    assert _students(course) == set()


def test_a_folder_that_clashes_with_an_existing_student_is_an_error(course_dir, tmp_path):
    course = open_course(course_dir)
    collect(course, "ps1", _folders(tmp_path / "first", {"Zoe/ps1.ipynb": NOTEBOOK}))
    with pytest.raises(GraderError, match="submitted/Zoe.*'zoe'"):
        collect(course, "ps1", _folders(tmp_path / "second", {"zoe/ps1.ipynb": NOTEBOOK}))
    assert _students(course) == {"Zoe"}


# -- links and permissions ----------------------------------------------------------------------


def test_symlinks_in_a_folder_download_are_never_followed(course_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the instructor's secret")
    outside = _folders(tmp_path / "outside", {"ps1.ipynb": NOTEBOOK})
    download = _folders(tmp_path / "download", {"erin/ps1.ipynb": NOTEBOOK})
    (download / "alice").mkdir()
    (download / "alice" / "ps1.ipynb").symlink_to(course_dir / "source" / "ps1" / "ps1.ipynb")  # the solutions
    (download / "bob").mkdir()
    (download / "bob" / "ps1.ipynb").symlink_to("/etc/shadow")
    (download / "carol").mkdir()
    (download / "carol" / "ps1.ipynb").symlink_to(secret)
    (download / "dave").symlink_to(outside, target_is_directory=True)
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert _students(course) == {"erin"}
    skipped = _skipped(report)
    for name in ("alice/ps1.ipynb", "bob/ps1.ipynb", "carol/ps1.ipynb", "dave"):
        assert "symbolic link" in skipped[name], name
    stored = b"".join(p.read_bytes() for p in course.submitted.rglob("*") if p.is_file())
    assert b"secret" not in stored and b"BEGIN SOLUTION" not in stored


def test_symlink_entries_in_a_zip_are_refused(course_dir, tmp_path):
    link = zipfile.ZipInfo("alice/ps1.ipynb")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    download = _zip(tmp_path / "links.zip", {link: "/etc/shadow", "bob/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert "symbolic link" in _skipped(report)["alice/ps1.ipynb"]
    assert _students(course) == {"bob"}


def test_copies_are_private_regular_files_whatever_the_source_modes(course_dir, tmp_path):
    download = _folders(tmp_path / "download", {"alice/ps1.ipynb": NOTEBOOK})
    os.chmod(download / "alice" / "ps1.ipynb", 0o6777)
    course = open_course(course_dir)
    collect(course, "ps1", download)
    folder = course.submitted / "alice" / "ps1"
    for path in (folder / "ps1.ipynb", folder / "timestamp.txt"):
        mode = os.lstat(path).st_mode
        assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600, path
    for path in (folder, folder.parent):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700, path


# -- one bad entry is reported, the rest imported -------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_folder_named_like_a_notebook_is_reported_and_the_rest_imported(course_dir, tmp_path, kind):
    if kind == "folder":
        download = _folders(tmp_path / "download", {"alice/ps1.ipynb/notes.txt": "x", "bob/ps1.ipynb": NOTEBOOK})
    else:
        download = _zip(tmp_path / "d.zip", {"alice/ps1.ipynb/": "", "bob/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert "a folder named like a notebook" in _skipped(report)["alice/ps1.ipynb"]
    assert _students(course) == {"bob"}


def test_names_too_long_for_a_filesystem_are_reported_and_the_rest_imported(course_dir, tmp_path):
    long_file = "bob/" + "x" * 300 + ".ipynb"
    long_folder = "y" * 300 + "/ps1.ipynb"
    download = _zip(tmp_path / "long.zip", {long_file: NOTEBOOK, long_folder: NOTEBOOK, "carol/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    reasons = [why for _, why in report.skipped]
    assert len(reasons) == 2 and all("longer than filesystems allow" in why for why in reasons)
    assert all(len(name) < 200 for name, _ in report.skipped)  # shortened to be readable
    assert _students(course) == {"carol"}
    assert not list((course.root / ".grader").glob("collect-*"))  # no staging left behind


def test_entries_whose_sizes_lie_or_that_are_encrypted_are_reported_and_the_rest_imported(course_dir, tmp_path):
    download = _zip(tmp_path / "lies.zip", {"liar/ps1.ipynb": NOTEBOOK * 10, "secret/ps1.ipynb": NOTEBOOK,
                                            "honest/ps1.ipynb": NOTEBOOK})
    _patch_central_directory(download, "liar/ps1.ipynb", file_size=20)
    _patch_central_directory(download, "secret/ps1.ipynb", flag_bits=0x1)
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    skipped = _skipped(report)
    assert "damaged" in skipped["liar/ps1.ipynb"]
    assert "encrypted" in skipped["secret/ps1.ipynb"]
    assert _students(course) == {"honest"}
    assert (course.submitted / "honest" / "ps1" / "ps1.ipynb").read_text() == NOTEBOOK


# -- bounded before anything is read ----------------------------------------------------------------


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The zip entries collect opens (extractall opens every one)."""
    names: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            names.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def test_a_file_declaring_more_than_the_limit_is_refused_before_it_is_read(course_dir, tmp_path, opened):
    download = _zip(tmp_path / "big.zip", {"big/ps1.ipynb": NOTEBOOK, "small/ps1.ipynb": NOTEBOOK})
    _patch_central_directory(download, "big/ps1.ipynb", file_size=60 * 2**20)
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    assert "declares 60 MiB" in _skipped(report)["big/ps1.ipynb"]
    assert "big/ps1.ipynb" not in opened
    assert _students(course) == {"small"}


def test_the_total_and_the_number_of_entries_are_bounded_before_anything_is_read(course_dir, tmp_path, opened,
                                                                                 monkeypatch):
    download = _zip(tmp_path / "many.zip", {f"s{i}/ps1.ipynb": NOTEBOOK for i in range(20)})
    course = open_course(course_dir)
    monkeypatch.setattr(collect_module, "MAX_TOTAL_BYTES", 10 * len(NOTEBOOK), raising=False)
    monkeypatch.setattr(collect_module, "MAX_ZIP_BYTES", 10 * len(NOTEBOOK), raising=False)
    with pytest.raises(GraderError, match="declare|unpacks to more"):
        collect(course, "ps1", download)
    assert opened == [] and _students(course) == set()
    monkeypatch.setattr(collect_module, "MAX_TOTAL_BYTES", 2**30, raising=False)
    monkeypatch.setattr(collect_module, "MAX_ZIP_BYTES", 2**30, raising=False)
    monkeypatch.setattr(collect_module, "MAX_ENTRIES", 10, raising=False)
    with pytest.raises(GraderError, match="more than 10"):
        collect(course, "ps1", download)
    assert opened == [] and _students(course) == set()


# -- the matcher autograde uses ---------------------------------------------------------------------


@pytest.mark.parametrize("filename, candidates", [
    ("ps1.ipynb", [("ps1", 0)]),
    ("ps1", [("ps1", 0)]),
    ("PS1.IPYNB", [("PS1", 0)]),
    ("notes.txt", [("notes.txt", 0)]),
    ("  ps1  .ipynb", [("ps1", 0)]),
    ("Copy of 01-tensors (1).ipynb", [("01-tensors", 1)]),
    ("Copy of Copy of ps1.ipynb", [("ps1", 0)]),
    ("ps1 - Copy.ipynb", [("ps1", 0)]),
    ("copy of ps1 - copy (3).ipynb", [("ps1 - copy", 3)]),
    ("ps1 (12).ipynb", [("ps1", 12)]),
    ("02-backward-1.ipynb", [("02-backward-1", 0), ("02-backward", 1)]),
    ("ps1 -2.ipynb", [("ps1 -2", 0), ("ps1", 2)]),
    ("ps1-2 (1).ipynb", [("ps1-2", 1), ("ps1", 2)]),
    ("01-tensors-3 (2).ipynb", [("01-tensors-3", 2), ("01-tensors", 3)]),
    ("01-tensors-123.ipynb", [("01-tensors-123", 0)]),
], ids=["exact", "no-extension", "upper-case", "not-a-notebook", "spaces", "colab-copy", "copy-of-a-copy",
        "windows-copy", "copy-both-ways", "browser-number", "canvas-resubmission", "dash-number",
        "canvas-and-browser", "larger-of-two-numbers", "three-digits-are-a-name"])
def test_normalize_name(filename, candidates):
    """What notebook a file name may mean, most literal first, with its revision number."""
    assert normalize_name(filename) == candidates


@pytest.mark.parametrize("name", ["Copy of 01-tensors.ipynb", "01-tensors (1).ipynb", "01-Tensors-1.ipynb",
                                  "01_tensors.ipynb"])
def test_find_submitted_matches_renamed_notebooks_as_collect_does(tmp_path, name):
    notebooks = ["01-tensors", "02-backward"]
    (tmp_path / name).write_text(NOTEBOOK)
    (tmp_path / "02-backward.ipynb").write_text(NOTEBOOK)
    assert find_submitted(tmp_path, "01-tensors", notebooks) == tmp_path / name
    assert find_submitted(tmp_path, "02-backward", notebooks) == tmp_path / "02-backward.ipynb"


def test_find_submitted_prefers_the_exact_name_then_the_newest_and_never_a_link(tmp_path):
    notebooks = ["01-tensors", "02-backward"]
    for name, when in [("Copy of 01-tensors.ipynb", 300), ("01-tensors (1).ipynb", 200), ("01-tensors.ipynb", 100)]:
        (tmp_path / name).write_text(NOTEBOOK)
        os.utime(tmp_path / name, (when, when))
    assert find_submitted(tmp_path, "01-tensors", notebooks) == tmp_path / "01-tensors.ipynb"
    (tmp_path / "01-tensors.ipynb").unlink()
    assert find_submitted(tmp_path, "01-tensors", notebooks) == tmp_path / "Copy of 01-tensors.ipynb"
    (tmp_path / "02-backward.ipynb").symlink_to("/etc/shadow")
    (tmp_path / "Copy of 02-backward.ipynb").mkdir()
    assert find_submitted(tmp_path, "02-backward", notebooks) is None
    assert find_submitted(tmp_path / "absent", "02-backward", notebooks) is None
    # A one-notebook assignment takes the folder's only notebook, as collect does.
    only = tmp_path / "only"
    _folders(only, {"homework.ipynb": NOTEBOOK})
    assert find_submitted(only, "ps1", ["ps1"]) == only / "homework.ipynb"


# -- what is printed ------------------------------------------------------------------------------


def test_names_from_the_download_are_printed_without_control_characters(course_dir, tmp_path, capsys):
    download = _zip(tmp_path / "evil.zip", {"alice/\x1b[2J\x1b]0;owned\x07notes.ipynb": NOTEBOOK,
                                            "alice/ps1.ipynb": NOTEBOOK,
                                            "bob/Copy of ps1\x1b[31m.ipynb": NOTEBOOK})
    assert main(["collect", "--course", str(course_dir), "ps1", str(download)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "skipped alice/" in out and "notes.ipynb" in out
    buffer = io.StringIO()
    print_report(collect(open_course(course_dir), "ps1", download, dry_run=True), "ps1", True,
                 say=lambda line: buffer.write(line + "\n"))
    assert "\x1b" not in buffer.getvalue()


# -- end to end: a Unicode-named student is collected and graded ---------------------------------------


@pytest.mark.slow
def test_a_unicode_named_student_is_collected_and_autograded(course_dir, tmp_path):
    import nbformat

    from fixture_course import CORRECT, _answered
    from grader.autograde.run import Autograder
    from grader.records import SubmissionRecord, record_path

    decomposed = unicodedata.normalize("NFD", "Zoë Ölçer")
    download = tmp_path / "download"
    for folder in ("王伟", decomposed):
        (download / folder).mkdir(parents=True)
        nbformat.write(_answered(course_dir, CORRECT), download / folder / "Copy of ps1.ipynb")
    course = open_course(course_dir)
    collect(course, "ps1", download)
    students = {"王伟", unicodedata.normalize("NFC", "Zoë Ölçer")}
    assert _students(course) == students
    assert course.api().get_submitted_students("ps1") == students
    summary = Autograder(course, workers=1, progress=False, report=lambda _: None).run()
    assert {(s, o.status, o.score) for s, _, o in summary.outcomes} == {(s, "graded", 5.0) for s in students}
    for student in students:
        assert SubmissionRecord.load(record_path(course, "ps1", student)).notebooks["ps1"].score == 5.0
    with course.gradebook() as gradebook:
        assert {s.student.id: s.score for s in gradebook.find_assignment("ps1").submissions} == \
            {s: 5.0 for s in students}


# -- whose a notebook is: the folder that holds it ----------------------------------------------


@pytest.mark.parametrize("layout", [
    {"ps1-submissions/alice/ps1.ipynb": "a", "ps1-submissions/bob/ps1.ipynb": "b"},  # zip -r x.zip ps1-submissions/
    {"section-A/alice/ps1.ipynb": "a", "section-A/bob/ps1.ipynb": "b", "section-B/carol/ps1.ipynb": "c"},
    {"term/section-A/alice/ps1/ps1.ipynb": "a", "term/section-B/bob/ps1/ps1.ipynb": "b"},  # exchange-style
], ids=["wrapper", "sections", "nested"])
def test_the_student_is_the_folder_that_holds_the_notebook(course_dir, tmp_path, layout):
    files = {name: NOTEBOOK[:-1] + f', "x": "{text}"}}' for name, text in layout.items()}
    download = _zip(tmp_path / "download.zip", files)
    course = open_course(course_dir)
    report = collect(course, "ps1", download)
    owners = {name.split("/")[-3 if "/ps1/" in name else -2]: text for name, text in layout.items()}
    assert _students(course) == set(owners) and not report.skipped
    for student, text in owners.items():
        assert f'"x": "{text}"' in (course.submitted / student / "ps1" / "ps1.ipynb").read_text()


def test_one_student_with_two_different_files_in_two_folders_is_refused_naming_both(course_dir, tmp_path):
    """Two people named alice in two sections: which file is whose cannot be told, so nothing is imported."""
    download = _zip(tmp_path / "download.zip", {"section-A/alice/ps1.ipynb": NOTEBOOK + " ",
                                                "section-B/alice/ps1.ipynb": NOTEBOOK,
                                                "section-B/bob/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    for dry_run in (True, False):
        with pytest.raises(GraderError) as error:
            collect(course, "ps1", download, dry_run=dry_run)
        message = str(error.value)
        assert "section-A/alice/ps1.ipynb" in message and "section-B/alice/ps1.ipynb" in message
        assert "nothing was imported" in message and "a folder of their own" in message
    assert _students(course) == set()


def test_copies_in_one_folder_are_still_the_latest_submission(course_dir, tmp_path):
    download = _folders(tmp_path / "download", {"alice/ps1.ipynb": NOTEBOOK, "alice/Copy of ps1 (1).ipynb": NOTEBOOK + " ",
                                                "bob/ps1.ipynb": NOTEBOOK, "other/bob/ps1.ipynb": NOTEBOOK})
    course = open_course(course_dir)
    collect(course, "ps1", download)  # bob's two files in two folders are the same file: no refusal
    assert _students(course) == {"alice", "bob"}
    assert (course.submitted / "alice" / "ps1" / "ps1.ipynb").read_text() == NOTEBOOK + " "
