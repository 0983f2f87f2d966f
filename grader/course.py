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
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

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
        """nbgrader's gradebook, a file only the grader's user may read (it holds every student's grades)."""
        from nbgrader.api import Gradebook

        path = self.root / "gradebook.db"
        if not path.exists():
            write_atomically(path, b"", private=True)  # SQLite keeps an existing file's mode (and gives its journal the same)
        os.chmod(path, 0o600)
        return Gradebook(self.db_url, course_id=self.config.CourseDirectory.get("course_id", ""))


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
