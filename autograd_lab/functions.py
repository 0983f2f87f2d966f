"""The operations: each a `Function` with its forward and its derivative rule side by side.

Serves notebooks 05 and 06 (`Square`, `Exp`, `Add`, `Mul`, `Sigmoid`, operator
overloading) and notebook 08 (broadcasting, `matmul`, `sum`, `linear`, the
losses), and has the rest of DeZero's functions a reader of "Deep Learning
from Scratch 3" reaches for (`max`, `clip`, `log_softmax`, `accuracy`, ...). Import it as DeZero does:

    from autograd_lab import functions as F
    y = F.sin(x)                      # PyTorch: torch.sin(x)

Each class's docstring gives its rule in one line. `forward` works on numpy
arrays; `backward` receives the upstream gradient `gy` (a Variable) and
returns `gy` times the local derivative, again with Variable operations so
that `create_graph=True` can differentiate the result once more.

Broadcasting: a binary operation on shapes (3, 2) and (2,) first copies the
second input along a new leading axis. The gradient of copying is summing, so
every binary operation hands each input `sum_to(g, input.shape)`.

Each operation comes as a class (`Sin`) and a lowercase function (`sin`) that
creates the class and calls it, because a Function instance records one use
in the graph and must not be reused.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from autograd_lab import utils
from autograd_lab.core import ArrayLike, Function, Variable, as_variable

Shape = tuple[int, ...]
Axis = int | tuple[int, ...] | None


# ======================================================================
# Arithmetic: the operators of Variable
# ======================================================================
class Add(Function):
    """y = x0 + x1;  dy/dx0 = 1, dy/dx1 = 1"""

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0 + x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        return sum_to(gy, x0.shape), sum_to(gy, x1.shape)


class Sub(Function):
    """y = x0 - x1;  dy/dx0 = 1, dy/dx1 = -1"""

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0 - x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        return sum_to(gy, x0.shape), sum_to(-gy, x1.shape)


class Mul(Function):
    """y = x0 * x1;  dy/dx0 = x1, dy/dx1 = x0"""

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0 * x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        return sum_to(gy * x1, x0.shape), sum_to(gy * x0, x1.shape)


class Div(Function):
    """y = x0 / x1;  dy/dx0 = 1 / x1, dy/dx1 = -x0 / x1²"""

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0 / x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        gx0 = gy / x1
        gx1 = gy * (-x0 / (x1 * x1))
        return sum_to(gx0, x0.shape), sum_to(gx1, x1.shape)


class Neg(Function):
    """y = -x;  dy/dx = -1"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return -x

    def backward(self, gy: Variable) -> Variable:
        return -gy


class Pow(Function):
    """y = x ** c for a constant c;  dy/dx = c x^(c-1), and 0 where c = 0

    x ** 0 is the constant 1, even at x = 0, where c x^(c-1) would be 0 · inf = NaN.
    That case comes up by itself in higher derivatives: those of x³ at 0 run
    through x², x¹ and x⁰. So where c = 0 the exponent c - 1 is replaced by 1:
    c x^1 is then 0 · x = 0, and stays finite however often it is differentiated.
    """

    def __init__(self, c: float | np.ndarray) -> None:
        self.c = c

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x**self.c

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        c = self.c
        exponent = np.where(np.equal(c, 0), 1.0, np.subtract(c, 1.0))
        return sum_to(gy * (c * x**exponent), x.shape)  # an array c may broadcast x


def _constant_where(x: Variable, mask: np.ndarray, value: float) -> Variable:
    """x, with the constant `value` where `mask` is True (so no gradient flows there)."""
    keep = ~mask
    return x * keep + value * mask


class Power(Function):
    """y = x0 ** x1, both variables;  dy/dx0 = x1 x0^(x1-1), dy/dx1 = x0^x1 log(x0)

    The second rule needs x0 > 0, except at x0 = 0 with x1 ≥ 0, where 0^x1 is
    constant in x1 (0, or 1 at x1 = 0) and the gradient is 0, as in PyTorch
    (not 0 · log 0 = NaN). Likewise dy/dx0 is 0 at x0 = x1 = 0. Use `Pow` for a
    constant exponent.
    """

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0**x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        y = self.outputs[0]()
        at_zero = x0.data == 0
        exponent = x1 - 1.0
        if np.any(at_zero):  # keep the rules finite at 0 (see the docstring)
            exponent = _constant_where(exponent, at_zero & (x1.data == 0), 1.0)
            x0_log = _constant_where(x0, at_zero & (x1.data >= 0), 1.0)
        else:
            x0_log = x0
        gx0 = gy * x1 * x0**exponent
        gx1 = gy * y * log(x0_log)
        return sum_to(gx0, x0.shape), sum_to(gx1, x1.shape)


