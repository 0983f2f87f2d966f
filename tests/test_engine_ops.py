"""Every operation of autograd_lab.functions against PyTorch (float64): value and gradients.

One table drives the tests. Each row says how to call the operation in both
engines and how to draw its inputs: random shapes (broadcasting included) from
hypothesis, values from a seeded generator inside each operation's domain, kept
away from kinks and poles (log of positives, relu and 1/x away from 0). The
backward pass is driven by a random upstream gradient, not ones, so a backward
that forgets to multiply by gy fails. The same table checks second derivatives
(a Hessian-vector product through backward(create_graph=True)).

After the table: the edges, each against PyTorch or a closed form (x ** c
at 0, sigmoid for large |x|, ties in max), and the errors for bad shapes.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograd_lab import Variable
from autograd_lab import functions as F
from tests.test_engine_core import nth_derivatives, torch_nth_derivatives

RTOL, ATOL = 1e-9, 1e-11

# ----- input values -----
DOMAINS: dict[str, Callable[[np.random.Generator, tuple], np.ndarray]] = {
    "any": lambda rng, shape: rng.uniform(-2.0, 2.0, shape),
    "positive": lambda rng, shape: rng.uniform(0.2, 2.0, shape),
    "nonzero": lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape),
}

# ----- input shapes: each strategy draws (shapes of the inputs, keyword parameters) -----
SIDES = st.integers(1, 4)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def no_params(shapes_strategy: st.SearchStrategy) -> st.SearchStrategy:
    return shapes_strategy.map(lambda shapes: (shapes, {}))


def unary() -> st.SearchStrategy:
    return no_params(SHAPES.map(lambda s: (s,)))


def broadcasting(n: int = 2) -> st.SearchStrategy:
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3, max_side=4)
    return no_params(shapes.map(lambda r: r.input_shapes))


def same_shapes(n: int = 2) -> st.SearchStrategy:
    return no_params(SHAPES.map(lambda s: (s,) * n))


@st.composite
def shrunk(draw: st.DrawFn, shape: tuple) -> tuple:
    """A shape that broadcasts to `shape`: some leading axes dropped, some axes set to 1."""
    shape = shape[draw(st.integers(0, len(shape))) :]
    return tuple(1 if draw(st.booleans()) else n for n in shape)


@st.composite
def matmul_shapes(draw: st.DrawFn) -> tuple:
    n, k, m = draw(SIDES), draw(SIDES), draw(SIDES)
    kind = draw(st.sampled_from(["matrix @ matrix", "vector @ matrix", "matrix @ vector", "vector @ vector", "stacks"]))
    if kind == "vector @ matrix":
        return ((k,), (k, m)), {}
    if kind == "matrix @ vector":
        return ((n, k), (k,)), {}
    if kind == "vector @ vector":
        return ((k,), (k,)), {}
    batch = (draw(SIDES),)
    if kind == "stacks":  # broadcast over the leading axis: one side may have 1 or none
        b0, b1 = draw(st.sampled_from([(batch, batch), (batch, ()), ((), batch), (batch, (1,))]))
        return (b0 + (n, k), b1 + (k, m)), {}
    return ((n, k), (k, m)), {}


@st.composite
def pow_array_args(draw: st.DrawFn) -> tuple:
    """x ** c for a constant array c, which may broadcast x."""
    x_shape, c_shape = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4)).input_shapes
    c = draw(hnp.arrays(np.float64, c_shape, elements=st.sampled_from([-1.5, 0.5, 1.0, 2.0, 3.0])))
    return (x_shape,), {"c": c}


@st.composite
def linear_shapes(draw: st.DrawFn) -> tuple:
    n, i, o = draw(SIDES), draw(SIDES), draw(SIDES)
    return (((n, i), (i, o), (o,)) if draw(st.booleans()) else ((n, i), (i, o))), {}


@st.composite
def sum_args(draw: st.DrawFn) -> tuple:
    shape = draw(SHAPES)
    ndim = len(shape)
    axes = st.none()
    if ndim:
        axes = st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    return (shape,), {"axis": draw(axes), "keepdims": draw(st.booleans())}


@st.composite
def linear_nd_shapes(draw: st.DrawFn) -> tuple:
    """linear with x of shape (..., in): no batch axis, or two of them."""
    i, o = draw(SIDES), draw(SIDES)
    batch = draw(st.sampled_from([(), (draw(SIDES), draw(SIDES))]))
    return ((*batch, i), (i, o), (o,)), {}


@st.composite
def leaky_relu_args(draw: st.DrawFn) -> tuple:
    return (draw(SHAPES),), {"slope": draw(st.sampled_from([0.2, 0.01, 0.5, -0.3]))}


@st.composite
def clip_args(draw: st.DrawFn) -> tuple:
    x_min, x_max = draw(st.sampled_from([(-1.0, 1.0), (-0.5, 1.5), (0.3, 0.4), (-3.0, 3.0)]))
    return (draw(SHAPES),), {"x_min": x_min, "x_max": x_max}


@st.composite
def expand_dims_args(draw: st.DrawFn) -> tuple:
    shape = draw(SHAPES)
    return (shape,), {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def sum_to_args(draw: st.DrawFn) -> tuple:
    shape = draw(SHAPES)
    return (shape,), {"shape": draw(shrunk(shape))}


@st.composite
def broadcast_to_args(draw: st.DrawFn) -> tuple:
    target = draw(SHAPES)
    return (draw(shrunk(target)),), {"shape": target}


@st.composite
def reshape_args(draw: st.DrawFn) -> tuple:
    shape = draw(SHAPES)
    size = int(np.prod(shape))
    return (shape,), {"shape": draw(st.sampled_from([(size,), (-1,), shape[::-1], (1, size), (size, 1, 1)]))}


@st.composite
def transpose_args(draw: st.DrawFn) -> tuple:
    shape = draw(SHAPES)
    axes = draw(st.one_of(st.none(), st.permutations(range(len(shape))).map(tuple)))
    return (shape,), {"axes": axes}


@st.composite
def get_item_args(draw: st.DrawFn) -> tuple:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    n = shape[0]
    index = st.integers(-n, n - 1)
    slices = st.builds(slice, st.integers(0, n), st.integers(0, n) | st.none(), st.integers(1, 2))
    repeated = st.lists(st.integers(0, n - 1), min_size=1, max_size=5).map(np.array)  # repeats accumulate
    mask = st.lists(st.booleans(), min_size=n, max_size=n).map(np.array)
    key = st.one_of(index, slices, repeated, mask)
    if len(shape) >= 2:
        key = st.one_of(
            key,
            st.tuples(slices, st.integers(0, shape[1] - 1)),
            st.tuples(st.just(Ellipsis), st.integers(0, shape[-1] - 1)),
        )
    return (shape,), {"slices": draw(key)}


@st.composite
def softmax_args(draw: st.DrawFn) -> tuple:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    return (shape,), {"axis": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def cross_entropy_args(draw: st.DrawFn) -> tuple:
    n, c = draw(SIDES), draw(st.integers(2, 5))
    labels = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return ((n, c),), {"t": np.array(labels)}


def torch_index(slices: object) -> object:
    """The same index for a tensor (integer arrays as tensors)."""
    if isinstance(slices, tuple):
        return tuple(torch_index(s) for s in slices)
    if isinstance(slices, np.ndarray):
        return torch.from_numpy(slices)
    return slices


def torch_reduction(method: str) -> Callable[..., torch.Tensor]:
    """x.sum / x.amax / x.amin with numpy's (axis, keepdims); axis=None reduces everything."""

    def reduce(x: torch.Tensor, axis: object, keepdims: bool) -> torch.Tensor:
        if axis is None:
            y = getattr(x, method)()
            return y.reshape([1] * x.ndim) if keepdims else y
        return getattr(x, method)(dim=axis, keepdim=keepdims)

    return reduce


