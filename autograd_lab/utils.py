"""Shape helpers for broadcasting and reductions, on plain numpy arrays.

Serves notebook 08 (broadcasting, `sum` and their gradients). Broadcasting
copies a value along new or length-1 axes; its gradient therefore *sums* the
upstream gradient back along those axes. These two helpers do that bookkeeping.
"""
from __future__ import annotations

import numpy as np


def sum_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `x` down to `shape`, undoing `np.broadcast_to(_, x.shape)`.

    Broadcasting aligns shapes on the right, adds leading axes and stretches
    length-1 axes; so sum over the extra leading axes, and (keeping them) over
    every axis that is 1 in `shape`.
    Example: (4, 2, 3) -> (2, 1) sums axis 0, then axis 1 of the result with keepdims.

    The result is always a new array, never a view: it becomes a gradient,
    which backward lets its owner change in place.
    """
    lead = x.ndim - len(shape)
    y = x.sum(axis=tuple(range(lead)))  # a new array, even when lead is 0
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and y.shape[i] != 1)
    if stretched:
        y = y.sum(axis=stretched, keepdims=True)
    return y


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """`axis` as a tuple of non-negative axes (None means all of them)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis)


def kept_dims_shape(x_shape: tuple[int, ...], axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape `x.sum(axis, keepdims=True)` has: summed axes become 1.

    The gradient of a sum is reshaped to this shape, so that it broadcasts back
    along the axes the sum removed.
    """
    summed = normalize_axes(axis, len(x_shape))
    return tuple(1 if i in summed else n for i, n in enumerate(x_shape))
