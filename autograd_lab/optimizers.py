"""Optimizers: how parameters move once their gradients are known (PyTorch: `torch.optim`).

Serves notebook 07 (training on your own engine) and notebook 03's "write your
own optimizer class". The API is DeZero's, with PyTorch's names as aliases:

    opt = SGD(lr=0.1).setup(model)      # PyTorch: torch.optim.SGD(model.parameters(), lr=0.1)
    model.cleargrads()                  # PyTorch: opt.zero_grad()   (here: opt.zero_grad() too)
    loss.backward()
    opt.update()                        # PyTorch: opt.step()        (here: opt.step() too)

The updates follow PyTorch's formulas operation for operation, so that the same
gradients give the same parameters (to rounding) as torch.optim in float64.
Updates change `param.data` in place and record nothing in the graph: they are
not part of the function being differentiated.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from autograd_lab.core import Variable
from autograd_lab.layers import Layer


class Optimizer:
    """Base class: `setup` says what to train, `update` moves every parameter that has a gradient.

    Subclasses define `update_one(param)`.
    """

    def __init__(self) -> None:
        self.target: Layer | list[Variable] | None = None

    def setup(self, target: Layer | Iterable[Variable]) -> Optimizer:
        """Train `target`: a Layer/Model, or an iterable of Parameters/Variables. Returns self."""
        if isinstance(target, Variable):
            raise TypeError("setup() takes a Layer or a list of Variables: wrap a single one as [x]")
        # A Layer is asked for its params at each update, since a lazily sized
        # Linear only creates its weight on the first forward pass.
        self.target = target if isinstance(target, Layer) else list(target)
        return self

    def params(self) -> Iterator[Variable]:
        if self.target is None:
            raise RuntimeError(f"call {type(self).__name__}(...).setup(model) before update()")
        return self.target.params() if isinstance(self.target, Layer) else iter(self.target)

    def update(self) -> None:
        """Take one step for every parameter whose gradient is set (PyTorch: `step()`)."""
        for param in self.params():
            if param.grad is not None:
                self.update_one(param)

    def update_one(self, param: Variable) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define update_one(self, param)")

    def step(self) -> None:
        """PyTorch's name for `update()`."""
        self.update()

    def zero_grad(self) -> None:
        """PyTorch's name for clearing every parameter's gradient (DeZero: `model.cleargrads()`)."""
        for param in self.params():
            param.cleargrad()


class SGD(Optimizer):
    """Plain gradient descent: p ← p - lr · g."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr

    def update_one(self, param: Variable) -> None:
        param.data -= self.lr * param.grad.data


class MomentumSGD(Optimizer):
    """Gradient descent with momentum, PyTorch's form: v ← μ·v + g, then p ← p - lr · v.

    v is a running sum of past gradients that decays by μ each step: steps
    keep going in directions the gradient keeps pointing to, and zig-zags
    across a narrow valley cancel out. (DeZero writes v ← μ·v - lr·g, p ← p + v:
    the same steps while lr is constant.) The first step starts with v = g.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.velocities: dict[Variable, np.ndarray] = {}

    def update_one(self, param: Variable) -> None:
        grad = param.grad.data
        v = self.velocities.get(param)
        if v is None:
            v = self.velocities[param] = grad.copy()
        else:
            v *= self.momentum
            v += grad
        param.data -= self.lr * v


class Adam(Optimizer):
    """Adam, exactly as torch.optim.Adam computes it (no weight decay, no amsgrad).

    m and v are running averages of the gradient and of its square. Both start
    at zero, so early on they are biased towards zero; dividing by
    1 - β^t corrects that. The step is lr · m̂ / (√v̂ + eps): roughly lr in
    size whatever the scale of the gradient, per parameter element.
    """

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.state: dict[Variable, dict] = {}

    def update_one(self, param: Variable) -> None:
        grad = param.grad.data
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {
                "step": 0,
                "m": np.zeros_like(param.data),
                "v": np.zeros_like(param.data),
            }
        state["step"] += 1
        step, m, v = state["step"], state["m"], state["v"]

        m += (1.0 - self.beta1) * (grad - m)  # = β1·m + (1-β1)·g, written as torch's lerp
        v *= self.beta2
        v += (1.0 - self.beta2) * grad * grad

        bias_correction1 = 1.0 - self.beta1**step
        bias_correction2 = 1.0 - self.beta2**step
        step_size = self.lr / bias_correction1
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps
        param.data -= step_size * m / denom
