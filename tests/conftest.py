import os
import sys
from pathlib import Path

import pytest

# nbgrader runs `alembic` by name: find it beside this Python even without an activated venv.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def course_template(tmp_path_factory) -> Path:
    """The fixture course (tests/fixture_course.py) with its student version generated, made once."""
    from fixture_course import make_course

    return make_course(tmp_path_factory.mktemp("template") / "course")


@pytest.fixture
def course_dir(course_template, tmp_path) -> Path:
    from fixture_course import copy_course

    return copy_course(course_template, tmp_path / "course")


@pytest.fixture(autouse=True)
def _main_module_restored():
    """IPython's InteractiveShell (tests that run cells as a notebook would) puts its own module in
    ``sys.modules["__main__"]``, one without ``__spec__``: multiprocessing's spawn (the grader's workers)
    then fails in every later test. Each test gets back the ``__main__`` it started with."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True, scope="session")
def _no_ipython_history_thread():
    """IPython's InteractiveShell saves its history from a thread of its own, which would run beside every
    later test in this process. When grading, a check that watches for PyTorch refuses to run beside
    another thread (a graded kernel has one), so later tests of graded checks would fail. Tests keep
    no history."""
    from IPython.core.history import HistoryManager

    HistoryManager.enabled = False
    yield
