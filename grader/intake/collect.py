"""``collect``: import a folder or zip of submissions, named as an LMS's bulk download names them.

Understood layouts (``--lms auto`` tells them apart):

* Canvas: one file per submission, ``lastfirst_[LATE_]userid_submissionid_original name.ipynb``
  (resubmissions get ``-1``, ``-2``… before the extension);
* Moodle: a folder per student, ``Full Name_participantid_assignsubmission_file_/``;
* folders: ``<student>/<notebook>.ipynb`` or ``<student>/<assignment>/<notebook>.ipynb``.

Student ids: where the LMS gives a user id (Canvas's user id, Moodle's participant
id), the id is the student id, so two people of the same name never merge; their
full name, Unicode intact, goes into the gradebook's first and last name. Moodle's
participant id differs per assignment: with a roster (``grader.intake.roster``) a Moodle
student's id is their email address, the same in every assignment, and a Canvas
student gets their real first and last names. A folder's
name is its student's id, NFC-normalised, with only what is unsafe in a path or for
nbgrader (``/ \\ * + ? [ ] < > : " |``, control and invisible characters, leading
dots, surrounding spaces) replaced: '王伟' and 'Zoë O'Brien' stay as they are. Two
people who would share an id (folders differing only by case or by Unicode
normalisation, or from a folder already in ``submitted/``) stop the import with an
error naming both.

Students rename things: Colab saves "Copy of 01-tensors.ipynb", browsers add
" (1)", Canvas adds "-1". Names are matched to the assignment's notebooks after
removing those; a student who handed in one notebook for a one-notebook
assignment is matched whatever the name. :func:`find_submitted` matches the files
of a folder in ``submitted/`` by the same rules, for autograde. Everything lands in
nbgrader's layout, ``submitted/<student>/<assignment>/<notebook>.ipynb`` with a
``timestamp.txt``.

The download is read, never extracted, modified or followed. Symbolic links (in a
folder, or zip entries), folders named like notebooks, names too long for a
filesystem, encrypted or damaged entries and files larger than MAX_FILE_BYTES are
each reported in the skipped list, and the rest is imported. Declared sizes (per
file and in total) and the number of entries are checked before anything is
written, and each entry is read only up to its declared size, since a zip's sizes
can lie. Copies are new regular files of mode 0600 in folders of mode 0700:
submissions are students' personal data, and only the grader's own user reads them
(autograde sends a notebook's cells to its sandbox, never the file). A student's
folder is assembled aside and swapped in only when complete; their earlier one is
moved to ``.grader/replaced/``, never lost.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

from grader.course import Course
from grader.errors import GraderError
from grader.intake.roster import ClassList, roster_student_id
from grader.text import printable

MAX_FILE_BYTES = 50 * 2**20  # a notebook larger than this is not a student's work
MAX_TOTAL_BYTES = 5 * 2**30  # all the notebooks of one download
MAX_ENTRIES = 100_000  # files and folders in one download
NAME_MAX = 255  # bytes in one file name: what ext4, APFS and NTFS allow
MAX_ID_CHARS, MAX_ID_BYTES = 128, 200  # nbgrader's gradebook column; room for .grader/replaced/<id>-<time>
FILE_MODE, FOLDER_MODE = 0o600, 0o700
_CHUNK = 2**20

CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<userid>\d+)_(?P<submission>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_(?:file|onlinetext)_?$")
#: Characters a student id may not hold: path separators, nbgrader's glob and exchange characters, Windows's.
_UNSAFE = re.compile(r'[/\\*+?\[\]<>:"|]')
_IGNORED = {".ipynb_checkpoints", "__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}  # no one's upload

T = TypeVar("T")


@dataclass
class Entry:
    """A file in the download, not read yet: a notebook, or something a student uploaded instead."""

    parts: tuple[str, ...]  # its path in the download
    size: int  # as declared: a zip's header, a folder's lstat
    timestamp: dt.datetime
    open: Callable[[], BinaryIO]

    @property
    def notebook(self) -> bool:
        return self.parts[-1].lower().endswith(".ipynb")

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class Incoming:
    """One notebook file of the download, and whose it is."""

    entry: Entry
    student: str
    original_name: str
    owner: str  # who the download says it is, for messages: "Canvas user 12", "the folder 'Zoë'"
    identity: str  # the same, exactly as the download spells it: two people are two identities
    lms_user_id: str | None = None
    full_name: str | None = None
    late: bool = False
    revision: int = 0
    staged: Path | None = None
    lms: str = "folders"
    names: dict[str, str | None] | None = None  # the gradebook's first and last name, when known apart
    email: str | None = None
    digest: str = ""  # of its bytes, as read


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
    not_notebooks: list[tuple[str, str]] = field(default_factory=list)  # (student, file): kept, not graded
    wrong_type: list[str] = field(default_factory=list)  # students who uploaded no notebook, only other files
    warnings: list[str] = field(default_factory=list)


WRONG_TYPE = "missing, wrong file type uploaded"
#: Files nbgrader's own tools keep in a submission folder: never a student's upload.
NBGRADER_FILES = {"timestamp.txt", "submission_secret.txt"}


@dataclass
class Intake:
    """What the download said about one student's submission, beside it in ``.grader/submissions/``.

    ``submitted_at`` is the submission's time where the download carries it (ISO, UTC), else None;
    ``time_source`` says where it came from. ``marked_late_by`` is an LMS that marked it late without
    a time (Canvas). ``not_notebooks`` are the files kept in the folder that are not notebooks.
    """

    student: str
    assignment: str
    lms: str
    submitted_at: str | None
    time_source: str
    marked_late_by: str = ""
    not_notebooks: list[str] = field(default_factory=list)

    @staticmethod
    def load(course: Course, assignment: str, student: str) -> "Intake | None":
        import json

        try:
            return Intake(**json.loads(course.intake_path(assignment, student).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, course: Course) -> None:
        import json
        from dataclasses import asdict

        from grader.course import write_atomically

        write_atomically(course.intake_path(self.assignment, self.student),
                         json.dumps(asdict(self), indent=1).encode(), private=True)

    def time(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.submitted_at) if self.submitted_at else None


def student_id(name: str) -> str:
    """The student id a folder name gives: readable, Unicode kept, safe as a folder name and for nbgrader.

    'Zoë O'Brien' → 'Zoë O'Brien' (NFC); 'a/b*c' → 'a_b_c'; '.hidden ' → 'hidden'; '..' → '' (none).
    """
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", name))
    text = "".join("_" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)
    return _UNSAFE.sub("_", text).strip().lstrip(".").strip()


def _fold(student: str) -> str:
    """What two ids must not share: they differ in more than letter case or Unicode normalisation."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", student).casefold())


