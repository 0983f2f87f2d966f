"""The kernel's side of grading: run the planned probes against the student's namespace.

This runs inside the sandboxed kernel (started by :mod:`grader.sandbox.runner`), never in the
grading process. It decides nothing: each probe's observation goes back as JSON.
"""
from __future__ import annotations

from typing import Any, Callable

from autograd_lab.checks.observed import Observed, to_json
from autograd_lab.checks.probes import run_probe
from autograd_lab.checks.wire import _evaluate, decode, one_evaluation
from autograd_lab.i18n import _


#: Student functions that were stopped for running too long: not called again in this notebook.
_stopped: list[Any] = []


def run_planned(specs: list[dict], namespace: dict) -> list[dict]:
    """Kernel side of grading: run each planned probe against the student's namespace.

    Returns one JSON observation per probe. A missing name or an error in the
    student's code is an observation too, never a crash of the grading run. When
    the grader interrupts a probe that ran past the cell's time limit, the function
    it was calling is remembered: later probes of the same function are not run
    (they would loop too), so a loop costs its time limit once.
    """
    results = []
    for spec in specs:
        def arguments(spec: dict = spec) -> tuple[list, dict]:
            args = [decode(arg, namespace) for arg in spec["args"]]
            kwargs = {key: decode(value, namespace) for key, value in spec.get("kwargs", {}).items()}
            return args, kwargs

        callee = _callee(spec, namespace)
        if callee is not None and any(callee is stopped for stopped in _stopped):
            results.append(to_json(Observed("exception", type="CellTimeoutError",
                                            message=_not_run_again(getattr(callee, "__name__", "this function")))))
            continue
        try:
            plug = spec.get("plug")
            with one_evaluation():
                record = run_probe(spec["probe"], arguments, forbid_torch=spec.get("forbid_torch", False), strict=True,
                                   forbid=spec.get("forbid", ()),
                                   plug=None if plug is None else (lambda plug=plug: decode(plug[0], namespace)(
                                       decode(plug[1], namespace))))
        except KeyboardInterrupt as interrupt:
            remember_stopped(interrupt.__traceback__, namespace)
            if callee is not None and not any(callee is f for f in _stopped):
                _stopped.append(callee)
            record = Observed("exception", type="CellTimeoutError",
                              message=_("it did not finish within the time limit and was stopped (an endless loop?)"))
        results.append(to_json(record))
    return results


class CellTimeoutError(Exception):
    """A function that ran past the time limit earlier in the notebook was called again."""


def remember_stopped(trace: Any, namespace: dict) -> None:
    """The student's functions that were running when the time limit stopped them are not run again.

    They are replaced, in the notebook's namespace (and in its classes), by a stand-in that fails
    at once: a later check, or another function that calls one, fails instead of looping again.
    """
    places: dict[Any, list[tuple[Any, str]]] = {}
    for name, value in list(namespace.items()):
        if isinstance(value, type):
            for attribute, member in list(vars(value).items()):
                if getattr(member, "__code__", None) is not None:
                    places.setdefault(member.__code__, []).append((value, attribute))
        elif getattr(value, "__code__", None) is not None:
            places.setdefault(value.__code__, []).append((namespace, name))
    while trace is not None:
        for owner, name in places.get(trace.tb_frame.f_code, []):
            function = owner[name] if owner is namespace else vars(owner)[name]
            if not any(function is f for f in _stopped):
                _stopped.append(function)
            stand_in = _stopped_stand_in(getattr(function, "__name__", name))
            if owner is namespace:
                namespace[name] = stand_in
            else:
                setattr(owner, name, stand_in)
        trace = trace.tb_next


def _not_run_again(name: str) -> str:
    return _("{name} did not finish earlier in this notebook (it was stopped after the time limit), "
             "so it was not run again").format(name=name)


def _stopped_stand_in(name: str) -> Callable:
    def stopped(*args: Any, **kwargs: Any) -> Any:
        raise CellTimeoutError(_not_run_again(name))
    stopped.__name__ = name
    return stopped


def _callee(spec: dict, namespace: dict) -> Any:
    """The student's function a probe calls (for ``f(3.0)`` or ``checks.function(f, ...)``), if it is one."""
    target = spec["args"][0] if spec.get("args") else None
    if not isinstance(target, dict) or "__lazy__" not in target:
        return None
    expr = target["__lazy__"]
    if expr.get("op") == "call":
        expr = expr["fn"]
    if expr.get("op") not in ("name", "attr"):
        return None
    try:
        found = _evaluate(expr, namespace)
    except Exception:
        return None
    return found if callable(found) else None
