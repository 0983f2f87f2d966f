"""Carry a student's engine from one notebook to the next.

Notebook 05 builds an engine (``Variable``, ``Function``, ``Add``, ``Mul``, ...) cell by cell;
the notebooks after it continue *that* engine. Each notebook is its own assignment and its own
kernel, so the engine travels as a file:

- :func:`save_engine` writes the source of the classes and functions the student names to a
  Python file beside the notebook (``my_engine.py``). It reads each definition back from the
  cell that defined it, so it works in JupyterLab, in Colab and under the grader alike.
- :func:`load_engine` imports that file in the next notebook (beside it, or where the notebook
  before saved it). When there is no such file, or it does not import, or it lacks a name the
  notebook needs, it says so and gives the course's reference engine instead, so a student who is
  stuck can continue.

A save that cannot write (a read-only folder) says so and returns ``None``: the notebook goes on,
and the next one uses the reference engine.

Only a definition made by a ``def`` or ``class`` statement in a cell (or a module) can be saved;
a name bound another way (``f = lambda ...``, ``Variable.backward = backward``) is refused with a
message that says how to write it instead.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import linecache
import os
import sys
import types
from pathlib import Path
from typing import Any, Iterable, Sequence

from autograd_lab.i18n import _

ENGINE_FILE = "my_engine.py"

HEADER = '''"""{title}

Written by autograd_lab.carry.save_engine: the definitions below are your own, copied from the cells
that made them. Edit the notebook, not this file, and save again.
"""
'''
#: What every saved engine imports; the imports its definitions use besides are added (:func:`imports_needed`).
IMPORTS = ["import weakref", "import numpy as np"]


#: What a saved engine runs first when part of it is the course's reference engine (a notebook that ran
#: on it, for want of an engine of the student's): the reference is not copied, it is run, as
#: :func:`load_engine` runs it, and the student's own definitions follow and replace its names.
REFERENCE_PART = '''# Part of this engine is the course's reference engine (autograd_lab.reference05), which the
# notebook ran on: it runs here first, and your own definitions below replace its names.
from autograd_lab import carry as _carry

_carry.run_reference(globals())

'''


class EngineError(ValueError):
    """A definition that cannot be saved, with what to do about it."""


def _functions(obj: Any) -> Iterable[types.FunctionType]:
    """The functions of ``obj``: itself, or a class's own methods."""
    if inspect.isfunction(obj):
        yield obj
    elif inspect.isclass(obj):
        for value in vars(obj).values():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if isinstance(function, property):
                function = function.fget
            if inspect.isfunction(function):
                yield function


def _code_objects(obj: Any) -> Iterable[types.CodeType]:
    """The code objects whose file holds ``obj``'s definition: its own, or its methods' (not ones it was given,
    such as ``backward = backward``)."""
    for function in _functions(obj):
        if inspect.isfunction(obj) or function.__qualname__.startswith(obj.__qualname__ + "."):
            yield function.__code__


def _names(code: types.CodeType) -> Iterable[str]:
    """The global names a code object (and the functions nested in it) may look up."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def imports_needed(objects: Iterable[Any]) -> list[str]:
    """The import lines the definitions of ``objects`` rely on, as their cells had them.

    A name the code looks up that is, where it was defined, a module (``heapq``, ``np``) or a
    function imported from one (``from heapq import heappush``) becomes an import line, so the
    saved file runs where that cell's imports were not made.
    """
    lines = []
    for obj in objects:
        for function in _functions(obj):
            for name in _names(function.__code__):
                value = function.__globals__.get(name)
                if isinstance(value, types.ModuleType):
                    line = (f"import {value.__name__}" if value.__name__ == name
                            else f"import {value.__name__} as {name}")
                elif (callable(value) and getattr(value, "__module__", "__main__") != "__main__"
                      and getattr(sys.modules.get(value.__module__), name, None) is value):
                    line = f"from {value.__module__} import {name}"
                else:
                    continue
                if line not in lines:
                    lines.append(line)
    return sorted(lines)


def definition_source(obj: Any) -> str:
    """The source of the ``def`` or ``class`` statement that made ``obj``, from its cell or file.

    IPython keeps each executed cell's text in :mod:`linecache` under the name its code objects
    carry, so the statement is found by parsing that text, whatever the Python version.
    """
    name = getattr(obj, "__name__", None)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)) or name is None:
        raise EngineError(_("{obj} is not a function or a class: save the classes and functions of your "
                            "engine.").format(obj=repr(obj)))
    if name == "<lambda>":
        raise EngineError(_("a lambda cannot be saved: write it as a `def` in a cell, then save again."))
    candidates = []
    for code in _code_objects(obj):
        linecache.checkcache(code.co_filename)  # a file saved again since it was read (a cell's text stays)
        lines = linecache.getlines(code.co_filename)
        if lines:
            candidates.append("".join(lines))
    # A class with no method of its own (``class Neg2(Neg): pass``): the newest cell that defines it.
    # IPython caches a cell's text with no modification time; files on disk have one.
    candidates += ["".join(entry[2]) for entry in reversed(list(linecache.cache.values()))
                   if len(entry) == 4 and entry[1] is None]
    for text in candidates:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        kind = ast.ClassDef if inspect.isclass(obj) else (ast.FunctionDef, ast.AsyncFunctionDef)
        found = [node for node in tree.body if isinstance(node, kind) and node.name == name]
        if found:
            return ast.get_source_segment(text, found[-1], padded=False)
    raise EngineError(_(
        "cannot find where `{name}` was defined. Run the cell that defines it (a `def {name}` or "
        "`class {name}` statement at the top of a cell) again, then save again.").format(name=name))


def save_engine(*objects: Any, path: str | Path = ENGINE_FILE, title: str = "Your engine.") -> Path | None:
    """Write the definitions of ``objects`` (classes and functions, in this order) to ``path``.

    Order matters as in any module: a class must come after the class it derives from.
    The file is then imported once, to check it, before this returns. A folder that cannot be
    written to is no error: it is said, and ``None`` returned.
    """
    if not objects:
        raise EngineError(_("name what to save, e.g. save_engine(Variable, Function, Add, Mul)."))
    borrowed = [obj for obj in objects if _from_reference(obj)]
    imports = sorted(set(IMPORTS + imports_needed(obj for obj in objects if obj not in borrowed)))
    standard = [line for line in imports if line.split()[1].split(".")[0] in sys.stdlib_module_names]
    others = [line for line in imports if line not in standard]
    parts = [HEADER.format(title=title) + "\n\n".join("\n".join(group) for group in (standard, others) if group)
             + "\n\n"]
    if borrowed:
        parts.append(REFERENCE_PART)
    for obj in objects:
        if obj not in borrowed:
            parts.append(definition_source(obj) + "\n\n")
    path = Path(path)
    try:
        path.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    except OSError as error:
        print(_("Your engine was not saved: {path} cannot be written here ({error}). Nothing is lost: the next "
                "notebook then continues with the course's reference engine.").format(
                    path=path, error=error.strerror or error))
        return None
    _import(path)  # a file that does not import should fail here, where the student can fix it
    names = ", ".join(obj.__name__ for obj in objects if obj not in borrowed)
    if borrowed:
        reference_names = ", ".join(obj.__name__ for obj in borrowed)
        names = (_("{names} (and, from the reference engine, {reference})").format(names=names,
                                                                                   reference=reference_names)
                 if names else _("the reference engine's {reference}").format(reference=reference_names))
    print(_("Saved {names} to {path}.").format(names=names, path=path))
    return path


def _reference_module() -> types.ModuleType:
    from autograd_lab import reference05

    return reference05


def _from_reference(obj: Any) -> bool:
    """Whether ``obj`` is the reference engine's: defined by its code, run in a notebook by :func:`run_reference`."""
    codes = list(_code_objects(obj))
    return bool(codes) and all(code.co_filename == _reference_module().__file__ for code in codes)