def _shown(name: str) -> str:
    """A name from the download, safe to print on one line, shortened when very long."""
    name = printable(name, newlines=False)
    return name if len(name) <= 120 else f"{name[:100]}… ({len(name)} characters)"


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


def _choose(files: list[tuple[str, object, T]], notebooks: list[str], *, exact_first: bool
            ) -> tuple[dict[str, tuple[T, int]], list[tuple[T, str | None]]]:
    """Which of one student's files (name, time, thing) is each notebook: {notebook: (thing, revision)}.

    Also the files not chosen, with the notebook they lost to (None: they match none). Among
    several copies of a notebook the newest wins (time, then revision); with ``exact_first``
    the file named exactly ``<notebook>.ipynb`` wins over renamed copies.
    """
    alone = len(files) == 1 and len(notebooks) == 1
    candidates: dict[str, list[tuple[tuple, T, int]]] = {}
    rest: list[tuple[T, str | None]] = []
    for name, when, thing in files:
        match = _match(name, notebooks) or ((notebooks[0], 0) if alone else None)
        if match is None:
            rest.append((thing, None))
            continue
        notebook, revision = match
        rank = (exact_first and name == f"{notebook}.ipynb", when, revision)
        candidates.setdefault(notebook, []).append((rank, thing, revision))
    chosen = {}
    for notebook, found in candidates.items():
        found.sort(key=lambda candidate: candidate[0], reverse=True)
        (_, best, revision), *others = found
        chosen[notebook] = (best, revision)
        rest += [(thing, notebook) for _, thing, _ in others]
    return chosen, rest


