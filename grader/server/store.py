"""The server's own records, in ``.grader/server/``: every submission, the queue, tokens and display names.

One SQLite database (``server.db``, readable by the grader's user only) in WAL
mode with a busy timeout, so the web process's threads read while the grading
thread writes; nbgrader's gradebook is a separate file (or server) that this
never locks. A submission's notebook is written to ``submissions/`` (atomically,
under a name of its own) *before* its row is inserted, and a row's verdict and
its ``done`` state are one update: so whenever the server is killed (even
``kill -9``), each submission is either not yet accepted (the student got no
answer, and sees none in the history), queued, or done with its verdict. On the
next start the ones that were being graded are queued again (:meth:`Store.requeue`)
and each is graded and recorded once.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.course import Course, write_atomically

BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    student TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, issued REAL NOT NULL, revoked REAL);
CREATE TABLE IF NOT EXISTS names (student TEXT PRIMARY KEY, display TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student TEXT NOT NULL, assignment TEXT NOT NULL, notebook TEXT NOT NULL,
    filename TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL, received REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'grading', 'done')),
    started REAL, finished REAL, grading_seconds REAL,
    status TEXT, score REAL, max_score REAL, verdict TEXT);
CREATE INDEX IF NOT EXISTS submissions_by_student ON submissions (student, assignment);
CREATE INDEX IF NOT EXISTS submissions_by_state ON submissions (state, id);
"""


@dataclass
class Submission:
    id: int
    student: str
    assignment: str
    notebook: str
    filename: str
    file: str
    size: int
    received: float
    state: str
    started: float | None = None
    finished: float | None = None
    grading_seconds: float | None = None
    status: str | None = None
    score: float | None = None
    max_score: float | None = None
    verdict: str | None = None

    def verdict_data(self) -> dict | None:
        return json.loads(self.verdict) if self.verdict else None


def server_folder(course: Course) -> Path:
    return course.state / "server"


