"""Parameters and layers: the building blocks of a network (PyTorch: `torch.nn`).

Serves notebook 08 (a neural network on your own engine). A `Layer` finds its
`Parameter`s by itself: every Parameter or Layer assigned as an attribute is
remembered, so an optimizer can ask `model.params()` for everything to train.

    PyTorch                        autograd_lab
    nn.Parameter                   Parameter
    nn.Module, .parameters()       Layer / Model, .params()
    module.zero_grad()             layer.cleargrads()
    torch.save(m.state_dict(), p)  layer.save_weights(p)
    m.load_state_dict(torch.load(p))  layer.load_weights(p)
    nn.Linear(in, out)             Linear(out, in)   W is (in, out): y = x @ W + b
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autograd_lab import functions as F
from autograd_lab.core import Variable


class Parameter(Variable):
    """A Variable that a Layer owns and an optimizer updates (PyTorch: `nn.Parameter`).

    It behaves exactly like a Variable; the separate class only marks it, so
    that `Layer` can tell weights apart from other attributes.
    """

    __slots__ = ()


class Layer:
    """A piece of a network with parameters, called like a function (PyTorch: `nn.Module`).

    Subclasses assign Parameters and sub-Layers as attributes in `__init__` and
    define `forward(*inputs)`; `layer(x)` calls `forward(x)`.
    """

    def __init__(self) -> None:
        # Names of attributes holding Parameters or Layers, in assignment order:
        # a dict (ordered, unlike a set) makes params() come out the same every run.
        object.__setattr__(self, "_param_names", {})

    def __setattr__(self, name: str, value: Any) -> None:
        if "_param_names" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if isinstance(value, Parameter | Layer):
            self._param_names[name] = None
        else:
            self._param_names.pop(name, None)
        super().__setattr__(name, value)

    def __call__(self, *inputs: Any) -> Variable | Any:
        return self.forward(*inputs)

    def forward(self, *inputs: Any) -> Variable | Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, ...)")

    def params(self) -> Iterator[Parameter]:
        """Every Parameter of this layer and its sub-layers (PyTorch: `.parameters()`)."""
        for _, param in self.named_params():
            yield param

    def named_params(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs, names being attribute paths like "l0/W" (PyTorch: `.named_parameters()`)."""
        for name in self._param_names:
            value = self.__dict__[name]
            if isinstance(value, Layer):
                yield from value.named_params(f"{prefix}{name}/")
            else:
                yield prefix + name, value

    def cleargrads(self) -> None:
        """Clear the gradient of every parameter (PyTorch: `.zero_grad()`)."""
        for param in self.params():
            param.cleargrad()

    def save_weights(self, path: str | os.PathLike) -> None:
        """Write every parameter's value to `path` (an .npz file, np.savez; the name is used as given).

        The file is written beside its destination and renamed into place, so
        an interrupted save leaves the previous file whole, never half of one.
        """
        arrays = dict(self.named_params())
        missing = [name for name, param in arrays.items() if param.data is None]
        if missing:
            raise ValueError(
                f"save_weights: {', '.join(missing)} not created yet (their size comes from the first "
                "input): call the model on an input once before saving"
            )
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{name: param.data for name, param in arrays.items()})
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_weights(self, path: str | os.PathLike) -> None:
        """Set every parameter from a file written by `save_weights`.

        All or nothing: the names and shapes in the file must match this
        layer's exactly (a parameter not created yet takes the file's shape),
        else nothing is changed and the error lists every difference.
        """
        params = dict(self.named_params())
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        problems = [f"{name} is missing from the file" for name in params if name not in arrays]
        problems += [f"the file has {name}, which this layer does not" for name in arrays if name not in params]
        problems += [
            f"{name} has shape {arrays[name].shape} in the file but {param.shape} here"
            for name, param in params.items()
            if name in arrays and param.data is not None and param.shape != arrays[name].shape
        ]
        if problems:
            raise ValueError(
                f"load_weights({str(path)!r}): the file does not fit {type(self).__name__}: "
                + "; ".join(problems)
                + ". Load weights saved from a model built the same way (same layers and sizes)"
            )
        for name, param in params.items():
            param.data = arrays[name].astype(np.float64)


class Model(Layer):
    """A whole network: a Layer at the top (DeZero's name; PyTorch uses nn.Module for both)."""


def _make_rng(seed: int | None, rng: np.random.Generator | None) -> np.random.Generator:
    if seed is not None and rng is not None:
        raise ValueError("pass either seed= or rng=, not both")
    return rng if rng is not None else np.random.default_rng(seed)


class Linear(Layer):
    """y = x @ W + b with W of shape (in_size, out_size) (PyTorch: `nn.Linear(in, out)`).

    W starts as normal noise scaled by sqrt(1 / in_size), so each output starts
    with a variance close to its inputs' whatever the layer's width; b starts
    at zero. Leave `in_size` out to take it from the first input (the weights
    are then drawn on the first call). Pass `seed=` or a shared numpy
    `rng=` to make the initial weights reproducible.
    """

    def __init__(
        self,
        out_size: int,
        in_size: int | None = None,
        nobias: bool = False,
        *,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.out_size = out_size
        self.in_size = in_size
        self.rng = _make_rng(seed, rng)
        self.W = Parameter(None, name="W")
        if in_size is not None:
            self._init_W(in_size)
        self.b = None if nobias else Parameter(np.zeros(out_size), name="b")

    def _init_W(self, in_size: int) -> None:
        self.in_size = in_size
        self.W.data = self.rng.standard_normal((in_size, self.out_size)) * np.sqrt(1.0 / in_size)

    def forward(self, x: Any) -> Variable:
        if self.W.data is None:
            self._init_W(np.shape(x)[-1])
        return F.linear(x, self.W, self.b)


class MLP(Model):
    """A multi-layer perceptron: Linear layers with `activation` between them.

    `sizes` are the output sizes of the layers, as in DeZero: MLP((10, 10, 1))
    maps any input width to 10, 10, then 1 output. Give `in_size` to create all
    weights at once (e.g. to copy them into PyTorch before training); otherwise
    they are drawn on the first call. One seeded generator draws every layer in
    order, so the same seed gives the same network either way.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Callable[[Variable], Variable] = F.sigmoid,
        *,
        in_size: int | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        self.activation = activation
        rng = np.random.default_rng(seed)
        self.layers: list[Linear] = []
        for i, out_size in enumerate(sizes):
            layer = Linear(out_size, in_size, rng=rng)
            setattr(self, f"l{i}", layer)
            self.layers.append(layer)
            in_size = None if in_size is None else out_size

    def forward(self, x: Any) -> Variable:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
