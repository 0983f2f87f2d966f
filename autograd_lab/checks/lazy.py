"""Lazy stand-ins for the student's names, used when the grader plans a test cell.

To keep verdicts out of the student's reach, the grader runs each test cell in its
own trusted process, where the student's functions do not exist. There, every
name the test cell does not define itself (``poly_grad``, ``Variable``…) is a
:class:`Lazy` value that records what the test does with it
(``poly_grad(3.0)`` → "call poly_grad with 3.0"). The record travels to the
sandboxed kernel, which evaluates it against the student's real objects
(:func:`autograd_lab.checks.wire.evaluate`).

Test cells may call, index, do arithmetic with and take attributes of student
objects, and must hand the result to a ``checks.*`` function. Anything else
(``if answer > 0``, ``len(answer)``, ``float(answer)``) needs the real value and
is refused with a message for the course author.
"""
from __future__ import annotations

import builtins
import itertools
from typing import Any, Callable

from autograd_lab.checks.wire import AuthoringError, Expression, encode


_STUDENT_DUNDERS = {"__name__", "__qualname__", "__doc__", "__module__", "__bases__", "__mro__"}


_serial = itertools.count(1)


class Lazy(Expression):
    """An expression over the student's namespace, not evaluated here.

    Each one carries a serial number, so that a value the test uses twice
    (``m = MLP(...)``, then ``train_step(m, SGD(0.1).setup(m))``) is evaluated
    once in the kernel and is the same object in both places.
    """

    __slots__ = ()

    def __init__(self, expr: dict) -> None:
        object.__setattr__(self, "_expr", dict(expr, ref=next(_serial)))

    def __getattr__(self, name: str) -> "Lazy":
        # Libraries probe objects for protocols (__array_interface__, ...): those are not the
        # student's attributes. A few dunders are fair questions about the student's code.
        if name.startswith("__") and name.endswith("__") and name not in _STUDENT_DUNDERS:
            raise AttributeError(name)
        return Lazy({"op": "attr", "of": self._expr, "name": name})

    def __call__(self, *args: Any, **kwargs: Any) -> "Lazy":
        return Lazy({
            "op": "call",
            "fn": self._expr,
            "args": [encode(arg) for arg in args],
            "kwargs": {key: encode(value) for key, value in kwargs.items()},
        })

    def __getitem__(self, key: Any) -> "Lazy":
        return Lazy({"op": "item", "of": self._expr, "key": encode(key)})

    def __repr__(self) -> str:
        return render(self._expr)

    def __setattr__(self, name: str, value: Any) -> None:
        self._refuse(f"setting .{name}")

    def _refuse(self, what: str) -> None:
        raise AuthoringError(
            f"A test cell used the student's `{render(self._expr)}` outside a check ({what}). "
            "When grading, the student's values exist only in their sandboxed kernel: pass them "
            "to a checks.* function (checks.close, checks.function, ...) instead."
        )

    def __bool__(self) -> bool:
        self._refuse("as a truth value")

    def __len__(self) -> int:
        self._refuse("len()")

    def __iter__(self):
        self._refuse("iteration")

    def __float__(self) -> float:
        self._refuse("float()")

    def __int__(self) -> int:
        self._refuse("int()")

    def __index__(self) -> int:
        self._refuse("as an index")

    def __array__(self, *args: Any, **kwargs: Any):
        self._refuse("as an array")

    def __eq__(self, other: Any):
        self._refuse("==")

    def __hash__(self) -> int:
        return id(self)

    def _compare(self, *args: Any) -> Any:
        self._refuse("a comparison")

    __lt__ = __le__ = __gt__ = __ge__ = __ne__ = _compare

    def _binary(name: str, reflected: bool = False):  # noqa: N805 (builds methods)
        def method(self: "Lazy", other: Any) -> "Lazy":
            left, right = (other, self) if reflected else (self, other)
            return Lazy({"op": "binop", "operator": name, "left": encode(left), "right": encode(right)})
        return method

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", True)
    __truediv__, __rtruediv__ = _binary("truediv"), _binary("truediv", True)
    __pow__, __rpow__ = _binary("pow"), _binary("pow", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    del _binary

    def __neg__(self) -> "Lazy":
        return Lazy({"op": "neg", "of": self._expr})

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        lazy = next((a for a in args if isinstance(a, Lazy)), None)
        if lazy is not None:
            lazy._refuse(f"in {getattr(func, '__name__', 'a torch function')}")
        raise AuthoringError("a student value was passed to a torch function in a test cell")


def render(expr: dict) -> str:
    """Source-like text for an expression, for messages: ``poly_grad(3.0)``."""
    op = expr["op"]
    if op == "name":
        return expr["id"]
    if op == "attr":
        return f"{render(expr['of'])}.{expr['name']}"
    if op == "item":
        return f"{render(expr['of'])}[{_render_arg(expr['key'])}]"
    if op == "binop":
        symbol = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "pow": "**", "matmul": "@"}[expr["operator"]]
        return f"({_render_arg(expr['left'])} {symbol} {_render_arg(expr['right'])})"
    if op == "neg":
        return f"-{render(expr['of'])}"
    if op == "call":
        parts = [_render_arg(arg) for arg in expr["args"]]
        parts += [f"{key}={_render_arg(value)}" for key, value in expr["kwargs"].items()]
        return f"{render(expr['fn'])}({', '.join(parts)})"
    return "<expression>"


def _render_arg(data: Any) -> str:
    if isinstance(data, dict):
        if "__lazy__" in data:
            return render(data["__lazy__"])
        if "__tuple__" in data:
            return "(" + ", ".join(_render_arg(item) for item in data["__tuple__"]) + ")"
        if "__tensor__" in data:
            return "tensor(…)"
        if "__ndarray__" in data:
            return "array(…)"
        return "…"
    if isinstance(data, list):
        return "[" + ", ".join(_render_arg(item) for item in data) + "]"
    return repr(data)


class PlanNamespace(dict):
    """Globals for planning a test cell: names it does not define are the student's.

    It also remembers which names test cells bound after drawing random inputs (``drawn_names``, kept by
    :func:`~autograd_lab.checks.plan_cell`), and whether the running cell read one (``read_drawn``):
    what the cell computes after that may depend on the salt of the plan.
    """

    def __init__(self) -> None:
        super().__init__()
        self.drawn_names: set[str] = set()
        self.read_drawn = False
        self.drawing: Callable[[], bool] = lambda: False  # has the running cell drawn (or read) random inputs?
        self.assigned: set[str] = set()  # names the running cell assigned at its top level

    def __getitem__(self, name: str) -> Any:
        if name in self.drawn_names:
            self.read_drawn = True
        return super().__getitem__(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.assigned.add(name)
        if self.drawing():
            self.drawn_names.add(name)
        else:
            self.drawn_names.discard(name)
        super().__setitem__(name, value)

    def __missing__(self, name: str) -> Any:
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return Lazy({"op": "name", "id": name})

