"""``collect``: import a folder or zip of submissions, named as an LMS's bulk download names them.

Understood layouts (``--lms auto`` tells them apart):

* Canvas: one file per submission, ``lastfirst_[LATE_]userid_submissionid_original name.ipynb``
  (resubmissions get ``-1``, ``-2``… before the extension);
* Moodle: a folder per student, ``Full Name_participantid_assignsubmission_file_/``;
* folders: ``<student>/<notebook>.ipynb`` or ``<student>/<assignment>/<notebook>.ipynb``.

Students rename things: Colab saves "Copy of 01-tensors.ipynb", browsers add
" (1)", Canvas adds "-1". Names are matched to the assignment's notebooks after
removing those; a student who handed in one notebook for a one-notebook
assignment is matched whatever the name. Everything lands in nbgrader's layout,
``submitted/<student>/<assignment>/<notebook>.ipynb`` with a ``timestamp.txt``.
A student's earlier submission is moved aside to ``.grader/replaced/``, never
lost, and the download itself is never modified.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import Course
from grader.errors import GraderError

MAX_FILE_BYTES = 50 * 2**20  # a notebook larger than this is not a student's work
MAX_ZIP_BYTES = 5 * 2**30

CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<userid>\d+)_(?P<submission>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_(?:file|onlinetext)_?$")


@dataclass
class Incoming:
    """One notebook file found in the download."""

    path: Path
    student: str
    original_name: str
    timestamp: dt.datetime
    lms_user_id: str | None = None
    full_name: str | None = None
    late: bool = False
    revision: int = 0


@dataclass
class Imported:
    student: str
    notebook: str
    original_name: str
    note: str = ""


@dataclass
class CollectReport:
    imported: list[Imported] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    replaced: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """A folder-safe student id from a name: 'Zoë O'Brien' → 'zoe-obrien'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", "-", text.replace("'", "")).strip("-").lower()
    return text or "student"


def normalize_name(filename: str) -> list[tuple[str, int]]:
    """What notebook name a student may have meant, most literal first, with a revision number.

    'Copy of 01-tensors (1).ipynb' → [('01-tensors', 1)]; '02-backward-1.ipynb' (a Canvas
    resubmission) → [('02-backward-1', 0), ('02-backward', 1)].
    """
    stem = Path(filename).stem if filename.lower().endswith(".ipynb") else filename
    revision = 0
    stem = re.sub(r"^(copy of\s+)+", "", stem.strip(), flags=re.IGNORECASE)
    stem = re.sub(r"\s*-\s*copy$", "", stem, flags=re.IGNORECASE)
    match = re.search(r"\s*\((\d+)\)$", stem)
    if match:
        revision, stem = int(match.group(1)), stem[: match.start()]
    candidates = [(stem.strip(), revision)]
    match = re.search(r"-(\d{1,2})$", stem)
    if match:
        candidates.append((stem[: match.start()].strip(), max(revision, int(match.group(1)))))
    return candidates


def _match(name: str, notebooks: list[str]) -> tuple[str, int] | None:
    """The assignment's notebook a file is, and its revision; None if it is none of them."""
    folded = {re.sub(r"[\s_-]+", "", n.lower()): n for n in notebooks}
    for wanted, revision in normalize_name(name):
        if wanted in notebooks:
            return wanted, revision
        found = folded.get(re.sub(r"[\s_-]+", "", wanted.lower()))
        if found:
            return found, revision
    return None


def _scan(root: Path, assignment: str, lms: str) -> list[Incoming]:
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or path.name.startswith("._") or "__MACOSX" in path.parts:
            continue
        relative = path.relative_to(root)
        timestamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        canvas = CANVAS.match(path.name) if len(relative.parts) == 1 else None
        moodle = next((MOODLE.match(part) for part in relative.parts[:-1] if MOODLE.match(part)), None)
        if lms in ("auto", "canvas") and canvas:
            found.append(Incoming(path, slug(canvas.group("name")), canvas.group("file"), timestamp,
                                  lms_user_id=canvas.group("userid"), full_name=canvas.group("name"),
                                  late=bool(canvas.group("late"))))
        elif lms in ("auto", "moodle") and moodle:
            name = moodle.group("name")
            found.append(Incoming(path, slug(name), path.name, timestamp, lms_user_id=moodle.group("participant"),
                                  full_name=name))
        elif lms in ("auto", "folders") and len(relative.parts) >= 2:
            parts = [p for p in relative.parts[:-1] if p != assignment]
            student = parts[0] if parts else relative.parts[0]
            found.append(Incoming(path, slug(student) if not re.fullmatch(r"[A-Za-z0-9._-]+", student) else student,
                                  path.name, timestamp))
        else:
            found.append(Incoming(path, "", path.name, timestamp))
    return found


