"""The operations: each a `Function` with its forward and its derivative rule side by side.

Serves notebook 05 (`Square`, `Exp`, `Add`, `Mul`, `Sigmoid`, operator
overloading) and notebook 07 (broadcasting, `matmul`, `sum`, `linear`, the
losses). Import it as DeZero does:

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
    """y = x ** c for a constant c;  dy/dx = c x^(c-1)"""

    def __init__(self, c: float | np.ndarray) -> None:
        self.c = c

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x**self.c

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return sum_to(gy * (self.c * x ** (self.c - 1)), x.shape)  # an array c may broadcast x


class Power(Function):
    """y = x0 ** x1, both variables;  dy/dx0 = x1 x0^(x1-1), dy/dx1 = x0^x1 log(x0)

    (The second rule needs x0 > 0, as in PyTorch; use `Pow` for a constant exponent.)
    """

    def forward(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return x0**x1

    def backward(self, gy: Variable) -> tuple[Variable, Variable]:
        x0, x1 = self.inputs
        y = self.outputs[0]()
        gx0 = gy * x1 * x0 ** (x1 - 1.0)
        gx1 = gy * y * log(x0)
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
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y)"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # The same value as 1 / (1 + exp(-x)), without overflow in exp for very negative x.
        return np.tanh(x * 0.5) * 0.5 + 0.5

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        return gy * y * (1.0 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0"""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def backward(self, gy: Variable) -> Variable:
        (x,) = self.inputs
        return gy * (x.data > 0)  # the mask is a constant: its own derivative is 0


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
        x_shape = self.inputs[0].shape
        # Put the summed axes back as length 1 (keepdims=False removed them), then copy along them.
        gy = reshape(gy, utils.kept_dims_shape(x_shape, self.axis))
        return broadcast_to(gy, x_shape)


class SumTo(Function):
    """y = x summed down to `shape` (undoes broadcasting);  the gradient broadcasts gy back"""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return utils.sum_to(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return broadcast_to(gy, self.inputs[0].shape)


class BroadcastTo(Function):
    """y = x copied along new or length-1 axes to `shape`;  the gradient sums gy back (sum_to)"""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, self.shape)

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
    if isinstance(axis, list):
        axis = tuple(axis)
    return Sum(axis, keepdims)(x)


def sum_to(x: ArrayLike, shape: Shape) -> Variable:
    """Sum `x` down to `shape` (see `utils.sum_to`); returns x itself when it already has that shape."""
    x = as_variable(x)
    if x.shape == shape:  # the usual case inside backward: nothing was broadcast
        return x
    return SumTo(tuple(shape))(x)


def broadcast_to(x: ArrayLike, shape: Shape) -> Variable:
    """Copy `x` up to `shape` (np.broadcast_to); returns x itself when it already has that shape."""
    x = as_variable(x)
    if x.shape == shape:  # the usual case inside backward: nothing was broadcast
        return x
    return BroadcastTo(tuple(shape))(x)


def get_item(x: ArrayLike, slices: Any) -> Variable:
    """x[slices]: any numpy index (ints, slices, integer arrays, boolean masks)."""
    return GetItem(slices)(x)


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
        return x0 @ x1

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
    """

    def forward(self, x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if x.ndim != 2 or W.ndim != 2 or x.shape[1] != W.shape[0]:
            raise ValueError(
                f"linear(x, W) needs x of shape (batch, in) and W of shape (in, out); "
                f"got x {x.shape} and W {W.shape}"
            )
        y = x @ W
        if b is not None:
            y += b
        return y

    def backward(self, gy: Variable) -> tuple[Variable, ...]:
        x, W = self.inputs[:2]
        gx = matmul(gy, W.T)
        gW = matmul(x.T, gy)
        if len(self.inputs) == 2:
            return gx, gW
        b = self.inputs[2]
        return gx, gW, sum_to(gy, b.shape)


def matmul(x0: ArrayLike, x1: ArrayLike) -> Variable:
    """x0 @ x1 with numpy's rules (vectors, matrices, stacks of matrices)."""
    return MatMul()(x0, x1)


def linear(x: ArrayLike, W: ArrayLike, b: ArrayLike | None = None) -> Variable:
    """x @ W + b for a batch x of shape (N, in), W (in, out) and b (out,) or None."""
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
        m = x.max(axis=1, keepdims=True)
        log_z = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
        log_p = x - log_z
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


def softmax_cross_entropy(x: ArrayLike, t: ArrayLike) -> Variable:
    """Cross-entropy of scores x (N, C) against integer class labels t (N,), averaged over N."""
    x = as_variable(x)
    labels = np.asarray(t.data if isinstance(t, Variable) else t)
    if x.ndim != 2:
        raise ValueError(f"softmax_cross_entropy needs scores of shape (N, classes), got {x.shape}")
    if labels.shape != (x.shape[0],):
        raise ValueError(
            f"softmax_cross_entropy needs one label per row of x: t of shape ({x.shape[0]},), "
            f"got {labels.shape}"
        )
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)  # labels that went through a Variable became floats
    if labels.dtype.kind not in "iu" or labels.min(initial=0) < 0 or labels.max(initial=0) >= x.shape[1]:
        raise ValueError(
            f"softmax_cross_entropy needs integer class labels in 0..{x.shape[1] - 1}, "
            f"got {labels.dtype} values {np.unique(labels)[:10]}"
        )
    return SoftmaxCrossEntropy(labels)(x)
