"""Students' tokens for the course server: made from the roster, stored hashed, revocable.

A token is 32 random bytes (``secrets.token_urlsafe``). The server keeps only its
SHA-256 digest (a token is random, not a password someone chose, so a slow hash adds
nothing), so a copy of ``.grader/server/server.db`` lets no one submit as a student.
The tokens themselves are written once, to the instructor's CSV for mail-merge
(student id, name, email, token; readable by the instructor only), and never again.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from grader.errors import GraderError
from grader.server.store import Store

PREFIX = "agl_"  # tells a token apart from anything else pasted into the prompt


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass
class Student:
    id: str
    name: str = ""
    email: str = ""


def students_from(course, roster: str | None, ids: list[str] | None, id_file: str | None) -> list[Student]:
    """Whom to issue tokens to: the roster's students (as collect names them), listed ids, or a file of ids."""
    from grader.intake.collect import student_id
    from grader.intake.roster import course_roster, roster_student_id

    found: list[Student] = []
    if roster or not (ids or id_file):
        classlist = course_roster(course, roster)
        if classlist is None:
            raise GraderError("whom to issue tokens to? Give --roster CSV (the LMS's class list), --student ID "
                              "(repeatable), or --ids FILE (one student id a line), or set c.Roster.file")
        found += [Student(roster_student_id(classlist, p), p.full_name, p.email) for p in classlist.people]
    for raw in ids or []:
        found.append(Student(student_id(raw)))
    if id_file:
        try:
            lines = Path(id_file).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise GraderError(f"cannot read {id_file}: {error}") from error
        found += [Student(student_id(line)) for line in lines if line.strip()]
    empty = [s for s in found if not s.id]
    if empty:
        raise GraderError(f"{len(empty)} student(s) have no usable id (an empty line or name?); fix the list and "
                          "run again: no token was issued")
    unique = {}
    for student in found:
        unique.setdefault(student.id, student)
    return list(unique.values())


def issue(store: Store, students: list[Student], *, replace: bool = False) -> tuple[str, list[str]]:
    """New tokens as CSV text (student, name, email, token), and the ids that kept the token they had.

    A student who already has a valid token keeps it unless ``replace``: issuing again for a
    grown roster gives tokens to the new students only. A revoked token is always replaced.
    """
    active = {row["student"] for row in store.tokens() if row["revoked"] is None}
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["student", "name", "email", "token"])
    kept = []
    for student in students:
        if student.id in active and not replace:
            kept.append(student.id)
            continue
        token = new_token()
        store.set_token(student.id, digest(token))
        writer.writerow([_cell(student.id), _cell(student.name), _cell(student.email), token])
    return text.getvalue(), kept


def _cell(text: str) -> str:
    """A CSV cell no spreadsheet runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_private(path: Path, text: str) -> None:
    """The tokens file, readable by the instructor only (it is as good as every student's password)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", newline="") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