# ----- the table -----
@dataclass(frozen=True)
class Op:
    ours: Callable[..., Variable]  # (*Variables, **params)
    torch: Callable[..., torch.Tensor]  # (*tensors, **params)
    args: st.SearchStrategy  # draws (input shapes, params)
    domains: tuple[str, ...] = field(default=("any",))  # one per input; the last repeats
    differentiable: bool = True  # False: a measurement, whose result must have no creator


OPS: dict[str, Op] = {
    # arithmetic, broadcasting on both sides
    "add": Op(F.add, torch.add, broadcasting()),
    "sub": Op(F.sub, torch.sub, broadcasting()),
    "rsub": Op(F.rsub, lambda a, b: b - a, broadcasting()),
    "mul": Op(F.mul, torch.mul, broadcasting()),
    "div": Op(F.div, torch.div, broadcasting(), ("any", "nonzero")),
    "rdiv": Op(F.rdiv, lambda a, b: b / a, broadcasting(), ("nonzero", "any")),
    "neg": Op(F.neg, torch.neg, unary()),
    "pow": Op(lambda x, c: F.pow(x, c), lambda x, c: x**c,
              SHAPES.flatmap(lambda s: st.sampled_from([0, 1, 2, 3, 0.5, -1.5, 1.7]).map(lambda c: ((s,), {"c": c}))),
              ("positive",)),
    "pow: array exponent": Op(lambda x, c: F.pow(x, c), lambda x, c: x ** torch.from_numpy(c), pow_array_args(),
                              ("positive",)),
    "pow: variable exponent": Op(F.pow, torch.pow, broadcasting(), ("positive", "any")),
    # operators with a number on the left
    "operator: 2.5 - x": Op(lambda x: 2.5 - x, lambda x: 2.5 - x, unary()),
    "operator: 2.5 / x": Op(lambda x: 2.5 / x, lambda x: 2.5 / x, unary(), ("nonzero",)),
    "operator: 1.5 ** x": Op(lambda x: 1.5**x, lambda x: 1.5**x, unary()),
    "operator: x @ y": Op(lambda a, b: a @ b, lambda a, b: a @ b, matmul_shapes()),
    "operator: x[...]": Op(lambda x, slices: x[slices], lambda x, slices: x[torch_index(slices)], get_item_args()),
    # elementwise
    "square": Op(F.square, torch.square, unary()),
    "exp": Op(F.exp, torch.exp, unary()),
    "log": Op(F.log, torch.log, unary(), ("positive",)),
    "sin": Op(F.sin, torch.sin, unary()),
    "cos": Op(F.cos, torch.cos, unary()),
    "tanh": Op(F.tanh, torch.tanh, unary()),
    "sigmoid": Op(F.sigmoid, torch.sigmoid, unary()),
    "relu": Op(F.relu, torch.relu, unary(), ("nonzero",)),
    "leaky_relu": Op(F.leaky_relu, lambda x, slope: torch.nn.functional.leaky_relu(x, slope), leaky_relu_args(),
                     ("nonzero",)),
    "clip": Op(F.clip, lambda x, x_min, x_max: torch.clamp(x, x_min, x_max),
               clip_args()),  # continuous values: never exactly on a bound
    # reductions (continuous random values: no ties, where PyTorch splits gy and DeZero copies it)
    "sum": Op(F.sum, torch_reduction("sum"), sum_args()),
    "max": Op(F.max, torch_reduction("amax"), sum_args()),
    "min": Op(F.min, torch_reduction("amin"), sum_args()),
    "sum_to": Op(F.sum_to, lambda x, shape: x.sum_to_size(shape), sum_to_args()),
    "broadcast_to": Op(F.broadcast_to, lambda x, shape: x.broadcast_to(shape), broadcast_to_args()),
    "reshape": Op(F.reshape, lambda x, shape: x.reshape(shape), reshape_args()),
    "transpose": Op(F.transpose,
                    lambda x, axes: x.permute(axes if axes is not None else tuple(reversed(range(x.ndim)))),
                    transpose_args()),
    "get_item": Op(F.get_item, lambda x, slices: x[torch_index(slices)], get_item_args()),
    "flatten": Op(F.flatten, lambda x: torch.flatten(x, 1) if x.ndim > 1 else x.reshape(-1, 1),
                  no_params(hnp.array_shapes(min_dims=1, max_dims=4, max_side=3).map(lambda s: (s,)))),
    "expand_dims": Op(F.expand_dims, torch.unsqueeze, expand_dims_args()),
    # products
    "matmul": Op(F.matmul, torch.matmul, matmul_shapes()),
    "linear": Op(F.linear, lambda x, W, b=None: torch.nn.functional.linear(x, W.T, b), linear_shapes()),
    "linear: x of shape (..., in)": Op(F.linear, lambda x, W, b: torch.nn.functional.linear(x, W.T, b),
                                       linear_nd_shapes()),
    # losses
    "mean_squared_error": Op(F.mean_squared_error, torch.nn.functional.mse_loss, same_shapes()),
    "softmax": Op(F.softmax, lambda x, axis: torch.softmax(x, dim=axis), softmax_args()),
    "log_softmax": Op(F.log_softmax, lambda x, axis: torch.log_softmax(x, dim=axis), softmax_args()),
    "softmax_cross_entropy": Op(F.softmax_cross_entropy,
                                lambda x, t: torch.nn.functional.cross_entropy(x, torch.from_numpy(t)),
                                cross_entropy_args()),
    "accuracy": Op(F.accuracy, lambda x, t: (x.argmax(1) == torch.from_numpy(t)).double().mean(),
                   cross_entropy_args(), differentiable=False),
}
DIFFERENTIABLE = sorted(name for name, op in OPS.items() if op.differentiable)


