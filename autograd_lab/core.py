"""`Variable`, `Function` and backpropagation: the heart of the engine.

Serves notebooks 05 and 06 (build your own autograd), which grow this file step by step
following "Deep Learning from Scratch 3" (DeZero) steps 6-16, and notebook 08,
which trains a network on it. PyTorch names, for comparison:

    autograd_lab       PyTorch
    Variable           torch.Tensor
    Function           torch.autograd.Function
    x.creator          tensor.grad_fn
    x.cleargrad()      tensor.grad = None
    x.backward()       tensor.backward()
    x.generation       (PyTorch orders its graph internally)

The idea in one paragraph: every `Function` call computes its outputs from
its inputs (`forward`, on numpy arrays) and, while backprop is enabled, links
each output to the function that created it. The result is a graph of
Variables and Functions. `Variable.backward()` walks that graph from the output
back to the inputs, asking each function for the gradients of its inputs
given the gradients of its outputs (`backward`, the chain rule, one step).
"""
from __future__ import annotations

import heapq
import weakref
from typing import Any, TypeAlias

import numpy as np

from autograd_lab.config import Config, using_config

Number: TypeAlias = int | float | bool | np.number | np.bool_
# What operations accept: a Variable, or anything Variable() accepts (made a constant).
ArrayLike: TypeAlias = "Variable | np.ndarray | int | float"

_FLOAT64 = np.dtype(np.float64)


def as_array(x: Any) -> np.ndarray:
    """Return `x` as a numpy array: scalars become 0-d arrays, arrays pass through.

    numpy turns the result of some operations into numpy scalars (`np.float64`,
    e.g. `np.sum(a)`), which are not arrays; this puts them back.
    """
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


def _to_float64(data: Any) -> np.ndarray:
    """The data of a Variable: a float64 ndarray, or a TypeError that says what to pass."""
    if type(data) is np.ndarray and data.dtype is _FLOAT64:
        return data  # the common case, kept cheap: forward passes produce these
    if not isinstance(data, np.ndarray | Number | complex):
        raise TypeError(
            f"Variable() takes a numpy array or a Python number, got {type(data).__name__}"
            + (": wrap it with np.array(...) first" if isinstance(data, list | tuple) else "")
        )
    array = np.asarray(data)
    if array.dtype.kind in "biuf":  # bool, signed and unsigned int, float
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "c":
        raise TypeError(
            "Variable() takes real numbers, got a complex value: pass its .real part or abs() instead"
        )
    raise TypeError(
        f"Variable() takes numbers, got an array of dtype {array.dtype}: convert it with .astype(float) first"
    )


