"""Forward-mode automatic differentiation with dual numbers.

Serves notebook 07 (forward mode and higher derivatives).

A dual number is a + bε, where ε is a new number with ε² = 0 (and ε ≠ 0).
Feed x + 1ε into a polynomial and expand: every term with ε² or more vanishes,
and what remains is exactly the Taylor expansion cut after the linear term,

    f(x + ε) = f(x) + f'(x) ε.

So computing with duals carries the derivative along with the value: the
`deriv` part of the result is f'(x), read off after one pass, with no graph
and no finite-difference error. For functions beyond polynomials we define
each one by the same rule, f(a + bε) = f(a) + f'(a) b ε (the chain rule:
b is the derivative of the input so far).

Starting from x + vε for several inputs at once gives the directional
derivative J·v (a Jacobian-vector product) in one pass: forward mode costs one
pass per input direction, where reverse mode (backward) costs one per output.

Values and derivatives may be Python floats or numpy arrays (elementwise).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Real = float | np.ndarray


class Dual:
    """The dual number value + deriv·ε, with ε² = 0."""

    __slots__ = ("value", "deriv")
    # Make `ndarray + Dual` call Dual.__radd__ rather than numpy's elementwise add.
    __array_ufunc__ = None

    def __init__(self, value: Real, deriv: Real = 0.0) -> None:
        if isinstance(value, Dual) or isinstance(deriv, Dual):
            raise TypeError("Dual(value, deriv) takes numbers or arrays, not Duals")
        self.value = value
        self.deriv = deriv

    def __repr__(self) -> str:
        return f"Dual({self.value!r}, {self.deriv!r})"

    # (a + bε) ± (c + dε) = (a ± c) + (b ± d)ε
    def __add__(self, other: Dual | Real) -> Dual:
        other = _as_dual(other)
        return Dual(self.value + other.value, self.deriv + other.deriv)

    __radd__ = __add__

    def __sub__(self, other: Dual | Real) -> Dual:
        other = _as_dual(other)
        return Dual(self.value - other.value, self.deriv - other.deriv)

    def __rsub__(self, other: Real) -> Dual:
        return _as_dual(other) - self

    def __neg__(self) -> Dual:
        return Dual(-self.value, -self.deriv)

    # (a + bε)(c + dε) = ac + (ad + bc)ε + bd ε², and ε² = 0: the product rule.
    def __mul__(self, other: Dual | Real) -> Dual:
        other = _as_dual(other)
        return Dual(self.value * other.value, self.value * other.deriv + self.deriv * other.value)

    __rmul__ = __mul__

    # (a + bε)/(c + dε) = a/c + (bc - ad)/c² ε: multiply out (a/c + qε)(c + dε) to check.
    def __truediv__(self, other: Dual | Real) -> Dual:
        other = _as_dual(other)
        value = self.value / other.value
        return Dual(value, (self.deriv - value * other.deriv) / other.value)

    def __rtruediv__(self, other: Real) -> Dual:
        return _as_dual(other) / self

    def __pow__(self, exponent: Dual | Real) -> Dual:
        """(a + bε)^c = a^c + c a^(c-1) b ε; with a dual exponent also + a^c log(a) d ε."""
        if not isinstance(exponent, Dual):  # the common case: no log, so a may be negative
            return Dual(self.value**exponent, exponent * self.value ** (exponent - 1) * self.deriv)
        value = self.value**exponent.value
        deriv = (
            exponent.value * self.value ** (exponent.value - 1) * self.deriv
            + value * np.log(self.value) * exponent.deriv
        )
        return Dual(value, deriv)

    def __rpow__(self, base: Real) -> Dual:
        """c^(a + bε) = c^a + c^a log(c) b ε."""
        value = base**self.value
        return Dual(value, value * np.log(base) * self.deriv)


def _as_dual(x: Dual | Real) -> Dual:
    """A plain number is a constant: its derivative is 0."""
    return x if isinstance(x, Dual) else Dual(x, 0.0)


# Each function below extends f to duals by the rule f(a + bε) = f(a) + f'(a) b ε;
# a plain number (or array) goes straight to numpy.
def sin(x: Dual | Real) -> Dual | Real:
    """sin(a + bε) = sin(a) + cos(a) b ε"""
    if isinstance(x, Dual):
        return Dual(np.sin(x.value), np.cos(x.value) * x.deriv)
    return np.sin(x)


def cos(x: Dual | Real) -> Dual | Real:
    """cos(a + bε) = cos(a) - sin(a) b ε"""
    if isinstance(x, Dual):
        return Dual(np.cos(x.value), -np.sin(x.value) * x.deriv)
    return np.cos(x)


def exp(x: Dual | Real) -> Dual | Real:
    """exp(a + bε) = exp(a) + exp(a) b ε"""
    if isinstance(x, Dual):
        value = np.exp(x.value)
        return Dual(value, value * x.deriv)
    return np.exp(x)


def log(x: Dual | Real) -> Dual | Real:
    """log(a + bε) = log(a) + (b / a) ε"""
    if isinstance(x, Dual):
        return Dual(np.log(x.value), x.deriv / x.value)
    return np.log(x)


def tanh(x: Dual | Real) -> Dual | Real:
    """tanh(a + bε) = tanh(a) + (1 - tanh²(a)) b ε"""
    if isinstance(x, Dual):
        value = np.tanh(x.value)
        return Dual(value, (1.0 - value * value) * x.deriv)
    return np.tanh(x)


def derivative(f: Callable[[Dual], Dual | Real], x: Real) -> Real:
    """f'(x) in one forward pass: evaluate f at x + 1ε and read off the ε part.

    `f` must be built from Dual-aware operations (+ - * / ** and this module's
    functions). Elementwise for an array x.
    """
    seed = np.ones_like(x, dtype=float) if isinstance(x, np.ndarray) else 1.0
    return _as_dual(f(Dual(x, seed))).deriv  # a constant f returns a plain number: derivative 0


def jvp(f: Callable[..., Any], xs: Sequence[Real], vs: Sequence[Real]) -> tuple[Any, Any]:
    """(f(*xs), J·v): the value and the derivative of f at xs in the direction vs, in one pass.

    J is the Jacobian of f; J·v = Σᵢ ∂f/∂xᵢ vᵢ. Each input xᵢ starts as
    xᵢ + vᵢε. If f returns a tuple, both results are tuples (PyTorch:
    `torch.autograd.functional.jvp(f, xs, vs)`).
    """
    if len(xs) != len(vs):
        raise ValueError(f"jvp needs one direction per input: {len(xs)} inputs, {len(vs)} directions")
    out = f(*[Dual(x, v) for x, v in zip(xs, vs)])
    if isinstance(out, tuple | list):
        duals = [_as_dual(o) for o in out]
        return tuple(d.value for d in duals), tuple(d.deriv for d in duals)
    out = _as_dual(out)
    return out.value, out.deriv
