"""The class list an LMS exports, to know who is who across assignments and to send grades back.

Two files are understood, as the LMS writes them:

* Canvas's gradebook export (Grades → Export): ``Student`` ("Doe, Jane"), ``ID`` (the
  Canvas user id, which the submissions download carries too), ``SIS User ID``,
  ``SIS Login ID``, ``Section``, then a column per assignment named "Name (id)",
  which is how Canvas's import recognises an existing assignment;
* Moodle's participants or grades export: ``First name``, ``Last name``, ``Email address``
  and, where the site shows them, ``Username`` and ``ID number``.

Canvas's download names a submission by user id, so a Canvas student's id is their
Canvas user id, with or without a roster; the roster gives their real names (the
download has only "doejane"). Moodle's download names it by full name and a
*participant id* that is different in every assignment: with a roster, a Moodle
student's id is their email address (their username where the export has no email),
found by full name, so the same person is one student in every assignment; and the
export can carry what Moodle's grade import matches on.

Set it once in ``nbgrader_config.py`` (``c.Roster.file = "roster.csv"``, relative to
the course) or pass ``--roster FILE`` to ``collect`` and ``export``.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Dict, Unicode
from traitlets.config import LoggingConfigurable

from grader.errors import GraderError


class Roster(LoggingConfigurable):
    file = Unicode("", help="the LMS's class list (Canvas gradebook export or Moodle participants export), "
                            "relative to the course").tag(config=True)
    columns = Dict(help='assignment → the LMS column to export it under, e.g. {"ps1": "Problem set 1 (12345)"}; '
                        "Canvas's columns are found in its gradebook export by assignment name").tag(config=True)


@dataclass
class Person:
    first_name: str
    last_name: str
    lms_user_id: str = ""  # Canvas's ID; Moodle's ID number
    email: str = ""
    login: str = ""  # Canvas's SIS Login ID; Moodle's Username

    @property
    def full_name(self) -> str:
        return " ".join(filter(None, [self.first_name, self.last_name]))


@dataclass
class ClassList:
    lms: str  # "canvas" or "moodle"
    people: list[Person]
    source: Path
    columns: dict[str, str] = field(default_factory=dict)  # assignment name → the LMS's column header

    def by_canvas_id(self, user_id: str) -> Person | None:
        return next((p for p in self.people if p.lms_user_id == user_id), None) if self.lms == "canvas" else None

    def by_name(self, full_name: str) -> Person | None:
        """The one person of that full name (case, accents' encoding and spacing aside); two are an error."""
        wanted = name_key(full_name)
        found = [p for p in self.people if name_key(p.full_name) == wanted]
        if len(found) > 1:
            raise GraderError(f"the roster {self.source} has {len(found)} people named {full_name!r} "
                              f"({', '.join(p.email or p.login or p.lms_user_id for p in found)}), and a Moodle "
                              "download tells them apart by name only: grade them by hand, or rename one in the "
                              "roster as the LMS shows it; nothing was imported.")
        return found[0] if found else None


def name_key(name: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", name)).strip().casefold()


def student_id_of(person: Person) -> str:
    """A Moodle student's id across assignments: email, else username, else ID number."""
    return person.email or person.login or person.lms_user_id


def roster_student_id(roster: ClassList, person: Person) -> str:
    """The student id collect gives this person: the Canvas user id, or (Moodle) :func:`student_id_of`."""
    from grader.intake.collect import student_id

    return person.lms_user_id if roster.lms == "canvas" else student_id(student_id_of(person))


def load(path: Path) -> ClassList:
    """Read an LMS's class list; an unknown layout is an error that says which files are understood."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GraderError(f"cannot read the roster {path}: {error}") from error
    header = [cell.strip() for cell in rows[0]] if rows else []
    body = [dict(zip(header, (cell.strip() for cell in row))) for row in rows[1:] if any(cell.strip() for cell in row)]
    if {"Student", "ID"} <= set(header):
        people = []
        for row in body:
            if not row.get("ID", "").isdigit():  # "Points Possible", muted-assignment rows
                continue
            last, _, first = row.get("Student", "").partition(",")
            people.append(Person(first.strip(), last.strip(), row["ID"], login=row.get("SIS Login ID", "")))
        columns = {}
        for column in header[5:]:
            match = re.fullmatch(r"(?P<name>.+?) \((?P<id>\d+)\)", column)
            if match:
                columns[match.group("name")] = column
        return ClassList("canvas", people, path, columns)
    if {"First name", "Last name"} <= set(header) and ({"Email address", "Username"} & set(header)):
        people = [Person(row["First name"], row["Last name"], row.get("ID number", ""), row.get("Email address", ""),
                         row.get("Username", "")) for row in body]
        return ClassList("moodle", people, path)
    raise GraderError(f"{path} is not a roster this grader reads: export Canvas's gradebook (Grades → Export; "
                      "columns Student, ID, …) or Moodle's participants (columns First name, Last name, "
                      "Email address), and pass that file")


def course_roster(course, override: str | None = None) -> ClassList | None:
    """The roster ``--roster`` names, else ``c.Roster.file``, else None."""
    name = override or Roster(config=course.config).file
    if not name:
        return None
    path = Path(name)
    path = path if path.is_absolute() or override else course.root / path
    if not path.is_file():
        raise GraderError(f"no roster at {path}" + ("" if override else " (c.Roster.file in nbgrader_config.py)"))
    return load(path)


def lms_columns(course, roster: ClassList | None) -> dict[str, str]:
    """assignment → the LMS column header it is exported under: c.Roster.columns, then the roster's own."""
    columns = dict(roster.columns) if roster else {}
    columns.update(Roster(config=course.config).columns)
    return columns