def find_submitted(folder: Path, notebook: str, notebooks: list[str]) -> Path | None:
    """The file in a student's submitted folder that is ``notebook`` (a name without .ipynb), or None.

    The rules are collect's: ``<notebook>.ipynb`` itself first; else a renamed copy ("Copy of …",
    "… (1)", "…-1", other case or separators), the newest if there are several; and for a
    one-notebook assignment the folder's only notebook, whatever its name. ``notebooks`` are all
    the assignment's notebooks. Only regular files are returned, never a symbolic link.
    """
    files = []
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                if (item.name.lower().endswith(".ipynb") and not item.name.startswith("._")
                        and item.is_file(follow_symlinks=False)):
                    files.append((item.name, item.stat(follow_symlinks=False).st_mtime, Path(item.path)))
    except (FileNotFoundError, NotADirectoryError):
        return None
    chosen, _ = _choose(sorted(files), notebooks, exact_first=True)
    return chosen[notebook][0] if notebook in chosen else None


# -- reading the download -----------------------------------------------------------------------


def _refusal(parts: tuple[str, ...], size: int, mode: int) -> str | None:
    """Why a notebook-looking entry is not imported, before reading it; None if it may be read."""
    if stat.S_ISLNK(mode):
        return "a symbolic link: links in a download are never followed"
    if stat.S_ISDIR(mode):
        return "a folder named like a notebook, not a notebook file"
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # zips often give permissions only: a file
        return "not a regular file"
    longest = max(len(part.encode()) for part in parts)
    if longest > NAME_MAX:
        return f"a name longer than filesystems allow ({longest} bytes; at most {NAME_MAX})"
    if size > MAX_FILE_BYTES:
        return f"declares {size / 2**20:.0f} MiB; a notebook is at most {MAX_FILE_BYTES // 2**20} MiB"
    return None


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(part in _IGNORED or part.startswith("._") for part in parts)


def _zip_entries(archive: zipfile.ZipFile, source: Path, report: CollectReport) -> list[Entry]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise GraderError(f"{source} holds {len(infos)} entries, more than {MAX_ENTRIES}: not a bulk download "
                          "of one assignment; not importing it")
    fallback = dt.datetime.fromtimestamp(source.stat().st_mtime, dt.timezone.utc)
    entries = []
    for info in infos:
        path = PurePosixPath(info.filename)
        if info.filename.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", info.filename) or ".." in path.parts:
            raise GraderError(f"{source} contains a path outside the archive ({_shown(info.filename)}); "
                              "not importing it")
        parts = tuple(part for part in path.parts if part != ".")
        if not parts or _ignored(parts) or (info.is_dir() and not parts[-1].lower().endswith(".ipynb")):
            continue
        mode = info.external_attr >> 16
        if info.is_dir():
            mode = stat.S_IFDIR
        why = _refusal(parts, info.file_size, mode)
        if why is None and info.flag_bits & 0x1:
            why = "encrypted (password-protected): ask for a download without a password"
        if why:
            report.skipped.append((_shown("/".join(parts)), why))
            continue
        timestamp = _zip_time(info) or fallback
        entries.append(Entry(parts, info.file_size, timestamp, lambda info=info: archive.open(info)))
    return entries


def _zip_time(info: zipfile.ZipInfo) -> dt.datetime | None:
    """An entry's modification time: exact (UTC) from the extended-timestamp field where the zip has one,
    else the DOS time, which has no zone and is read as this machine's local time."""
    extra = info.extra
    while len(extra) >= 4:
        kind, size = int.from_bytes(extra[:2], "little"), int.from_bytes(extra[2:4], "little")
        body, extra = extra[4:4 + size], extra[4 + size:]
        if kind == 0x5455 and len(body) >= 5 and body[0] & 1:
            return dt.datetime.fromtimestamp(int.from_bytes(body[1:5], "little", signed=True), dt.timezone.utc)
    try:
        return dt.datetime(*info.date_time).astimezone(dt.timezone.utc)
    except ValueError:
        return None


