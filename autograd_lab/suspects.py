"""Functions with bugs planted in their backward, to grade a student's gradient checker (notebook 05).

Each is a class of its own with a neutral name (``F07``): a correct rule, or one with a
believable bug (forgets to multiply by ``gy``, a flipped sign, a transposed matrix
gradient, swapped inputs, a missing factor). A checker can only tell them apart by
checking them. Which is which is decided when the check runs, by PyTorch
(:func:`agrees_with_torch`); :func:`suspects` draws random ops, bugs and shapes.
They are Functions of :mod:`autograd_lab.reference05`'s engine, whose outputs are of the
class of their inputs, so they work with the student's ``Variable``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from autograd_lab.reference05 import Function, Variable


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
