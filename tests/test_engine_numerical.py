"""numerical_diff, numerical_grad and gradient_check."""
from __future__ import annotations

import numpy as np
import pytest

from autograd_lab import Function, Variable
from autograd_lab import functions as F
from autograd_lab.numerical import GradientCheckResult, gradient_check, numerical_diff, numerical_grad


def test_numerical_diff_of_a_float_and_of_an_array() -> None:
    assert numerical_diff(np.sin, 0.3) == pytest.approx(np.cos(0.3), abs=1e-8)
    xs = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(numerical_diff(np.exp, xs), np.exp(xs), rtol=1e-8)


def test_numerical_diff_takes_engine_functions_and_variables() -> None:
    result = numerical_diff(F.exp, Variable(np.array([0.0, 1.0])))
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, np.exp([0.0, 1.0]), rtol=1e-8)


def test_central_error_shrinks_like_h_squared_forward_like_h() -> None:
    """Notebook 04: halving h halves the forward error, quarters the central one."""
    x, exact = 1.0, np.cos(1.0)
    forward = [abs(numerical_diff(np.sin, x, eps=h, method="forward") - exact) for h in (1e-2, 5e-3)]
    central = [abs(numerical_diff(np.sin, x, eps=h, method="central") - exact) for h in (1e-2, 5e-3)]
    assert forward[0] / forward[1] == pytest.approx(2.0, rel=0.05)
    assert central[0] / central[1] == pytest.approx(4.0, rel=0.05)


def test_numerical_diff_refuses_unknown_methods() -> None:
    with pytest.raises(ValueError, match='method must be "central" or "forward", got \'backward\''):
        numerical_diff(np.sin, 1.0, method="backward")


def test_numerical_grad_returns_one_gradient_per_input() -> None:
    x, y = np.array([1.0, 2.0, 3.0]), np.array([[0.5], [-1.0]])

    def f(x, y):
        return np.sum(x**2) * np.sum(y) + np.sum(y**3)

    gx, gy = numerical_grad(f, x, y)
    np.testing.assert_allclose(gx, 2 * x * y.sum(), rtol=1e-8)
    np.testing.assert_allclose(gy, np.sum(x**2) + 3 * y**2, rtol=1e-7)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])  # the inputs are left as they were


def test_numerical_grad_passes_variables_as_variables() -> None:
    (g,) = numerical_grad(lambda v: F.sum(F.sin(v)), Variable(np.array([0.1, 0.2])))
    np.testing.assert_allclose(g, np.cos([0.1, 0.2]), rtol=1e-8)


def test_numerical_grad_needs_a_scalar_function() -> None:
    with pytest.raises(ValueError, match=r"needs f to return a scalar, got shape \(2,\)"):
        numerical_grad(lambda v: v * 2, np.ones(2))


@pytest.mark.parametrize(
    "f, inputs",
    [
        (lambda x, W, b: F.linear(x, W, b), [(3, 4), (4, 2), (2,)]),
        (lambda a, b: a @ b, [(2, 3), (3,)]),
        (lambda x: F.softmax_cross_entropy(x, np.array([0, 2, 1])), [(3, 3)]),
        (lambda a, b: a / b + F.sum(a, axis=0), [(2, 3), (3,)]),
    ],
)
def test_gradient_check_passes_for_the_engine(f, inputs, capsys) -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(0.5, 1.5, shape) for shape in inputs]
    result = gradient_check(f, *arrays)
    assert isinstance(result, GradientCheckResult)
    assert result.passed and bool(result)
    assert result.max_error < 1e-7
    assert len(result.numerical) == len(result.backprop) == len(inputs)
    for array, numerical, backprop in zip(arrays, result.numerical, result.backprop):
        assert numerical.shape == backprop.shape == array.shape
    assert repr(result).startswith("gradient check passed")
    assert capsys.readouterr() == ("", "")  # returns, never prints


def test_gradient_check_needs_a_variable_output() -> None:
    with pytest.raises(TypeError, match="needs f to return a Variable, got ndarray"):
        gradient_check(lambda v: np.sin(v.data), np.ones(2))


class SinForgetsGy(Function):
    """A typical bug: the local derivative without the upstream gradient."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return F.cos(self.inputs[0])


def test_gradient_check_catches_a_backward_that_forgets_gy() -> None:
    x = np.array([0.1, 0.5, 0.9])
    # A scalar output seeds gy = 1, which hides the bug ...
    assert gradient_check(lambda v: F.sum(F.sin(v)), x).passed
    # ... a vector output gets a random upstream gradient, which does not.
    result = gradient_check(lambda v: SinForgetsGy()(v), x)
    assert not result.passed and not result
    text = repr(result)
    assert text.startswith("gradient check FAILED: input 0 at index (")
    assert "multiplies by gy" in text
    i, index = result.worst_input, result.worst_index
    assert result.backprop[i][index] == pytest.approx(np.cos(x[index]))