def _open_file(path: str, seen: os.stat_result) -> BinaryIO:
    """Open the file the folder walk saw, never through a link, and only if it is still that file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
        os.close(fd)
        raise OSError("it changed while being collected")
    return os.fdopen(fd, "rb")


def _folder_entries(root: Path, report: CollectReport) -> list[Entry]:
    entries, count = [], 0
    for top, folders, files, top_fd in os.fwalk(root, follow_symlinks=False):
        here = Path(top).relative_to(root).parts
        count += len(folders) + len(files)
        if count > MAX_ENTRIES:
            raise GraderError(f"{root} holds more than {MAX_ENTRIES} files and folders: not a download of one "
                              "assignment; not importing it")
        for name in [*folders, *files]:
            parts = here + (name,)
            info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            if _ignored(parts) or stat.S_ISLNK(info.st_mode):
                if name in folders:
                    folders.remove(name)  # never walked into
                if not _ignored(parts):
                    report.skipped.append((_shown("/".join(parts)), _refusal(parts, 0, info.st_mode)))
                continue
            if name in folders and not name.lower().endswith(".ipynb"):
                continue
            why = _refusal(parts, info.st_size, info.st_mode)
            if why:
                report.skipped.append((_shown("/".join(parts)), why))
                if name in folders:
                    folders.remove(name)  # reported as a whole, not walked into
                continue
            path = os.path.join(top, name)
            entries.append(Entry(parts, info.st_size, dt.datetime.fromtimestamp(info.st_mtime, dt.timezone.utc),
                                 lambda path=path, info=info: _open_file(path, info)))
    return sorted(entries, key=lambda entry: entry.parts)


def _identify(entries: list[Entry], assignment: str, lms: str, report: CollectReport,
              roster: ClassList | None = None) -> list[Incoming]:
    """Whose each file is, by the LMS's naming (or the folder it is in), and who that is on the roster."""
    found = []
    unlisted: set[str] = set()
    for entry in entries:
        parts = entry.parts
        canvas = CANVAS.match(parts[-1]) if len(parts) == 1 else None
        moodle = next((m for m in map(MOODLE.match, parts[:-1]) if m), None)
        if lms in ("auto", "canvas") and canvas:
            user = canvas.group("userid")
            item = Incoming(entry, user, canvas.group("file"), f"Canvas user {user}", f"canvas:{user}",
                            lms_user_id=user, full_name=canvas.group("name"), late=bool(canvas.group("late")),
                            lms="canvas")
        elif lms in ("auto", "moodle") and moodle:
            user = moodle.group("participant")
            item = Incoming(entry, user, parts[-1], f"Moodle participant {user}", f"moodle:{user}",
                            lms_user_id=user, full_name=moodle.group("name"), lms="moodle")
        elif lms in ("auto", "folders") and len(parts) >= 2:
            # The folder that holds the notebook is the student's: a wrapper around the whole download
            # (zip -r x.zip ps1-submissions/) or a section folder above the students' is not.
            folders = [p for p in parts[:-1] if p != assignment]
            folder = folders[-1] if folders else parts[0]
            owner = f"the folder {_shown(folder)!r}" + (f" ({ascii(folder)})" if not folder.isascii() else "")
            item = Incoming(entry, student_id(folder), parts[-1], owner, f"folder:{folder}")
        else:
            why = "cannot tell whose it is (not an LMS name, not in a student folder)"
            report.skipped.append((_shown(entry.name), why if entry.notebook else f"not a notebook, and {why}"))
            continue
        if item.full_name:
            item.full_name = printable(re.sub(r"\s+", " ", unicodedata.normalize("NFC", item.full_name)).strip(),
                                       newlines=False)
        if roster is not None and item.lms in ("canvas", "moodle"):
            _on_roster(item, roster, unlisted, report)
        elif item.lms == "canvas" and item.full_name:
            # Canvas's file names hold the sortable name squashed ("doejane"): no telling first from last.
            item.names = {"first_name": "", "last_name": item.full_name}
        if not item.student:
            report.skipped.append((_shown(entry.name), f"{item.owner} does not make a student id"))
        elif len(item.student) > MAX_ID_CHARS or len(item.student.encode()) > MAX_ID_BYTES:
            report.skipped.append((_shown(entry.name), f"{item.owner} is too long for a student id (at most "
                                                       f"{MAX_ID_CHARS} characters and {MAX_ID_BYTES} bytes)"))
        else:
            found.append(item)
    return found


