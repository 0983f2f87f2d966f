"""Every operation of autograd_lab.functions against PyTorch (float64): value and gradients.

One table drives the tests. Each row says how to call the operation in both
engines and how to draw its inputs: random shapes (broadcasting included) from
hypothesis, values from a seeded generator inside each operation's domain, kept
away from kinks and poles (log of positives, relu and 1/x away from 0). The
backward pass is driven by a random upstream gradient, not ones, so a backward
that forgets to multiply by gy fails.
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


def torch_sum(x: torch.Tensor, axis: object, keepdims: bool) -> torch.Tensor:
    if axis is None:
        return x.sum().reshape([1] * x.ndim) if keepdims else x.sum()
    return x.sum(dim=axis, keepdim=keepdims)


# ----- the table -----
@dataclass(frozen=True)
class Op:
    ours: Callable[..., Variable]  # (*Variables, **params)
    torch: Callable[..., torch.Tensor]  # (*tensors, **params)
    args: st.SearchStrategy  # draws (input shapes, params)
    domains: tuple[str, ...] = field(default=("any",))  # one per input; the last repeats


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
    # shapes
    "sum": Op(F.sum, torch_sum, sum_args()),
    "sum_to": Op(F.sum_to, lambda x, shape: x.sum_to_size(shape), sum_to_args()),
    "broadcast_to": Op(F.broadcast_to, lambda x, shape: x.broadcast_to(shape), broadcast_to_args()),
    "reshape": Op(F.reshape, lambda x, shape: x.reshape(shape), reshape_args()),
    "transpose": Op(F.transpose,
                    lambda x, axes: x.permute(axes if axes is not None else tuple(reversed(range(x.ndim)))),
                    transpose_args()),
    "get_item": Op(F.get_item, lambda x, slices: x[torch_index(slices)], get_item_args()),
    # products
    "matmul": Op(F.matmul, torch.matmul, matmul_shapes()),
    "linear": Op(F.linear, lambda x, W, b=None: torch.nn.functional.linear(x, W.T, b), linear_shapes()),
    # losses
    "mean_squared_error": Op(F.mean_squared_error, torch.nn.functional.mse_loss, same_shapes()),
    "softmax": Op(F.softmax, lambda x, axis: torch.softmax(x, dim=axis), softmax_args()),
    "softmax_cross_entropy": Op(F.softmax_cross_entropy,
                                lambda x, t: torch.nn.functional.cross_entropy(x, torch.from_numpy(t)),
                                cross_entropy_args()),
}


def test_the_table_covers_every_function() -> None:
    public = {
        name
        for name, obj in vars(F).items()
        if inspect.isfunction(obj) and obj.__module__ == F.__name__ and not name.startswith("_")
    }
    assert public <= {name.split(":")[0] for name in OPS}


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_value_and_gradients_match_torch(name: str, data: st.DataObject, seed: int) -> None:
    op = OPS[name]
    shapes, params = data.draw(op.args, label="shapes, params")
    rng = np.random.default_rng(seed)
    domains = op.domains + op.domains[-1:] * len(shapes)
    arrays = [DOMAINS[domain](rng, shape) for domain, shape in zip(domains, shapes)]

    xs = [Variable(a) for a in arrays]
    y = op.ours(*xs, **params)
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = op.torch(*txs, **params)

    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{name}: value")

    gy = rng.standard_normal(y.shape)
    y.grad = Variable(gy)  # the upstream gradient (PyTorch: ty.backward(gradient=gy))
    y.backward()
    expected = torch.autograd.grad(ty, txs, grad_outputs=torch.tensor(gy), allow_unused=True)
    for i, (x, g) in enumerate(zip(xs, expected)):
        g = np.zeros_like(arrays[i]) if g is None else g.numpy()
        assert x.grad is not None, f"{name}: input {i} got no gradient"
        np.testing.assert_allclose(x.grad.data, g, rtol=RTOL, atol=ATOL, err_msg=f"{name}: gradient of input {i}")
