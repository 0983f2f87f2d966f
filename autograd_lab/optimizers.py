"""Optimizers: how parameters move once their gradients are known (PyTorch: `torch.optim`).

Serves notebook 08 (training on your own engine) and notebook 03's "write your
own optimizer class". The API is DeZero's, with PyTorch's names as aliases:

    opt = SGD(lr=0.1).setup(model)      # PyTorch: torch.optim.SGD(model.parameters(), lr=0.1)
    model.cleargrads()                  # PyTorch: opt.zero_grad()   (here: opt.zero_grad() too)
    loss.backward()
    opt.update()                        # PyTorch: opt.step()        (here: opt.step() too)

The updates follow PyTorch's formulas operation for operation, so that the same
gradients give the same parameters (to rounding) as torch.optim in float64.
Updates change `param.data` in place and record nothing in the graph: they are
not part of the function being differentiated.

Hooks, as in DeZero, change the gradients before each update:

    opt.add_hook(WeightDecay(1e-4))     # PyTorch: SGD(..., weight_decay=1e-4)
    opt.add_hook(ClipGrad(1.0))         # PyTorch: clip_grad_norm_(params, 1.0) before step()
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from autograd_lab.core import Variable
from autograd_lab.layers import Layer


Hook = Callable[[list[Variable]], None]


class Optimizer:
    """Base class: `setup` says what to train, `update` moves every parameter that has a gradient.

    Subclasses define `update_one(param)`. Hooks added with `add_hook` see the
    list of parameters to be updated first, and may change their gradients.
    """

    def __init__(self) -> None:
        self.target: Layer | list[Variable] | None = None
        self.hooks: list[Hook] = []

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
        params = [param for param in self.params() if param.grad is not None]
        for hook in self.hooks:
            hook(params)
        for param in params:
            self.update_one(param)

    def add_hook(self, hook: Hook) -> Optimizer:
        """Call `hook(params)` before each update, with the parameters that have a gradient. Returns self."""
        if not callable(hook):
            raise TypeError(f"add_hook() takes a function of the list of parameters, got {type(hook).__name__}")
        self.hooks.append(hook)
        return self

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
    """Adam, exactly as torch.optim.Adam computes it (no amsgrad; weight decay is the WeightDecay hook).

    m and v are running averages of the gradient and of its square. Both start
    at zero, so early on they are biased towards zero; dividing by
    1 - β^t corrects that. The step is α · m̂ / (√v̂ + eps): roughly α in
    size whatever the scale of the gradient, per parameter element.

    The step size α is `alpha` in DeZero and `lr` in PyTorch: pass either
    (0.001 if neither); passing both is an error unless they are equal.
    `opt.lr` and `opt.alpha` are the same setting.
    """

    def __init__(
        self,
        alpha: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        *,
        lr: float | None = None,
    ) -> None:
        super().__init__()
        if alpha is not None and lr is not None and alpha != lr:
            raise ValueError(
                f"Adam got alpha={alpha} and lr={lr}: they are the same step size "
                "(DeZero's name and PyTorch's), so pass only one of them"
            )
        self.alpha = alpha if alpha is not None else lr if lr is not None else 0.001
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
        step_size = self.alpha / bias_correction1
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps
        param.data -= step_size * m / denom

    @property
    def lr(self) -> float:
        """PyTorch's name for `alpha`."""
        return self.alpha

    @lr.setter
    def lr(self, value: float) -> None:
        self.alpha = value


# ----- hooks: called with the list of parameters before each update -----
class WeightDecay:
    """Add rate · p to each gradient: L2 regularisation, the loss plus rate/2 · ||p||².

    The same as PyTorch's `weight_decay=rate` argument of SGD and Adam (not AdamW's).
    Changes `param.grad` in place, as DeZero's hook does.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def __call__(self, params: list[Variable]) -> None:
        for param in params:
            param.grad.data += self.rate * param.data


class ClipGrad:
    """Scale all gradients down together when their joint L2 norm exceeds `max_norm`.

    The norm is taken over every gradient element of every parameter; if it
    is larger than max_norm, each gradient is multiplied by
    max_norm / (norm + 1e-6), as `torch.nn.utils.clip_grad_norm_` does.
    Changes `param.grad` in place.
    """

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def __call__(self, params: list[Variable]) -> None:
        total_norm = math.sqrt(sum(float(np.sum(p.grad.data**2)) for p in params))
        rate = self.max_norm / (total_norm + 1e-6)
        if rate < 1.0:
            for param in params:
                param.grad.data *= rate