def add(x0: ArrayLike, x1: ArrayLike) -> Variable:
    return Add()(x0, x1)


def sub(x0: ArrayLike, x1: ArrayLike) -> Variable:
    return Sub()(x0, x1)


def rsub(x0: ArrayLike, x1: ArrayLike) -> Variable:
    """x1 - x0: what `x1 - x0` means when only x0 is a Variable (`2 - x`)."""
    return Sub()(x1, x0)


def mul(x0: ArrayLike, x1: ArrayLike) -> Variable:
    return Mul()(x0, x1)


def div(x0: ArrayLike, x1: ArrayLike) -> Variable:
    return Div()(x0, x1)


def rdiv(x0: ArrayLike, x1: ArrayLike) -> Variable:
    """x1 / x0: what `x1 / x0` means when only x0 is a Variable (`1 / x`)."""
    return Div()(x1, x0)


def neg(x: ArrayLike) -> Variable:
    return Neg()(x)


def pow(x: ArrayLike, c: ArrayLike) -> Variable:  # noqa: A001 (DeZero's name, as in x ** c)
    """x ** c. A number or array c is a constant (`Pow`); a Variable c gets a gradient too (`Power`)."""
    if isinstance(c, Variable):
        return Power()(x, c)
    return Pow(c)(x)


# ======================================================================
# Elementwise functions
# ======================================================================
class Square(Function):
    """y = x²;  dy/dx = 2x"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * x

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * (2.0 * x)


class Exp(Function):
    """y = exp(x);  dy/dx = exp(x) = y"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.exp(x)

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        return gy * y


class Log(Function):
    """y = log(x);  dy/dx = 1 / x"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.log(x)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy / x


class Sin(Function):
    """y = sin(x);  dy/dx = cos(x)"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.sin(x)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * cos(x)


class Cos(Function):
    """y = cos(x);  dy/dx = -sin(x)"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.cos(x)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * -sin(x)


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y²"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        return gy * (1.0 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y) = sigmoid(x) sigmoid(-x)

    Both keep their relative precision for large |x| of either sign. The
    value is computed from e = exp(-|x|), which cannot overflow: 1 / (1 + e)
    for x ≥ 0 and e / (1 + e) for x < 0. (The tanh form (1 + tanh(x/2)) / 2
    cancels to 0 below x ≈ -37, so -log(sigmoid(-40)) was inf; 1 / (1 + exp(-x))
    overflows in exp below x ≈ -709.) In the derivative 1 - y cancels to 0
    for large x, so sigmoid(-x) stands in for it; differentiating that again
    keeps the second derivative accurate as well.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0, e) / (1.0 + e)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        y = self.outputs[0]()
        return gy * y * sigmoid(-x)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * (x.data > 0)  # the mask is a constant: its own derivative is 0


class LeakyReLU(Function):
    """y = x where x > 0, else slope · x;  dy/dx = 1 where x > 0, else slope"""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, x * self.slope)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * np.where(x.data > 0, 1.0, self.slope)


class Clip(Function):
    """y = x limited to [x_min, x_max];  dy/dx = 1 where x_min ≤ x ≤ x_max, else 0 (as torch.clamp)"""

    def __init__(self, x_min: float, x_max: float) -> None:
        self.x_min = x_min
        self.x_max = x_max

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.x_min, self.x_max)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * ((x.data >= self.x_min) & (x.data <= self.x_max))


def square(x: ArrayLike) -> Variable:
    return Square()(x)


def exp(x: ArrayLike) -> Variable:
    return Exp()(x)


def log(x: ArrayLike) -> Variable:
    return Log()(x)


def sin(x: ArrayLike) -> Variable:
    return Sin()(x)


def cos(x: ArrayLike) -> Variable:
    return Cos()(x)


def tanh(x: ArrayLike) -> Variable:
    return Tanh()(x)


def sigmoid(x: ArrayLike) -> Variable:
    return Sigmoid()(x)


def relu(x: ArrayLike) -> Variable:
    return ReLU()(x)


def leaky_relu(x: ArrayLike, slope: float = 0.2) -> Variable:
    """x where x > 0, else slope · x (PyTorch: `F.leaky_relu(x, negative_slope)`, default 0.01)."""
    return LeakyReLU(slope)(x)


def clip(x: ArrayLike, x_min: float, x_max: float) -> Variable:
    """x limited to the interval [x_min, x_max] (PyTorch: `torch.clamp(x, x_min, x_max)`)."""
    if x_min > x_max:
        raise ValueError(f"clip(x, x_min, x_max) needs x_min <= x_max, got x_min={x_min} and x_max={x_max}")
    return Clip(x_min, x_max)(x)


# ======================================================================
# Shapes: reshape, transpose, sums, broadcasting, indexing
# ======================================================================
class Reshape(Function):
    """y = x with another shape;  the gradient is gy reshaped back to x's shape"""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.shape)

    def backward(self, gy: Variable) -> Variable:
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    """y = x with its axes permuted;  the gradient permutes gy back (the inverse permutation)"""

    def __init__(self, axes: Shape | None = None) -> None:
        self.axes = axes

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.transpose(x, self.axes)

    def backward(self, gy: Variable) -> Variable:
        if self.axes is None:  # reversed axes are their own inverse
            return transpose(gy)
        inverse = np.argsort(utils.normalize_axes(self.axes, gy.ndim))
        return transpose(gy, tuple(int(a) for a in inverse))


