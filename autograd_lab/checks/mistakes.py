"""What the typical mistakes of a hand-built autograd engine produce (notebook 05).

A check names a mistake only when the student's answer *is* what that mistake
produces on the check's own inputs. For engines given graphs as data
(:func:`autograd_lab.checks.graph`), this module recomputes those answers: it runs
each graph through small engines that make one mistake each, the ones the
notebook's sections warn about:

* a backward that *overwrites* gradients (``x.grad = gx``) instead of adding to them,
  so a variable used twice (``x + x``) keeps one of its gradients;
* a backward that takes functions in the order it meets them (a stack, no
  generations), so a function can run before all gradients reached its output
  (``(x²)² + (x²)²`` at 2 gives 96 instead of 64).

The engines work on numpy arrays with each operation's derivative written out;
they are evidence for messages, never references (those come from PyTorch).
"""
from __future__ import annotations

import heapq
from typing import Any, Callable

import numpy as np

from autograd_lab.i18n import _, N_
from autograd_lab.checks.observed import Observed, observe

OVERWRITE = N_("your backward overwrites gradients (x.grad = gx) where a variable is used more than once: "
             "these are exactly the gradients such an engine gives. Add each new gradient to the one already there")
NO_GENERATIONS = N_("your backward runs a function before all gradients have reached its output: these are exactly "
                  "the gradients of an engine that takes functions in the order it meets them (96, not 64, on "
                  "(x²)² + (x²)²). Take functions by generation, each once")

#: (message, order, accumulate): each engine makes one mistake.
ENGINES = [
    (OVERWRITE, "stack", False),
    (OVERWRITE, "generation", False),
    (NO_GENERATIONS, "stack", True),
]

#: More function runs than this (a stack engine repeats shared subgraphs): no evidence for that graph.
MAX_RUNS = 200_000


def _sum_to(gradient: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to its input's shape."""
    gradient = np.asarray(gradient)
    lead = gradient.ndim - len(shape)
    gradient = gradient.sum(axis=tuple(range(lead))) if lead > 0 else gradient
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and gradient.shape[i] != 1)
    return gradient.sum(axis=axes, keepdims=True) if axes else gradient


FORWARD: dict[str, Callable[..., Any]] = {
    "square": lambda a: a * a, "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "relu": lambda a: np.maximum(a, 0), "neg": lambda a: -a,
    "sum": lambda a: np.sum(a), "add": np.add, "+": np.add, "sub": np.subtract, "-": np.subtract,
    "mul": np.multiply, "*": np.multiply, "div": np.divide, "/": np.divide, "**": np.power, "matmul": np.matmul,
}


def _local_gradients(op: str, args: list[np.ndarray], out: np.ndarray, gy: np.ndarray) -> list[np.ndarray]:
    """Each argument's gradient for one operation, given the gradient ``gy`` of its output."""
    a = args[0]
    b = args[1] if len(args) > 1 else None
    unary = {
        "square": lambda: 2 * a * gy, "exp": lambda: out * gy, "log": lambda: gy / a, "sin": lambda: np.cos(a) * gy,
        "cos": lambda: -np.sin(a) * gy, "tanh": lambda: (1 - out * out) * gy, "sigmoid": lambda: out * (1 - out) * gy,
        "relu": lambda: (a > 0) * gy, "neg": lambda: -gy, "sum": lambda: np.broadcast_to(gy, np.shape(a)),
    }
    if op in unary:
        return [unary[op]()]
    binary = {
        "add": lambda: (gy, gy), "+": lambda: (gy, gy), "sub": lambda: (gy, -gy), "-": lambda: (gy, -gy),
        "mul": lambda: (gy * b, gy * a), "*": lambda: (gy * b, gy * a),
        "div": lambda: (gy / b, -gy * a / (b * b)), "/": lambda: (gy / b, -gy * a / (b * b)),
        "**": lambda: (gy * b * a ** (b - 1), gy * out * np.log(np.where(a > 0, a, 1.0))),
        "matmul": lambda: (gy @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ gy),
    }
    ga, gb = binary[op]()
    return [_sum_to(ga, np.shape(a)), _sum_to(gb, np.shape(b))]


def run_mistaken(spec: dict, order: str, accumulate: bool) -> Observed | None:
    """A graph spec through an engine with one mistake: its output and input gradients, as a probe records them.

    None when the engine cannot say (an unknown operation, or too many repeated runs).
    """
    inputs = [np.asarray(value, dtype=np.float64) for value in spec["inputs"]]
    values: list[np.ndarray] = list(inputs)
    creator: list[int | None] = [None] * len(inputs)
    generation = [0] * len(inputs)
    node_generation = []
    with np.errstate(all="ignore"):
        for index, (op, refs) in enumerate(spec["nodes"]):
            if op not in FORWARD:
                return None
            args = [np.asarray(ref["const"], dtype=np.float64) if isinstance(ref, dict) else values[ref]
                    for ref in refs]
            node_generation.append(max((generation[ref] for ref in refs if not isinstance(ref, dict)), default=0))
            values.append(np.asarray(FORWARD[op](*args), dtype=np.float64))
            creator.append(index)
            generation.append(node_generation[-1] + 1)
        grads: list[np.ndarray | None] = [None] * len(values)
        upstream = spec.get("upstream")
        grads[-1] = np.ones_like(values[-1]) if upstream is None else np.asarray(upstream, dtype=np.float64)
        todo: list = []
        queued: set[int] = set()
        counter = 0

        def add(node: int) -> None:
            nonlocal counter
            if order == "stack":
                todo.append(node)
            elif node not in queued:
                queued.add(node)
                counter += 1
                heapq.heappush(todo, (-node_generation[node], counter, node))

        if creator[-1] is not None:
            add(creator[-1])
        runs = 0
        while todo:
            runs += 1
            if runs > MAX_RUNS:
                return None
            node = todo.pop() if order == "stack" else heapq.heappop(todo)[2]
            op, refs = spec["nodes"][node]
            out_index = len(inputs) + node
            args = [np.asarray(ref["const"], dtype=np.float64) if isinstance(ref, dict) else values[ref]
                    for ref in refs]
            for ref, gx in zip(refs, _local_gradients(op, args, values[out_index], grads[out_index])):
                if isinstance(ref, dict):
                    continue
                gx = np.asarray(gx, dtype=np.float64)
                grads[ref] = gx if not accumulate or grads[ref] is None else grads[ref] + gx
                if creator[ref] is not None:
                    add(creator[ref])
    return Observed("sequence", type="backward", items=[observe(values[-1]), observe(grads[:len(inputs)])])


def engine_mistakes(specs: list[dict]) -> list[tuple[str, Observed]]:
    """(message, what that mistake gives on every spec) for each engine of :data:`ENGINES` that can say."""
    found = []
    for message, order, accumulate in ENGINES:
        items = [run_mistaken(spec, order, accumulate) for spec in specs]
        if all(item is not None for item in items):
            found.append((_(message), Observed("sequence", type="cases", items=items)))
    return found
