"""Benchmark autograd_lab's backward pass and a training step, side by side with PyTorch.

    python benchmarks/engine.py            # graphs of 10^3 .. 10^6 operations (a few minutes)
    python benchmarks/engine.py --quick    # 10^2 .. 10^4, a few seconds (scaling shown, not checked)

What is measured (best of several repeats, time.perf_counter, both engines in
float64 on the CPU, PyTorch limited to one thread as autograd_lab uses one):

- backward time against graph size, for a chain (y = y * c, N times) and a
  wide graph (one x feeding N branches x * c_i, summed pairwise). A backward
  pass that is linear in the graph size takes 10x the time for 10x the nodes;
  the target allows 12x at the two larger steps.
- one training step of an MLP 2 -> 16 -> 16 -> out (tanh, batch 64):
  forward, loss (MSE, or softmax cross-entropy), backward, SGD update.
  The target: at most 2x PyTorch's time.

Prints a table and exits with status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

# Run from a checkout without installing: the repository root holds autograd_lab/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograd_lab import Variable  # noqa: E402
from autograd_lab import functions as F  # noqa: E402
from autograd_lab.datasets import two_moons  # noqa: E402
from autograd_lab.layers import MLP  # noqa: E402
from autograd_lab.optimizers import SGD  # noqa: E402

MAX_SCALING = 12.0  # time(10N) / time(N), checked at the two largest steps
MAX_MLP_RATIO = 2.0  # ours / PyTorch for a training step
C = 1.0000001  # the chain's factor: keeps values and gradients near 1


def repeats_for(n: int) -> int:
    """More repeats for small graphs, where one run is short and easily disturbed."""
    return 5 if n <= 10**4 else 3 if n <= 10**5 else 2


def best_time(fn: Callable[[], object], repeats: int, setup: Callable[[], object] = lambda: None) -> float:
    """The fastest of `repeats` runs of fn() (setup() runs before each, untimed)."""
    best = float("inf")
    for _ in range(repeats):
        setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ----- graphs: the same construction in both engines -----
def chain(x, n: int):
    y = x
    for _ in range(n):
        y = y * C
    return y


def wide(x, n: int):
    ys = [x * (1.0 + i * 1e-7) for i in range(n)]
    while len(ys) > 1:  # a balanced tree of adds: many functions wait in backward's queue at once
        pairs = [ys[i] + ys[i + 1] for i in range(0, len(ys) - 1, 2)]
        ys = pairs + ys[len(pairs) * 2 :]
    return ys[0]


def backward_times(build, n: int, repeats: int) -> tuple[float, float]:
    """Seconds for one backward pass through build(x, n), ours and PyTorch's."""
    x = Variable(np.array(0.5))
    y = build(x, n)
    ours = best_time(y.backward, repeats, setup=x.cleargrad)
    del x, y

    tx = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    ty = build(tx, n)

    clear = functools.partial(setattr, tx, "grad", None)
    theirs = best_time(functools.partial(ty.backward, retain_graph=True), repeats, setup=clear)
    del tx, ty
    gc.collect()
    return ours, theirs