class Sum(Function):
    """y = sum of x over `axis`;  dy/dx = 1 for every element: gy is copied back over the summed axes"""

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        return _unreduce(gy, self.inputs[0].shape, self.axis)


def _unreduce(gy: Variable, x_shape: Shape, axis: Axis) -> Variable:
    """The gradient of a reduction over `axis`, copied back over the reduced axes to x's shape."""
    # Put the reduced axes back as length 1 (keepdims=False removed them), then copy along them.
    return broadcast_to(reshape(gy, utils.kept_dims_shape(x_shape, axis)), x_shape)


class Max(Function):
    """y = max of x over `axis`;  dy/dx = 1 where x is the maximum, else 0

    Where several elements tie for the maximum, each of them receives all of
    gy (DeZero's rule). PyTorch splits gy evenly among tied elements for
    `x.max()` and `torch.amax`, and gives it to one of them for `x.max(dim)`;
    all agree wherever the maximum is unique.
    """

    reduce = staticmethod(np.max)

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.reduce(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0].data
        is_extreme = x == self.reduce(x, axis=self.axis, keepdims=True)  # a constant mask
        return _unreduce(gy, x.shape, self.axis) * is_extreme


class Min(Max):
    """y = min of x over `axis`;  dy/dx = 1 where x is the minimum, else 0 (ties as in Max)"""

    reduce = staticmethod(np.min)


class SumTo(Function):
    """y = x summed down to `shape` (undoes broadcasting);  the gradient broadcasts gy back"""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = utils.sum_to(x, self.shape)
        if y.shape != self.shape:  # the shapes only match when `shape` broadcasts to x's shape
            raise ValueError(
                f"sum_to(x, shape): cannot sum x of shape {x.shape} down to {self.shape}: the target must "
                f"be a shape that broadcasts to {x.shape} (aligned on the right, each axis 1 or equal to "
                "x's); to sum over any axes, use F.sum(x, axis)"
            )
        return y

    def backward(self, gy: Variable) -> Variable:
        return broadcast_to(gy, self.inputs[0].shape)


class BroadcastTo(Function):
    """y = x copied along new or length-1 axes to `shape`;  the gradient sums gy back (sum_to)"""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        try:
            return np.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(
                f"broadcast_to(x, shape): cannot copy x of shape {x.shape} up to {self.shape}: each axis "
                "of x, aligned on the right, must be 1 or equal to the target's; use reshape first to move axes"
            ) from None

    def backward(self, gy: Variable) -> Variable:
        return sum_to(gy, self.inputs[0].shape)


class GetItem(Function):
    """y = x[slices];  the gradient puts gy back where it was taken from, zeros elsewhere"""

    def __init__(self, slices: Any) -> None:
        self.slices = slices

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x[self.slices]

    def backward(self, gy: Variable) -> Variable:
        return GetItemGrad(self.slices, self.inputs[0].shape)(gy)


