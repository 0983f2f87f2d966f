"""Release-time lints of an exercise's promises (run by ``release``; see ``grader/authoring/release.py``).

* **Visible checks promise what hidden ones check.** The visible part of a test cell is
  what a student runs; the hidden part may add inputs, never properties. Each check
  call is reduced to the *kinds* of property it checks (a value, gradients, a
  tensor's ``requires_grad``/``dtype``/leaf-ness, an exception, several steps in a
  row, no PyTorch, not autograd_lab's own answer): every kind of the hidden part must be in the visible part.
* **The task and its first hint do not hold the solution.** An exercise whose task
  text or first hint already contains the code of its solution (at least half of the
  solution's non-trivial lines, or its only one) teaches typing, not thinking.
"""
from __future__ import annotations

import ast
import re

from grader.text import parse_cell


HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION(.*?)### END SOLUTION", re.S)

#: What each check compares, before its keyword arguments add properties.
CHECK_KINDS = {
    "close": {"value"}, "equal": {"value"}, "function": {"value"}, "gradient": {"value"},
    "backward": {"value", "gradients"}, "graph": {"value", "gradients", "no PyTorch"},
    "tensor": {"a tensor"}, "raises": {"an exception"}, "steps": {"value", "steps in a row"},
    "unchanged": {"arguments left unchanged"},
}
#: Keyword arguments that add a property (``requires_grad=None`` and friends add none), by check.
PROPERTY_KEYWORDS = {"requires_grad": "requires_grad", "dtype": "dtype", "leaf": "leaf-ness",
                     "forbid_torch": "no PyTorch", "forbid": "not autograd_lab's answer"}
TENSOR_ONLY = {"requires_grad", "dtype", "leaf"}  # elsewhere ``leaf`` is a Variable class, not a property


def check_kinds(source: str) -> set[str]:
    """The kinds of property the ``checks.*`` calls of some test code check."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return set()
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks"):
            continue
        kinds |= CHECK_KINDS.get(node.func.attr, set())
        for keyword in node.keywords:
            constant = keyword.value.value if isinstance(keyword.value, ast.Constant) else ...
            if isinstance(keyword.value, (ast.List, ast.Tuple)) and not keyword.value.elts:
                constant = None  # forbid=[] forbids nothing
            if keyword.arg in TENSOR_ONLY and node.func.attr != "tensor":
                continue
            if keyword.arg in PROPERTY_KEYWORDS and constant not in (None, False):
                kinds.add(PROPERTY_KEYWORDS[keyword.arg])
        if node.func.attr == "graph" and any(k.arg == "forbid_torch" and isinstance(k.value, ast.Constant)
                                             and k.value.value is False for k in node.keywords):
            kinds.discard("no PyTorch")
    return kinds


def visible_promise_problems(grade_id: str, source: str) -> list[str]:
    """Kinds of check the hidden part of a test cell makes and its visible part does not."""
    hidden = "\n".join(HIDDEN.findall(source))
    visible = HIDDEN.sub("", source)
    missing = check_kinds(hidden) - check_kinds(visible)
    if not missing:
        return []
    return [f"test cell {grade_id!r}: the hidden tests check {', '.join(sorted(missing))}, which the visible "
            "part does not (hidden tests may add inputs, never properties): check it visibly too"]


def _normalized(code: str) -> str:
    return re.sub(r"\s+", " ", code).strip()


def _code_in_markdown(text: str) -> str:
    """The code spans and code blocks of some Markdown, normalised, one per line."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = re.findall(r"`([^`]+)`", text)
    return "\n".join(_normalized(line) for part in blocks + spans for line in part.splitlines())


def _first_hint_only(text: str) -> str:
    """Markdown up to the end of its first ``<details>`` box: the task text and the first hint."""
    boxes = text.split("</details>")
    return boxes[0] if len(boxes) > 1 else text


def solution_lines(source: str) -> list[str]:
    """The solution's non-trivial lines, normalised (no comments, no bare keywords)."""
    lines = []
    for block in SOLUTION.findall(source):
        for line in block.splitlines():
            line = _normalized(line.split("#")[0])
            if len(line) >= 10 and line not in ("return None", "pass"):
                lines.append(line)
    return lines


def solution_in_hint_problems(cells: list[dict]) -> list[str]:
    """Exercises whose task text or first hint already holds (most of) their solution's code."""
    problems = []
    markdown: list[str] = []
    for cell in cells:
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            markdown.append(source)
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("solution"):
            markdown = []  # the task text is the Markdown right above the solution cell
            continue
        text = _first_hint_only("\n".join(markdown))
        code = _code_in_markdown(text)
        lines = solution_lines(source)
        given = [line for line in lines if line in code]
        if lines and len(given) * 2 >= len(lines):
            problems.append(f"solution cell {meta.get('grade_id')!r}: its task text or first hint already holds "
                            f"{len(given)} of its {len(lines)} solution lines ({given[0]!r}, ...): make the first "
                            "hint a question or a partial step")
        markdown = []
    return problems