def test_the_table_covers_every_function() -> None:
    public = {
        name
        for name, obj in vars(F).items()
        if inspect.isfunction(obj) and obj.__module__ == F.__name__ and not name.startswith("_")
    }
    assert public <= {name.split(":")[0] for name in OPS}


def draw_case(op: Op, data: st.DataObject, seed: int) -> tuple[list[np.ndarray], dict, np.random.Generator]:
    """The input arrays and parameters of one example of `op`, and the generator that drew them."""
    shapes, params = data.draw(op.args, label="shapes, params")
    rng = np.random.default_rng(seed)
    domains = op.domains + op.domains[-1:] * len(shapes)
    return [DOMAINS[domain](rng, shape) for domain, shape in zip(domains, shapes)], params, rng


def as_numpy(grads: tuple, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """torch.autograd.grad's results as arrays: None (not used) means a zero gradient."""
    return [np.zeros_like(a) if g is None else g.detach().numpy() for g, a in zip(grads, arrays)]


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_value_and_gradients_match_torch(name: str, data: st.DataObject, seed: int) -> None:
    op = OPS[name]
    arrays, params, rng = draw_case(op, data, seed)

    xs = [Variable(a) for a in arrays]
    y = op.ours(*xs, **params)
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = op.torch(*txs, **params)

    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{name}: value")
    if not op.differentiable:
        assert y.creator is None, f"{name} is a measurement: its result must not be part of a graph"
        return

    gy = rng.standard_normal(y.shape)
    y.grad = Variable(gy)  # the upstream gradient (PyTorch: ty.backward(gradient=gy))
    y.backward()
    expected = torch.autograd.grad(ty, txs, grad_outputs=torch.tensor(gy), allow_unused=True)
    for i, (x, g) in enumerate(zip(xs, as_numpy(expected, arrays))):
        assert x.grad is not None, f"{name}: input {i} got no gradient"
        np.testing.assert_allclose(x.grad.data, g, rtol=RTOL, atol=ATOL, err_msg=f"{name}: gradient of input {i}")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@settings(max_examples=20, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_second_derivatives_match_torch(name: str, data: st.DataObject, seed: int) -> None:
    """d/dx of Σ_i <grad_i, v_i> (a Hessian-vector product), with random gy and v, as torch computes it."""
    op = OPS[name]
    arrays, params, rng = draw_case(op, data, seed)
    xs = [Variable(a) for a in arrays]
    y = op.ours(*xs, **params)
    gy = rng.standard_normal(y.shape)
    vs = [rng.standard_normal(a.shape) for a in arrays]

    y.grad = Variable(gy)
    y.backward(create_graph=True)
    grads = [x.grad for x in xs]
    for x in xs:
        x.cleargrad()
    total = grads[0] * vs[0]
    total = F.sum(total) if total.ndim else total
    for g, v in zip(grads[1:], vs[1:]):
        total = total + F.sum(g * v)
    total.backward()
    ours = [np.zeros_like(a) if x.grad is None else x.grad.data for x, a in zip(xs, arrays)]

    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    tgrads = torch.autograd.grad(op.torch(*txs, **params), txs, grad_outputs=torch.tensor(gy),
                                 create_graph=True, allow_unused=True)
    terms = [(g * torch.tensor(v)).sum() for g, v in zip(tgrads, vs) if g is not None and g.requires_grad]
    expected = [np.zeros_like(a) for a in arrays]
    if terms:
        expected = as_numpy(torch.autograd.grad(torch.stack(terms).sum(), txs, allow_unused=True), arrays)
    for i, (got, want) in enumerate(zip(ours, expected)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{name}: second derivative, input {i}")


# ----------------------------------------------------------------------
# The edges: where a formula meets 0 · inf, or cancels
# ----------------------------------------------------------------------
@pytest.mark.parametrize("c", [1, 2, 3, 4, 2.0, np.array(3.0)])
def test_higher_derivatives_of_x_to_the_c_at_0(c) -> None:
    """x³ at 0: 0, 0, 6, then 0, where the rule once computed 0 · 0^-1 = NaN (x⁰'s derivative).

    (A constant array exponent is held to the number's result: PyTorch's own
    tensor-exponent rule gives NaN at the fifth derivative of x ** tensor(3.).)
    """
    assert nth_derivatives(lambda x: x**c, 0.0, 5) == torch_nth_derivatives(lambda x: x ** float(c), 0.0, 5)


def test_pow_with_an_array_exponent_holding_zeros_at_0() -> None:
    x = Variable(np.zeros(3))
    c = np.array([0.0, 1.0, 2.0])
    y = F.sum(x**c)
    y.backward(create_graph=True)
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 0.0])
    gx = x.grad
    x.cleargrad()
    F.sum(gx).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 2.0])