class GetItemGrad(Function):
    """y = zeros(in_shape) with gy added at [slices];  its own gradient is ggx[slices]

    Adding (np.add.at) rather than assigning matters when an index repeats:
    x[[0, 0]] uses x[0] twice, so x[0] receives both gradients.
    """

    def __init__(self, slices: Any, in_shape: Shape) -> None:
        self.slices = slices
        self.in_shape = in_shape

    def forward(self, gy: np.ndarray) -> np.ndarray:
        gx = np.zeros(self.in_shape)
        np.add.at(gx, self.slices, gy)
        return gx

    def backward(self, ggx: Variable) -> Variable:
        return get_item(ggx, self.slices)


def reshape(x: ArrayLike, shape: int | Shape) -> Variable:
    """x with a new shape (one entry may be -1); returns x itself when it already has that shape."""
    x = as_variable(x)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if x.shape == shape:
        return x
    return Reshape(shape)(x)


def transpose(x: ArrayLike, axes: Shape | None = None) -> Variable:
    """Reverse the axes (axes=None, like x.T) or permute them as `axes` says."""
    return Transpose(None if axes is None else tuple(axes))(x)


def sum(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001 (DeZero's name)
    return Sum(_as_axis(axis), keepdims)(x)


def max(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001 (DeZero's name)
    """The largest element over `axis` (PyTorch: `torch.amax`); see Max for ties."""
    return Max(_as_axis(axis), keepdims)(x)


def min(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001 (DeZero's name)
    """The smallest element over `axis` (PyTorch: `torch.amin`); see Max for ties."""
    return Min(_as_axis(axis), keepdims)(x)


def _as_axis(axis: Axis | list[int]) -> Axis:
    """An axis argument as numpy takes it (a list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def sum_to(x: ArrayLike, shape: Shape) -> Variable:
    """Sum `x` down to `shape` (see `utils.sum_to`); returns x itself when it already has that shape."""
    x = as_variable(x)
    shape = tuple(shape)
    if x.shape == shape:  # the usual case inside backward: nothing was broadcast
        return x
    return SumTo(shape)(x)


def broadcast_to(x: ArrayLike, shape: Shape) -> Variable:
    """Copy `x` up to `shape` (np.broadcast_to); returns x itself when it already has that shape."""
    x = as_variable(x)
    shape = tuple(shape)
    if x.shape == shape:  # the usual case inside backward: nothing was broadcast
        return x
    return BroadcastTo(shape)(x)


def get_item(x: ArrayLike, slices: Any) -> Variable:
    """x[slices]: any numpy index (ints, slices, integer arrays, boolean masks)."""
    return GetItem(slices)(x)


def flatten(x: ArrayLike) -> Variable:
    """x as a matrix (N, -1): the batch axis kept, the others in one (PyTorch: `torch.flatten(x, 1)`)."""
    x = as_variable(x)
    if x.ndim == 0:
        raise ValueError("flatten(x) keeps the first (batch) axis, but x is 0-d: use reshape(x, (1, 1))")
    return reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def expand_dims(x: ArrayLike, axis: int) -> Variable:
    """x with a new axis of length 1 at `axis` (np.expand_dims; PyTorch: `x.unsqueeze(axis)`)."""
    x = as_variable(x)
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"expand_dims(x, axis): axis {axis} is out of range for x of shape {x.shape}: "
            f"the result has {ndim} axes, so use an axis in {-ndim}..{ndim - 1}"
        )
    shape = list(x.shape)
    shape.insert(axis % ndim, 1)
    return reshape(x, tuple(shape))


# ======================================================================
# Matrix products
# ======================================================================
class MatMul(Function):
    """y = x0 @ x1;  gx0 = gy @ x1ᵀ, gx1 = x0ᵀ @ gy

    That is the rule for matrices. numpy's `@` also takes vectors and stacks
    of matrices, which reduce to it: a vector is a one-row matrix on the left
    and a one-column matrix on the right, and a stack broadcast over leading
    axes sums its gradients back down (sum_to), as every broadcast does.
    """

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        try:
            return x0 @ x1
        except ValueError:  # numpy's message speaks of gufunc signatures: name the shapes instead
            raise ValueError(_matmul_mismatch(x0.shape, x1.shape)) from None

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        a = x0 if x0.ndim > 1 else reshape(x0, (1, x0.size))
        b = x1 if x1.ndim > 1 else reshape(x1, (x1.size, 1))
        # gy as if the vectors had been matrices: put back the axes `@` dropped.
        g_shape = list(gy.shape)
        if x1.ndim == 1:
            g_shape.append(1)
        if x0.ndim == 1:
            g_shape.insert(len(g_shape) - 1, 1)
        g = reshape(gy, tuple(g_shape))
        ga = sum_to(matmul(g, _swap_last_axes(b)), a.shape)
        gb = sum_to(matmul(_swap_last_axes(a), g), b.shape)
        return reshape(ga, x0.shape), reshape(gb, x1.shape)


def _matmul_mismatch(a: Shape, b: Shape) -> str:
    """Why `@` refused shapes a and b, in words."""
    if not a or not b:
        return (
            f"matmul(x0, x1) needs inputs of at least one axis, got shapes {a} and {b}: "
            "multiply by a number with * instead"
        )
    k0, k1 = a[-1], b[-2] if len(b) > 1 else b[0]
    if k0 != k1:
        which = "second-to-last" if len(b) > 1 else "only"
        return (
            f"matmul(x0, x1): x0 of shape {a} and x1 of shape {b} do not line up: x0's last axis has "
            f"{k0} elements and x1's {which} axis {k1}; they must be equal (transpose one of them?)"
        )
    return (
        f"matmul(x0, x1): the stacks of matrices x0 {a} and x1 {b} do not broadcast: their leading "
        f"axes {a[:-2]} and {b[:-2]} must be equal or 1, aligned on the right"
    )


def _swap_last_axes(x: Variable) -> Variable:
    """The transpose of each matrix in a stack (PyTorch: `x.mT`)."""
    if x.ndim == 2:
        return transpose(x)
    axes = (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2)
    return transpose(x, axes)


class Linear(Function):
    """y = x @ W + b;  gx = gy @ Wᵀ, gW = xᵀ @ gy, gb = gy summed over the batch

    One Function instead of matmul then add: the layer PyTorch calls
    `nn.Linear` is the hot spot of a network, and one graph node is cheaper
    than two. Note DeZero's layout: W is (in, out), where PyTorch stores (out, in).
    As in PyTorch, x may be (..., in): every leading axis is a batch axis, so
    for gW, x and gy are seen as matrices (batch, in) and (batch, out).
    """

    def forward(self, x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if x.ndim == 0 or W.ndim != 2 or x.shape[-1] != W.shape[0]:
            raise ValueError(
                f"linear(x, W) needs x of shape (..., in) and W of shape (in, out); "
                f"got x {x.shape} and W {W.shape}"
            )
        y = x @ W
        if b is not None:
            try:
                y += b  # in place: fails unless b broadcasts to y's shape
            except ValueError:
                raise ValueError(
                    f"linear(x, W, b) needs b of shape (out,) = ({W.shape[1]},), got b {b.shape} "
                    f"(x {x.shape}, W {W.shape})"
                ) from None
        return y

    def backward(self, gy: Variable) -> tuple[Variable, ...]:
        x, W = self.inputs[:2]
        gx = matmul(gy, W.T)
        gW = matmul(_as_matrix(x).T, _as_matrix(gy))
        if len(self.inputs) == 2:
            return gx, gW
        b = self.inputs[2]
        return gx, gW, sum_to(gy, b.shape)


def _as_matrix(x: Variable) -> Variable:
    """x (..., n) as a matrix (batch, n): its leading axes merged into one."""
    return x if x.ndim == 2 else reshape(x, (-1, x.shape[-1]))


def matmul(x0: ArrayLike, x1: ArrayLike) -> Variable:
    """x0 @ x1 with numpy's rules (vectors, matrices, stacks of matrices)."""
    return MatMul()(x0, x1)


def linear(x: ArrayLike, W: ArrayLike, b: ArrayLike | None = None) -> Variable:
    """x @ W + b for x of shape (..., in), W (in, out) and b (out,) or None (PyTorch: `F.linear(x, W.T, b)`)."""
    if b is None:
        return Linear()(x, W)
    return Linear()(x, W, b)


# ======================================================================
# Losses and softmax
# ======================================================================
class MeanSquaredError(Function):
    """y = mean((x0 - x1)²);  dy/dx0 = 2 (x0 - x1) / n, dy/dx1 = -dy/dx0  (n elements)"""

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        diff = x0 - x1
        return (diff * diff).sum() / diff.size

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        diff = x0 - x1
        gdiff = gy * diff * (2.0 / diff.size)
        return sum_to(gdiff, x0.shape), sum_to(-gdiff, x1.shape)


class Softmax(Function):
    """y = exp(x) / sum(exp(x)) along `axis`;  gx = y * gy - y * sum(y * gy)"""

    def __init__(self, axis: int = 1) -> None:
        self.axis = axis

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Subtracting the max changes nothing mathematically and keeps exp from overflowing.
        y = np.exp(x - x.max(axis=self.axis, keepdims=True))
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        gx = y * gy
        return gx - y * gx.sum(axis=self.axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - log(sum(exp(x))) along `axis`, with the max subtracted first.

    Subtracting the max m changes nothing mathematically (log-sum-exp is m +
    log(sum(exp(x - m)))), and keeps exp from overflowing for large scores and
    the log from reaching log(0) for very negative ones.
    """
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - log(sum(exp(x))) along `axis`;  gx = gy - softmax(x) * sum(gy)"""

    def __init__(self, axis: int = 1) -> None:
        self.axis = axis

    def forward(self, x: np.ndarray) -> np.ndarray:
        return _log_softmax(x, self.axis)

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        return gy - exp(y) * gy.sum(axis=self.axis, keepdims=True)  # exp(y) = softmax(x)


class SoftmaxCrossEntropy(Function):
    """y = -mean over the batch of log softmax(x)[t];  gx = (softmax(x) - onehot(t)) / N

    The labels t are a constant of the function, not an input: they are class
    numbers, which have no gradient. log softmax is computed as x - logsumexp(x)
    with the max subtracted first, so large scores neither overflow nor lose
    precision (PyTorch: `F.cross_entropy`).
    """

    def __init__(self, t: np.ndarray) -> None:
        self.t = t

    def forward(self, x: np.ndarray) -> np.ndarray:
        log_p = _log_softmax(x, axis=1)
        n = x.shape[0]
        return -log_p[np.arange(n), self.t].sum() / n

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        n, n_classes = x.shape
        onehot = np.eye(n_classes)[self.t]
        return (softmax(x, axis=1) - onehot) * (gy / n)


def mean_squared_error(x0: ArrayLike, x1: ArrayLike) -> Variable:
    """Mean over all elements of (x0 - x1)² (PyTorch: `F.mse_loss`)."""
    return MeanSquaredError()(x0, x1)


def softmax(x: ArrayLike, axis: int = 1) -> Variable:
    return Softmax(axis)(x)


def log_softmax(x: ArrayLike, axis: int = 1) -> Variable:
    """log(softmax(x)) along `axis`, without overflow or log(0) (PyTorch: `F.log_softmax(x, dim)`)."""
    return LogSoftmax(axis)(x)


def softmax_cross_entropy(x: ArrayLike, t: ArrayLike) -> Variable:
    """Cross-entropy of scores x (N, C) against integer class labels t (N,), averaged over N."""
    x = as_variable(x)
    return SoftmaxCrossEntropy(_class_labels("softmax_cross_entropy", x.shape, t))(x)


def accuracy(y: ArrayLike, t: ArrayLike) -> Variable:
    """The fraction of rows of scores y (N, C) whose largest score is at the label t (N,).

    A measurement, not a loss: the result is a constant Variable with no
    creator, so nothing is differentiated through it (DeZero's `F.accuracy`;
    PyTorch: `(y.argmax(1) == t).double().mean()`).
    """
    scores = y.data if isinstance(y, Variable) else np.asarray(y)
    labels = _class_labels("accuracy", scores.shape, t)
    return Variable(np.mean(scores.argmax(axis=1) == labels))


def _class_labels(name: str, scores_shape: Shape, t: ArrayLike) -> np.ndarray:
    """t as integer class labels for scores of `scores_shape` (N, C), or a ValueError naming `name`."""
    labels = np.asarray(t.data if isinstance(t, Variable) else t)
    if len(scores_shape) != 2:
        raise ValueError(f"{name} needs scores of shape (N, classes), got {scores_shape}")
    n, n_classes = scores_shape
    if labels.shape != (n,):
        raise ValueError(f"{name} needs one label per row of x: t of shape ({n},), got {labels.shape}")
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)  # labels that went through a Variable became floats
    if labels.dtype.kind not in "iu" or labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
        raise ValueError(
            f"{name} needs integer class labels in 0..{n_classes - 1}, "
            f"got {labels.dtype} values {np.unique(labels)[:10]}"
        )
    return labels
