"""Notebook 05's engine, finished, for the checks: a reference to plug a student's exercise into.

Notebook 05 builds its engine one exercise at a time. Each exercise is graded on the
student's own code *plugged into this reference*, so an exercise left undone does not
fail the ones after it: :func:`reference_backward` gives a student's ``Variable`` the
reference ``backward`` and ``cleargrad`` while a later exercise is checked, and
:func:`ordered_by` drives this engine's backward with a student's topological order.

It also holds the Functions that grade a student's gradient checker (:func:`suspects`):
correct ones and ones with a believable bug in ``backward``, each a class of its own
with a neutral name (``F07``), so a checker can only tell them apart by checking them.
Which is which is decided when the check runs, by PyTorch (:func:`agrees_with_torch`).

Names are the notebook's (DeZero's): ``Variable`` with ``data``, ``grad``, ``creator`` and
``generation``; ``Function`` with ``inputs``, ``outputs`` and ``generation``. The engine
needs numpy only; PyTorch is imported by :func:`agrees_with_torch`, which checks use.
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


@contextlib.contextmanager
def reference_backward(variable_class: type) -> Iterator[None]:
    """The student's Variable class with the reference ``backward`` and ``cleargrad``, for the time of a check."""
    saved = {name: variable_class.__dict__[name] for name in ("backward", "cleargrad") if name in variable_class.__dict__}
    variable_class.backward, variable_class.cleargrad = backward, cleargrad
    try:
        yield
    finally:
        for name in ("backward", "cleargrad"):
            if name in saved:
                setattr(variable_class, name, saved[name])
            else:
                delattr(variable_class, name)


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


# --- Functions with planted bugs, to grade a gradient checker -----------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


#: op -> (number of inputs, forward, the correct backward (inputs, output, gy) -> gradients, its PyTorch twin)
_OPS: dict[str, tuple] = {
    "square": (1, lambda x: x ** 2, lambda xs, y, gy: (2 * xs[0] * gy,), "square"),
    "exp": (1, np.exp, lambda xs, y, gy: (y * gy,), "exp"),
    "sin": (1, np.sin, lambda xs, y, gy: (np.cos(xs[0]) * gy,), "sin"),
    "tanh": (1, np.tanh, lambda xs, y, gy: ((1 - y ** 2) * gy,), "tanh"),
    "sigmoid": (1, _sigmoid, lambda xs, y, gy: (y * (1 - y) * gy,), "sigmoid"),
    "neg": (1, lambda x: -x, lambda xs, y, gy: (-gy,), "neg"),
    "add": (2, lambda a, b: a + b, lambda xs, y, gy: (gy, gy), "add"),
    "sub": (2, lambda a, b: a - b, lambda xs, y, gy: (gy, -gy), "sub"),
    "mul": (2, lambda a, b: a * b, lambda xs, y, gy: (gy * xs[1], gy * xs[0]), "mul"),
    "div": (2, lambda a, b: a / b, lambda xs, y, gy: (gy / xs[1], -gy * xs[0] / xs[1] ** 2), "div"),
    "matmul": (2, lambda a, b: a @ b, lambda xs, y, gy: (gy @ xs[1].T, xs[0].T @ gy), "matmul"),
}


def _without_gy(op: str) -> Callable:
    """Forgets to multiply by the incoming gradient: right only when gy is all ones."""
    local = _OPS[op][2]
    return lambda xs, y, gy: local(xs, y, np.ones_like(gy))


def _sign_flipped(op: str, which: int) -> Callable:
    local = _OPS[op][2]

    def flipped(xs, y, gy):
        gxs = list(local(xs, y, gy))
        gxs[which] = -gxs[which]
        return tuple(gxs)
    return flipped


def _transposed(xs, y, gy):
    """MatMul's rule with the weight gradient transposed (right shape only for square matrices)."""
    return gy @ xs[1].T, (xs[0].T @ gy).T


def _swapped(xs, y, gy):
    """Mul's rule with the inputs swapped: x0's gradient uses x0."""
    return gy * xs[0], gy * xs[1]


def _half(op: str) -> Callable:
    """A derivative off by a factor (square's 2x written as x)."""
    local = _OPS[op][2]
    return lambda xs, y, gy: tuple(g / 2 for g in local(xs, y, gy))


#: (op, bug) -> backward; bug None is the correct rule.
_KINDS: dict[tuple[str, str | None], Callable] = {}
for _op in _OPS:
    _KINDS[(_op, None)] = _OPS[_op][2]
    if _op not in ("matmul", "neg"):
        _KINDS[(_op, "forgets gy")] = _without_gy(_op)
    if _op in ("sub", "neg", "sin", "div"):
        _KINDS[(_op, "sign flipped")] = _sign_flipped(_op, _OPS[_op][0] - 1)
