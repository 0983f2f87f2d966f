"""The course directory: where nbgrader keeps sources, student versions, submissions and grades.

``nbgrader``'s API does not read ``nbgrader_config.py`` by itself; :func:`open_course`
does, so that every command of this grader sees the same configuration as the
``nbgrader`` command line run in the course directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grader.errors import GraderError

CONFIG_FILE = "nbgrader_config.py"


def default_course_dir() -> Path:
    """``./course`` when run from the repository, else the current directory."""
    here = Path.cwd()
    if (here / CONFIG_FILE).exists():
        return here
    return here / "course"


@dataclass
class Course:
    root: Path
    config: Config

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def state(self) -> Path:
        """The grader's own files: results, intake records, the secret, replaced submissions."""
        return self.root / ".grader"

    @property
    def results(self) -> Path:
        """Each submission's record (grader.records.SubmissionRecord): ``results/<assignment>/<student>.json``."""
        return self.state / "results"

    @property
    def secret_file(self) -> Path:
        """The course secret the hidden tests' inputs are drawn from (0600)."""
        return self.state / "secret"

    @property
    def locks(self) -> Path:
        """One lock file per (assignment, student) being graded (grader.locks)."""
        return self.state / "locks"

    @property
    def replaced(self) -> Path:
        """Earlier submissions a newer one replaced, never deleted: ``replaced/<assignment>/<student>-<time>``."""
        return self.state / "replaced"

    @property
    def released_history(self) -> Path:
        """Every version of the graded cells released to students: ``released/<assignment>/<notebook>.json``."""
        return self.state / "released"

    @property
    def feedback_stamps(self) -> Path:
        """What each feedback page was made from: ``feedback/<assignment>/<student>.done``."""
        return self.state / "feedback"

    def intake_path(self, assignment: str, student: str) -> Path:
        """What collect learnt from the download about one submission (grader.intake.collect.Intake)."""
        return self.state / "submissions" / assignment / f"{student}.json"

    @property
    def db_url(self) -> str:
        """The gradebook nbgrader's configuration names (``c.CourseDirectory.db_url``), as formgrader and
        ``nbgrader`` use it: by default ``gradebook.db`` in the course; on a shared JupyterHub often PostgreSQL."""
        configured = self.config.CourseDirectory.get("db_url")
        return configured or f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def sqlite_path(self) -> Path | None:
        """The gradebook's file when it is SQLite, else None (a database server keeps its own access rules)."""
        url = self.db_url
        if not url.startswith("sqlite:///"):
            return None
        return Path(url[len("sqlite:///"):])

    def assignments(self) -> list[str]:
        """The assignments of the course: the folders of ``source/``."""
        if not self.source.is_dir():
            raise GraderError(f"{self.source} does not exist: is {self.root} an nbgrader course directory?")
        return sorted(p.name for p in self.source.iterdir() if p.is_dir() and not p.name.startswith("."))

    def notebooks(self, assignment: str) -> list[str]:
        """Notebook names (without .ipynb) of an assignment's source."""
        folder = self.source / assignment
        if not folder.is_dir():
            known = ", ".join(self.assignments()) or "none"
            raise GraderError(f"no assignment {assignment!r} in {self.source} (assignments: {known})")
        return sorted(p.stem for p in folder.glob("*.ipynb") if not p.name.startswith("."))

    def select(self, assignments: list[str] | None) -> list[str]:
        """Check the assignment names an instructor typed; all of them when none are given."""
        known = self.assignments()
        if not assignments:
            return known
        unknown = [a for a in assignments if a not in known]
        if unknown:
            raise GraderError(f"unknown assignment {', '.join(unknown)}; the course has: {', '.join(known)}")
        return assignments

    def api(self):
        """nbgrader's API, configured from this course's nbgrader_config.py."""
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=self.config)
        coursedir.root = str(self.root)
        return NbGraderAPI(coursedir=coursedir, config=self.config)

    def gradebook(self):
        """nbgrader's gradebook, where ``c.CourseDirectory.db_url`` puts it.

        A SQLite gradebook is a file only the grader's user may read (it holds every student's grades).
        """
        from nbgrader.api import Gradebook

        path = self.sqlite_path
        if path is not None:
            if not path.exists():
                write_atomically(path, b"", private=True)  # SQLite keeps an existing file's mode (and its journal's)
            os.chmod(path, 0o600)
        try:
            return Gradebook(self.db_url, course_id=self.config.CourseDirectory.get("course_id", ""))
        except Exception as error:
            if path is not None:
                raise
            raise GraderError(f"cannot open the gradebook at {_without_password(self.db_url)} "
                              f"(c.CourseDirectory.db_url in {CONFIG_FILE}): {error}") from error


def _without_password(url: str) -> str:
    """A database URL as it may be printed: ``postgresql://user:***@host/db``."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over ``path``.

    ``private``: readable by this user only (0600, in a folder made 0700).
    """
    path.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600 if private else 0o666)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def open_course(path: str | os.PathLike | None = None) -> Course:
    """Load a course directory and its nbgrader_config.py."""
    root = Path(path).resolve() if path else default_course_dir().resolve()
    config_path = root / CONFIG_FILE
    if not config_path.exists():
        raise GraderError(
            f"{root} is not a course directory (no {CONFIG_FILE}). Pass --course PATH, "
            "or run the command inside the course directory."
        )
    config = PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    exchange = config.Exchange.get("root")
    if exchange and not os.path.isdir(exchange):
        os.makedirs(exchange, exist_ok=True)  # nbgrader's API complains loudly when it is missing
    return Course(root, config)