def _on_roster(item: Incoming, roster: ClassList, unlisted: set[str], report: CollectReport) -> None:
    """Who the roster says the owner is: their names, email, and (Moodle) an id that holds across assignments."""
    person = roster.by_canvas_id(item.lms_user_id) if item.lms == "canvas" else None
    if item.lms == "moodle" and roster.lms == "moodle":
        person = roster.by_name(item.full_name or "")
        if person is not None:
            item.student = roster_student_id(roster, person)
            item.identity = f"roster:{item.student}"
            item.lms_user_id = person.lms_user_id or None
    if person is None:
        if item.owner not in unlisted:
            unlisted.add(item.owner)
            report.warnings.append(f"{item.owner} ({item.full_name}) is not on the roster {roster.source.name}: "
                                   f"imported as student {item.student}; check the roster is this class's")
        if item.lms == "canvas":
            item.names = {"first_name": "", "last_name": item.full_name}
        return
    item.full_name = person.full_name
    item.names = {"first_name": person.first_name, "last_name": person.last_name}
    item.email = person.email or None


def _check_owners(items: list[Incoming], course: Course) -> None:
    """Two people never share a student id: one id taken by two of them is an error naming both."""
    taken: dict[str, Incoming] = {}
    for item in items:
        other = taken.setdefault(_fold(item.student), item)
        if other.identity != item.identity:
            _clash(other.owner, item.owner, item.student)
    if course.submitted.is_dir():
        for folder in course.submitted.iterdir():
            item = taken.get(_fold(folder.name))
            if item is not None and item.student != folder.name:
                _clash(f"the existing submitted/{_shown(folder.name)} ({ascii(folder.name)})", item.owner,
                       item.student)


def _clash(first: str, second: str, student: str) -> None:
    raise GraderError(f"{first} and {second} would both be student {_shown(student)!r}, and two people must never "
                      "share a grade. Rename one of them (student ids must differ in more than letter case or "
                      "Unicode normalisation) and collect again; nothing was imported.")


def _check_total(items: list[Incoming], source: Path) -> None:
    """The download's declared total, checked before anything is read (each file's was, when listed)."""
    total = sum(item.entry.size for item in items)
    if total > MAX_TOTAL_BYTES:
        raise GraderError(f"the notebooks in {source} declare {total / 2**30:.1f} GiB, more than "
                          f"{MAX_TOTAL_BYTES / 2**30:g} GiB; not importing it")


