"""Notebook 05's engine, finished, for the checks: a reference to plug a student's exercise into.

Notebook 05 builds its engine one exercise at a time. Each exercise is graded on the
student's own code *plugged into this reference*, so an exercise left undone does not
fail the ones after it: :func:`reference_engine` gives a student's ``Variable`` the
reference ``backward`` and ``cleargrad`` (and the reference's ``Add``, ``Mul``, ... in place
of the notebook's) while a later exercise is checked, and
:func:`ordered_by` drives this engine's backward with a student's topological order.

The Functions that grade a student's gradient checker are in :mod:`autograd_lab.suspects`.

Names are the notebook's (DeZero's): ``Variable`` with ``data``, ``grad``, ``creator`` and
``generation``; ``Function`` with ``inputs``, ``outputs`` and ``generation``. It needs numpy only.
"""
from __future__ import annotations

import contextlib
import heapq
from typing import Any, Callable, Iterator

import numpy as np


def as_array(x: Any) -> np.ndarray:
    return np.array(x) if np.isscalar(x) else x


class Function:
    """An operation of the notebook's engine; its outputs are of the class of its first input.

    So the same Function works with the student's Variable and with this module's.
    """

    def __call__(self, *inputs: Any) -> Any:
        leaf = type(inputs[0])
        ys = self.forward(*[x.data for x in inputs])
        if not isinstance(ys, tuple):
            ys = (ys,)
        self.generation = max(getattr(x, "generation", 0) for x in inputs)
        outputs = [leaf(as_array(y)) for y in ys]
        for output in outputs:
            output.creator = self
            output.generation = self.generation + 1
        self.inputs, self.outputs = list(inputs), outputs
        self.input, self.output = inputs[0], outputs[0]  # the names of the notebook's first engine (steps 7 and 8)
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs: np.ndarray) -> Any:
        raise NotImplementedError()

    def backward(self, *gys: np.ndarray) -> Any:
        raise NotImplementedError()


def backward(self: Any) -> None:
    """The final Variable's backward: largest generation first, each function once, gradients accumulate.

    When the Variable's class has an ``order`` (see :func:`ordered_by`), the functions run in the
    reverse of ``order(self)`` instead.
    """
    if self.grad is None:
        self.grad = np.ones_like(self.data)
    if self.creator is None:
        return
    order = getattr(type(self), "order", None)
    if order is not None:
        funcs = list(reversed(order(self)))
    else:
        funcs, heap, seen = [], [(-self.creator.generation, id(self.creator), self.creator)], {id(self.creator)}
        while heap:
            _, _, f = heapq.heappop(heap)
            funcs.append(f)
            for x in f.inputs:
                if x.creator is not None and id(x.creator) not in seen:
                    seen.add(id(x.creator))
                    heapq.heappush(heap, (-x.creator.generation, id(x.creator), x.creator))
    for f in funcs:
        gxs = f.backward(*[y.grad for y in f.outputs])
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        for x, gx in zip(f.inputs, gxs):
            x.grad = gx if x.grad is None else x.grad + gx


def cleargrad(self: Any) -> None:
    self.grad = None


class Variable:
    """The final Variable of notebook 05 (without operators)."""

    order: Callable | None = None

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad = None
        self.creator = None
        self.generation = 0

    def set_creator(self, func: Function) -> None:
        self.creator = func
        self.generation = func.generation + 1

    backward = backward
    cleargrad = cleargrad


#: The notebook's names that :func:`reference_engine` may stand in for, and what stands in.
STAND_INS = ("Square", "Exp", "Sin", "Add", "Mul", "Neg", "Sigmoid", "add", "mul", "neg", "sub")


@contextlib.contextmanager
def reference_engine(plugged: tuple) -> Iterator[None]:
    """For the time of a check: the student's Variable with the reference ``backward`` and ``cleargrad``,
    and the reference's Functions in place of the notebook's names listed.

    ``plugged`` is ``(Variable, "Add", "Mul", ...)``: the student's Variable class and names from
    :data:`STAND_INS`. The names are replaced in the notebook's namespace (where the Variable class
    was defined), so the student's later code calls the reference where it calls them; the exercise
    under test keeps its own code.
    """
    variable_class, *names = plugged
    unknown = [name for name in names if name not in STAND_INS]
    if unknown:
        raise ValueError(f"reference_engine cannot stand in for {unknown}")
    namespace = variable_class.__init__.__globals__
    methods = {name: variable_class.__dict__[name] for name in ("backward", "cleargrad")
               if name in variable_class.__dict__}
    missing = object()
    saved = {name: namespace.get(name, missing) for name in names}
    variable_class.backward, variable_class.cleargrad = backward, cleargrad
    _plugged.append(variable_class)
    namespace.update({name: globals()[name] for name in names})
    try:
        yield
    finally:
        _plugged.pop()
        for name in ("backward", "cleargrad"):
            if name in methods:
                setattr(variable_class, name, methods[name])
            else:
                delattr(variable_class, name)
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


_plugged: list[type] = []  # the student's Variable classes plugged in now (the last one is current)


def continue_with_reference(variable_class: type) -> None:
    """Give the student's Variable the reference ``backward`` and ``cleargrad`` for good, to go on
    with the notebook after an exercise that does not work yet (its own test still fails)."""
    variable_class.backward, variable_class.cleargrad = backward, cleargrad


@contextlib.contextmanager
def ordered_by(order: Callable) -> Iterator[None]:
    """This module's Variable.backward runs functions in the reverse of ``order(output)``, for the time of a check."""
    Variable.order = staticmethod(order)
    try:
        yield
    finally:
        Variable.order = None


