"""Checks for the exercises: your answer against what PyTorch computes, right now.

Every exercise of notebooks 01–07 is checked by one of these functions::

    from autograd_lab import checks

    checks.close(dz_dx, 8.0)                                # a value
    checks.tensor(t, torch.tensor([3., 4.]), requires_grad=True)
    checks.function(poly_derivative, lambda x: 2 * x + 2, [(3.0,), (-1.5,)])
    checks.gradient(grad_of_norm, lambda x: (x ** 2).sum(), [(np.array([1., 2., 3.]),)])
    checks.backward(my_model, torch_model, [(theta, x)])    # value and every gradient
    checks.raises(make_int_tensor, exception=RuntimeError, match="floating point")

A pass prints one short line. A failure raises ``AssertionError`` with what was
expected, what you gave, the worst element and, where it can be told, the likely
mistake. Nothing is ever written to stderr (nbgrader gives 0 points to a test
cell that writes there). The same cells run in JupyterLab, on Colab and under
nbgrader.

When the course is graded by ``python -m grader``, test cells do not run in your
kernel at all: the grader runs them in its own process in *plan* mode
(:func:`plan_cell`), where your names are :class:`~autograd_lab.checks.lazy.Lazy`
stand-ins; only the probes run in your kernel, and the verdicts
(:func:`judge_cell`) are decided where your code cannot reach them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import linecache
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from autograd_lab import i18n
from autograd_lab.checks import compare, mistakes
from autograd_lab.checks.compare import Verdict
from autograd_lab.checks.lazy import PlanNamespace
from autograd_lab.checks.observed import Observed, observe
from autograd_lab.checks.probes import run_probe
from autograd_lab.checks.wire import AuthoringError, decode, encode, involves_student
from autograd_lab.i18n import N_

# PyTorch deprecates torch.jit.script, and its own forward mode still calls it: the first torch.func.jvp
# (or jacfwd, forward_ad.make_dual) of a process imports torch._decomp.decompositions_for_jvp, which
# scripts functions. 2.13 warns with a DeprecationWarning (hidden by default), 2.14 with a FutureWarning,
# which is shown: on stderr, where nbgrader scores a test cell 0 (a test cell computing its expected values
# with torch.func.jvp failed). The warning is PyTorch's own business, not the student's: hide it, only it.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", module=r"torch\.jit\._script")

__all__ = [
    "close", "equal", "tensor", "function", "steps", "unchanged", "gradient", "backward", "graph", "dot",
    "random_graph", "chain", "describe_graph", "raises", "rng",
    "CheckFailed", "AuthoringError", "plan_cell", "judge_cell", "PlannedCheck",
]


class CheckFailed(AssertionError):
    """A check found a wrong answer. Its message says what to fix.

    In IPython (JupyterLab, Colab, nbgrader's kernels) it is shown as its message alone:
    no test-cell source, no frames inside autograd_lab. Where the student's own code
    raised, the message says in which function and line.
    """

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


#: Seconds one call of your function may take when a check runs in a notebook; then the check says
#: "your function did not return within N s (an infinite loop?)". (When grading, the grader's limit applies.)
CALL_SECONDS = 20.0

#: What a check calls the student's value when its first argument's source text cannot be read (or is
#: too long). Kept in English in a check (a planned one is made in the grader's process) and translated
#: where the verdict is made, in the student's language (:func:`_judged`).
YOUR_ANSWER = N_("your answer")
YOUR_TENSOR = N_("your tensor")
YOUR_FUNCTION = N_("your function")
YOUR_STEP_FUNCTION = N_("your step function")
YOUR_GRADIENT = N_("your gradient")
YOUR_CODE = N_("your code")
YOUR_ENGINE = N_("your engine")
_FALLBACK_LABELS = {YOUR_ANSWER, YOUR_TENSOR, YOUR_FUNCTION, YOUR_STEP_FUNCTION, YOUR_GRADIENT, YOUR_CODE, YOUR_ENGINE}


# --- the public checks ----------------------------------------------------------------------

def close(answer: Any, expected: Any, *, what: str | None = None, rtol: float = 1e-5, atol: float = 1e-6,
          forbid_torch: bool = False) -> None:
    """``answer`` equals ``expected`` numerically (numbers, arrays, tensors, Variables, tuples of them)."""
    __tracebackhide__ = True
    if _reused():
        return
    expected_record = observe(expected)
    _submit(_Check(
        what=what or _argument_text(YOUR_ANSWER), probe="value", target=answer, forbid_torch=forbid_torch,
        judge=lambda got, w: compare.compare_close(got, expected_record, what=w, rtol=rtol, atol=atol),
    ))


def equal(answer: Any, expected: Any, *, what: str | None = None) -> None:
    """``answer`` equals ``expected`` exactly: text, integers, booleans, shapes, tuples of them."""
    __tracebackhide__ = True
    if _reused():
        return
    expected_record = observe(expected)
    _submit(_Check(
        what=what or _argument_text(YOUR_ANSWER), probe="value", target=answer,
        judge=lambda got, w: compare.compare_equal(got, expected_record, what=w),
    ))


def tensor(answer: Any, expected: Any = None, *, requires_grad: bool | None = None, dtype: Any = None,
           leaf: bool | None = None, what: str | None = None, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """``answer`` is a torch tensor with these values and properties.

    ``dtype`` is a torch dtype, or ``"floating"`` for any floating-point dtype;
    ``leaf=True`` asks for a leaf (created directly, not computed from others).
    """
    __tracebackhide__ = True
    if _reused():
        return
    expected_record = None if expected is None else observe(expected)
    dtype_name = dtype if dtype in (None, "floating") else str(dtype)
    _submit(_Check(
        what=what or _argument_text(YOUR_TENSOR), probe="value", target=answer,
        judge=lambda got, w: compare.compare_tensor(got, expected_record, what=w, requires_grad=requires_grad,
                                                    dtype=dtype_name, leaf=leaf, rtol=rtol, atol=atol),
    ))


def function(fn: Callable, reference: Callable | Sequence, inputs: Sequence, *, what: str | None = None,
             rtol: float = 1e-5, atol: float = 1e-6, exact: bool = False, repeat: int = 2,
             forbid_torch: bool = False, mistakes: dict[str, Callable | Sequence] | None = None,
             forbid: Sequence[str] = (), plug: tuple | None = None) -> None:
    """``fn(*args)`` equals ``reference(*args)`` for every argument tuple in ``inputs``.

    ``reference`` is a function (usually written with PyTorch), or the list of
    expected results. The first input is passed twice, as fresh copies, so a
    function that keeps state between calls (gradients that accumulate) is caught.

    ``mistakes`` maps a message to what a typical mistake computes (a function like
    ``reference``, or its results): a wrong answer gets that message only if it *is*
    that mistake's result on every input.

    ``forbid`` names autograd_lab's own answer to the exercise (``"autograd_lab.utils:sum_to"``, or a
    whole module, ``"autograd_lab.functions"``): a call to it fails the check, as PyTorch does with
    ``forbid_torch``. ``plug=(harness, obj)``
    runs the check inside ``harness(obj)``, a context manager that plugs the student's code into a
    reference engine (see :mod:`autograd_lab.reference05`), so that an earlier exercise left undone
    does not fail this one.
    """
    __tracebackhide__ = True
    if _reused():
        return
    cases = [_as_args(args) for args in inputs]
    expected_record, against = _expected_calls(reference, cases, "the reference function")
    produced = [(message, _expected_calls(mistake, cases, f"the mistake {message!r}")[0])
                for message, mistake in (mistakes or {}).items()]
    labels = [_render_args(args) for args in cases]
    _submit(_Check(
        what=what or _argument_text(YOUR_FUNCTION), probe="call", target=fn, data=[cases], kwargs={"repeat": repeat},
        forbid_torch=forbid_torch, forbid=tuple(forbid), plug=plug,
        judge=lambda got, w: compare.compare_calls(got, expected_record, what=w, inputs=labels, rtol=rtol,
                                                   atol=atol, exact=exact, against=against, mistakes=produced),
    ))


def steps(fn: Callable, expected: Sequence[Sequence], inputs: Sequence, *, what: str | None = None,
          rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """``fn(*args)`` called ``len(expected[i])`` times in a row on the *same* arguments gives ``expected[i]``.

    For a step function (one training step of a model): state carries over from
    call to call, as in a training loop, so a step that keeps gradients from the
    previous one is right once and wrong after. ``expected`` holds, per argument
    tuple, the results of the successive calls (computed with PyTorch). The
    arguments may be the student's objects (a model and its optimizer).
    """
    __tracebackhide__ = True
    if _reused():
        return
    cases = [_as_args(args) for args in inputs]
    expected_record = Observed("sequence", type="calls",
                               items=[Observed("sequence", type="list", items=[observe(v) for v in row])
                                      for row in expected])
    counts = {len(row) for row in expected}
    if len(counts) != 1 or len(cases) != len(expected):
        raise AuthoringError("checks.steps: give one row of expected results per input, all of the same length")
    count = counts.pop()
    labels = [_render_args(args) for args in cases]
    _submit(_Check(
        what=what or _argument_text(YOUR_STEP_FUNCTION), probe="steps", target=fn, data=[cases],
        kwargs={"steps": count},
        judge=lambda got, w: compare.compare_steps(got, expected_record, what=w, inputs=labels, steps=count,
                                                   rtol=rtol, atol=atol),
    ))


def unchanged(fn: Callable, inputs: Sequence, *, what: str | None = None) -> None:
    """``fn(*args)`` leaves its arguments as they were (no array or list of the caller's is changed)."""
    __tracebackhide__ = True
    if _reused():
        return
    cases = [_as_args(args) for args in inputs]
    expected = Observed("sequence", type="calls", items=[observe(args) for args in cases])
    labels = [_render_args(args) for args in cases]
    _submit(_Check(
        what=what or _argument_text(YOUR_FUNCTION), probe="unchanged", target=fn, data=[cases],
        judge=lambda got, w: compare.compare_unchanged(got, expected, what=w, inputs=labels),
    ))


def _expected_calls(reference: Callable | Sequence, cases: list, what: str) -> tuple[Observed, str]:
    """What ``reference`` gives on each case (computed now), or its list of results; and what it is."""
    if callable(reference):
        record, against = run_probe("call", lambda: ([reference, cases], {})), "PyTorch"
    else:
        record = Observed("sequence", type="calls", items=[observe(value) for value in reference])
        against = N_("the expected values")  # translated when rendered
    _reference_ok(record, what)
    return record, against


def gradient(fn: Callable, f: Callable, inputs: Sequence, *, what: str | None = None, rtol: float = 1e-5,
             atol: float = 1e-6, repeat: int = 2, forbid_torch: bool = False) -> None:
    """``fn(*args)`` returns the gradient of the scalar function ``f`` at ``args``.

    The expected gradient is computed by PyTorch (float64 autograd) from ``f``:
    one array for a function of one input, a tuple for several.
    """
    __tracebackhide__ = True
    if _reused():
        return
    cases = [_as_args(args) for args in inputs]
    expected = Observed("sequence", type="calls", items=[observe(_torch_gradient(f, args)) for args in cases])
    _reference_ok(expected, "the function to differentiate")
    labels = [_render_args(args) for args in cases]
    _submit(_Check(
        what=what or _argument_text(YOUR_GRADIENT), probe="call", target=fn, data=[cases], kwargs={"repeat": repeat},
        forbid_torch=forbid_torch,
        judge=lambda got, w: compare.compare_calls(got, expected, what=w, inputs=labels, rtol=rtol, atol=atol),
    ))


def backward(fn: Callable, reference: Callable, inputs: Sequence, *, names: Sequence[str] | None = None,
             leaf: Any = "torch", seed: str = "leaf", upstream: bool = True, check_output: bool = True,
             what: str | None = None, rtol: float = 1e-5, atol: float = 1e-6, forbid_torch: bool = False,
             forbid: Sequence[str] = (), plug: tuple | None = None) -> None:
    """``fn``'s output and the gradient of every input equal ``reference``'s, computed by PyTorch.

    For each argument tuple in ``inputs`` both functions get fresh leaves (float64
    tensors that require grad, or ``leaf(array)`` for a Variable class of an autograd
    engine); their outputs are back-propagated with the same random upstream
    gradient (not all ones, which would hide a backward that forgets to multiply
    by its incoming gradient) and the leaves' gradients compared.
    """
    __tracebackhide__ = True
    if _reused():
        return
    cases = []
    for index, args in enumerate(inputs):
        args = [np.asarray(value, dtype=np.float64) for value in _as_args(args)]
        grad = _upstream(reference, args, index) if upstream else None
        cases.append((args, grad))
    expected = run_probe("backward", lambda: ([reference, cases], {"leaf": "torch"}))
    _reference_ok(expected, "the reference function")
    labels = [_render_args(tuple(args)) for args, _ in cases]
    torch_leaves = isinstance(leaf, str) and leaf == "torch"  # (when planning, a Variable class is a stand-in)
    count = len(cases[0][0]) if cases else 0
    _submit(_Check(
        what=what or _argument_text(YOUR_FUNCTION), probe="backward", target=fn, data=[cases],
        kwargs={"leaf": leaf, "seed": seed}, forbid_torch=forbid_torch, forbid=tuple(forbid), plug=plug,
        judge=lambda got, w: compare.compare_backward(got, expected, what=w, inputs=labels,
                                                      names=list(names) if names else _input_names(count),
                                                      rtol=rtol, atol=atol, check_output=check_output,
                                                      torch_leaves=torch_leaves),
    ))


def graph(ops: dict[str, Any], specs: Sequence[dict], *, leaf: Any, seed: str = "array",
          what: str | None = None, check_output: bool = True, rtol: float = 1e-5, atol: float = 1e-6,
          forbid_torch: bool = True, forbid: Sequence[str] = (), plug: tuple | None = None) -> None:
    """Your autograd engine computes each graph's value and input gradients as PyTorch does.

    ``ops`` maps operation names (``"square"``, ``"exp"``, ``"add"``, ``"sigmoid"``…)
    to your Function classes or functions; ``"+"``, ``"*"``, ``"-"``, ``"/"``,
    ``"neg"`` and ``"**"`` use Python's operators on your Variables. ``specs`` are
    graphs as data (see :func:`random_graph` and :func:`chain`); ``leaf`` is your
    Variable class. Your engine must not use PyTorch (``forbid_torch``); ``forbid`` and
    ``plug`` are as in :func:`function`.
    """
    __tracebackhide__ = True
    if _reused():
        return
    specs = [dict(spec) for spec in specs]
    key = json.dumps(encode([{op: "torch" for op in ops}, specs]), sort_keys=True)
    expected = _graph_reference(key)
    _reference_ok(expected, "the PyTorch reference graph")
    # Plugged into a reference engine, the student's code is not the engine: an engine's mistakes are not evidence.
    # Computed only for a result that fails (each mistaken engine runs every graph: most of a long chain's plan).
    mistakes = [] if plug is not None else functools.partial(_graph_mistakes, key)
    labels = [describe_graph(spec) for spec in specs]
    names = [f"x{i + 1}" for i in range(max((len(s["inputs"]) for s in specs), default=0))]  # describe_graph's
    _submit(_Check(
        what=what or YOUR_ENGINE, probe="graph", target=ops, data=[specs], kwargs={"leaf": leaf, "seed": seed},
        forbid_torch=forbid_torch, forbid=tuple(forbid), plug=plug,
        judge=lambda got, w: compare.compare_backward(got, expected, what=w, inputs=labels, names=names,
                                                      rtol=rtol, atol=atol, check_output=check_output,
                                                      noun="graph", torch_leaves=False, mistakes=mistakes),
    ))


@functools.lru_cache(maxsize=64)
def _graph_reference(key: str) -> Observed:
    """PyTorch's values and gradients for graphs given as data (JSON), computed once per process.

    A graph is all data, so the grader, which plans every submission's tests, computes
    a visible test's long chain once, not once per submission.
    """
    reference_ops, specs = decode(json.loads(key))
    return run_probe("graph", lambda: ([reference_ops, specs], {"leaf": "torch"}))


@functools.lru_cache(maxsize=64)
def _graph_mistakes(key: str) -> list[tuple[str, Observed]]:
    """What engines that make the typical mistakes give on these graphs (see :mod:`autograd_lab.checks.mistakes`)."""
    _, specs = decode(json.loads(key))
    return mistakes.engine_mistakes(specs)


def dot(fn: Callable, ops: dict[str, Any], specs: Sequence[dict], *, leaf: Any, what: str | None = None,
        forbid: Sequence[str] = (), plug: tuple | None = None) -> None:
    """``fn(output)`` is the DOT text of the graph that made ``output``, for each graph of ``specs``.

    The text starts with ``digraph`` and ends with ``}``; it has a line with ``label=`` for each
    Variable and each Function (each once) and a line with ``->`` for each link (an input into its
    function, a function into its output). How many of each a graph has is counted on PyTorch's graph
    of the same spec. Each graph is built in the student's kernel with ``ops`` (as in :func:`graph`;
    give a reference engine's Functions, so that only ``fn`` is under test) on leaves of ``leaf``,
    without backward. ``forbid`` and ``plug`` are as in :func:`function`.
    """
    __tracebackhide__ = True
    if _reused():
        return
    specs = [dict(spec) for spec in specs]
    expected = [_graph_size(json.dumps(encode(spec), sort_keys=True)) for spec in specs]
    labels = [describe_graph(spec) for spec in specs]
    _submit(_Check(
        what=what or _argument_text(YOUR_FUNCTION), probe="on_graph", target=fn, data=[ops, specs],
        kwargs={"leaf": leaf}, forbid=tuple(forbid), plug=plug,
        judge=lambda got, w: compare.compare_dot(got, expected, what=w, inputs=labels),
    ))


@functools.lru_cache(maxsize=256)
def _graph_size(key: str) -> tuple[int, int]:
    """Nodes and links of PyTorch's graph of a spec, counted as an engine draws it: a Variable and a
    Function per operation, each leaf once (and each constant, which the engine makes a Variable)."""
    from autograd_lab.checks.probes import TORCH_OPS, build_graph

    spec = decode(json.loads(key))
    output = build_graph({op: "torch" for op, _ in spec["nodes"] if op in TORCH_OPS}, spec, "torch")
    if output.grad_fn is None:
        return 1, 0
    functions, leaves, edges, constants, stack = set(), set(), 0, 0, [output.grad_fn]
    while stack:
        node = stack.pop()
        if node in functions:
            continue
        functions.add(node)
        for before, _ in node.next_functions:
            edges += 1
            if before is None:
                constants += 1
            elif type(before).__name__ == "AccumulateGrad":
                leaves.add(before)
            else:
                stack.append(before)
    return 2 * len(functions) + len(leaves) + constants, edges + len(functions)


def describe_graph(spec: dict) -> str:
    """A formula for a small graph (``square(exp(x1)) + x1``); long ones are summarised."""
    names = [f"x{i + 1}" for i in range(len(spec["inputs"]))]
    if len(spec["nodes"]) > 12:
        ops = sorted({op for op, _ in spec["nodes"]})
        return f"a graph of {len(spec['nodes'])} operations ({', '.join(ops)})"
    for op, refs in spec["nodes"]:
        args = [repr(ref["const"]) if isinstance(ref, dict) else names[ref] for ref in refs]
        if op in ("+", "-", "*", "/", "**"):
            names.append(f"({args[0]} {op} {args[1]})")
        else:
            names.append(f"{op}({', '.join(args)})")
    text = names[-1]
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def random_graph(ops: Sequence[str], *, inputs: int = 2, nodes: int = 6, key: str, shape: tuple = (),
                 upstream: bool = True) -> dict:
    """A random graph spec over ``ops`` whose values stay moderate (no overflow, no log of negatives).

    Every input is used, some values are used twice or more (so gradients must
    accumulate), and generations vary (so the order of backward matters).
    """
    generator = rng(key)
    unary = [op for op in ops if op in _UNARY]
    binary = [op for op in ops if op not in _UNARY]
    for _ in range(1000):
        values = [generator.uniform(-1.0, 1.0, size=shape) for _ in range(inputs)]
        spec_nodes: list = []
        while len(spec_nodes) < nodes:
            if binary and (not unary or generator.random() < 0.5):
                op, refs = str(generator.choice(binary)), [int(generator.integers(len(values))) for _ in range(2)]
            else:
                op, refs = str(generator.choice(unary)), [int(generator.integers(len(values)))]
            result = _numpy_op(op, [values[r] for r in refs])
            if result is not None:
                spec_nodes.append([op, refs])
                values.append(result)
        # Every value must reach the output: fold the ones nothing used into it.
        used = {ref for _, refs in spec_nodes for ref in refs}
        loose = [i for i in range(len(values) - 1) if i not in used]
        join = next((op for op in ("+", "add", "*", "mul") if op in binary), binary[0] if binary else None)
        if loose and join is None:
            continue
        for index in loose:
            result = _numpy_op(join, [values[-1], values[index]])
            if result is None:
                break
            spec_nodes.append([join, [len(values) - 1, index]])
            values.append(result)
        else:
            if np.all(np.abs(values[-1]) < 1e3):
                spec = {"inputs": values[:inputs], "nodes": spec_nodes}
                if upstream:
                    spec["upstream"] = (generator.uniform(0.5, 1.5, size=shape)
                                        * generator.choice([-1.0, 1.0], size=shape))
                return spec
    raise AuthoringError(f"could not make a well-behaved random graph from {list(ops)}")


def chain(op: str, length: int, *, x: float = 0.5) -> dict:
    """A chain ``op(op(...op(x)))`` of ``length`` operations: deep enough to break a recursive backward."""
    return {"inputs": [np.asarray(x, dtype=np.float64)], "nodes": [[op, [i]] for i in range(length)]}


_UNARY = {"square", "exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "neg", "sum"}


def _numpy_op(op: str, args: list) -> np.ndarray | None:
    """The value of one op in numpy, or None when it would leave a safe range."""
    with np.errstate(all="ignore"):
        a = args[0]
        b = args[1] if len(args) > 1 else None
        table = {
            "square": lambda: a * a, "exp": lambda: np.exp(a), "log": lambda: np.log(a), "sin": lambda: np.sin(a),
            "cos": lambda: np.cos(a), "tanh": lambda: np.tanh(a), "sigmoid": lambda: 1 / (1 + np.exp(-a)),
            "relu": lambda: np.maximum(a, 0), "neg": lambda: -a, "sum": lambda: np.sum(a),
            "add": lambda: a + b, "+": lambda: a + b, "sub": lambda: a - b, "-": lambda: a - b,
            "mul": lambda: a * b, "*": lambda: a * b, "div": lambda: a / b, "/": lambda: a / b,
        }
        if op not in table:
            raise AuthoringError(f"random_graph does not know the operation {op!r}")
        if op == "log" and np.any(a < 0.1):
            return None
        if op in ("div", "/") and np.any(np.abs(b) < 0.2):
            return None
        if op == "relu" and np.any(np.abs(a) < 0.05):
            return None
        value = np.asarray(table[op]())
        return value if np.all(np.isfinite(value)) and np.all(np.abs(value) < 50) else None


def raises(fn: Callable, *args: Any, exception: type[BaseException] | str, match: str | None = None,
           what: str | None = None) -> None:
    """``fn(*args)`` raises ``exception`` (whose message contains ``match``, if given)."""
    __tracebackhide__ = True
    if _reused():
        return
    name = exception if isinstance(exception, str) else exception.__name__
    _submit(_Check(
        what=what or _argument_text(YOUR_CODE), probe="call", target=fn, data=[[tuple(args)]], kwargs={"repeat": 1},
        judge=lambda got, w: compare.compare_raises(_single_call(got), exception=name, match=match, what=w),
    ))


def rng(key: str) -> np.random.Generator:
    """A numpy random generator seeded from ``key``: the same inputs every run, different per exercise.

    When grading, the grader plans each submission's tests with a salt made of a secret
    of the course and the submission's files (:func:`plan_cell`'s ``salt``): every
    submission (and resubmission) meets inputs of its own, so inputs printed in one
    feedback report help no other submission.
    """
    salt = _planning.salt if _planning is not None else ""
    if _planning is not None:
        _planning.drawn = True
    seed = int.from_bytes(hashlib.sha256((salt + key).encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


# --- helpers --------------------------------------------------------------------------------

def _as_args(args: Any) -> tuple:
    return args if isinstance(args, tuple) else (args,)


def _render_args(args: tuple) -> str:
    """The arguments of a call, for a message's label; arrays by their shape when that runs long."""
    records = [observe(arg) for arg in args]
    text = ", ".join(record.brief(compact=True) for record in records)
    return text if len(text) <= MAX_LABEL else ", ".join(record.brief(compact=True, shapes=True) for record in records)


MAX_LABEL = 100  # characters of a call's arguments shown in full in a message


def _input_names(count: int) -> list[str]:
    """"input 1", "input 2"... in the language of the verdict (made when judging, not when planning)."""
    return [i18n._("input {number}").format(number=number) for number in range(1, count + 1)]


def _single_call(got: Observed) -> Observed:
    if got.kind == "sequence" and got.type == "calls" and got.items:
        return got.items[0]
    return got


def _reference_ok(record: Observed, what: str) -> None:
    """The reference is the course's own code: if it fails, that is a bug in the course, said plainly."""
    items = record.items if record.kind == "sequence" else [record]
    for item in items or []:
        if item.kind == "exception":
            raise AuthoringError(f"{what} of this test failed: {item.type}: {item.message}")


def _torch_gradient(f: Callable, args: tuple) -> Any:
    import torch

    leaves = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in args]
    grads = torch.autograd.grad(f(*leaves), leaves)
    return grads[0] if len(grads) == 1 else tuple(grads)


def _upstream(reference: Callable, args: list, index: int) -> np.ndarray:
    """A random upstream gradient shaped like the reference's output."""
    import torch

    with torch.no_grad():
        output = reference(*[torch.tensor(a) for a in args])
    shape = tuple(output.shape)
    generator = rng(f"upstream/{index}/{shape}")
    return generator.uniform(0.5, 1.5, size=shape) * generator.choice([-1.0, 1.0], size=shape)


def _argument_text(default: str) -> str:
    """The source text of the first argument of the check being called: what the pass line names.

    Read from the caller's source with the ``executing`` library (which IPython
    uses for its tracebacks); the same text in a notebook and when grading.
    """
    try:
        import ast

        import executing

        frame = sys._getframe(2)
        node = executing.Source.executing(frame).node
        if isinstance(node, ast.Call) and node.args:
            source = executing.Source.for_frame(frame)
            text = ast.get_source_segment(source.text, node.args[0])
            if text and len(text) <= 60 and "\n" not in text:
                return text
    except Exception:
        pass
    return default


# --- how a check runs: plain (in this kernel) or planned (by the grader) ---------------------

@dataclass
class _Check:
    """``probe(target, *data, **kwargs)`` runs on the student's side; ``judge`` compares what it saw."""

    what: str
    probe: str
    target: Any
    judge: Callable[[Observed, str], Verdict]
    data: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    forbid_torch: bool = False
    forbid: tuple = ()
    plug: tuple | None = None


@dataclass
class PlannedCheck:
    """A check recorded by :func:`plan_cell`: the probe for the kernel, and how to judge what it returns."""

    what: str
    spec: dict
    judge: Callable[[Observed, str], Verdict]

    def verdict(self, observation: Observed | None) -> Verdict:
        """The verdict on what the probe observed (read and checked once, by the grader's channel)."""
        if observation is None:
            observation = Observed("exception", type="NotRun",
                                   message="this check did not run (the kernel stopped before it)")
        return _judged(self.judge, observation, self.what)


def _judged(judge: Callable[[Observed, str], Verdict], got: Observed, what: str) -> Verdict:
    """The verdict on what the probe saw, with what the student's code printed shown once."""
    verdict = judge(got, i18n._(what) if what in _FALLBACK_LABELS else what)  # the student's own text stays as it is
    verdict.printed = compare.printed_summary(got)
    return verdict


@dataclass
class _Planning:
    """While :func:`plan_cell` runs a test cell: the salt of the hidden inputs, and the checks planned so far.

    ``shared`` holds this cell's checks planned for another salt that did not depend on it (made before
    anything random was drawn), by their place in the cell: they are taken from there, not computed again.
    """

    salt: str
    namespace: PlanNamespace
    shared: dict[int, PlannedCheck] | None = None
    checks: list[PlannedCheck] = field(default_factory=list)
    drawn: bool = False  # the cell drew random inputs (checks.rng) so far
    started_clean: int | None = None  # the place of the check being planned, if nothing random was drawn before it

    def clean(self) -> bool:
        """Nothing the cell has done so far depends on the salt: no random draw, no name bound from one."""
        return not self.drawn and not self.namespace.read_drawn


def _reused() -> bool:
    """When planning, start a check: take it from ``shared`` if it is there and nothing random came before it."""
    if _planning is None or _planning.shared is None:
        return False
    place = len(_planning.checks)
    _planning.started_clean = place if _planning.clean() else None
    if _planning.started_clean is not None and place in _planning.shared:
        _planning.checks.append(_planning.shared[place])
        return True
    return False


_planning: _Planning | None = None  # set only by plan_cell, for the duration of one test cell


def _submit(check: _Check) -> None:
    __tracebackhide__ = True
    if _planning is not None:
        planned = _plan(check)
        place = len(_planning.checks)
        if _planning.shared is not None and _planning.started_clean == place and _planning.clean():
            _planning.shared[place] = planned  # the same for every salt: planned once
        _planning.checks.append(planned)
        return
    # Plain mode: the data go through the same encoding the grader uses, so the
    # student's function sees exactly the fresh copies it would see when graded.
    def arguments() -> tuple[list, dict]:
        return [check.target, *_roundtrip(check.data)], {key: _roundtrip(value) for key, value in check.kwargs.items()}

    plug = None if check.plug is None else (lambda: check.plug[0](check.plug[1]))
    got = run_probe(check.probe, arguments, forbid_torch=check.forbid_torch, call_seconds=CALL_SECONDS,
                    forbid=check.forbid, plug=plug)
    verdict = _judged(check.judge, got, check.what)
    if not verdict.passed:
        raise CheckFailed(verdict.message)
    print(verdict.message)


def _roundtrip(value: Any) -> Any:
    """A copy through the wire encoding where it has one; what has none stays as it is: classes
    (``leaf=Variable``), and the student's own objects (a model given to :func:`steps`)."""
    try:
        return decode(encode(value))
    except AuthoringError:
        if type(value) in (list, tuple):
            return type(value)(_roundtrip(item) for item in value)
        return value


def _plan(check: _Check) -> PlannedCheck:
    try:
        target = encode(check.target)
    except AuthoringError:
        target = None
    plug = None if check.plug is None else encode(list(check.plug))
    kwargs = {key: encode(value) for key, value in check.kwargs.items()}
    # The student's code: the target, or what a check plugs in (a topological order), or the Variable class.
    if target is None or not involves_student([target, plug, kwargs]):
        raise AuthoringError(
            f"The check of {check.what!r} does not involve the student's code: its first argument must be "
            "the student's value or function (a name the test cell does not define itself). Functions "
            "defined in a test cell cannot run in the student's kernel when grading."
        )
    args = [target, *encode(check.data)]
    spec = {"probe": check.probe, "args": args, "kwargs": kwargs, "forbid_torch": check.forbid_torch}
    if check.forbid:
        spec["forbid"] = list(check.forbid)
    if plug is not None:
        spec["plug"] = plug
    return PlannedCheck(check.what, spec, check.judge)


def plan_cell(source: str, namespace: PlanNamespace, *, salt: str = "", filename: str = "<test cell>",
              shared: dict[int, PlannedCheck] | None = None) -> list[PlannedCheck]:
    """Run a test cell's code in plan mode (in the grader's trusted process).

    Names the test cell does not define are the student's (lazy stand-ins);
    expected values are computed here, with this process's PyTorch. Returns the
    checks in order. Share one ``namespace`` across a notebook's test cells.
    ``salt`` changes the hidden tests' random inputs (:func:`rng`).

    ``shared`` (a dict kept per test cell, across the plans of many salts, with the same ``namespace``
    history) lets the checks that do not depend on the salt be computed once: those the cell makes
    before it draws anything random (:func:`rng`) or reads a name that an earlier test cell bound after
    drawing. A check taken from there has the inputs and expected values of one plan, together.
    """
    global _planning
    if _planning is not None:
        raise RuntimeError("plan_cell is not re-entrant")
    text, code = _compiled(source, filename)
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)  # for tracebacks
    before = dict(namespace)
    namespace.read_drawn = False
    namespace.assigned = set()
    _planning = planning = _Planning(salt, namespace, shared)
    namespace.drawing = lambda: not planning.clean()
    try:
        exec(code, namespace)
        # Names bound other than by an assignment the namespace saw (`global` in a function): drawn from
        # random inputs if the cell drew any.
        bound = {name for name, value in namespace.items() if name not in before or before[name] is not value}
        if not planning.clean():
            namespace.drawn_names |= bound - namespace.assigned
        return planning.checks
    finally:
        _planning = None
        namespace.drawing = lambda: False


@functools.lru_cache(maxsize=256)
def _compiled(source: str, filename: str):
    """A test cell as code: transformed like IPython does (test cells may use %magics), compiled once."""
    from IPython.core.inputtransformer2 import TransformerManager

    text = TransformerManager().transform_cell(source)
    return text, compile(text, filename, "exec")


def judge_cell(planned: list[PlannedCheck], observations: list[Observed] | None) -> tuple[list[str], Verdict | None]:
    """Verdicts for one test cell: the pass lines, and the first failure (None if all passed).

    Like a test cell run in a notebook, judging stops at the first failure.
    """
    observations = list(observations or [])
    lines: list[str] = []
    for index, check in enumerate(planned):
        verdict = check.verdict(observations[index] if index < len(observations) else None)
        if not verdict.passed:
            return lines, verdict
        lines.append(verdict.message)
    return lines, None