def run_reference(namespace: dict, reference: types.ModuleType | None = None) -> None:
    """Run the reference engine's code in ``namespace``, as if pasted there (a notebook's, or a saved engine's).

    Its functions then look names up in that namespace: a notebook's own ``add`` is what the
    reference ``Variable``'s ``x + y`` calls.
    """
    reference = reference or _reference_module()
    exec(compile(inspect.getsource(reference), reference.__file__, "exec"), namespace)


def _import(path: Path) -> types.ModuleType:
    name = f"_carried_engine_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_engine(names: Iterable[str], path: str | Path | Sequence[str | Path] = ENGINE_FILE, reference: Any = None,
                into: dict | None = None) -> types.SimpleNamespace:
    """The engine saved to ``path``, or the reference engine when it is missing or broken.

    Gives a namespace with each of ``names``. ``path`` may be a list of places to look, in order
    (``["my_engine.py", "../05-build-your-own-autograd/my_engine.py"]``): the first file that exists
    is the one used. ``reference`` is the module to fall back on (the course's reference engine,
    :mod:`autograd_lab.reference05`, by default).

    With ``into=globals()``, the file's code (or the reference module's) is also run in the
    notebook's own namespace, as if pasted into a cell: a class the notebook defines again
    afterwards (a broadcast-aware ``Add``) then replaces the engine's for every function that
    names it (``add``, the operators).
    """
    names = list(names)
    places = [Path(path)] if isinstance(path, (str, Path)) else [Path(place) for place in path]
    path = next((place for place in places if place.exists()), places[0])
    problem = None
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        # Graded (nbgrader sets this, and so does this course's grader): a notebook is graded on the reference
        # engine and its own code, never on a file another notebook's grading (or the student) left beside it.
        problem = _("while grading, every notebook runs on the reference engine with its own code")
    elif not path.exists():
        problem = _("there is no {files} (run the last cell of the notebook that saves it, and put the file "
                    "beside this notebook)").format(files=_(" or ").join(str(place) for place in places))
    else:
        try:
            module = _import(path)
        except Exception as error:  # the student's file: any error is theirs to see
            problem = _("{path} does not import: {error}").format(path=path, error=f"{type(error).__name__}: {error}")
        else:
            missing = [name for name in names if not hasattr(module, name)]
            if missing:
                problem = _("{path} has no {names}").format(path=path, names=", ".join(missing))
            else:
                print(_("Using your engine from {path}.").format(path=path))
                if into is not None:
                    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), into)
                    return types.SimpleNamespace(**{name: into[name] for name in names}, source="yours")
                return types.SimpleNamespace(**{name: getattr(module, name) for name in names}, source="yours")
    if reference is None:
        reference = _reference_module()
    missing = [name for name in names if not hasattr(reference, name)]
    if missing:
        raise EngineError(f"the reference engine has no {', '.join(missing)}")
    print(_("Using the course's reference engine: {problem}.").format(problem=problem))
    if into is not None:
        run_reference(into, reference)
        return types.SimpleNamespace(**{name: into[name] for name in names}, source="reference")
    return types.SimpleNamespace(**{name: getattr(reference, name) for name in names}, source="reference")