def _new_file(path: Path) -> BinaryIO:
    """A new regular file of mode FILE_MODE; never through a link, never over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "wb")


def _read(entry: Entry, target: Path | None, digest=None) -> str | None:
    """Copy the entry to ``target`` (or only read it through, for a dry run); why not, if it cannot be.
    ``digest`` (a hashlib object), if given, is fed what was read.

    Reading stops one byte past the declared size (itself at most MAX_FILE_BYTES), so a lying
    size never makes more than the declared total be written.
    """
    read = 0
    try:
        with entry.open() as stream, (_new_file(target) if target else contextlib.nullcontext()) as out:
            while chunk := stream.read(min(_CHUNK, entry.size + 1 - read)):
                read += len(chunk)
                if read > entry.size:
                    why = f"holds more than the {entry.size} bytes it declares: a damaged or forged file"
                    break
                if out is not None:
                    out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
            else:
                return None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
        why = f"cannot be read ({printable(error, newlines=False)}): a damaged or unsupported file"
    if target is not None:
        target.unlink(missing_ok=True)
    return why


def collect(course: Course, assignment: str, source: Path, *, lms: str = "auto",
            dry_run: bool = False, roster: ClassList | None = None) -> CollectReport:
    """Import ``source`` (a folder or a .zip) as submissions of ``assignment``, with the class's ``roster``."""
    notebooks = course.notebooks(assignment)
    source = Path(source)
    if not source.exists():
        raise GraderError(f"{source} does not exist")
    report = CollectReport()
    with contextlib.ExitStack() as stack:
        if source.is_file():
            try:
                archive = stack.enter_context(zipfile.ZipFile(source))
            except (zipfile.BadZipFile, OSError) as error:
                raise GraderError(f"{source} is not a zip file: {error}") from error
            entries = _zip_entries(archive, source, report)
        else:
            entries = _folder_entries(source, report)
        if not any(entry.notebook for entry in entries) and not report.skipped:
            others = ", ".join(_shown(entry.name) for entry in entries[:5]) + (", …" if len(entries) > 5 else "")
            raise GraderError(f"no .ipynb files in {source}" + (f" (it holds {others})" if entries else "")
                              + ": is it the download of this assignment's submissions?")
        incoming = _identify(entries, assignment, lms, report, roster)
        _check_owners(incoming, course)
        _check_total(incoming, source)
        staging = None
        if not dry_run:
            scratch = course.state
            scratch.mkdir(parents=True, exist_ok=True)
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="collect-", dir=scratch)))
        per_student: dict[str, list[Incoming]] = {}
        others: dict[str, list[Incoming]] = {}
        for number, item in enumerate(incoming):
            item.staged = staging / f"{number}.{'ipynb' if item.entry.notebook else 'file'}" if staging else None
            digest = hashlib.sha256()
            why = _read(item.entry, item.staged, digest)
            item.digest = digest.hexdigest()
            if why:
                report.skipped.append((_shown(item.entry.name), why))
            else:
                (per_student if item.entry.notebook else others).setdefault(item.student, []).append(item)
        chosen: dict[tuple[str, str], Incoming] = {}
        _refuse_two_files_of_one_notebook(per_student, notebooks)
        for student, items in per_student.items():
            files = [(item.original_name, item.entry.timestamp, item) for item in items]
            picked, rest = _choose(files, notebooks, exact_first=False)
            for notebook, (item, revision) in picked.items():
                item.revision = revision
                chosen[(student, notebook)] = item
            for item, notebook in rest:
                why = (f"an older copy of {_shown(student)}'s {notebook}" if notebook else
                       f"does not match a notebook of {assignment} ({', '.join(notebooks)})")
                report.skipped.append((_shown(item.entry.name), why))
        for (student, notebook), item in sorted(chosen.items()):
            note = "" if item.original_name == f"{notebook}.ipynb" else f"renamed from {item.original_name!r}"
            if item.late:
                note = (note + "; " if note else "") + "marked late by the LMS"
            report.imported.append(Imported(student, notebook, item.original_name, note))
        with_notebooks = {student for student, _ in chosen}
        for student, items in sorted(others.items()):
            uploads = [item for item in items if Path(item.original_name).name not in NBGRADER_FILES]
            report.not_notebooks += [(student, _shown(item.original_name)) for item in uploads]
            if student not in with_notebooks and uploads:
                report.wrong_type.append(student)
        if staging is not None:
            _store(course, assignment, chosen, others, staging, report)
    return report


