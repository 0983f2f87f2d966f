"""What each worker's zygote imports before its first fork: torch and what the course's notebooks import.

Light on purpose (json and ast, no nbformat or nbgrader): ``python -m grader autograde`` starts its
workers with :func:`released_imports` before it imports nbgrader and reads the gradebook (seconds), so
that the zygotes' imports overlap with its own.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from grader.text import parse_cell

DEFAULT_PRELOAD = ["torch", "numpy", "matplotlib.pyplot", "autograd_lab", "autograd_lab.checks", "IPython"]


def imported_modules(source: str) -> set[str]:
    """The modules a cell imports (absolute imports only)."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def released_imports(release: Path, assignments: list[str]) -> list[str]:
    """:data:`DEFAULT_PRELOAD` and the modules the code cells of these assignments' released notebooks import.

    (The gradebook's cells, which :func:`grader.autograde.jobs.course_imports` reads, are the same cells; a
    notebook that cannot be read here adds nothing: a module not preloaded is imported by the notebook itself.)
    """
    modules: set[str] = set()
    for assignment in assignments:
        for path in sorted((release / assignment).glob("*.ipynb")):
            try:
                cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
                for cell in cells:
                    if cell.get("cell_type") == "code":
                        source = cell.get("source", "")
                        modules |= imported_modules(source if isinstance(source, str) else "".join(source))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
    return DEFAULT_PRELOAD + sorted(modules)