@pytest.mark.parametrize("base, exponent", [(0.0, 2.0), (0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (2.0, 0.0)])
def test_variable_exponent_at_a_zero_base_or_exponent(base: float, exponent: float) -> None:
    """d/dc 0^c is 0 for c ≥ 0 (PyTorch too), not 0 · log 0 = NaN; and d/dx x^0 at x = 0 is 0."""
    x, c = Variable(base), Variable(exponent)
    with np.errstate(divide="ignore"):  # d/dx x^0.5 at 0 is inf, in PyTorch too
        (x**c).backward()
    tx, tc = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (base, exponent))
    (tx**tc).backward()
    assert (float(x.grad.data), float(c.grad.data)) == (tx.grad.item(), tc.grad.item())
    assert np.isfinite(c.grad.data)


def test_variable_exponent_zeros_broadcast_against_other_bases() -> None:
    """The zero-base rule is per element: other elements keep x1 x0^(x1-1) and x0^x1 log x0."""
    base, exponent = np.array([[0.0, 1.5], [2.0, 0.0]]), np.array([2.0, 0.0])
    x, c = Variable(base), Variable(exponent)
    y = x**c
    gy = np.array([[1.0, -2.0], [0.5, 3.0]])
    y.grad = Variable(gy)
    y.backward()
    tx, tc = torch.tensor(base, requires_grad=True), torch.tensor(exponent, requires_grad=True)
    (tx**tc).backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(c.grad.data, tc.grad.numpy(), rtol=1e-15)


