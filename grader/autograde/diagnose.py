"""What went wrong in a failed test, in a few words an instructor can count across the class.

The checks already name the likely mistake (``Verdict.hint``: a flipped sign, a factor
of 2, accumulated gradients, ...). Here a failed test becomes one of:

* ``not attempted``: the stub's ``raise NotImplementedError()`` is still there;
* ``misspelled: poly_derivitive defined, poly_derivative expected``: the name the test
  calls is not defined, and one defined in the notebook is close to it;
* ``not defined: poly_derivative``: not defined, and nothing close is;
* the check's own diagnosis (its ``likely mistake``), else what it noted about the answer
  (``note``: the sign flipped everywhere, twice the expected value);
* ``wrong``: a wrong answer the checks could not explain.

``report`` counts them per exercise; ``autograde``'s summary names blank notebooks and misspellings.
"""
from __future__ import annotations

import ast
import difflib
import re

from grader.text import parse_cell

NOT_ATTEMPTED = "not attempted"
WRONG = "wrong"
_UNDEFINED = re.compile(r"name '([^']+)' is not defined")


def diagnosis(verdict, defined: set[str]) -> str:
    """The few words for one failed test's verdict, given the names the notebook defines."""
    message = verdict.message or ""
    if "raised NotImplementedError" in message:
        return NOT_ATTEMPTED
    missing = _UNDEFINED.search(message)
    if missing:
        name = missing.group(1)
        close = difflib.get_close_matches(name, sorted(defined), n=1, cutoff=0.75)
        return f"misspelled: {close[0]} defined, {name} expected" if close else f"not defined: {name}"
    if verdict.hint:
        return verdict.hint
    if getattr(verdict, "note", None):  # a fact about the answer (the sign flipped, twice the value), not a cause
        return verdict.note
    return WRONG


def defined_names(sources: list[str]) -> set[str]:
    """Functions, classes and variables the given cells define at top level (cells that do not parse are skipped)."""
    names: set[str] = set()
    for source in sources:
        try:
            tree = parse_cell(source)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def blank(diagnoses: dict[str, str], tests: dict[str, bool]) -> bool:
    """Every test failed, and every one because it was not attempted: a blank notebook."""
    return bool(tests) and not any(tests.values()) and all(diagnoses.get(t) == NOT_ATTEMPTED for t in tests)


def exercise_names(cells) -> dict[int, str]:
    """Cell index → the exercise it belongs to: its own grading id, else the last one above it."""
    names, current = {}, ""
    for index, cell in enumerate(cells):
        current = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or current
        if current:
            names[index] = current
    return names


def name_cells(text: str, names: dict[int, str]) -> str:
    """ "cell 12 ran longer …" → "cell 12 (make-leaf) ran longer …": cell numbers shift, exercise names do not."""
    def named(match: re.Match) -> str:
        index = int(match.group(1))
        return f"{match.group(0)} ({names[index]})" if index in names else match.group(0)

    return re.sub(r"\bcell (\d+)\b(?! \()", named, text)
