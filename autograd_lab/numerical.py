"""Numerical differentiation, and checking backprop against it.

Serves notebook 04 (how computers differentiate: forward and central
differences, the error as a function of the step) and notebook 05 (testing
each `backward` you write).

A finite difference approximates a derivative by its definition with a small
but non-zero step h. The forward difference (f(x+h) - f(x)) / h is off by
about h f''/2; the central difference (f(x+h) - f(x-h)) / 2h cancels that term
and is off by about h² f'''/6. Neither can use a tiny h: f(x+h) and f(x) then
agree in most of their digits, and subtracting them leaves rounding noise of
about 1e-16 / h. Backprop has neither error, and costs one backward pass where
differences cost two evaluations per input element: differences are for
checking, backprop for computing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograd_lab.config import no_grad
from autograd_lab.core import Variable


def _value(x: Any) -> Any:
    """The numbers inside: a Variable's data, anything else unchanged."""
    return x.data if isinstance(x, Variable) else x


def numerical_diff(
    f: Callable[[Any], Any], x: Any, eps: float = 1e-4, method: str = "central"
) -> Any:
    """f'(x) by a finite difference with step `eps`, for f of one real variable.

    x may be a number or an array (f is then applied elementwise and the
    result is the derivative at every point). f may return numbers, arrays or
    Variables. method: "central" (error ~ eps²) or "forward" (error ~ eps).
    """
    if method not in ("central", "forward"):
        raise ValueError(f'numerical_diff: method must be "central" or "forward", got {method!r}')
    x = _value(x)
    with no_grad():
        if method == "central":
            return (_value(f(x + eps)) - _value(f(x - eps))) / (2 * eps)
        return (_value(f(x + eps)) - _value(f(x))) / eps


def numerical_grad(f: Callable[..., Any], *inputs: Any, eps: float = 1e-4) -> list[np.ndarray]:
    """The gradient of a scalar function f(*inputs) by central differences, one array per input.

    Each element of each input is moved by ±eps in turn, the others held still:
    2 evaluations of f per element. Inputs given as Variables are passed to f
    as Variables, the others as float64 arrays.
    """
    arrays = [np.array(_value(x), dtype=np.float64) for x in inputs]  # copies we may nudge
    # A Variable made from a float64 array shares it: nudging the array nudges the argument.
    args = [Variable(a) if isinstance(x, Variable) else a for x, a in zip(inputs, arrays)]

    def evaluate() -> float:
        y = np.asarray(_value(f(*args)))
        if y.size != 1:
            raise ValueError(
                f"numerical_grad needs f to return a scalar, got shape {y.shape}: "
                "sum the output, or use gradient_check, which handles any output shape"
            )
        return float(y.item())

    grads = []
    with no_grad():
        for a in arrays:
            grad = np.zeros_like(a)
            for index in np.ndindex(a.shape):
                original = a[index]
                a[index] = original + eps
                f_plus = evaluate()
                a[index] = original - eps
                f_minus = evaluate()
                a[index] = original
                grad[index] = (f_plus - f_minus) / (2 * eps)
            grads.append(grad)
    return grads


@dataclass(frozen=True)
class GradientCheckResult:
    """What `gradient_check` found: truthy fields to assert on, a repr to read."""

    passed: bool
    max_error: float  # the largest |backprop - numerical| over all inputs and elements
    numerical: list[np.ndarray]
    backprop: list[np.ndarray]
    worst_input: int  # the element furthest outside the tolerance: which input ...
    worst_index: tuple[int, ...]  # ... and where in it
    rtol: float
    atol: float

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        tolerance = f"rtol={self.rtol:g}, atol={self.atol:g}"
        if self.passed:
            return (
                f"gradient check passed: backprop matches finite differences for "
                f"{len(self.backprop)} input(s) (max |error| {self.max_error:.3g}; {tolerance})"
            )
        i, index = self.worst_input, self.worst_index
        return (
            f"gradient check FAILED: input {i} at index {index}: backprop gives "
            f"{self.backprop[i][index]:.10g} but finite differences give {self.numerical[i][index]:.10g} "
            f"(max |error| {self.max_error:.3g}; {tolerance}). "
            "Check that backward multiplies by gy and sums over broadcast axes."
        )


def gradient_check(
    f: Callable[..., Variable],
    *inputs: Any,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    eps: float = 1e-4,
    seed: int = 0,
) -> GradientCheckResult:
    """Compare the gradients backprop computes for f at `inputs` with central differences.

    f takes Variables and returns a Variable. When its output is not a scalar,
    both sides differentiate sum(w * f(inputs)) for a fixed random w (seeded):
    an upstream gradient of all ones would hide a backward that forgets to
    multiply by gy. Returns a `GradientCheckResult`; nothing is printed.
    """
    xs = [Variable(np.array(_value(x), dtype=np.float64)) for x in inputs]
    y = f(*xs)
    if not isinstance(y, Variable):
        raise TypeError(
            f"gradient_check needs f to return a Variable, got {type(y).__name__}: "
            "compute it with Variable operations (autograd_lab.functions), not on .data"
        )
    weights = None if y.size == 1 else np.random.default_rng(seed).standard_normal(y.shape)
    if weights is not None:
        y.grad = Variable(weights)
    y.backward()
    backprop = [np.zeros_like(x.data) if x.grad is None else x.grad.data for x in xs]

    def scalar_f(*args: Variable) -> np.ndarray:
        out = _value(f(*args))
        return out if weights is None else np.sum(out * weights)

    numerical = numerical_grad(scalar_f, *xs, eps=eps)

    # The same test as np.allclose, element by element: |b - n| <= atol + rtol |n|.
    errors = [np.abs(b - n) for b, n in zip(backprop, numerical)]
    excess = [e - (atol + rtol * np.abs(n)) for e, n in zip(errors, numerical)]
    worst_input = max(range(len(xs)), key=lambda i: excess[i].max(initial=-np.inf))
    worst = excess[worst_input]
    worst_index = np.unravel_index(np.argmax(worst), worst.shape) if worst.size else ()
    return GradientCheckResult(
        passed=all(not np.any(e > 0) for e in excess),
        max_error=max(float(e.max(initial=0.0)) for e in errors),
        numerical=numerical,
        backprop=backprop,
        worst_input=worst_input,
        worst_index=tuple(int(i) for i in worst_index),
        rtol=rtol,
        atol=atol,
    )