def sigmoid_derivatives(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s'(x) = e / (1 + e)² with e = exp(-|x|), and s''(x) = -s'(x) tanh(x / 2): accurate for any x."""
    e = np.exp(-np.abs(x))
    first = e / (1.0 + e) ** 2
    return first, -first * np.tanh(x / 2)


def test_sigmoid_keeps_its_precision_for_large_negative_x() -> None:
    """-log(sigmoid(-40)) = 40 with gradient -1 (PyTorch too); the tanh form gave inf and NaN."""
    x = Variable(-40.0)
    loss = -F.log(F.sigmoid(x))
    loss.backward()
    tx = torch.tensor(-40.0, dtype=torch.float64, requires_grad=True)
    t_loss = -torch.log(torch.sigmoid(tx))
    t_loss.backward()
    assert float(loss.data) == pytest.approx(t_loss.item(), rel=1e-15)
    assert float(x.grad.data) == pytest.approx(tx.grad.item(), rel=1e-15)


@pytest.mark.parametrize("x0", [-745.0, -700.0, -100.0, -40.0, -20.0, -1.0, 0.0, 1.0, 20.0, 40.0, 100.0, 700.0])
def test_sigmoid_and_its_two_derivatives_are_accurate_for_large_abs_x(x0: float) -> None:
    """Relative precision in both directions, for the value, s' and s'' (PyTorch's s' is 0 beyond x ≈ 37)."""
    x = np.array(x0)
    value = 1.0 / (1.0 + np.exp(-x)) if x0 >= 0 else np.exp(x) / (1.0 + np.exp(x))
    first, second = sigmoid_derivatives(x)
    assert float(F.sigmoid(Variable(x0)).data) == pytest.approx(float(value), rel=1e-14)
    got_first, got_second = nth_derivatives(F.sigmoid, x0, 2)
    assert got_first == pytest.approx(float(first), rel=1e-13, abs=1e-300)
    assert got_second == pytest.approx(float(second), rel=1e-12, abs=1e-300)
    if abs(x0) <= 1:  # PyTorch's s' and s'' lose digits further out (3.6e-8 relative at x = -20, 0 at 40)
        np.testing.assert_allclose([got_first, got_second], torch_nth_derivatives(torch.sigmoid, x0, 2), rtol=1e-12)


def test_sigmoid_warns_about_nothing() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        F.sigmoid(Variable(np.array([-1000.0, 0.0, 1000.0]))).backward()


def test_max_and_min_give_gy_to_every_tied_element_as_dezero() -> None:
    """DeZero's rule: each tied extreme receives all of gy. (PyTorch's x.max() splits it: 0.5 each.)"""
    x = Variable(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]]))
    F.max(x).backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 1], [0, 0, 0]])
    x.cleargrad()
    y = F.min(x, axis=1, keepdims=True)
    assert y.shape == (2, 1) and y.data.ravel().tolist() == [1.0, 0.0]
    y.grad = Variable(np.array([[10.0], [20.0]]))
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [[10, 0, 0], [0, 20, 20]])


