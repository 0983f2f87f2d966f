"""A small nbgrader course, and a class of submissions of every kind, for the grader's tests.

The course has one assignment, ``ps1``, with three exercises (5 points), written
the way the real course is (solutions, visible and hidden tests through
``autograd_lab.checks``), but fast to run.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.notebooks import fill_solutions, is_solution_cell

ROOT = Path(__file__).resolve().parents[1]

SOLUTIONS = {
    "square-grad": '''def square_grad(x):
    """d/dx x² at x, with PyTorch's autograd."""
    ### BEGIN SOLUTION
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (t ** 2).backward()
    return t.grad.item()
    ### END SOLUTION''',
    "make-leaf": '''def make_leaf(values):
    """A float tensor holding ``values`` that requires grad."""
    ### BEGIN SOLUTION
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)
    ### END SOLUTION''',
    "norm-grad": '''def norm_grad(x):
    """The gradient of sum(x²) at the numpy array x, without PyTorch."""
    ### BEGIN SOLUTION
    return 2 * np.asarray(x, dtype=float)
    ### END SOLUTION''',
}

TESTS = {
    "test-square-grad": (2, '''from autograd_lab import checks
checks.close(square_grad(3.0), 6.0)
### BEGIN HIDDEN TESTS
_rng = checks.rng("test-square-grad")
checks.function(square_grad, lambda x: 2 * x, [(float(v),) for v in _rng.uniform(-5, 5, 4)])
### END HIDDEN TESTS'''),
    "test-make-leaf": (1, '''from autograd_lab import checks
import torch
checks.tensor(make_leaf([3.0, 4.0]), torch.tensor([3.0, 4.0]), requires_grad=True, dtype="floating")
### BEGIN HIDDEN TESTS
_rng = checks.rng("test-make-leaf")
_values = [[float(v) for v in row] for row in _rng.uniform(-2, 2, (2, 3))]
checks.tensor(make_leaf(_values), torch.tensor(_values), requires_grad=True, dtype="floating")
### END HIDDEN TESTS'''),
    "test-norm-grad": (2, '''from autograd_lab import checks
import numpy as np
checks.gradient(norm_grad, lambda x: (x ** 2).sum(), [(np.array([1.0, 2.0, 3.0]),)], forbid_torch=True)
### BEGIN HIDDEN TESTS
_rng = checks.rng("test-norm-grad")
checks.gradient(norm_grad, lambda x: (x ** 2).sum(), [(_rng.normal(size=4),), (_rng.normal(size=(2, 2)),)],
                forbid_torch=True)
### END HIDDEN TESTS'''),
}

ORDER = [("square-grad", "test-square-grad"), ("make-leaf", "test-make-leaf"), ("norm-grad", "test-norm-grad")]
MAX_SCORE = 5.0


def _cell(kind: str, source: str, grade_id: str | None = None, points: int = 0, **extra):
    cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
    cell["id"] = grade_id or f"cell-{abs(hash(source)) % 10**8}"
    if grade_id:
        meta = {"grade_id": grade_id, "schema_version": 3}
        if kind == "solution":
            meta.update(solution=True, grade=False, locked=False)
        elif kind == "test":
            meta.update(solution=False, grade=True, locked=True, points=points)
        else:
            meta.update(solution=False, grade=False, locked=True)
        cell.metadata["nbgrader"] = meta
    cell.metadata.update(extra)
    return cell


def source_notebook() -> nbformat.NotebookNode:
    cells = [_cell("markdown", "# Problem set 1\nThree small exercises.", "intro"),
             _cell("readonly", "import numpy as np\nimport torch", "imports")]
    for solution, test in ORDER:
        cells.append(_cell("solution", SOLUTIONS[solution], solution))
        points, code = TESTS[test]
        cells.append(_cell("test", code, test, points))
    cells.append(_cell("readonly", "import matplotlib.pyplot as plt\nplt.plot([0, 1], [0, 1])\nplt.show()",
                       "figure", tags=["demo"]))
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return notebook


def make_course(root: Path) -> Path:
    """A course directory with ps1's source and its generated student version."""
    from grader.course import open_course
    from grader.authoring.release import generate

    root.mkdir(parents=True, exist_ok=True)
    (root / "source" / "ps1").mkdir(parents=True, exist_ok=True)
    config = (ROOT / "course" / "nbgrader_config.py").read_text()
    config += "\nc.Sandbox.cell_timeout = 3\nc.Sandbox.notebook_timeout = 60\n"
    (root / "nbgrader_config.py").write_text(config)
    nbformat.write(source_notebook(), root / "source" / "ps1" / "ps1.ipynb")
    generate(open_course(root), "ps1")
    return root