def _unpack(source: Path, into: Path) -> Path:
    """Unpack a zip safely (no paths outside, no zip bombs)."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise GraderError(f"{source} is not a zip file: {error}") from error
    total = 0
    with archive:
        for info in archive.infolist():
            target = (into / info.filename).resolve()
            if not str(target).startswith(str(into.resolve()) + "/") and target != into.resolve():
                raise GraderError(f"{source} contains a path outside the archive ({info.filename}); not importing it")
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise GraderError(f"{source} unpacks to more than {MAX_ZIP_BYTES // 2**30} GiB; not importing it")
        archive.extractall(into)
        for info in archive.infolist():  # keep the LMS's submission times as the files' times
            stamp = dt.datetime(*info.date_time).timestamp()
            path = into / info.filename
            if path.is_file():
                os.utime(path, (stamp, stamp))
    return into


def collect(course: Course, assignment: str, source: Path, *, lms: str = "auto", dry_run: bool = False) -> CollectReport:
    """Import ``source`` (a folder or a .zip) as submissions of ``assignment``."""
    notebooks = course.notebooks(assignment)
    source = Path(source)
    if not source.exists():
        raise GraderError(f"{source} does not exist")
    report = CollectReport()
    with tempfile.TemporaryDirectory() as scratch:
        root = _unpack(source, Path(scratch)) if source.is_file() else source
        incoming = _scan(root, assignment, lms)
        if not incoming:
            raise GraderError(f"no .ipynb files in {source}")
        chosen: dict[tuple[str, str], Incoming] = {}
        per_student: dict[str, list[Incoming]] = {}
        for item in incoming:
            if not item.student:
                report.skipped.append((str(item.path.relative_to(root)), "cannot tell whose it is (not an LMS name, not in a student folder)"))
                continue
            if item.path.stat().st_size > MAX_FILE_BYTES:
                report.skipped.append((str(item.path.relative_to(root)), "larger than 50 MiB"))
                continue
            per_student.setdefault(item.student, []).append(item)
        for student, items in per_student.items():
            for item in items:
                match = _match(item.original_name, notebooks)
                if match is None and len(notebooks) == 1 and len(items) == 1:
                    match = (notebooks[0], 0)
                if match is None:
                    report.skipped.append((str(item.path.relative_to(root)),
                                           f"does not match a notebook of {assignment} ({', '.join(notebooks)})"))
                    continue
                notebook, item.revision = match
                key = (student, notebook)
                previous = chosen.get(key)
                if previous is None or (item.timestamp, item.revision) > (previous.timestamp, previous.revision):
                    if previous is not None:
                        report.skipped.append((previous.original_name, f"an older copy of {student}'s {notebook}"))
                    chosen[key] = item
                else:
                    report.skipped.append((item.original_name, f"an older copy of {student}'s {notebook}"))
        for (student, notebook), item in sorted(chosen.items()):
            note = "" if item.original_name == f"{notebook}.ipynb" else f"renamed from {item.original_name!r}"
            if item.late:
                note = (note + "; " if note else "") + "marked late by the LMS"
            report.imported.append(Imported(student, notebook, item.original_name, note))
        if not dry_run:
            _store(course, assignment, chosen, report)
    return report


def _store(course: Course, assignment: str, chosen: dict[tuple[str, str], Incoming], report: CollectReport) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    students: dict[str, list[Incoming]] = {}
    for (student, _), item in chosen.items():
        students.setdefault(student, []).append(item)
    with course.gradebook() as gradebook:
        for student, items in sorted(students.items()):
            folder = course.submitted / student / assignment
            if folder.exists():
                backup = course.root / ".grader" / "replaced" / assignment / f"{student}-{stamp}"
                backup.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(folder), str(backup))
                report.replaced.append(student)
            folder.mkdir(parents=True)
            latest = max(item.timestamp for item in items)
            for item in items:
                notebook = next(n for (s, n), i in chosen.items() if i is item)
                shutil.copyfile(item.path, folder / f"{notebook}.ipynb")
            (folder / "timestamp.txt").write_text(latest.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
            first = items[0]
            details = {}
            if first.lms_user_id:
                details["lms_user_id"] = first.lms_user_id
            if first.full_name:
                details["last_name"] = first.full_name
            gradebook.update_or_create_student(student, **details)


def print_report(report: CollectReport, assignment: str, dry_run: bool, say=print) -> None:
    verb = "would import" if dry_run else "imported"
    say(f"{verb} {len(report.imported)} notebook(s) of {len({i.student for i in report.imported})} student(s) for {assignment}")
    for item in report.imported:
        if item.note:
            say(f"  {item.student}/{item.notebook}.ipynb: {item.note}")
    if report.replaced:
        say(f"replaced earlier submissions of {len(report.replaced)} student(s) (kept in .grader/replaced/)")
    for name, why in report.skipped:
        say(f"  skipped {name}: {why}")