class Store:
    """The server's database; one connection per thread."""

    def __init__(self, course: Course) -> None:
        self.folder = server_folder(course)
        self.files = self.folder / "submissions"
        self.files.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.path = self.folder / "server.db"
        if not self.path.exists():
            write_atomically(self.path, b"", private=True)
        os.chmod(self.path, 0o600)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=FULL")  # a verdict the student was shown survives a power cut
            self._local.db = _Transactions(db)
        return self._local.db

    # -- tokens -------------------------------------------------------------------------------------

    def set_token(self, student: str, digest: str) -> None:
        with self._db() as db:
            db.execute("INSERT INTO tokens (student, digest, issued, revoked) VALUES (?, ?, ?, NULL) "
                       "ON CONFLICT (student) DO UPDATE SET digest = excluded.digest, issued = excluded.issued, "
                       "revoked = NULL", (student, digest, time.time()))

    def revoke(self, student: str) -> bool:
        with self._db() as db:
            return db.execute("UPDATE tokens SET revoked = ? WHERE student = ? AND revoked IS NULL",
                              (time.time(), student)).rowcount > 0

    def student_of(self, digest: str) -> str | None:
        row = self._db().execute("SELECT student FROM tokens WHERE digest = ? AND revoked IS NULL",
                                 (digest,)).fetchone()
        return row["student"] if row else None

    def tokens(self) -> list[sqlite3.Row]:
        return self._db().execute("SELECT student, issued, revoked FROM tokens ORDER BY student").fetchall()

    # -- display names ------------------------------------------------------------------------------

    def set_display_name(self, student: str, name: str) -> None:
        with self._db() as db:
            if name:
                db.execute("INSERT INTO names VALUES (?, ?) ON CONFLICT (student) DO UPDATE SET display = "
                           "excluded.display", (student, name))
            else:
                db.execute("DELETE FROM names WHERE student = ?", (student,))

    def display_names(self) -> dict[str, str]:
        return {row["student"]: row["display"] for row in self._db().execute("SELECT * FROM names")}

    # -- submissions --------------------------------------------------------------------------------

    def add(self, *, student: str, assignment: str, notebook: str, filename: str, data: bytes,
            received: float) -> Submission:
        """Keep the notebook as received, then queue it (in that order: a queued row always has its file).

        Raises :class:`Busy` when the student has a submission waiting or being graded: checked in the
        transaction that inserts, so two uploads at once cannot both be queued.
        """
        name = f"{int(received)}-{secrets.token_hex(8)}.ipynb"
        write_atomically(self.files / name, data, private=True)
        try:
            with self._db() as db:
                busy = db.execute("SELECT * FROM submissions WHERE student = ? AND state != 'done' ORDER BY id "
                                  "LIMIT 1", (student,)).fetchone()
                if busy is not None:
                    raise Busy(Submission(**busy))
                cursor = db.execute(
                    "INSERT INTO submissions (student, assignment, notebook, filename, file, size, received, state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')",
                    (student, assignment, notebook, filename, name, len(data), received))
                number = cursor.lastrowid
        except Busy:
            (self.files / name).unlink(missing_ok=True)
            raise
        return self.get(number)

    def data(self, submission: Submission) -> bytes:
        return (self.files / submission.file).read_bytes()

    def get(self, submission_id: int) -> Submission | None:
        row = self._db().execute("SELECT * FROM submissions WHERE id = ?", (submission_id,)).fetchone()
        return Submission(**row) if row else None

    def history(self, student: str, assignment: str | None = None) -> list[Submission]:
        query, args = "SELECT * FROM submissions WHERE student = ?", [student]
        if assignment is not None:
            query, args = query + " AND assignment = ?", args + [assignment]
        return [Submission(**row) for row in self._db().execute(query + " ORDER BY id", args)]

    def in_flight(self, student: str) -> Submission | None:
        row = self._db().execute("SELECT * FROM submissions WHERE student = ? AND state != 'done' ORDER BY id "
                                 "LIMIT 1", (student,)).fetchone()
        return Submission(**row) if row else None

    def waiting(self) -> int:
        return self._db().execute("SELECT count(*) FROM submissions WHERE state != 'done'").fetchone()[0]

    def position(self, submission: Submission) -> int:
        """How many submissions are ahead of this one in the queue."""
        return self._db().execute("SELECT count(*) FROM submissions WHERE state != 'done' AND id < ?",
                                  (submission.id,)).fetchone()[0]

    def requeue(self) -> int:
        """After a restart: what was being graded when the server stopped is queued again."""
        with self._db() as db:
            return db.execute("UPDATE submissions SET state = 'queued', started = NULL WHERE state = 'grading'"
                              ).rowcount

    def regrade(self, assignment: str | None = None) -> int:
        """Every graded submission (of ``assignment``) queued again, as after a test was fixed: each gets a new
        verdict, and the counting attempt is graded last so the gradebook holds it."""
        with self._db() as db:
            return db.execute("UPDATE submissions SET state = 'queued', started = NULL WHERE state = 'done'"
                              + (" AND assignment = ?" if assignment else ""),
                              (assignment,) if assignment else ()).rowcount

    def claim(self, limit: int, skip: set[tuple[str, str]] = frozenset()) -> list[Submission]:
        """The oldest queued submissions, at most one per student and assignment, marked as being graded
        (none of a student and assignment in ``skip``)."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM submissions WHERE state = 'queued' ORDER BY id").fetchall()
            seen = set(skip) | {(row["student"], row["assignment"]) for row in
                                db.execute("SELECT student, assignment FROM submissions WHERE state = 'grading'")}
            chosen = []
            for row in rows:
                key = (row["student"], row["assignment"])
                if key not in seen and len(chosen) < limit:
                    seen.add(key)
                    chosen.append(row["id"])
            now = time.time()
            db.executemany("UPDATE submissions SET state = 'grading', started = ? WHERE id = ?",
                           [(now, i) for i in chosen])
        return [self.get(i) for i in chosen]

    def release(self, submission: Submission) -> None:
        """Back in the queue (another run of autograde holds the student): tried again later."""
        with self._db() as db:
            db.execute("UPDATE submissions SET state = 'queued', started = NULL WHERE id = ?", (submission.id,))

    def finish(self, submission: Submission, *, status: str, score: float | None, max_score: float,
               verdict: dict, seconds: float) -> None:
        with self._db() as db:
            db.execute("UPDATE submissions SET state = 'done', finished = ?, status = ?, score = ?, max_score = ?, "
                       "verdict = ?, grading_seconds = ? WHERE id = ?",
                       (time.time(), status, score, max_score, json.dumps(verdict), seconds, submission.id))

    def done(self, assignment: str | None = None) -> list[Submission]:
        query = "SELECT * FROM submissions WHERE state = 'done'" + (" AND assignment = ?" if assignment else "")
        return [Submission(**row) for row in self._db().execute(query + " ORDER BY id",
                                                                 (assignment,) if assignment else ())]


class Busy(Exception):
    """The student already has this submission waiting or being graded."""

    def __init__(self, submission: Submission) -> None:
        super().__init__(f"submission #{submission.id} is still being graded")
        self.submission = submission


class _Transactions:
    """A connection in autocommit mode whose ``with`` block is one ``BEGIN IMMEDIATE`` transaction
    (taken with the write lock up front, so two writers wait for each other instead of failing)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, *args):
        return self.db.execute(*args)

    def executescript(self, script: str):
        return self.db.executescript(script)

    def executemany(self, *args):
        return self.db.executemany(*args)

    def __enter__(self) -> "_Transactions":
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind, value, trace) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