def topological_order(output: Variable) -> list:
    """Every function the output depends on, each after the creators of its inputs (iterative post-order)."""
    order, done = [], set()
    stack = [] if output.creator is None else [(output.creator, False)]
    while stack:
        f, expanded = stack.pop()
        if expanded:
            order.append(f)
        elif id(f) not in done:
            done.add(id(f))
            stack.append((f, True))
            stack.extend((x.creator, False) for x in f.inputs if x.creator is not None and id(x.creator) not in done)
    return order


class Square(Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        return 2 * self.inputs[0].data * gy


class Exp(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return np.exp(self.inputs[0].data) * gy


class Sin(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.inputs[0].data) * gy


class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        return gy, gy


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        return gy * self.inputs[1].data, gy * self.inputs[0].data


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Sigmoid(Function):
    def forward(self, x):
        return 1 / (1 + np.exp(-x))

    def backward(self, gy):
        y = self.outputs[0].data
        return gy * y * (1 - y)


def _as_variable(obj: Any) -> Any:
    """A Variable stays; a number or an array becomes a constant of the plugged Variable class (or this module's)."""
    if hasattr(obj, "creator"):
        return obj
    leaf = _plugged[-1] if _plugged else Variable
    return leaf(np.array(obj, dtype=np.float64))


def add(x0: Any, x1: Any) -> Any:
    return Add()(_as_variable(x0), _as_variable(x1))


def mul(x0: Any, x1: Any) -> Any:
    return Mul()(_as_variable(x0), _as_variable(x1))


def neg(x: Any) -> Any:
    return Neg()(_as_variable(x))


def sub(x0: Any, x1: Any) -> Any:
    return add(x0, neg(x1))


# --- Notebook 06's engine: what a student who continues with the reference gets ------------------
# Notebook 06 (and the network notebook after it) start from the student's engine, saved by the
# notebook before (autograd_lab.carry); without one they run on this module. So it also has what
# notebook 06 adds: Python's operators on Variable, Div, Pow, ReLU, MatMul and their functions, and a
# gradient checker (notebook 05's Exercise 5, carried to the network notebook).


class Variable(Variable):  # noqa: F811 (notebook 05's final Variable, with the operators it has there)
    """The final Variable of notebook 05 with its operators: ``x + y`` calls ``add(x, y)``, and so on.

    The functions are looked up when the operator runs, so a notebook that defines its own ``add``
    (after running this module's code in its namespace, as :func:`autograd_lab.carry.load_engine`
    does) gets its own ``add`` for ``x + y``.
    """

    __array_priority__ = 200  # so that `ndarray * Variable` calls Variable.__rmul__

    def __add__(self, other: Any) -> Any:
        return add(self, other)

    def __radd__(self, other: Any) -> Any:
        return add(other, self)

    def __mul__(self, other: Any) -> Any:
        return mul(self, other)

    def __rmul__(self, other: Any) -> Any:
        return mul(other, self)

    def __neg__(self) -> Any:
        return neg(self)

    def __sub__(self, other: Any) -> Any:
        return sub(self, other)

    def __rsub__(self, other: Any) -> Any:
        return sub(other, self)

    def __truediv__(self, other: Any) -> Any:
        return div(self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return div(other, self)

    def __pow__(self, exponent: float) -> Any:
        return power(self, exponent)


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs[0].data, self.inputs[1].data
        return gy / x1, -gy * x0 / x1 ** 2


class Pow(Function):
    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        return self.c * self.inputs[0].data ** (self.c - 1) * gy


class ReLU(Function):
    def forward(self, x):
        return np.maximum(x, 0.0)

    def backward(self, gy):
        return gy * (self.inputs[0].data > 0)  # 0 at x = 0, as PyTorch


class MatMul(Function):
    def forward(self, x, W):
        return x @ W

    def backward(self, gy):
        x, W = self.inputs[0].data, self.inputs[1].data
        return gy @ W.T, x.T @ gy


def as_variable(obj: Any) -> Any:
    return _as_variable(obj)


def div(x0: Any, x1: Any) -> Any:
    return Div()(_as_variable(x0), _as_variable(x1))


def power(x: Any, c: float) -> Any:
    return Pow(c)(_as_variable(x))


def relu(x: Any) -> Any:
    return ReLU()(_as_variable(x))


def sigmoid(x: Any) -> Any:
    return Sigmoid()(_as_variable(x))


def square(x: Any) -> Any:
    return Square()(_as_variable(x))


def matmul(x: Any, W: Any) -> Any:
    return MatMul()(_as_variable(x), _as_variable(W))


def gradient_check(function: type, *inputs: Any) -> bool:
    """True if ``function``'s backward agrees with central differences of sum(gy * f) at ``inputs``."""
    h, tolerance = 1e-6, 1e-6
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    f = function()
    y = f(*[Variable(x.copy()) for x in xs])
    gy = np.random.default_rng().standard_normal(np.shape(y.data))
    gxs = f.backward(gy)
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    for x, gx in zip(xs, gxs):
        if np.shape(gx) != x.shape:
            return False
        for index in np.ndindex(x.shape):
            old = x[index]
            x[index] = old + h
            up = np.sum(gy * function().forward(*xs))
            x[index] = old - h
            down = np.sum(gy * function().forward(*xs))
            x[index] = old
            numerical = (up - down) / (2 * h)
            analytic = np.asarray(gx)[index]
            if abs(analytic - numerical) / max(1.0, abs(analytic), abs(numerical)) > tolerance:
                return False
    return True
