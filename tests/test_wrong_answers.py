"""Typical wrong answers, exercise by exercise, and the message each must (and must not) produce.

"A wrong diagnosis is worse than none": every row is a wrong answer a student
writes, put in place of the solution in the real source notebook, which then runs
(in this process, demo cells skipped) up to the exercise's test cells. The first
failing check's message must contain every text of ``must`` and none of ``must_not``.
The table's size and pass rate are what issue 17 asked to report:
``pytest tests/test_wrong_answers.py -m slow``.
"""
from __future__ import annotations

import contextlib
import io
import json
import linecache
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograd_lab.checks import CheckFailed
from grader.notebooks import is_demo_cell, is_test_cell

SOURCE = Path(__file__).resolve().parent.parent / "course" / "source"
#: Texts no message may hold unless its own evidence says so (the misfires of issue 17).
GUESSES = ["a factor of 2 is missing", "was the gradient reset", "without `return`", "make it with torch.tensor",
           "pass requires_grad=True when you create it", "run the exercise in one thread", "watch was removed"]


@dataclass
class Row:
    notebook: str
    solution: str          # the grade id of the solution cell the wrong answer replaces
    tests: list[str]       # the test cells that run (the first failure is the message)
    code: str              # the wrong answer
    must: list[str]
    must_not: list[str] = field(default_factory=list)
    name: str = ""


# --- 05's engines, each with one mistake --------------------------------------------------------

FINAL_VARIABLE = '''
class Variable:
    __array_priority__ = 200

    def __init__(self, data):
        self.data = data
        self.grad = None
        self.creator = None
        self.generation = 0

    def set_creator(self, func):
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self):
        self.grad = None

    def backward(self):
        if self.grad is None:
            self.grad = np.ones_like(self.data)
        BODY

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __neg__(self):
        return neg(self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)
'''
OVERWRITING = FINAL_VARIABLE.replace("BODY", '''funcs = [self.creator] if self.creator is not None else []
        seen = set()
        while funcs:
            funcs.sort(key=lambda f: f.generation)
            f = funcs.pop()
            gxs = f.backward(*[y.grad for y in f.outputs])
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                x.grad = gx
                if x.creator is not None and x.creator not in seen:
                    seen.add(x.creator)
                    funcs.append(x.creator)''')
NO_GENERATIONS = FINAL_VARIABLE.replace("BODY", '''funcs = [self.creator] if self.creator is not None else []
        while funcs:
            f = funcs.pop()
            gxs = f.backward(*[y.grad for y in f.outputs])
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                x.grad = gx if x.grad is None else x.grad + gx
                if x.creator is not None:
                    funcs.append(x.creator)''')
RECURSIVE = '''
class Variable:
    def __init__(self, data):
        self.data = data
        self.grad = None
        self.creator = None

    def set_creator(self, func):
        self.creator = func

    def backward(self):
        if self.grad is None:
            self.grad = np.ones_like(self.data)
        f = self.creator
        if f is not None:
            x = f.input
            x.grad = f.backward(self.grad)
            x.backward()
'''

