"""A corrected release merged into a notebook a student already started, matched by cell id.

The course's cells (a fixed test, corrected text) are taken from the new release; the student's
answers (nbgrader's solution cells) and the cells they added are kept. ``python3 manage.py lab``
updates a learner's workspace with it, and ``python -m grader merge`` gives an instructor the
merged notebook for a student who started from the earlier release (an LMS upload, Colab).

Standard library only: manage.py runs it before the project's environment exists.
"""
from __future__ import annotations

from pathlib import Path


def _key(cell: dict) -> str:
    """A cell's identity across releases: its nbgrader grading id, else its cell id."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") or ""


def _is_answer(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def merge_release(mine: dict, release: dict) -> dict:
    """The new release's notebook with the learner's work in it, matched by cell id.

    Every cell of the release is taken from the release, except the learner's answers (nbgrader's
    solution cells), which are kept as they wrote them. Cells the learner added (in neither
    release's cells) stay after the cell they followed. Cells the release no longer has are dropped
    unless they are answers or the learner's own.
    """
    if not all(_key(cell) for cell in release["cells"]):
        raise ValueError("the release has cells without ids: they cannot be matched")
    if not all(_key(cell) for cell in mine["cells"]):  # the course's text would be taken for the learner's own cells
        raise ValueError("it has cells without ids (saved by a tool older than nbformat 4.5): they cannot be matched")
    released = {_key(cell) for cell in release["cells"]}
    answers = {_key(cell): cell for cell in mine["cells"] if _is_answer(cell) and _key(cell)}
    own: dict[str, list[dict]] = {}  # the release cell they follow ("" for the top) → the learner's cells
    anchor = ""
    for cell in mine["cells"]:
        key = _key(cell)
        if key in released:
            anchor = key
        elif not cell.get("metadata", {}).get("nbgrader") or _is_answer(cell):
            own.setdefault(anchor, []).append(cell)
    cells = list(own.pop("", []))
    for cell in release["cells"]:
        key = _key(cell)
        cells.append(answers.get(key, cell) if _is_answer(cell) else cell)
        cells += own.pop(key, [])
    cells += [cell for rest in own.values() for cell in rest]  # after a cell the release removed: at the end
    return {**mine, "cells": cells, "nbformat": release["nbformat"], "nbformat_minor": release["nbformat_minor"]}


def merge_file(course, assignment: str, started: Path, output: Path, notebook: str | None = None) -> str:
    """``python -m grader merge``: ``started`` (a student's notebook) merged into the assignment's current release,
    written to ``output``; which release notebook it was (the only one, ``notebook``, or the one of the same name)."""
    import json

    from grader.errors import GraderError

    notebooks = course.notebooks(assignment)
    if notebook is None:
        same = [name for name in notebooks if name == started.stem]
        if len(notebooks) != 1 and not same:
            raise GraderError(f"which notebook of {assignment} is {started.name}? name it with --notebook "
                              f"({', '.join(notebooks)})")
        notebook = same[0] if same else notebooks[0]
    elif notebook not in notebooks:
        raise GraderError(f"{assignment} has no notebook {notebook!r} ({', '.join(notebooks)})")
    release_path = course.release / assignment / f"{notebook}.ipynb"
    if not release_path.is_file():
        raise GraderError(f"{assignment} has no student version yet: run `python -m grader release {assignment}`")
    try:
        mine = json.loads(started.read_text(encoding="utf-8"))
        merged = merge_release(mine, json.loads(release_path.read_text(encoding="utf-8")))
    except OSError as error:
        raise GraderError(f"cannot read {started}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise GraderError(f"{started.name} is not a notebook this can merge "
                          f"({type(error).__name__}: {error})") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(merged, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return notebook