class Variable:
    """A value (a float64 ndarray) that remembers how it was computed.

    `data` is the value. `grad` is the gradient `backward()` computed for it,
    summed over calls until `cleargrad()`; it is itself a Variable, so that
    gradients can be differentiated again. `creator` is the Function that
    produced it (None for the inputs you made yourself: the leaves).
    `generation` is its depth in the graph, which `backward` uses to process
    functions in the right order. `name` labels it in drawings and reprs.

    Everything is stored as float64: derivatives of integer values make no
    sense, and float64 keeps numerical checks against PyTorch tight.
    """

    # __slots__ makes Variables smaller and attribute access faster; the graph
    # of a long computation holds one Variable per intermediate result.
    __slots__ = ("data", "name", "grad", "creator", "generation", "__weakref__")
    # Make `ndarray + Variable` call Variable.__radd__ instead of numpy's own add.
    __array_priority__ = 200

    def __init__(self, data: np.ndarray | Number | None, name: str | None = None) -> None:
        # None is allowed as a placeholder filled in later (a lazily initialised Parameter).
        self.data = None if data is None else _to_float64(data)
        self.name = name
        self.grad: Variable | None = None
        self.creator: Function | None = None
        self.generation = 0

    # ----- what the value looks like (mirrors ndarray) -----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        prefix = type(self).__name__.lower() + "("  # "variable(", or "parameter(" for a Parameter
        if self.data is None:
            body = "None"
        else:
            # Indent continuation lines so a matrix lines up under the first row.
            body = str(self.data).replace("\n", "\n" + " " * len(prefix))
        name = "" if self.name is None else f", name={self.name!r}"
        return f"{prefix}{body}{name})"

    # ----- the graph -----
    def set_creator(self, func: Function) -> None:
        """Record that `func` produced this variable; it sits one generation after `func`."""
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self) -> None:
        """Forget the gradient, so the next backward() starts from zero (PyTorch: `x.grad = None`)."""
        self.grad = None

    def backward(self, retain_grad: bool = False, create_graph: bool = False) -> None:
        """Compute the gradient of this variable with respect to every variable it depends on.

        The upstream gradient starts as ones shaped like this variable (for a
        scalar loss: dL/dL = 1); set `self.grad` beforehand to start from
        another one (PyTorch: `y.backward(gradient=...)`).

        Functions are processed from the output back, largest `generation`
        first: a function only runs once every function that used its outputs
        has passed its gradient down, so each gradient is complete before it
        is used. Waiting functions are kept in one list per generation, and a
        heap holds the generations that have a list: the next function comes
        from the largest generation in O(1), a heap operation is paid only when
        a generation first appears or empties, and `seen` makes sure each
        function runs once. The whole walk is linear in the size of the graph
        and needs no recursion, so a chain of a million operations is fine.

        Gradients accumulate: a variable used twice receives the sum of both
        contributions (`x + x` gives 2), and a second `backward()` adds to the
        first until `cleargrad()`.

        Every gradient that is kept (the leaves', and all of them with
        `retain_grad`) owns its array. Rules like Add's pass the same `gy` to
        both inputs, and Sum's returns a read-only broadcast view; so before a
        gradient is kept, one that is a view, or whose array is already kept
        elsewhere, is copied (PyTorch's AccumulateGrad does the same). An
        in-place change to one gradient (`x.grad.data *= 0.5`, an optimizer
        hook) then never changes another.

        retain_grad: keep the gradients of intermediate variables too (by
            default only the inputs you created keep theirs, saving memory;
            PyTorch: `tensor.retain_grad()`).
        create_graph: record the gradient computations themselves as a graph,
            so a gradient can be differentiated again (higher derivatives).
        """
        if self.grad is None:
            self.grad = Variable(np.ones_like(self.data))
        else:
            _check_seed(self)
        if self.creator is None:
            return

        waiting: dict[int, list[Function]] = {}  # generation -> its functions still to run
        generations: list[int] = []  # heap of -generation, one entry per list in `waiting`
        seen: set[Function] = set()

        def add(func: Function) -> None:
            seen.add(func)
            if func.generation not in waiting:
                waiting[func.generation] = []
                heapq.heappush(generations, -func.generation)
            waiting[func.generation].append(func)

        add(self.creator)
        # The arrays held by kept gradients, by id: a second holder gets a copy. (Holding
        # them here keeps their ids from being reused by new arrays during the walk.)
        kept: dict[int, np.ndarray] = {id(self.grad.data): self.grad.data}

        with using_config("enable_backprop", create_graph):
            while generations:
                latest = waiting[-generations[0]]
                func = latest.pop()
                if not latest:
                    del waiting[-heapq.heappop(generations)]
                gxs = func.backward(*_grads_of_outputs(func))
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                _check_gradients(func, gxs)

                for x, gx in zip(func.inputs, gxs):
                    creator = x.creator
                    if x.grad is not None:
                        # Accumulate rather than overwrite: this is what makes `x + x` work.
                        x.grad = x.grad + gx  # a new array, owned
                    elif creator is None or retain_grad:  # kept after backward: must own its array
                        if gx.data.base is not None or id(gx.data) in kept:
                            gx = Copy()(gx)
                        kept[id(gx.data)] = gx.data
                        x.grad = gx
                    else:
                        x.grad = gx  # passed on, then freed below
                    if creator is not None and creator not in seen:
                        add(creator)

                if not retain_grad:
                    for ref in func.outputs:
                        y = ref()
                        if y is not None:
                            y.grad = None

    def unchain(self) -> None:
        """Forget the creator: this variable becomes a leaf (PyTorch: `tensor.detach_()`)."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut the graph behind this variable: every variable it depends on forgets its creator.

        The variable itself keeps its creator (DeZero's semantics). In truncated
        backprop through time, `loss.unchain_backward()` after each
        `loss.backward()` stops the next backward at this point, and lets the
        functions behind it be freed. Iterative, visiting each function once.
        """
        todo = [] if self.creator is None else [self.creator]
        while todo:
            func = todo.pop()
            for x in func.inputs:
                if x.creator is not None:
                    todo.append(x.creator)
                    x.unchain()  # so a second path to x finds nothing left to cut

    # ----- shape operations (defined in functions.py) -----
    def reshape(self, *shape: int | tuple[int, ...]) -> Variable:
        """`x.reshape(2, 3)` or `x.reshape((2, 3))`, like ndarray.reshape."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return F.reshape(self, shape)

    def transpose(self, *axes: int | tuple[int, ...] | None) -> Variable:
        """`x.transpose()`, `x.transpose(1, 0, 2)` or `x.transpose((1, 0, 2))`, like ndarray.transpose."""
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (axes[0] is None or isinstance(axes[0], tuple | list)):
            axes = axes[0]
        return F.transpose(self, axes)

    @property
    def T(self) -> Variable:
        return F.transpose(self)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Variable:
        return F.sum(self, axis, keepdims)

    # ----- operators: each one is a Function from functions.py -----
    # A Python number or an ndarray may stand on either side; Function.__call__
    # turns it into a Variable.
    def __add__(self, other: ArrayLike) -> Variable:
        return F.add(self, other)

    def __radd__(self, other: ArrayLike) -> Variable:
        return F.add(other, self)

    def __sub__(self, other: ArrayLike) -> Variable:
        return F.sub(self, other)

    def __rsub__(self, other: ArrayLike) -> Variable:
        return F.rsub(self, other)

    def __mul__(self, other: ArrayLike) -> Variable:
        return F.mul(self, other)

    def __rmul__(self, other: ArrayLike) -> Variable:
        return F.mul(other, self)

    def __truediv__(self, other: ArrayLike) -> Variable:
        return F.div(self, other)

    def __rtruediv__(self, other: ArrayLike) -> Variable:
        return F.rdiv(self, other)

    def __pow__(self, exponent: ArrayLike) -> Variable:
        return F.pow(self, exponent)

    def __rpow__(self, base: ArrayLike) -> Variable:
        return F.pow(base, self)

    def __matmul__(self, other: ArrayLike) -> Variable:
        return F.matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Variable:
        return F.matmul(other, self)

    def __neg__(self) -> Variable:
        return F.neg(self)

    def __getitem__(self, slices: Any) -> Variable:
        return F.get_item(self, slices)


def as_variable(obj: ArrayLike) -> Variable:
    """Return `obj` if it is a Variable, else wrap it in one (a constant: no creator)."""
    if isinstance(obj, Variable):
        return obj
    return Variable(obj)


class Function:
    """An operation that records itself in the graph so backward() can reverse it.

    Subclasses implement two methods:

    - `forward(*xs)`: compute the outputs from the inputs' *ndarrays*; return
      one array or a tuple of arrays.
    - `backward(*gys)`: given the gradients of the outputs (Variables; zeros for
      an output that nothing used, like PyTorch's `materialize_grads`), return
      the gradients of the inputs (Variables, one per input, each shaped like its
      input). Written with Variable operations, so the same code both computes
      gradients and, under `create_graph=True`, records them for higher derivatives.

    Calling a function (`Square()(x)`) runs forward and, when
    `Config.enable_backprop` is on, keeps `inputs` (needed by backward) and weak
    references to `outputs`: the outputs keep the function alive through
    `creator`, and if the function kept them alive too, a graph nobody uses
    could never be freed.
    """

    def __call__(self, *inputs: ArrayLike) -> Variable | list[Variable]:
        inputs = [x if isinstance(x, Variable) else Variable(x) for x in inputs]
        ys = self.forward(*[x.data for x in inputs])
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = [Variable(as_array(y)) for y in ys]

        if Config.enable_backprop:
            self.generation = max([x.generation for x in inputs])
            for output in outputs:
                output.set_creator(self)
            self.inputs = inputs
            self.outputs = [weakref.ref(output) for output in outputs]
            if len(outputs) > 1:  # so that an output nobody used (even one freed) gets a zero gradient
                self.output_shapes = [output.data.shape for output in outputs]

        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, *xs)")

    def backward(self, *gys: Variable) -> Variable | tuple[Variable, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define backward(self, *gys)")


class Copy(Function):
    """y = a copy of x;  dy/dx = 1

    What backward gives a kept gradient that would otherwise share its array
    (a Function, so that under create_graph the copy is still differentiable).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def backward(self, gy: Variable) -> Variable:
        return gy


def _grads_of_outputs(func: Function) -> list[Variable]:
    """The gradients reaching a function's outputs: zeros for an output nothing used (or already freed).

    backward reaches a function through an output that has a gradient, so a
    single output always has one: only functions with several outputs can
    have an output without.
    """
    if len(func.outputs) == 1:
        return [func.outputs[0]().grad]
    gys = []
    for ref, shape in zip(func.outputs, func.output_shapes):
        y = ref()
        gy = None if y is None else y.grad
        gys.append(Variable(np.zeros(shape)) if gy is None else gy)
    return gys


def _check_seed(y: Variable) -> None:
    """The gradient set on the output before backward() must be a Variable shaped like the output."""
    if not isinstance(y.grad, Variable):
        raise TypeError(
            f"backward(): the output's .grad is a {type(y.grad).__name__}: "
            "set it to a Variable (y.grad = Variable(array)), or to None to start from ones"
        )
    if y.grad.shape != y.shape:
        raise ValueError(
            f"backward(): the gradient set on the output has shape {y.grad.shape}, but the output has "
            f"shape {y.shape}: set y.grad to a Variable of shape {y.shape} (PyTorch: "
            "y.backward(gradient=...)), or to None to start from ones"
        )


def _check_gradients(func: Function, gxs: tuple) -> None:
    """Catch a wrong backward() here, naming the function, not deep inside a later one."""
    name = type(func).__name__
    if len(gxs) != len(func.inputs):
        raise ValueError(
            f"{name}.backward returned {len(gxs)} gradient(s) for {len(func.inputs)} input(s): "
            "return one gradient per input of forward, in the same order"
        )
    for x, gx in zip(func.inputs, gxs):
        if not isinstance(gx, Variable):
            raise TypeError(
                f"{name}.backward returned a gradient of type {type(gx).__name__}: "
                "return Variables (compute with Variable operations, not on .data), "
                "so that create_graph=True can differentiate the gradient again"
            )
        if gx.data.shape != x.data.shape:
            raise ValueError(
                f"{name}.backward returned a gradient of shape {gx.data.shape} for an input of "
                f"shape {x.data.shape}: a gradient must have the shape of its input"
            )


# functions.py defines the operations behind Variable's operators and methods,
# and itself needs Variable and Function from above: so it is imported last.
from autograd_lab import functions as F  # noqa: E402