def _solution_with(notebook: str, grade_id: str, old: str, new: str) -> str:
    """The source's solution cell with one line changed: a wrong answer in a long cell."""
    cells = json.loads((SOURCE / notebook / f"{notebook}.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    assert old in source, f"{grade_id} no longer holds {old!r}"
    return source.replace(old, new)


CHECKER_BODY = """
def gradient_check(function, *inputs):
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    f = function()
    y = f(*[Variable(x.copy()) for x in xs])
    gy = GY
    gxs = f.backward(gy)
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    NUMERIC
    return all(np.allclose(g, n, rtol=1e-6, atol=1e-8) for g, n in zip(gxs, numeric))
"""
_OWN_NUMERIC = """numeric = []
    for x in xs:
        n = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + 1e-6
            up = np.sum(gy * function().forward(*xs))
            x[i] = old - 1e-6
            n[i] = (up - np.sum(gy * function().forward(*xs))) / 2e-6
            x[i] = old
        numeric.append(n)"""
CHECKER_GY_ONES = CHECKER_BODY.replace("GY", "np.ones(np.shape(y.data))").replace("NUMERIC", _OWN_NUMERIC)
CHECKER_PACKAGE = CHECKER_BODY.replace("GY", "np.random.default_rng(0).standard_normal(np.shape(y.data))").replace(
    "NUMERIC", "from autograd_lab.numerical import numerical_grad\n"
    "    numeric = numerical_grad(lambda *a: np.sum(gy * function().forward(*a)), *xs, eps=1e-6)")

TOPO_RECURSIVE = """
def topological_order(output):
    order, met = [], set()

    def visit(f):
        if f not in met:
            met.add(f)
            for x in f.inputs:
                if x.creator is not None:
                    visit(x.creator)
            order.append(f)
    if output.creator is not None:
        visit(output.creator)
    return order
"""
TOPO_PREORDER = """
def topological_order(output):
    order, met, stack = [], set(), [output.creator]
    while stack:
        f = stack.pop()
        if f is None or f in met:
            continue
        met.add(f)
        order.append(f)
        stack.extend(x.creator for x in f.inputs)
    return order[::-1]
"""

#: 01's walk of a recorded graph that follows only the first input of every function (the demonstration's walk).
FIRST_INPUTS_WALK = ("def walk_graph(y):\n    names = []\n    step = y.grad_fn\n    while step is not None:\n"
                     "        names.append(type(step).__name__)\n"
                     "        step = step.next_functions[0][0] if step.next_functions else None\n")

MINIBATCH = """
def train_minibatch(w0, b0, X, t, lr, epochs, batch_size):
    X = torch.tensor(X)
    t = torch.tensor(t, dtype=torch.float64)
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(float(b0), requires_grad=True)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD([w, b], lr=lr)
    loader = DataLoader(TensorDataset(X, t), batch_size=batch_size{shuffle})
    for _ in range(epochs):
        for inputs, labels in loader:
            {reset}loss = criterion(inputs @ w + b, labels)
            loss.backward()
            optimizer.step()
    return w.detach().numpy(), b.item()
"""

ROWS = [
    # 01 ------------------------------------------------------------------------------------------
    Row("01-tensors", "to-channels-first-answer", ["to-channels-first"],
        "def to_channels_first(batch):\n    return batch.permute(0, 3, 1, 2).long()",
        ["integer dtype", "without their fractions"], name="long"),
    Row("01-tensors", "to-channels-first-answer", ["to-channels-first"],
        "def to_channels_first(batch):\n    return batch.reshape(batch.shape[0], 3, batch.shape[1], batch.shape[2])",
        ["does not match", "worst element"], ["likely mistake"], name="reshape"),
    Row("01-tensors", "make-leaf-answer", ["make-leaf"],
        "def make_leaf(values):\n    return torch.tensor(values, dtype=torch.float32)",
        ["does not require grad"], ["likely mistake"], name="no requires_grad"),
    Row("01-tensors", "make-leaf-answer", ["make-leaf"],
        "def make_leaf(values):\n    return torch.tensor(values, dtype=torch.float32, requires_grad=True).detach()",
        ["does not require grad"], ["likely mistake"], name="detached"),
    Row("01-tensors", "requires-grad-error-answer", ["requires-grad-error"],
        "def requires_grad_error(value):\n    try:\n        torch.tensor(value, requires_grad=True)\n"
        "    except RuntimeError as error:\n        return error\n    return None",
        ["returned the RuntimeError object", "str(error)"], ["your code raised"], name="returns the exception"),
    Row("01-tensors", "requires-grad-error-answer", ["requires-grad-error"],
        "def requires_grad_error(value):\n    try:\n        torch.tensor(value, requires_grad=True)\n"
        "    except RuntimeError as error:\n        print(error)",
        ["printed its answer", "your code printed"], ["grad_fn"], name="prints"),
    Row("01-tensors", "can-require-grad-answer", ["can-require-grad"],
        "def can_require_grad(dtype):\n    return dtype.is_floating_point",
        ["can_require_grad(torch.complex64)", "does not match"], ["likely mistake"], name="forgets complex"),
    Row("01-tensors", "matrix-arange-answer", ["matrix-arange"],
        "def matrix_arange(n):\n    return torch.arange(1.0, n * n + 1.0, requires_grad=True).reshape(n, n)",
        ["a leaf has none", "expected None"], ["likely mistake"], name="non-leaf"),
    Row("01-tensors", "grad-fn-name-answer", ["grad-fn-name"],
        FIRST_INPUTS_WALK + "    print(names)",
        ["got None", "your code printed"], ["type(t.grad_fn)"], name="prints"),
    Row("01-tensors", "grad-fn-name-answer", ["grad-fn-name"],
        FIRST_INPUTS_WALK + "    return names",
        ["expected 5 items, got a list of 4", "SinBackward0"], ["likely mistake"], name="first inputs only"),
    Row("01-tensors", "brightness-answer", ["brightness-grad"],
        _solution_with("01-tensors", "brightness-answer", "grayscale(leaf).mean()", "grayscale(leaf).sum()"),
        ["does not match"], ["likely mistake"], name="sum, not mean"),
    Row("01-tensors", "brightness-answer", ["brightness-grad", "brightness-grad-by-hand"],
        _solution_with("01-tensors", "brightness-answer", "    pixels = int(np.prod(shape[:-1]))",
                       "    pixels = torch.ones(shape[:-1]).sum().item()"),
        ["uses PyTorch"], name="by hand with torch"),
    Row("01-tensors", "brightness-answer", ["brightness-grad", "brightness-grad-by-hand"],
        _solution_with("01-tensors", "brightness-answer", "    pixels = int(np.prod(shape[:-1]))",
                       "    pixels = int(np.prod(shape))"),
        ["does not match"], ["likely mistake"], name="divides by every entry"),
    # 02 ------------------------------------------------------------------------------------------
    Row("02-backward", "sum-of-squares-grad-answer", ["sum-of-squares-grad"],
        "def sum_of_squares_grad(x):\n    return torch.tensor(x)",
        ["exactly half"], ["likely mistake"], name="forgets the 2"),
    Row("02-backward", "quadratic-form-grad-answer", ["quadratic-form-grad"],
        "def quadratic_form_grad(A, x):\n    return 2 * A @ x",
        ["2Ax is the gradient only when A is symmetric"], ["row k of A"], name="2Ax"),
    Row("02-backward", "quadratic-form-grad-answer", ["quadratic-form-grad"],
        "def quadratic_form_grad(A, x):\n    return A @ x",
        ["only the sum over row k"], ["symmetric"], name="Ax"),
    Row("02-backward", "quadratic-form-grad-answer", ["quadratic-form-grad"],
        "def quadratic_form_grad(A, x):\n    return (A + A.T) @ x + x",
        ["does not match"], ["likely mistake"], name="something else"),
    Row("02-backward", "quadratic-form-grad-answer", ["quadratic-form-grad"],
        "def quadratic_form_grad(A, x):\n    t = torch.tensor(x, requires_grad=True)\n"
        "    (t @ torch.tensor(A) @ t).backward()\n    return t.grad",
        ["uses PyTorch"], name="autograd"),
    Row("02-backward", "bilinear-grads-answer", ["bilinear-grads"],
        "def bilinear_grads(x1, W, x2):\n    return W @ x2, np.outer(x2, x1), W.T @ x1",
        ["shape (3, 2) where (2, 3) is expected", "transpose"], ["likely mistake"], name="outer product transposed"),
    Row("02-backward", "predict-answer", ["predict-no-grad"],
        "def predict(theta, x):\n    with torch.no_grad():\n"
        "        return (theta[0] * x[0] - theta[1] * torch.cos(theta[2] + x[1])).item()",
        ["the values are right", ".item()", "return the tensor itself"], name=".item()"),
    Row("02-backward", "predict-answer", ["predict-no-grad"],
        "def predict(theta, x):\n    return theta[0] * x[0] - theta[1] * torch.cos(theta[2] + x[1])",
        ["requires grad, but should not", "no_grad"], name="records a graph"),
    Row("02-backward", "two-layer-loss-answer", ["two-layer-loss"],
        "def two_layer_loss(theta, phi, psi, x, y):\n    x = torch.tensor(x.detach().numpy())\n"
        "    return (y - psi @ torch.sigmoid(phi.T @ torch.sigmoid(theta.T @ x))) ** 2",
        ["gradient for x", "no gradient reached", "a new tensor"], name="re-wraps x"),
    Row("02-backward", "tanh-derivative-answer", ["tanh-derivative"],
        "def tanh_derivative(x, n):\n    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)\n"
        "    d = torch.tanh(t)\n    for _ in range(n):\n        (d,) = torch.autograd.grad(d, t)\n    return d.item()",
        ["does not require grad", "create_graph=True"], name="no create_graph"),
    # 03 ------------------------------------------------------------------------------------------
    Row("03-gradient-descent", "ex2-solution", ["descend-autograd"],
        "def descend_autograd(x0, lr, steps):\n    x = torch.tensor(x0, requires_grad=True)\n"
        "    for _ in range(steps):\n        (x ** 2 + torch.exp(-x)).backward()\n"
        "        with torch.no_grad():\n            x -= lr * x.grad\n    return x",
        ["gradients add up", "zero_grad"], name="no zero_grad"),
    Row("03-gradient-descent", "ex4-solution", ["minimize-difficult"],
        "def minimize_difficult(x0, lr, steps):\n    x = torch.tensor(x0, requires_grad=True)\n"
        "    for _ in range(steps):\n        difficult(x).backward()\n        with torch.no_grad():\n"
        "            x -= lr * x.grad\n    return x.item(), difficult(x).item()",
        ["gradients add up"], name="no zero_grad"),
    Row("03-gradient-descent", "ex6-solution", ["fit-toy-model"],
        "def fit_toy_model(theta0, lr, epochs):\n    model = ToyModel(theta0)\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=lr)\n    for _ in range(epochs):\n"
        "        toy_loss(model).backward()\n        optimizer.step()\n    return model.theta()",
        ["gradients add up", "optimizer.zero_grad()"], name="no zero_grad"),
    Row("03-gradient-descent", "ex6b-solution", ["fit-toy-model-l2"],
        _solution_with("03-gradient-descent", "ex6b-solution", "lam / 2 * penalty", "lam * penalty"),
        ["twice the weight decay"], ["gradients add up"], name="no 1/2"),
    Row("03-gradient-descent", "ex6b-solution", ["fit-toy-model-l2"],
        _solution_with("03-gradient-descent", "ex6b-solution", "objective.backward()", "toy_loss(model).backward()"),
        ["the penalty has no effect"], name="penalty not in backward"),
    Row("03-gradient-descent", "ex6b-solution", ["fit-toy-model-l2"],
        _solution_with("03-gradient-descent", "ex6b-solution", "        optimizer.zero_grad()\n", ""),
        ["gradients add up"], ["weight decay", "no effect"], name="no zero_grad"),
    Row("03-gradient-descent", "ex6b-solution", ["fit-toy-model-l2"],
        _solution_with("03-gradient-descent", "ex6b-solution", "lam / 2 * penalty", "lam / 2 * penalty ** 0.5"),
        ["does not match"], ["likely mistake"], name="the norm, not its square"),
    Row("03-gradient-descent", "ex7-solution", ["my-optimizer"],
        "class GradientDescent:\n    def __init__(self, params, lr):\n        self.params = list(params)\n"
        "        self.lr = lr\n\n    def zero_grad(self):\n        pass\n\n    def step(self):\n"
        "        with torch.no_grad():\n            for p in self.params:\n                p -= self.lr * p.grad",
        ["gradients add up"], name="zero_grad does nothing"),
    Row("03-gradient-descent", "ex8-solution", ["minibatch-sgd"], MINIBATCH.format(shuffle="", reset=""),
        ["gradients add up"], name="no zero_grad"),
    Row("03-gradient-descent", "ex8-solution", ["minibatch-sgd"],
        MINIBATCH.format(shuffle=", shuffle=True", reset="optimizer.zero_grad()\n            "),
        ["random numbers", "shuffle=True"], ["gradients add up", "accumulate"], name="shuffles"),
    Row("03-gradient-descent", "ex1-solution", ["descent-by-hand"],
        "def descent_by_hand(x0, lr, steps):\n    x = x0\n    for _ in range(steps):\n"
        "        x = x + lr * (2 * x - math.exp(-x))\n    return x",
        ["does not match"], ["likely mistake"], name="ascends"),
    # 04 ------------------------------------------------------------------------------------------
    Row("04-how-computers-differentiate", "ex1-solution", ["forward-difference"],
        "def forward_difference(f, x, h):\n    return (f(x) - f(x - h)) / h",
        ["does not match"], ["likely mistake"], name="backward difference"),
    Row("04-how-computers-differentiate", "ex2-solution", ["central-difference"],
        "def central_difference(f, x, h):\n    return (f(x + h) - f(x - h)) / h",
        ["exactly 2×"], ["likely mistake"], name="divides by h"),
    Row("04-how-computers-differentiate", "ex4-solution", ["numerical-gradient"],
        "def numerical_gradient(f, x, h=1e-5):\n    import torch\n    t = torch.tensor(x, requires_grad=True)\n"
        "    return torch.autograd.grad(f(t), t)[0].numpy()",
        ["uses PyTorch", "without PyTorch"], name="uses autograd"),
    Row("04-how-computers-differentiate", "ex8-solution", ["reverse-sweep"],
        _solution_with("04-how-computers-differentiate", "ex8-solution", "in reversed(edges)", "in edges"),
        ["does not match"], ["likely mistake"], name="forward sweep"),
    Row("04-how-computers-differentiate", "ex8-solution", ["reverse-sweep"],
        "def adjoints(edges, output):\n    adjoint = {output: 1.0}\n    for s, t, w in reversed(edges):\n"
        "        adjoint[s] = adjoint.get(s, 0.0) + w * adjoint.get(t, 0.0)\n    return adjoint, len(edges)",
        ["has no entry for 'z'"], ["likely mistake"], name="only the nodes met"),
    # 05 ------------------------------------------------------------------------------------------
    Row("05-build-your-own-autograd", "backward-loop-answer", ["backward-loop"], RECURSIVE,
        ["RecursionError", "use a loop"], ["thread", "could not be checked"], name="recursive backward"),
    Row("05-build-your-own-autograd", "final-variable-answer", ["accumulate"], OVERWRITING,
        ["overwrites gradients"], ["gradients add up", "reset"], name="overwrites (x + x)"),
    Row("05-build-your-own-autograd", "final-variable-answer", ["long-chain"], OVERWRITING,
        ["overwrites gradients", "all zeros"], ["reset"], name="overwrites (ladder)"),
    Row("05-build-your-own-autograd", "final-variable-answer", ["generations"], NO_GENERATIONS,
        ["by generation", "96"], ["overwrites"], name="no generations"),
    Row("05-build-your-own-autograd", "final-variable-answer", ["generations"],
        FINAL_VARIABLE.replace("BODY", "pass") + "\n\nfrom autograd_lab import reference05\n"
        "reference05.continue_with_reference(Variable)",
        ["autograd_lab.reference05.backward, autograd_lab's own answer"], ["96"], name="the reference's backward"),
    Row("05-build-your-own-autograd", "square-exp-answer", ["square-exp"],
        "from autograd_lab.reference05 import Exp, Square",
        ["autograd_lab.reference05.Square.forward, autograd_lab's own answer"], name="the reference's Square"),
    Row("05-build-your-own-autograd", "add-mul-answer", ["add-mul"],
        "class Add(Function):\n    def forward(self, x0, x1):\n        return x0 + x1\n\n"
        "    def backward(self, gy):\n        return gy\n\n\nclass Mul(Function):\n"
        "    def forward(self, x0, x1):\n        return x0 * x1\n\n    def backward(self, gy):\n"
        "        x0, x1 = self.inputs[0].data, self.inputs[1].data\n        return gy * x1, gy * x0",
        ["gradient for x1", "no gradient reached"], ["likely mistake"], name="Add returns one gradient"),
    Row("05-build-your-own-autograd", "gradient-check-answer", ["gradient-check"], CHECKER_GY_ONES,
        ["whose gy is all ones", "Draw gy at random"], ["autograd_lab's own answer"], name="gy all ones"),
    Row("05-build-your-own-autograd", "gradient-check-answer", ["gradient-check"], CHECKER_PACKAGE,
        ["autograd_lab.numerical.numerical_grad, autograd_lab's own answer"], ["all ones"],
        name="the package's checker"),
    Row("05-build-your-own-autograd", "gradient-check-answer", ["gradient-check"],
        "def gradient_check(function, *inputs):\n    return True",
        ["does not match", "expected: False"], ["likely mistake"], name="always True"),
    Row("05-build-your-own-autograd", "topological-order-answer", ["topological-order"], TOPO_RECURSIVE,
        ["RecursionError", "loop"], ["thread", "could not be checked"], name="recursive"),
    Row("05-build-your-own-autograd", "topological-order-answer", ["topological-order"], TOPO_PREORDER,
        ["does not match", "64"], ["overwrites", "generation", "likely mistake"], name="pre-order"),
    Row("05-build-your-own-autograd", "topological-order-answer", ["topological-order"],
        "def topological_order(output):\n    from autograd_lab import reference05\n"
        "    return reference05.topological_order(output)",
        ["autograd_lab's own answer"], name="the package's order"),
    Row("05-build-your-own-autograd", "reuse-and-clear-answer", ["cleargrad"],
        "def reuse_and_clear(x):\n    x = Variable(np.array(x, dtype=np.float64))\n"
        "    y = Add()(Add()(x, x), x)\n    y.backward()\n    first = x.grad\n"
        "    z = Mul()(x, x)\n    z.backward()\n    return first, x.grad",
        ["without x.cleargrad()"], name="no cleargrad"),
    # 06 ------------------------------------------------------------------------------------------
    Row("06-complete-engine", "to-dot-answer", ["to-dot"],
        _solution_with("06-complete-engine", "to-dot-answer", "if id(node) not in seen:", "if True:"),
        ["sigmoid", "wrong number of nodes", "expected: 9", "3 nodes are written more than once"],
        name="to_dot writes a node each time it meets it"),
    Row("06-complete-engine", "to-dot-answer", ["to-dot"],
        _solution_with("06-complete-engine", "to-dot-answer", 'lines.append(f"{id(f)} -> {id(y)}")', "pass"),
        ["wrong number of edges", "expected: 8", "got:      5"], ["more than once"],
        name="to_dot without the edges into outputs"),
    Row("06-complete-engine", "to-dot-answer", ["to-dot"],
        "def to_dot(output):\n    from autograd_lab.graph import get_dot_graph\n    return get_dot_graph(output)",
        ["autograd_lab's own answer"], name="the package's get_dot_graph"),
    Row("06-complete-engine", "engine-answer", ["engine"],
        _solution_with("06-complete-engine", "engine-answer", "gy * (x > 0)", "gy * (x >= 0)"),
        ["ReLU (at 0 too)", "does not match"], ["likely mistake"], name="ReLU's derivative 1 at 0"),
    Row("06-complete-engine", "engine-answer", ["engine"],
        _solution_with("06-complete-engine", "engine-answer", "-gy * x0 / x1 ** 2", "gy * x0 / x1 ** 2"),
        ["Div", "x1", "does not match"], ["likely mistake"], name="Div's sign"),
    Row("06-complete-engine", "engine-answer", ["engine"],
        "from autograd_lab.reference05 import Div, Pow, ReLU, div, power, relu",
        ["autograd_lab's own answer"], name="the reference's Div, Pow and ReLU"),
    Row("06-complete-engine", "engine-answer", ["acceptance"],
        _solution_with("06-complete-engine", "engine-answer", "self.c * x ** (self.c - 1) * gy",
                       "x ** (self.c - 1) * gy"),
        ["does not match"], ["likely mistake", "autograd_lab's own answer"], name="Pow forgets c (on the engine)"),
    # 07 ------------------------------------------------------------------------------------------
    Row("07-forward-mode", "dual-class", ["dual-mul-div"],
        _solution_with("07-forward-mode", "dual-class",
                       "self.value * other.deriv + self.deriv * other.value", "self.deriv * other.deriv"),
        ["does not match"], ["likely mistake"], name="ε part of a product"),
    Row("07-forward-mode", "dual-class", ["dual-add-sub"],
        _solution_with("07-forward-mode", "dual-class", "self.deriv - other.deriv", "self.deriv + other.deriv"),
        ["does not match"], ["likely mistake"], name="ε part of a difference"),
    Row("07-forward-mode", "hvp-code", ["hvp"],
        "def hvp(f, x, v):\n    return torch.func.grad(f)(x) * v",
        ["does not match"], ["likely mistake"], name="gradient times v"),
    Row("07-forward-mode", "per-example-code", ["per-example-grads"],
        "def per_example_grads(w, X, y):\n    w = w.clone().requires_grad_()\n"
        "    ((X @ w - y) ** 2).sum().backward()\n    return w.grad",
        ["one gradient of the whole batch"], name="the batch's gradient"),
    # 08 ------------------------------------------------------------------------------------------
    Row("08-neural-network", "sum-to-code", ["sum-to"],
        "def sum_to(x, shape):\n    from autograd_lab.utils import sum_to as theirs\n    return theirs(x, shape)",
        ["autograd_lab.utils.sum_to, autograd_lab's own answer"], name="the package's sum_to"),
    Row("08-neural-network", "sum-to-code", ["sum-to"],
        _solution_with("08-neural-network", "sum-to-code", "keepdims=True", "keepdims=False"),
        ["shape (3,) where (3, 1) is expected"], ["likely mistake"], name="drops the length-1 axes"),
    Row("08-neural-network", "broadcast-code", ["broadcast"],
        _solution_with("08-neural-network", "broadcast-code",
                       "return sum_to(gy * x1, x0.shape), sum_to(gy * x0, x1.shape)",
                       "return sum_to(gy, x0.shape) * x1, sum_to(gy, x1.shape) * x0"),
        ["Mul of broadcast shapes", "shape (3, 2) where (2,) is expected"], ["likely mistake"],
        name="Mul sums gy before multiplying"),
    Row("08-neural-network", "broadcast-code", ["broadcast"],
        _solution_with("08-neural-network", "broadcast-code",
                       "return sum_to(gy, x0.data.shape), sum_to(gy, x1.data.shape)", "return gy, gy"),
        ["Add of broadcast shapes", "shape"], ["likely mistake"], name="Add does not un-broadcast"),
    Row("08-neural-network", "broadcast-code", ["broadcast"],
        "from autograd_lab.reference08 import Add, Mul, Div",
        ["autograd_lab.reference08.Add.backward, autograd_lab's own answer"], name="the reference's classes"),
    Row("08-neural-network", "sum-code", ["sum-backward"],
        _solution_with("08-neural-network", "sum-code", "gy = np.expand_dims(gy, self.axis)", "pass"),
        ["Sum(axis=1, keepdims=False)"], ["likely mistake"], name="no expand_dims"),
    Row("08-neural-network", "sum-code", ["sum-backward"],
        "class Sum(Function):\n    def __init__(self, axis=None, keepdims=False):\n"
        "        self.axis, self.keepdims = axis, keepdims\n\n    def forward(self, x):\n"
        "        return np.sum(x, axis=self.axis, keepdims=self.keepdims)\n\n    def backward(self, gy):\n"
        "        return np.ones_like(self.inputs[0].data)\n\n\ndef sum_(x, axis=None, keepdims=False):\n"
        "    return Sum(axis, keepdims)(as_variable(x))",
        ["does not match"], ["likely mistake"], name="forgets gy"),
    Row("08-neural-network", "reshape-code", ["reshape-transpose"],
        _solution_with("08-neural-network", "reshape-code", "np.argsort(self.axes)", "self.axes"),
        ["Transpose((1, 2, 0))"], ["likely mistake"], name="the same permutation again"),
    Row("08-neural-network", "matmul-code", ["matmul-backward"],
        _solution_with("08-neural-network", "matmul-code", "np.swapaxes(W, -1, -2)", "W.T"),
        ["MatMul", "raised ValueError", "gx = np.matmul(gy, W.T)"], ["likely mistake"],
        name=".T on a batch"),
    Row("08-neural-network", "matmul-code", ["matmul-backward"],
        _solution_with("08-neural-network", "matmul-code", "return sum_to(gx, x.shape), sum_to(gW, W.shape)",
                       "return gx, gW"),
        ["MatMul", "shape"], ["likely mistake"], name="no sum_to"),
    Row("08-neural-network", "matmul-code", ["matmul-backward"],
        "from autograd_lab.functions import MatMul",
        ["calls autograd_lab.core.Function.__call__", "autograd_lab's own answer"], name="the package's MatMul"),
    Row("08-neural-network", "matmul-code", ["matmul-backward"],
        "from autograd_lab.reference08 import MatMul\n\n\nclass MatMul(MatMul):\n    pass\n\n\n"
        "def matmul(x, W):\n    return MatMul()(as_variable(x), as_variable(W))",
        ["autograd_lab.reference08.MatMul.forward, autograd_lab's own answer"], name="a subclass of the reference's"),
    Row("08-neural-network", "cross-entropy-code", ["cross-entropy"],
        "def cross_entropy(scores, onehot):\n    s, T = scores.data, onehot.data\n"
        "    z = s - s.max(axis=1, keepdims=True)\n    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))\n"
        "    return Variable(np.array(-(T * log_p).sum() / s.shape[0]))",
        ["no gradient reached"], name="numpy"),
    Row("08-neural-network", "cross-entropy-code", ["cross-entropy"],
        "def cross_entropy(scores, onehot):\n"
        "    log_p = scores - log(sum_(exp(scores), axis=1, keepdims=True))\n"
        "    return -sum_(onehot * log_p) / scores.data.shape[0]",
        ["scores 900", "does not match"], name="no shift"),
    Row("08-neural-network", "mlp-code", ["mlp"],
        _solution_with("08-neural-network", "mlp-code",
                       "        if i + 2 < len(params):\n            h = activation(h)", "        h = activation(h)"),
        ["mlp of a 2 → 2 → 2 → 1 network", "does not match"], ["likely mistake"],
        name="activation after the last layer"),
    Row("08-neural-network", "train-code", ["train"],
        _solution_with("08-neural-network", "train-code", "        for p in params:\n            p.cleargrad()\n", ""),
        ["gradients are never cleared", "cleargrad"], name="no cleargrad"),
    Row("08-neural-network", "train-code", ["train"],
        _solution_with("08-neural-network", "train-code", "Variable(np.array(array, dtype=np.float64))",
                       "Variable(array)").replace("p.data = p.data - lr * p.grad", "p.data -= lr * p.grad"),
        ["changed its argument 1"], name="no copies"),
]


def _cells(notebook: str) -> list[dict]:
    return json.loads((SOURCE / notebook / f"{notebook}.ipynb").read_text())["cells"]


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _run(source: str, namespace: dict, name: str) -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    text = TransformerManager().transform_cell(source)
    linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    exec(compile(text, name, "exec"), namespace)


def message_for(row: Row) -> str | None:
    """The first failure of the row's test cells, in the source notebook with the row's wrong answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import torch

    namespace: dict = {"__name__": "__main__"}
    last = max(index for index, cell in enumerate(_cells(row.notebook)) if _grade_id(cell) in row.tests)
    dtype = torch.get_default_dtype()  # a notebook's set-up cell may change it (03 works in float64)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            for index, cell in enumerate(_cells(row.notebook)[:last + 1]):
                if cell["cell_type"] != "code" or is_demo_cell(cell):
                    continue
                source = row.code if _grade_id(cell) == row.solution else "".join(cell["source"])
                if is_test_cell(cell):
                    if _grade_id(cell) not in row.tests:
                        continue
                    try:
                        _run(source, namespace, f"<test cell {_grade_id(cell)}>")
                    except CheckFailed as failure:
                        return str(failure)
                    continue
                try:
                    _run(source, namespace, f"<cell {index}>")
                except Exception:  # a cell that uses the wrong answer may fail, as in the student's notebook
                    pass
        finally:
            plt.close("all")
            torch.set_default_dtype(dtype)  # ...which must not leak into the tests that run after this one
    return None


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[f"{row.notebook[:2]}-{row.tests[0]}-{row.name}" for row in ROWS])
def test_a_wrong_answer_gets_its_message_and_no_other(row):
    message = message_for(row)
    assert message is not None, "the wrong answer passed every check"
    for text in row.must:
        assert text in message, f"missing {text!r} in:\n{message}"
    for text in row.must_not + [guess for guess in GUESSES if guess not in row.must]:
        assert text not in message, f"unwanted {text!r} in:\n{message}"


def test_every_notebook_with_exercises_has_rows():
    covered = {row.notebook for row in ROWS}
    assert covered == {path.name for path in SOURCE.iterdir() if path.is_dir()}