def test_log_softmax_is_stable_for_huge_scores() -> None:
    scores = np.array([[1000.0, 0.0, -1000.0]])
    x = Variable(scores)
    y = F.log_softmax(x)
    tx = torch.tensor(scores, requires_grad=True)
    ty = torch.log_softmax(tx, dim=1)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-15)
    gy = np.array([[0.5, -1.0, 2.0]])
    y.grad = Variable(gy)
    y.backward()
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-15)


def test_leaky_relu_defaults_to_dezeros_slope() -> None:
    np.testing.assert_allclose(F.leaky_relu(np.array([-1.0, 2.0])).data, [-0.2, 2.0])


def test_flatten_keeps_the_batch_axis_and_expand_dims_counts_like_numpy() -> None:
    x = Variable(np.zeros((2, 3, 4)))
    assert F.flatten(x).shape == (2, 12) and F.flatten(np.zeros(5)).shape == (5, 1)
    for axis in range(-4, 4):
        assert F.expand_dims(x, axis).shape == np.expand_dims(x.data, axis).shape


def test_accuracy_is_a_constant_variable() -> None:
    y = Variable(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]))
    acc = F.accuracy(y, np.array([1, 0, 0]))
    assert isinstance(acc, Variable) and acc.creator is None and float(acc.data) == pytest.approx(2 / 3)
    assert float(F.accuracy(y, Variable(np.array([1, 0, 1]))).data) == 1.0  # labels in a Variable too