def _refuse_two_files_of_one_notebook(per_student: dict[str, list[Incoming]], notebooks: list[str]) -> None:
    """One student, two different files of one notebook from two folders (two people of one name in two
    sections, say): which is theirs cannot be told, so nothing is imported and both files are named.

    Copies in one folder ("Copy of ps1 (1).ipynb", a resubmission) are not this: the latest is taken.
    """
    problems = []
    for student, items in sorted(per_student.items()):
        by_notebook: dict[str, list[Incoming]] = {}
        for item in items:
            matched = _match(item.original_name, notebooks)
            if matched:
                by_notebook.setdefault(matched[0], []).append(item)
        for notebook, same in sorted(by_notebook.items()):
            folders = {item.entry.parts[:-1] for item in same}
            contents = {item.digest for item in same}
            if len(folders) > 1 and len(contents) > 1:
                names = ", ".join(_shown(item.entry.name) for item in same)
                problems.append(f"{_shown(student)} would get {len(same)} different files of {notebook}: {names}")
    if problems:
        raise GraderError(
            "nothing was imported: " + "; ".join(problems) + ". The student is the folder that holds the notebook; "
            "if these are two people, give each a folder of their own (or use the LMS download), and if one of "
            "the files is not the submission, remove it; then collect again.")


# -- storing ----------------------------------------------------------------------------------


def _names(full_name: str) -> dict[str, str | None]:
    """The gradebook's first and last name of a full name; export joins them back with a space."""
    first, _, last = full_name.partition(" ")
    return {"first_name": first, "last_name": last} if last else {"first_name": "", "last_name": first}


def _submission_time(items: list[Incoming], others: list[Incoming]) -> tuple[dt.datetime | None, str, str]:
    """When the submission was made, as far as the download says: (time or None, how we know, late mark)."""
    kinds = {item.lms for item in items + others}
    if "canvas" in kinds:
        marked = "Canvas" if any(item.late for item in items) else ""
        return None, "none: Canvas's download carries no submission times, only its LATE mark", marked
    stamp = next((item for item in others if Path(item.original_name).name == "timestamp.txt"), None)
    if stamp is not None and stamp.staged is not None:
        with contextlib.suppress(OSError, ValueError, OverflowError):
            from nbgrader.utils import parse_utc

            when = parse_utc(stamp.staged.read_text().strip()).replace(tzinfo=dt.timezone.utc)
            return when, "the timestamp.txt nbgrader's exchange wrote", ""
    if "moodle" in kinds and items:
        return max(item.entry.timestamp for item in items), "the Moodle download's file times", ""
    return None, "none: a folder's file times are when it was copied, not when it was submitted", ""


def _secret(others: list[Incoming]) -> str:
    """The submission_secret.txt nbgrader's exchange gave the submission (its student's fetch_feedback finds
    their pages by it), else a new one."""
    import secrets

    given = next((item for item in others if Path(item.original_name).name == "submission_secret.txt"), None)
    if given is not None and given.staged is not None:
        text = given.staged.read_text(errors="replace").strip()
        if re.fullmatch(r"[0-9a-fA-F]{8,128}", text):
            return text
    return secrets.token_hex(16)


def _file_name(name: str, taken: set[str]) -> str:
    """A safe name in the submission folder for a file that is not a notebook (never a notebook's or nbgrader's)."""
    base = student_id(PurePosixPath(name).name) or "file"
    if base.lower().endswith(".ipynb") or base in NBGRADER_FILES:
        base = "uploaded-" + base
    candidate, number = base, 1
    while candidate.casefold() in taken:
        number += 1
        stem, dot, suffix = base.rpartition(".")
        candidate = f"{stem} ({number}).{suffix}" if dot and stem else f"{base} ({number})"
    taken.add(candidate.casefold())
    return candidate


