"""Dual numbers against PyTorch's derivatives: each function, the arithmetic, compositions, jvp."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograd_lab import forward_mode as fm
from autograd_lab.forward_mode import Dual, derivative, jvp


def torch_derivative(f, x: float) -> float:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(t), t)
    return g.item()


FUNCTIONS = {
    "sin": (fm.sin, torch.sin),
    "cos": (fm.cos, torch.cos),
    "exp": (fm.exp, torch.exp),
    "log": (fm.log, torch.log),
    "tanh": (fm.tanh, torch.tanh),
    # arithmetic, with numbers on either side
    "2 + x": (lambda x: 2 + x, lambda x: 2 + x),
    "x + 2": (lambda x: x + 2, lambda x: x + 2),
    "x - 3": (lambda x: x - 3, lambda x: x - 3),
    "3 - x": (lambda x: 3 - x, lambda x: 3 - x),
    "-x": (lambda x: -x, lambda x: -x),
    "2 * x": (lambda x: 2 * x, lambda x: 2 * x),
    "x * 2": (lambda x: x * 2, lambda x: x * 2),
    "x / 3": (lambda x: x / 3, lambda x: x / 3),
    "3 / x": (lambda x: 3 / x, lambda x: 3 / x),
    "x ** 3": (lambda x: x**3, lambda x: x**3),
    "x ** -0.5": (lambda x: x**-0.5, lambda x: x**-0.5),
    "2 ** x": (lambda x: 2**x, lambda x: 2**x),
    "x ** x": (lambda x: x**x, lambda x: x**x),
    # compositions
    "x * x * x": (lambda x: x * x * x, lambda x: x * x * x),
    "sin(x) exp(x) / (1 + x²)": (lambda x: fm.sin(x) * fm.exp(x) / (1 + x**2),
                                 lambda x: torch.sin(x) * torch.exp(x) / (1 + x**2)),
    "log(x) tanh(cos(x)) - x / sin(x)": (lambda x: fm.log(x) * fm.tanh(fm.cos(x)) - x / fm.sin(x),
                                         lambda x: torch.log(x) * torch.tanh(torch.cos(x)) - x / torch.sin(x)),
    "x² + e^-x (notebook 03)": (lambda x: x**2 + fm.exp(-x), lambda x: x**2 + torch.exp(-x)),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@settings(max_examples=20, deadline=None)
@given(x=st.floats(0.2, 2.5))
def test_derivative_matches_torch(name: str, x: float) -> None:
    ours, theirs = FUNCTIONS[name]
    assert derivative(ours, x) == pytest.approx(torch_derivative(theirs, x), rel=1e-12, abs=1e-12)
    value = ours(Dual(x, 1.0))
    assert value.value == pytest.approx(theirs(torch.tensor(x, dtype=torch.float64)).item(), rel=1e-12)


def test_derivative_is_elementwise_on_arrays() -> None:
    xs = np.linspace(0.2, 2.0, 7)
    ours = derivative(lambda x: fm.sin(x) * x**2, xs)
    t = torch.tensor(xs, requires_grad=True)
    (torch.sin(t) * t**2).sum().backward()
    np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-13)


def test_functions_pass_plain_numbers_through() -> None:
    assert fm.sin(0.5) == np.sin(0.5) and fm.log(2.0) == np.log(2.0)
    assert derivative(lambda x: 3.0, 1.0) == 0.0  # a constant function


def test_dual_arithmetic_by_hand() -> None:
    a = Dual(3.0, 1.0)
    assert repr(a * a) == "Dual(9.0, 6.0)"
    assert repr(Dual(1.0, 2.0) / Dual(2.0, 0.0)) == "Dual(0.5, 1.0)"
    assert isinstance(np.array(2.0) + a, Dual) and isinstance(np.ones(2) * a, Dual)
    with pytest.raises(TypeError, match="not Duals"):
        Dual(a)


def f_two(x, y, z):
    return x * fm.sin(y) + fm.exp(x * z) / y


def t_two(x, y, z):
    return x * torch.sin(y) + torch.exp(x * z) / y


def tensors(numbers) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(n, dtype=torch.float64) for n in numbers)


@settings(max_examples=20, deadline=None)
@given(xs=st.tuples(*[st.floats(0.2, 1.5)] * 3), vs=st.tuples(*[st.floats(-2, 2)] * 3))
def test_jvp_matches_torch(xs, vs) -> None:
    value, tangent = jvp(f_two, xs, vs)
    t_value, t_tangent = torch.autograd.functional.jvp(t_two, tensors(xs), tensors(vs))
    assert value == pytest.approx(t_value.item(), rel=1e-12)
    assert tangent == pytest.approx(t_tangent.item(), rel=1e-10, abs=1e-12)


def test_jvp_with_arrays_and_several_outputs() -> None:
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0.5, 1.5, 4), rng.uniform(0.5, 1.5, 4)]
    vs = [rng.standard_normal(4), rng.standard_normal(4)]

    def ours(a, b):
        return a * b, fm.tanh(a) - fm.log(b)

    def theirs(a, b):
        return a * b, torch.tanh(a) - torch.log(b)

    values, tangents = jvp(ours, xs, vs)
    t_values, t_tangents = torch.autograd.functional.jvp(
        theirs, tuple(torch.tensor(x) for x in xs), tuple(torch.tensor(v) for v in vs)
    )
    for ours_part, theirs_part in zip(values + tangents, t_values + t_tangents):
        np.testing.assert_allclose(ours_part, theirs_part.numpy(), rtol=1e-12)


def test_jvp_needs_one_direction_per_input() -> None:
    with pytest.raises(ValueError, match="one direction per input: 2 inputs, 1 directions"):
        jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))
