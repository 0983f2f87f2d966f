"""The exercise index: each graded exercise's notebook cell, the checks it calls, the engine code it exercises and
the tests that name it, so an author finds an exercise in seconds.

``python -m grader release --list`` prints it; ``--list --write`` puts it in ``AUTHORING.md`` of the course, between
two marker lines, where it is committed, and ``tests/test_course.py`` fails when it is out of step with the notebooks.
Everything is read from the source notebooks' code (no kernel runs), so it takes a second.
"""
from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from grader.course import Course
from grader.errors import GraderError
from grader.notebooks import cell_source, is_solution_cell, is_test_cell, read_notebook
from grader.text import parse_cell

BEGIN = "<!-- exercise index: made by `python -m grader release --list --write`; do not edit by hand -->"
END = "<!-- end of the exercise index -->"
#: The engine's modules, what a student reads (the checks are not engine code).
ENGINE_MODULES = ["core", "config", "functions", "layers", "optimizers", "numerical", "graph", "forward_mode",
                  "datasets", "utils"]
#: checks.* calls that make inputs, not verdicts.
NOT_CHECKS = {"rng", "random_graph", "chain"}


@dataclass
class Exercise:
    notebook: str
    grade_id: str
    cell: int                 # the test cell's position in the source notebook, counting from 1
    points: float
    answers: list[str]        # the grade ids of the solution cells it tests
    checks: list[str]         # checks.* functions its test cell calls, in order
    engine: list[str]         # autograd_lab names (module.name) its answer and test cells use
    own: list[str]            # autograd_lab names whose own version its answer cells write (05's Variable)
    tests: dict[str, int]     # test file → how many times it names the exercise (its test or answer grade ids)


def exercises(course: Course, tests: Path | None = None) -> list[Exercise]:
    """Every graded exercise of the course's source notebooks, in course order."""
    named = _names_in_tests(tests) if tests is not None and tests.is_dir() else {}
    found = []
    for assignment in course.select(None):
        for notebook in course.notebooks(assignment):
            found += _notebook_exercises(notebook, read_notebook(course.source / assignment / f"{notebook}.ipynb"),
                                         named)
    return found


def _notebook_exercises(notebook: str, nb, named: dict[str, dict[str, int]]) -> list[Exercise]:
    engine_names: dict[str, str] = {}  # a name the notebook bound → the autograd_lab object it is
    answers: list[str] = []            # solution cells since the last test cell
    answer_cells: list = []
    tested: list[str] = []             # what the test before this one tested (several tests of one answer)
    tested_cells: list = []
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = parse_cell(cell_source(cell))
        except SyntaxError:
            continue
        _bind(tree, engine_names)
        meta = cell.metadata.get("nbgrader", {})
        if is_solution_cell(cell):
            answers.append(meta.get("grade_id", f"cell {index + 1}"))
            answer_cells.append(tree)
        elif is_test_cell(cell):
            if answers:
                tested, tested_cells, answers, answer_cells = answers, answer_cells, [], []
            grade_id = meta["grade_id"]
            counts: dict[str, int] = {}
            for name in [grade_id, *tested]:  # in a file that names the notebook too (the fixture course's
                for path, count in named.get(name, {}).items():  # "make-leaf" is not 01's)
                    if path in named.get(notebook, {}):
                        counts[path] = counts.get(path, 0) + count
            found.append(Exercise(notebook, grade_id, index + 1, meta.get("points", 0), list(tested),
                                  _checks(tree), _engine([*tested_cells, tree], engine_names),
                                  _counterparts(tested_cells), counts))
    return found


