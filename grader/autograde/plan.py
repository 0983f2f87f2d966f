"""Planning a notebook's tests in the grader's trusted process.

Each test cell runs here in plan mode (:func:`autograd_lab.checks.plan_cell`):
the expected values are computed now, with this process's PyTorch, and what
must run on the student's code is recorded as probe specs. The sandboxed kernel
later receives only those specs — never the test code, never the expected values.

A plan depends on the test cells and a salt that seeds the hidden tests' random
inputs (``checks.rng``); the autograder plans each submission with a salt of its
own, so no two submissions are tested on the same hidden inputs.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass

from autograd_lab.checks import AuthoringError, PlannedCheck, plan_cell
from autograd_lab.checks.lazy import PlanNamespace
from grader.notebooks import cell_source, is_demo_cell, is_test_cell
from grader.text import parse_cell

@dataclass
class NotebookPlan:
    """The planned checks of every test cell of one notebook, by grade id."""

    checks: dict[str, list[PlannedCheck]]
    fingerprint: str


def test_sources(cells: list[dict]) -> list[tuple[str, str]]:
    """(grade id, source) of the notebook's test cells, in order."""
    return [(cell["metadata"]["nbgrader"]["grade_id"], cell_source(cell)) for cell in cells if is_test_cell(cell)]


def lint_test_cell(grade_id: str, source: str) -> None:
    """Test cells may bind only ``_private`` names (and imports).

    A test cell runs in the student's kernel under stock nbgrader, on Colab and in
    JupyterLab, but not when this grader grades: a public name it bound would
    change the student's later cells in one case and not the other.
    """
    try:
        tree = parse_cell(source)
    except SyntaxError as error:
        raise AuthoringError(f"test cell {grade_id!r} has a syntax error: {error}") from error
    collector = _GlobalBindings()
    collector.visit(tree)
    for name in collector.names:
        if not name.startswith("_"):
            raise AuthoringError(
                f"test cell {grade_id!r} binds the name {name!r}: call it _{name} so that it cannot "
                "overwrite a student's variable (test cells share the student's namespace in a notebook)"
            )


class _GlobalBindings(ast.NodeVisitor):
    """The names a cell binds at the notebook's top level (imports only when asked)."""

    def __init__(self, include_imports: bool = False) -> None:
        self.names: list[str] = []
        self.include_imports = include_imports

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.names.append(node.name)  # its body is a scope of its own

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.AST) -> None:
        pass

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda

    def visit_Import(self, node: ast.AST) -> None:
        if self.include_imports:
            self.names += [(alias.asname or alias.name).split(".")[0] for alias in node.names]

    visit_ImportFrom = visit_Import

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.names.append(node.id)


def demo_cell_problems(cells: list[dict]) -> list[str]:
    """Names that a cell grading runs takes from a ``demo`` cell (which grading skips).

    Walks the notebook in order, remembering which cell last bound each name; a
    non-demo cell that uses a name last bound by a demo cell would fail (or behave
    differently) when graded, so that is a problem of the notebook.
    """
    last_binder: dict[str, str] = {}
    problems = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = parse_cell(cell_source(cell))
        except SyntaxError:
            continue
        demo = is_demo_cell(cell)
        label = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index}"
        if not demo:
            local = {node.id for node in ast.walk(tree)
                     if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
            local |= {arg.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
                      for arg in node.args + node.kwonlyargs + node.posonlyargs + [node.vararg, node.kwarg]
                      if arg is not None}
            used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
            for name in sorted(used - local):
                if name in last_binder:
                    problems.append(f"{label} uses {name!r}, which only the demo cell {last_binder[name]} defines; "
                                    "grading skips demo cells: define it in a cell that is not tagged demo")
        bound = _GlobalBindings(include_imports=True)
        bound.visit(tree)
        for name in bound.names:
            if demo:
                last_binder[name] = label
            else:
                last_binder.pop(name, None)
    return problems


def plan_notebook(tests: list[tuple[str, str]], salt: str = "", shared: dict | None = None) -> NotebookPlan:
    """Plan every test cell (in order, sharing one namespace, as in a notebook).

    ``salt`` changes the hidden tests' random inputs (``checks.rng``) for this plan. ``shared``: a dict
    kept across the plans of these same tests (one per notebook), where the checks that do not depend on
    the salt are kept from the first plan for the next ones (see ``checks.plan_cell``).
    """
    return NotebookPlan(_plan_cells(tests, PlanNamespace(), salt, shared), fingerprint(tests))


def _plan_cells(tests: list[tuple[str, str]], namespace: PlanNamespace, salt: str,
                shared: dict | None) -> dict[str, list[PlannedCheck]]:
    planned: dict[str, list[PlannedCheck]] = {}
    if shared is not None and shared.setdefault(("tests",), fingerprint(tests)) != fingerprint(tests):
        raise ValueError("plan_notebook: a shared dict serves the plans of one notebook's tests")
    for grade_id, source in tests:
        lint_test_cell(grade_id, source)
        try:
            planned[grade_id] = plan_cell(source, namespace, salt=salt, filename=f"<test cell {grade_id}>",
                                          shared=None if shared is None else shared.setdefault(grade_id, {}))
        except AuthoringError as error:
            raise AuthoringError(f"test cell {grade_id!r}: {error}") from error
        except Exception as error:
            raise AuthoringError(
                f"test cell {grade_id!r} failed while planning ({type(error).__name__}: {error}); "
                "test cells must compute their expected values without the student's objects"
            ) from error
        if not planned[grade_id]:
            raise AuthoringError(f"test cell {grade_id!r} has no checks: every test cell must call checks.*")
    return planned


def fingerprint(tests: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for grade_id, source in tests:
        digest.update(grade_id.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()