# ----- a training step -----
def mlp_step_times(loss_name: str, steps: int, repeats: int) -> tuple[float, float]:
    """Seconds per training step (forward, loss, backward, SGD update), ours and PyTorch's."""
    x, labels = two_moons(64, noise=0.1, seed=0)
    out = 1 if loss_name == "mse" else 2
    target = labels.reshape(-1, 1).astype(np.float64)

    model = MLP((16, 16, out), activation=F.tanh, in_size=2, seed=0)
    optimizer = SGD(lr=0.1).setup(model)

    def ours_step() -> None:
        model.cleargrads()
        y = model(x)
        loss = F.mean_squared_error(y, target) if loss_name == "mse" else F.softmax_cross_entropy(y, labels)
        loss.backward()
        optimizer.update()

    layers = []
    for i, layer in enumerate(model.layers):
        linear = torch.nn.Linear(layer.W.shape[0], layer.W.shape[1]).double()
        with torch.no_grad():  # the same initial weights; PyTorch stores W as (out, in)
            linear.weight.copy_(torch.tensor(layer.W.data.T))
            linear.bias.copy_(torch.tensor(layer.b.data))
        layers += [linear, torch.nn.Tanh()] if i < len(model.layers) - 1 else [linear]
    torch_model = torch.nn.Sequential(*layers)
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.1)
    tx, t_target, t_labels = torch.tensor(x), torch.tensor(target), torch.tensor(labels)

    def torch_step() -> None:
        torch_optimizer.zero_grad()
        y = torch_model(tx)
        loss = (
            torch.nn.functional.mse_loss(y, t_target)
            if loss_name == "mse"
            else torch.nn.functional.cross_entropy(y, t_labels)
        )
        loss.backward()
        torch_optimizer.step()

    def run(step: Callable[[], None]) -> None:
        for _ in range(steps):
            step()

    for step in (ours_step, torch_step):  # warm up
        for _ in range(steps // 10):
            step()
    # Alternate the two engines, so that a busy moment of the machine slows both alike.
    ours = theirs = float("inf")
    for _ in range(repeats):
        ours = min(ours, best_time(lambda: run(ours_step), 1))
        theirs = min(theirs, best_time(lambda: run(torch_step), 1))
    return ours / steps, theirs / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small graphs and few repeats (a smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]

    sizes = [10**2, 10**3, 10**4] if args.quick else [10**3, 10**4, 10**5, 10**6]
    # The scaling ratios of the two largest steps are targets; graphs of a quick run
    # take milliseconds, too short to time reliably on a busy machine: shown, not checked.
    checked_from = len(sizes) if args.quick else len(sizes) - 2
    failures = []

    print(f"backward pass (seconds; best of 5 runs up to 10^4 nodes, 3 at 10^5, 2 at 10^6). "
          f"PyTorch {torch.__version__}, 1 thread, float64")
    print(f"{'graph':<6} {'N':>8} {'ours':>9} {'torch':>9} {'ours/torch':>10} "
          f"{'ours 10x':>9} {'torch 10x':>9}")
    for name, build in (("chain", chain), ("wide", wide)):
        previous = None
        for i, n in enumerate(sizes):
            ours, theirs = backward_times(build, n, repeats=repeats_for(n))
            scaling = "" if previous is None else f"{ours / previous[0]:9.2f}"
            torch_scaling = "" if previous is None else f"{theirs / previous[1]:9.2f}"
            flag = ""
            if previous is not None and i >= checked_from and ours / previous[0] > MAX_SCALING:
                flag = f"  <- over {MAX_SCALING:g}x"
                failures.append(f"{name} backward scaling {ours / previous[0]:.2f} at N={n}")
            print(f"{name:<6} {n:>8} {ours:9.4f} {theirs:9.4f} {ours / theirs:10.2f} "
                  f"{scaling:>9} {torch_scaling:>9}{flag}", flush=True)
            previous = (ours, theirs)

    steps, repeats = (200, 3) if args.quick else (1000, 9)
    print(f"\nMLP 2-16-16-out tanh, batch 64, one training step (seconds; best of {repeats} x {steps} steps)")
    print(f"{'loss':<24} {'ours':>11} {'torch':>11} {'ours/torch':>10}")
    for loss_name, label in (("mse", "MSE (out=1)"), ("ce", "softmax CE (out=2)")):
        ours, theirs = mlp_step_times(loss_name, steps, repeats)
        flag = ""
        if ours / theirs > MAX_MLP_RATIO:
            flag = f"  <- over {MAX_MLP_RATIO:g}x"
            failures.append(f"MLP step ({label}) {ours / theirs:.2f}x PyTorch")
        print(f"{label:<24} {ours:11.6f} {theirs:11.6f} {ours / theirs:10.2f}{flag}", flush=True)

    busy = max(os.getloadavg()[0], load_before) > os.cpu_count()
    if busy:
        print(f"\nnote: the machine was busy (load average {max(os.getloadavg()[0], load_before):.1f} "
              f"on {os.cpu_count()} cores); long runs suffer most, so the scaling ratios are inflated")
    if failures:
        print("\nMISSED: " + "; ".join(failures))
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
