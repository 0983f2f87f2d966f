"""A check's arguments on the wire: plain JSON data, and lazy expressions evaluated in the kernel.

Probes receive their arguments as plain data (numbers, arrays, tensors, the
names of the student's functions), encoded by :func:`encode` into JSON, so the
kernel gets fresh copies it cannot share with the grader. A student's object is
an :class:`Expression` (built by :mod:`autograd_lab.checks.lazy` when the grader
plans a test cell) and is evaluated against the student's namespace by
:func:`evaluate`.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from autograd_lab.i18n import _
from autograd_lab.checks.observed import decode_array, encode_array


class AuthoringError(Exception):
    """A test cell uses the checks in a way the grader cannot run; a message for the course author."""


class Expression:
    """A student's object as the grader's planning sees it: an expression, sent as ``{"__lazy__": ...}``."""

    __slots__ = ("_expr",)


def encode(obj: Any) -> Any:
    """Encode a probe argument as JSON data. Student objects travel as lazy expressions."""
    kind = type(obj)  # the common cases first: a graph spec holds tens of thousands of these
    if kind is list:
        return [encode(item) for item in obj]
    if kind is int or kind is str or kind is bool or obj is None:
        return obj
    if isinstance(obj, Expression):
        return {"__lazy__": obj._expr}
    if isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and type(obj) in (int, float):
        if isinstance(obj, float) and not np.isfinite(obj):
            return {"__float__": repr(obj)}
        return obj
    if isinstance(obj, np.generic):
        return {"__scalar__": encode_array(np.asarray(obj))}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": encode_array(obj)}
    if type(obj).__module__.startswith("torch"):
        import torch

        if isinstance(obj, torch.Tensor):
            return {
                "__tensor__": encode_array(obj.detach().cpu().numpy()),
                "dtype": str(obj.dtype).removeprefix("torch."),
                "requires_grad": bool(obj.requires_grad),
            }
        if isinstance(obj, torch.dtype):
            return {"__torch_dtype__": str(obj).removeprefix("torch.")}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(item) for item in obj]}
    if isinstance(obj, list):
        return [encode(item) for item in obj]
    if isinstance(obj, dict):
        if not all(isinstance(key, str) for key in obj):
            raise AuthoringError("probe arguments: dict keys must be strings")
        return {"__dict__": {key: encode(value) for key, value in obj.items()}}
    if isinstance(obj, slice):
        return {"__slice__": [encode(obj.start), encode(obj.stop), encode(obj.step)]}
    if obj is Ellipsis:
        return {"__ellipsis__": True}
    reference = _importable(obj)
    if reference:
        return {"__callable__": reference}
    raise AuthoringError(
        f"A check cannot send a {type(obj).__name__} to the student's code. Pass numbers, numpy arrays, "
        "torch tensors, strings, tuples/lists/dicts of those, the student's own names, or functions that "
        "can be imported by name (np.sin, math.exp, a function of an importable module; not a lambda)."
    )


def involves_student(data: Any) -> bool:
    """Whether encoded data holds a lazy expression (the student's value or function) anywhere in it."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__lazy__" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _importable(obj: Any) -> str | None:
    """'numpy:sin' for a function that can be imported again by that name (so it can be sent)."""
    import importlib

    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not callable(obj) or isinstance(obj, type) and module == "builtins" or not module or not name:
        return None
    if "<" in name or module == "__main__":
        return None
    for candidate, path in ((module, name), (module.split(".")[0], getattr(obj, "__name__", name))):
        try:
            found = importlib.import_module(candidate)
            for part in path.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            continue
        if found is obj:
            return f"{candidate}:{path}"
    return None


def decode(data: Any, namespace: dict | None = None) -> Any:
    """Rebuild a probe argument; lazy expressions are evaluated in ``namespace``."""
    if isinstance(data, list):
        return [decode(item, namespace) for item in data]
    if not isinstance(data, dict):
        return data
    if "__lazy__" in data:
        return evaluate(data["__lazy__"], namespace or {})
    if "__tuple__" in data:
        return tuple(decode(item, namespace) for item in data["__tuple__"])
    if "__dict__" in data:
        return {key: decode(value, namespace) for key, value in data["__dict__"].items()}
    if "__ndarray__" in data:
        return decode_array(data["__ndarray__"])
    if "__scalar__" in data:
        return decode_array(data["__scalar__"])[()]
    if "__float__" in data:
        return float(data["__float__"])
    if "__tensor__" in data:
        import torch

        array = decode_array(data["__tensor__"])
        tensor = torch.tensor(array, dtype=getattr(torch, data["dtype"]))
        return tensor.requires_grad_(True) if data.get("requires_grad") else tensor
    if "__torch_dtype__" in data:
        import torch

        return getattr(torch, data["__torch_dtype__"])
    if "__slice__" in data:
        return slice(*(decode(part, namespace) for part in data["__slice__"]))
    if "__ellipsis__" in data:
        return Ellipsis
    if "__callable__" in data:
        import importlib

        module, name = data["__callable__"].split(":")
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        return found
    raise ValueError(f"unknown probe argument {sorted(data)}")


# --- lazy expressions, evaluated in the kernel ---------------------------------------------

class StudentNameError(NameError):
    pass


_evaluated: dict[int, Any] | None = None  # within one probe: lazy serial number → its value


@contextlib.contextmanager
def one_evaluation() -> Iterator[None]:
    """Within this block (one probe), an expression used in several places is evaluated once."""
    global _evaluated
    _evaluated = {}
    try:
        yield
    finally:
        _evaluated = None


def evaluate(expr: dict, namespace: dict) -> Any:
    """Evaluate a lazy expression recorded by the grader against the student's namespace.

    Within one probe, an expression the test used in several places is evaluated once.
    """
    ref = expr.get("ref")
    if _evaluated is not None and ref is not None:
        if ref not in _evaluated:
            _evaluated[ref] = _evaluate(expr, namespace)
        return _evaluated[ref]
    return _evaluate(expr, namespace)


def _evaluate(expr: dict, namespace: dict) -> Any:
    op = expr["op"]
    if op == "name":
        name = expr["id"]
        if name in namespace:
            return namespace[name]
        import builtins

        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise StudentNameError(_("name '{name}' is not defined: run the cell that defines `{name}` first "
                                 "(and keep the name the exercise asks for)").format(name=name))
    if op == "attr":
        return getattr(evaluate(expr["of"], namespace), expr["name"])
    if op == "item":
        return evaluate(expr["of"], namespace)[decode(expr["key"], namespace)]
    if op == "binop":
        import operator

        function = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
                    "pow": operator.pow, "matmul": operator.matmul}[expr["operator"]]
        return function(decode(expr["left"], namespace), decode(expr["right"], namespace))
    if op == "neg":
        return -evaluate(expr["of"], namespace)
    if op == "call":
        fn = evaluate(expr["fn"], namespace)
        args = [decode(arg, namespace) for arg in expr["args"]]
        kwargs = {key: decode(value, namespace) for key, value in expr["kwargs"].items()}
        return fn(*args, **kwargs)
    raise ValueError(f"unknown lazy expression {op!r}")