def _bind(tree: ast.Module, engine_names: dict[str, str]) -> None:
    """Follow the notebook's top-level names: imports from autograd_lab add one, any other binding removes it."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "autograd_lab":
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}")
                if target is not None:
                    engine_names[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name) if alias.name.split(".")[0] == "autograd_lab" and alias.asname else None
                if target is not None:
                    engine_names[alias.asname] = target
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            engine_names.pop(node.name, None)
        else:
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    engine_names.pop(child.id, None)


@functools.lru_cache(maxsize=None)
def _resolve(dotted: str) -> str | None:
    """``autograd_lab.X`` as where it is defined (``core.Variable``, ``functions``); None for the checks."""
    module, _, name = dotted.rpartition(".")
    if "checks" in dotted.split("."):
        return None
    try:
        imported = importlib.import_module(dotted)
        return imported.__name__.removeprefix("autograd_lab.")
    except ImportError:
        pass
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return dotted.removeprefix("autograd_lab.")
    home = getattr(value, "__module__", None) or module
    return f"{home.removeprefix('autograd_lab.')}.{name}"


def _checks(tree: ast.Module) -> list[str]:
    called = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "checks" and node.func.attr not in NOT_CHECKS):
            if f"checks.{node.func.attr}" not in called:
                called.append(f"checks.{node.func.attr}")
    return sorted(called)


def _engine(trees: list[ast.Module], engine_names: dict[str, str]) -> list[str]:
    """The autograd_lab objects the cells use: a name bound to one, or an attribute of a module (``F.exp``)."""
    used = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in engine_names:
                target = engine_names[node.value.id]
                used.add(f"{target}.{node.attr}" if _is_module(target) else target)
            elif isinstance(node, ast.Name) and node.id in engine_names and not _is_module(engine_names[node.id]):
                used.add(engine_names[node.id])
    return sorted(used)


def _counterparts(trees: list[ast.Module]) -> list[str]:
    """The engine's version (``core.Variable``) of each class or function an answer writes under the engine's name."""
    written = {node.name for tree in trees for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return sorted(_engine_definitions()[name] for name in written if name in _engine_definitions())


@functools.lru_cache(maxsize=None)
def _engine_definitions() -> dict[str, str]:
    """Class or function name → where autograd_lab defines it (the first module, in the package's order)."""
    found: dict[str, str] = {}
    for module in ENGINE_MODULES:
        tree = ast.parse((Path(importlib.import_module("autograd_lab").__file__).parent / f"{module}.py").read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                found.setdefault(node.name, f"{module}.{node.name}")
    return found


@functools.lru_cache(maxsize=None)
def _is_module(target: str) -> bool:
    try:
        importlib.import_module(f"autograd_lab.{target}")
        return True
    except ImportError:
        return False


def _names_in_tests(folder: Path) -> dict[str, dict[str, int]]:
    """String constant → test file → how many times the file holds it (grade ids are named as strings)."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
                counts = found.setdefault(node.value, {})
                counts[path.name] = counts.get(path.name, 0) + 1
    return found


def markdown(found: list[Exercise]) -> str:
    """The index as Markdown: a table per notebook."""
    lines = [BEGIN, "",
             "*cell*: the test cell's position in the source notebook, from 1 (the student version has two Colab "
             "cells more at the top). *answer cells*: the solution cells it grades. *engine code*: the `autograd_lab` "
             "names (module.name) its answer and test cells use, and `own X` where the answer writes its own version "
             "of `X`; — for exercises on PyTorch and numpy alone. *tests*: the files of `tests/` that name its grade "
             "ids (and its notebook), with how often.", ""]
    notebook = None
    for exercise in found:
        if exercise.notebook != notebook:
            notebook = exercise.notebook
            if len(lines) > 2:
                lines.append("")
            lines += [f"### {notebook}", "",
                      "| test cell | cell | points | answer cells | checks | engine code | tests that name it |",
                      "|---|---:|---:|---|---|---|---|"]
        tests = ", ".join(f"{name} ({count})" for name, count in sorted(exercise.tests.items())) or "—"
        lines.append(f"| `{exercise.grade_id}` | {exercise.cell} | {exercise.points:g} | "
                     f"{', '.join(f'`{a}`' for a in exercise.answers) or '—'} | {', '.join(exercise.checks) or '—'} | "
                     f"{_engine_column(exercise)} | {tests} |")
    lines += ["", END]
    return "\n".join(lines)


def _engine_column(exercise: Exercise) -> str:
    used = [f"`{name}`" for name in exercise.engine] + [f"own `{name}`" for name in exercise.own]
    return ", ".join(used) or "—"


def with_index(text: str, index: str) -> str:
    """``text`` (AUTHORING.md) with its index section replaced by ``index``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise GraderError(f"AUTHORING.md has no exercise index section: put the two lines\n{BEGIN}\n{END}\nwhere it "
                          "goes")
    return text[:start] + index + text[end + len(END):]


def authoring_path(course: Course) -> Path:
    return Path(course.root) / "AUTHORING.md"


def tests_folder(course: Course) -> Path:
    """The repository's tests/, beside the course folder."""
    return Path(course.root).resolve().parent / "tests"