def _student_version(root: Path):
    return nbformat.read(root / "release" / "ps1" / "ps1.ipynb", as_version=4)


def _answered(root: Path, answers: dict[str, str]):
    """The student version with ``answers`` (grade id → code) in place of the stubs: each answer goes where the
    student writes it, after the function's signature and docstring (``# YOUR CODE HERE`` and what follows)."""
    nb = _student_version(root)
    heads = {cell.metadata.nbgrader.grade_id: cell.source.split("# YOUR CODE HERE")[0]
             for cell in nb.cells if is_solution_cell(cell)}
    return fill_solutions(nb, {grade_id: heads[grade_id] + body for grade_id, body in answers.items()})


CORRECT = {
    "square-grad": "t = torch.tensor(x, dtype=torch.float64, requires_grad=True)\n    (t ** 2).backward()\n    return t.grad.item()",
    "make-leaf": "return torch.tensor(values, dtype=torch.float32, requires_grad=True)",
    "norm-grad": "return 2 * np.asarray(x, dtype=float)",
}
WRONG = {
    "square-grad": "return 2 * x + 1",
    "make-leaf": "return torch.tensor(values)",
    "norm-grad": "return -2 * np.asarray(x, dtype=float)",
}


def class_notebooks(root: Path) -> dict[str, tuple[str, object, float | None, str]]:
    """student → (file name, notebook or raw bytes, expected score, expected status)."""
    def with_cells(answers: dict[str, str], extra: list[tuple[int, str]]):
        nb = _answered(root, answers)
        for offset, source in sorted(extra, reverse=True):
            nb.cells.insert(offset, new_code_cell(source))
        return nb

    index_after = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"): i
                   for i, cell in enumerate(_student_version(root).cells)}
    partly = dict(CORRECT, **{"make-leaf": WRONG["make-leaf"], "norm-grad": WRONG["norm-grad"]})
    looping = dict(CORRECT, **{"make-leaf": "while True:\n        pass"})
    crashing = with_cells(CORRECT, [(index_after["test-square-grad"] + 1, "import os\nos._exit(3)")])
    duplicated = _answered(root, CORRECT)
    test_cell = next(c for c in duplicated.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test-square-grad")
    solution_cell = next(c for c in duplicated.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "square-grad")
    duplicated.cells.insert(duplicated.cells.index(test_cell) + 1, nbformat.from_dict(dict(test_cell)))
    duplicated.cells.insert(duplicated.cells.index(solution_cell) + 1, nbformat.from_dict(dict(solution_cell)))
    deleted = _answered(root, CORRECT)
    deleted.cells = [c for c in deleted.cells
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "test-norm-grad"]
    windows = _answered(root, CORRECT)  # saved by an editor with Windows line ends, and a byte-order mark
    for cell in windows.cells:
        cell.source = cell.source.replace("\n", "\r\n")
    stripped = _answered(root, CORRECT)  # pasted into a new notebook: no grading metadata left
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    return {
        "correct": ("ps1.ipynb", _answered(root, CORRECT), 5.0, "graded"),
        "windows": ("ps1.ipynb", b"\xef\xbb\xbf" + nbformat.writes(windows).encode(), 5.0, "graded"),
        "stripped": ("ps1.ipynb", stripped, None, "invalid"),
        "blank": ("ps1.ipynb", _student_version(root), 0.0, "graded"),
        "wrong": ("ps1.ipynb", _answered(root, WRONG), 0.0, "graded"),
        "partly": ("ps1.ipynb", _answered(root, partly), 2.0, "graded"),
        "looping": ("ps1.ipynb", _answered(root, looping), 4.0, "timeout"),
        "crashing": ("ps1.ipynb", crashing, 2.0, "died"),
        "renamed": ("Copy of ps1 (1).ipynb", _answered(root, CORRECT), 5.0, "graded"),
        "duplicated": ("ps1.ipynb", duplicated, 5.0, "graded"),
        "deleted-test": ("ps1.ipynb", deleted, 5.0, "graded"),
        "broken-json": ("ps1.ipynb", b'{"cells": [', None, "invalid"),
        "nothing": ("notes.txt", b"I forgot to attach my notebook", 0.0, "missing"),
    }


def write_class(root: Path, folder: Path) -> dict[str, tuple[float | None, str]]:
    """Write the class as a folder-per-student download; return student → (score, status)."""
    expected = {}
    for student, (name, content, score, status) in class_notebooks(root).items():
        target = folder / student / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            nbformat.write(content, target)
        expected[student] = (score, status)
    return expected


def copy_course(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target