# ----------------------------------------------------------------------
# Bad shapes: the error names the function and both shapes, and says what to do
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: F.matmul(np.ones((2, 3)), np.ones((4, 5))),
         "matmul(x0, x1): x0 of shape (2, 3) and x1 of shape (4, 5) do not line up: x0's last axis has 3 "
         "elements and x1's second-to-last axis 4; they must be equal (transpose one of them?)"),
        (lambda: Variable(np.ones((2, 3))) @ np.ones(2),
         "x0 of shape (2, 3) and x1 of shape (2,) do not line up: x0's last axis has 3 elements and x1's only axis 2"),
        (lambda: F.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 4))),
         "the stacks of matrices x0 (2, 2, 3) and x1 (3, 3, 4) do not broadcast: their leading axes (2,) and (3,)"),
        (lambda: F.matmul(np.ones(2), np.array(3.0)),
         "matmul(x0, x1) needs inputs of at least one axis, got shapes (2,) and (): multiply by a number with *"),
        (lambda: F.sum_to(np.ones((2, 3)), (4,)),
         "sum_to(x, shape): cannot sum x of shape (2, 3) down to (4,): the target must be a shape that "
         "broadcasts to (2, 3)"),
        (lambda: F.sum_to(np.ones(3), (2, 3)), "cannot sum x of shape (3,) down to (2, 3)"),
        (lambda: F.broadcast_to(np.ones((2, 3)), (3, 3)),
         "broadcast_to(x, shape): cannot copy x of shape (2, 3) up to (3, 3)"),
        (lambda: F.linear(np.ones((2, 3)), np.ones((3, 4)), np.ones(3)),
         "linear(x, W, b) needs b of shape (out,) = (4,), got b (3,) (x (2, 3), W (3, 4))"),
        (lambda: F.linear(np.ones((2, 5, 3)), np.ones((4, 2))),
         "linear(x, W) needs x of shape (..., in) and W of shape (in, out); got x (2, 5, 3) and W (4, 2)"),
        (lambda: F.flatten(3.0), "flatten(x) keeps the first (batch) axis, but x is 0-d"),
        (lambda: F.expand_dims(np.ones((2, 3)), 3),
         "expand_dims(x, axis): axis 3 is out of range for x of shape (2, 3): the result has 3 axes, so use an "
         "axis in -3..2"),
        (lambda: F.clip(np.ones(2), 1.0, -1.0), "clip(x, x_min, x_max) needs x_min <= x_max, got x_min=1.0"),
        (lambda: F.accuracy(np.ones((2, 3)), np.array([0, 1, 2])), "accuracy needs one label per row of x"),
    ],
    ids=["matmul: inner axes", "matmul: matrix @ vector", "matmul: stacks", "matmul: 0-d", "sum_to: (2, 3) to (4,)",
         "sum_to: up, not down", "broadcast_to", "linear: b", "linear: N-d x", "flatten: 0-d", "expand_dims: axis",
         "clip: bounds", "accuracy: labels"],
)
def test_bad_shapes_are_explained(call: Callable, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)
