"""Notebook 08's exercises, finished, for the checks: the network notebook's reference to plug into.

Notebook 08 continues the student's engine (carried from notebook 06, or
:mod:`autograd_lab.reference05` when there is none) and makes it broadcast-aware: ``sum_to``,
``Add``/``Mul``/``Div`` that un-broadcast their gradients, ``Sum``, ``Reshape``, ``Transpose``
and a batched ``MatMul``. Each exercise is graded on the student's code *plugged into this
reference*: :func:`reference_engine` gives the student's ``Variable`` the reference ``backward``
and puts this module's Functions in place of the notebook's names for the time of a check, so
an exercise left undone (``sum_to``, say) does not fail the ones that use it.

Gradients are numpy arrays, as in notebook 05's engine. It needs numpy only.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from autograd_lab import reference05
from autograd_lab.reference05 import Function, _as_variable


def sum_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``x`` down to ``shape``: the added leading axes, then the stretched length-1 axes."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return x.sum(axis=stretched, keepdims=True)


class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return sum_to(gy, x0.data.shape), sum_to(gy, x1.data.shape)


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs[0].data, self.inputs[1].data
        return sum_to(gy * x1, x0.shape), sum_to(gy * x0, x1.shape)


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs[0].data, self.inputs[1].data
        return sum_to(gy / x1, x0.shape), sum_to(-gy * x0 / x1 ** 2, x1.shape)


class Sum(Function):
    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        return np.sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.inputs[0].data.shape
        if not self.keepdims and self.axis is not None:
            gy = np.expand_dims(gy, self.axis)
        return np.broadcast_to(gy, shape).copy()


class Reshape(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def forward(self, x):
        return np.reshape(x, self.shape)

    def backward(self, gy):
        return np.reshape(gy, self.inputs[0].data.shape)


class Transpose(Function):
    def __init__(self, axes: Any = None) -> None:
        self.axes = axes

    def forward(self, x):
        return np.transpose(x, self.axes)

    def backward(self, gy):
        return np.transpose(gy, None if self.axes is None else np.argsort(self.axes))


class MatMul(Function):
    """x @ W for arrays of two or more axes, the leading (batch) axes broadcast as numpy does."""

    def forward(self, x, W):
        return np.matmul(x, W)

    def backward(self, gy):
        x, W = self.inputs[0].data, self.inputs[1].data
        return (sum_to(np.matmul(gy, np.swapaxes(W, -1, -2)), x.shape),
                sum_to(np.matmul(np.swapaxes(x, -1, -2), gy), W.shape))


class Exp(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return gy * self.outputs[0].data


class Log(Function):
    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        return gy / self.inputs[0].data


class Tanh(Function):
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        return gy * (1 - self.outputs[0].data ** 2)


def add(x0: Any, x1: Any) -> Any:
    return Add()(_as_variable(x0), _as_variable(x1))


def mul(x0: Any, x1: Any) -> Any:
    return Mul()(_as_variable(x0), _as_variable(x1))


def div(x0: Any, x1: Any) -> Any:
    return Div()(_as_variable(x0), _as_variable(x1))


def neg(x: Any) -> Any:
    return reference05.Neg()(_as_variable(x))


def sub(x0: Any, x1: Any) -> Any:
    return add(x0, neg(x1))


def sum_(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return Sum(axis, keepdims)(_as_variable(x))


def reshape(x: Any, shape: tuple) -> Any:
    return Reshape(shape)(_as_variable(x))


def transpose(x: Any, axes: Any = None) -> Any:
    return Transpose(axes)(_as_variable(x))


def matmul(x: Any, W: Any) -> Any:
    return MatMul()(_as_variable(x), _as_variable(W))


def exp(x: Any) -> Any:
    return Exp()(_as_variable(x))


def log(x: Any) -> Any:
    return Log()(_as_variable(x))


def tanh(x: Any) -> Any:
    return Tanh()(_as_variable(x))


#: The notebook's names that :func:`reference_engine` may stand in for, and what stands in.
STAND_INS = {name: globals()[name] for name in (
    "sum_to", "Add", "Mul", "Div", "Sum", "Reshape", "Transpose", "MatMul", "Exp", "Log", "Tanh",
    "add", "mul", "div", "neg", "sub", "sum_", "reshape", "transpose", "matmul", "exp", "log", "tanh")}
STAND_INS["Neg"] = reference05.Neg

#: Every operation a network's forward pass and loss use: what a check of their composition plugs in.
ALL_OPERATIONS = tuple(STAND_INS)


@contextlib.contextmanager
def reference_engine(plugged: tuple) -> Iterator[None]:
    """For the time of a check: the student's Variable with the reference ``backward`` and ``cleargrad``
    (:func:`autograd_lab.reference05.reference_engine`), and this module's versions of the names listed
    in place of the notebook's.

    ``plugged`` is ``(Variable, "sum_to", "Add", ...)``; ``(Variable, "*")`` plugs in every name of
    :data:`STAND_INS`. The names are replaced in the namespace where the Variable class was defined
    (the notebook's), so the student's code calls the reference where it calls them.
    """
    variable_class, *names = plugged
    if names == ["*"]:
        names = list(ALL_OPERATIONS)
    unknown = [name for name in names if name not in STAND_INS]
    if unknown:
        raise ValueError(f"reference_engine cannot stand in for {unknown}")
    namespace = variable_class.__init__.__globals__
    missing = object()
    saved = {name: namespace.get(name, missing) for name in names}
    with reference05.reference_engine((variable_class,)):
        namespace.update({name: STAND_INS[name] for name in names})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is missing:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value