def _store(course: Course, assignment: str, chosen: dict[tuple[str, str], Incoming],
           others: dict[str, list[Incoming]], staging: Path, report: CollectReport) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    students: dict[str, dict[str, Incoming]] = {student: {} for student in others}
    for (student, notebook), item in sorted(chosen.items()):
        students.setdefault(student, {})[notebook] = item
    course.submitted.mkdir(parents=True, exist_ok=True)
    with course.gradebook() as gradebook:
        for number, (student, items) in enumerate(sorted(students.items())):
            ready = staging / f"student-{number}"
            folder = course.submitted / student / assignment
            extra = [item for item in others.get(student, []) if Path(item.original_name).name not in NBGRADER_FILES]
            when, source, marked = _submission_time(list(items.values()), others.get(student, []))
            kept: list[str] = []
            try:
                ready.mkdir(mode=FOLDER_MODE)
                for notebook, item in items.items():
                    os.rename(item.staged, ready / f"{notebook}.ipynb")
                taken = {f"{notebook}.ipynb".casefold() for notebook in items} | NBGRADER_FILES
                for item in extra:  # kept, never lost: the instructor sees what was uploaded instead
                    kept.append(_file_name(item.original_name, taken))
                    os.rename(item.staged, ready / kept[-1])
                # nbgrader's tools (formgrader, release_feedback) expect both files in a submission folder.
                # Where the download carries no time, timestamp.txt holds when it was collected.
                with _new_file(ready / "timestamp.txt") as out:
                    out.write((when or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S.%f %Z").encode())
                with _new_file(ready / "submission_secret.txt") as out:
                    out.write(_secret(others.get(student, [])).encode())
                with contextlib.suppress(FileExistsError):
                    folder.parent.mkdir(mode=FOLDER_MODE)
                backup = None
                if folder.exists() or folder.is_symlink():
                    backup = course.replaced / assignment / f"{student}-{stamp}"
                    while backup.exists():
                        backup = backup.with_name(backup.name + "+")
                    backup.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(folder), str(backup))
                try:
                    shutil.move(str(ready), str(folder))  # complete, swapped in at once
                except OSError:
                    if backup is not None and not folder.exists():
                        shutil.move(str(backup), str(folder))  # their earlier submission stays in place
                    raise
                if backup is not None:
                    report.replaced.append(student)
            except OSError as error:
                raise GraderError(f"could not store {_shown(student)}'s submission ({error}); the students listed "
                                  "before were imported, the others were not: fix this and collect again") from error
            Intake(student, assignment, next(iter([*items.values(), *others.get(student, [])])).lms,
                   when.isoformat() if when else None, source, marked, kept).save(course)
            details: dict[str, str | None] = {}
            first = next(iter([*items.values(), *others.get(student, [])]))
            if first.lms_user_id:
                details["lms_user_id"] = first.lms_user_id
            if first.email:
                details["email"] = first.email
            if first.names is not None:
                details.update(first.names)
            elif first.full_name:
                details.update(_names(first.full_name))
            gradebook.update_or_create_student(student, **details)
            if first.lms == "moodle" and first.identity.startswith("moodle:"):
                _warn_same_name(gradebook, student, details, report)


def _warn_same_name(gradebook, student: str, details: dict, report: CollectReport) -> None:
    """Moodle's participant ids differ per assignment: one full name under two ids is likely one person twice."""
    name = (details.get("first_name"), details.get("last_name"))
    others = [s.id for s in gradebook.students if s.id != student and (s.first_name, s.last_name) == name]
    if others:
        full = " ".join(filter(None, name))
        report.warnings.append(f"{full} is student {student} here and {', '.join(others)} already: Moodle's "
                               "participant ids differ per assignment, so this is probably one person twice. Collect "
                               "with --roster (Moodle's participants export) to map people across assignments")


def print_report(report: CollectReport, assignment: str, dry_run: bool, say=print) -> None:
    verb = "would import" if dry_run else "imported"
    say(f"{verb} {len(report.imported)} notebook(s) of {len({i.student for i in report.imported})} student(s) for {assignment}")
    for item in report.imported:
        if item.note:
            say(f"  {_shown(item.student)}/{item.notebook}.ipynb: {printable(item.note, newlines=False)}")
    if report.replaced:
        say(f"replaced earlier submissions of {len(report.replaced)} student(s) (kept in .grader/replaced/)")
    for student, name in report.not_notebooks:
        whose = "no notebook: " + WRONG_TYPE if student in report.wrong_type else "beside the notebook"
        say(f"  {_shown(student)}: {name} is not a notebook, {'would be ' if dry_run else ''}kept, not graded ({whose})")
    for name, why in report.skipped:
        say(f"  skipped {_shown(name)}: {printable(why, newlines=False)}")
    for warning in report.warnings:
        say(f"warning: {printable(warning, newlines=False)}")