_KINDS[("matmul", "transposed")] = _transposed
_KINDS[("mul", "inputs swapped")] = _swapped
_KINDS[("square", "factor missing")] = _half("square")
_KINDS[("sigmoid", "factor missing")] = _half("sigmoid")


class _Suspect(Function):
    """A Function whose backward may have a planted bug."""

    op: str = ""
    rule: Callable = staticmethod(lambda xs, y, gy: ())

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return _OPS[self.op][1](*xs)

    def backward(self, gy: np.ndarray) -> Any:
        xs = [np.asarray(x.data) for x in self.inputs]
        gxs = type(self).rule(xs, np.asarray(self.outputs[0].data), np.asarray(gy))
        return gxs if len(gxs) > 1 else gxs[0]


#: The suspects by neutral name (F00, F01, ...), and what each one is (for the checks, not for the checker).
SUSPECTS: dict[str, type] = {}
KIND: dict[str, tuple[str, str | None]] = {}
for _index, ((_op, _bug), _rule) in enumerate(_KINDS.items()):
    _name = f"F{_index:02d}"
    _cls = type(_name, (_Suspect,), {"op": _op, "rule": staticmethod(_rule), "__doc__": "A Function.",
                                      "__module__": __name__, "__qualname__": _name})
    globals()[_name] = SUSPECTS[_name] = _cls
    KIND[_name] = (_op, _bug)
del _index, _op, _bug, _rule, _name, _cls


def _inputs(op: str, rng: np.random.Generator, shape: tuple) -> tuple:
    """Inputs for op, away from poles (a divisor at least 0.5 from 0)."""
    count = _OPS[op][0]
    if op == "matmul":
        n = int(rng.integers(2, 5))
        return tuple(rng.uniform(-1.5, 1.5, size=(n, n)) for _ in range(count))
    xs = [rng.uniform(-1.5, 1.5, size=shape) for _ in range(count)]
    if op == "div":
        xs[1] = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return tuple(xs)


def suspects(rng: np.random.Generator, count: int, *, bugs: float = 0.5) -> list[tuple]:
    """``count`` argument tuples ``(FunctionClass, *inputs)`` for a checker: random ops, bugs and shapes.

    About a fraction ``bugs`` of them are buggy; every buggy one's gradient differs clearly
    (by more than 1% of its size) from the true one at its inputs, whatever the upstream gradient.
    """
    names = sorted(SUSPECTS)
    right = [n for n in names if KIND[n][1] is None]
    wrong = [n for n in names if KIND[n][1] is not None]
    cases = []
    while len(cases) < count:
        name = str(rng.choice(wrong if rng.random() < bugs else right))
        shape = [(), (3,), (2, 3)][int(rng.integers(3))]
        xs = _inputs(KIND[name][0], rng, shape)
        if KIND[name][1] is None or _clearly_wrong(name, xs):
            cases.append((SUSPECTS[name], *xs))
    return cases


def _clearly_wrong(name: str, xs: tuple) -> bool:
    op, _ = KIND[name]
    y = _OPS[op][1](*xs)
    gy = np.full(np.shape(y), 0.5)  # a bug that forgets gy doubles the gradient here
    planted, true = SUSPECTS[name].rule(list(xs), y, gy), _OPS[op][2](list(xs), y, gy)
    gap = max(float(np.abs(p - t).max()) for p, t in zip(planted, true))
    size = max(float(np.abs(t).max()) for t in true)
    return gap > 0.01 * max(size, 1e-3)


def agrees_with_torch(function: type, *inputs: np.ndarray, upstream: str = "random") -> bool:
    """Whether ``function``'s backward gives PyTorch's gradients at ``inputs``, for two upstream gradients.

    ``upstream="ones"`` is what a checker seeded with all ones would see (a typical mistake).
    """
    import torch

    op = KIND[function.__name__][0]
    f = function()
    y = f(*[Variable(np.array(x, dtype=np.float64)) for x in inputs])
    rng = np.random.default_rng(0)
    for _ in range(2):
        gy = np.ones(y.data.shape) if upstream == "ones" else rng.standard_normal(y.data.shape)
        gxs = f.backward(gy)
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
        out = getattr(torch, _OPS[op][3])(*ts)
        expected = torch.autograd.grad(out, ts, grad_outputs=torch.tensor(gy, dtype=torch.float64))
        for g, e in zip(gxs, expected):
            if np.shape(g) != tuple(e.shape) or not np.allclose(g, e.numpy(), rtol=1e-7, atol=1e-9):
                return False
    return True


def suspect(op: str, bug: str | None) -> type:
    """The suspect Function that computes ``op`` with ``bug`` planted in its backward (None: correct)."""
    for name, kind in KIND.items():
        if kind == (op, bug):
            return SUSPECTS[name]
    raise KeyError(f"no suspect {op!r} with bug {bug!r}")
