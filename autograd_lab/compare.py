"""Comparisons: observed answer vs expected value → a verdict a beginner can act on.

Every comparison returns a :class:`Verdict` (never a bare bool) with the values
compared, the worst element, and, where it can be told, the likely mistake:
gradients accumulated over several ``backward()`` calls, a flipped sign, a factor
of 2, a transposed shape, an integer dtype, a detached tensor or a ``None`` grad.
Comparisons are pure functions of two :class:`~autograd_lab.observed.Observed`
records; the grader runs them in its own process.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autograd_lab.observed import Observed

PASS = "✓"
FAIL = "✗"
LOW_PRECISION = {"torch.float32", "torch.float16", "torch.bfloat16", "float32", "float16"}


@dataclass
class Verdict:
    """The outcome of one check."""

    passed: bool
    what: str
    message: str
    got: Observed | None = None
    expected: Observed | None = None
    worst: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        return self.message


def _verdict_fail(what: str, problem: str, got: Observed | None, expected: Observed | None,
                  *, worst: str | None = None, hint: str | None = None, context: str = "") -> Verdict:
    lines = [f"{FAIL} {what}{context}: {problem}"]
    if expected is not None:
        lines.append("    expected: " + _indent(expected.brief()))
    if got is not None:
        lines.append("    got:      " + _indent(got.brief()))
    if worst:
        lines.append(f"    worst element: {worst}")
    if hint:
        lines.append(f"    likely mistake: {hint}")
    return Verdict(False, what, "\n".join(lines), got, expected, worst, hint)


def _indent(text: str) -> str:
    return text.replace("\n", "\n" + " " * 14)


def _pass(what: str, text: str = "matches the expected value") -> Verdict:
    return Verdict(True, what, f"{PASS} {what}: {text}")


# --- the student's code did not produce an answer -------------------------------------------

def _unusable(got: Observed, what: str, context: str = "") -> Verdict | None:
    """A verdict when ``got`` is not an answer at all: an exception, or PyTorch where it is forbidden."""
    if got.kind == "sequence" and got.type == "used_torch":
        return _verdict_fail(
            what, f"uses PyTorch ({got.message}), but this exercise asks you to build it without PyTorch",
            None, None, context=context,
            hint="use numpy (np.exp, np.sin, @, ...) and your own classes; PyTorch is only for checking",
        )
    if got.kind == "sequence" and got.type == "unwatched":
        return _verdict_fail(
            what, f"could not be checked for PyTorch ({got.message}), and this exercise must be built without it",
            None, None, context=context,
            hint="run the exercise in one thread and one process (let threads you started finish first; start no "
                 "process), without changing sys.setprofile, sys.settrace or threading.setprofile",
        )
    if got.kind == "exception":
        return _verdict_fail(what, f"your code raised {got.brief()}", None, None,
                             hint=_exception_hint(got), context=context)
    return None


def _exception_hint(got: Observed) -> str | None:
    if got.type == "NotImplementedError":
        return "this exercise is not done yet: replace `raise NotImplementedError()` with your solution"
    if got.type in ("NameError", "StudentNameError"):
        return "run the cells above (Run ▸ Run All Above), and keep the names the exercise asks for"
    if got.type == "RuntimeError" and "does not require grad" in (got.message or ""):
        return ("the graph was not recorded: create inputs with requires_grad=True before computing with them "
                "(for a derivative of a derivative, pass create_graph=True to the first one)")
    if got.type == "RuntimeError" and "backward through the graph a second time" in (got.message or ""):
        return "build a fresh graph for every backward() (compute the output again), or pass retain_graph=True"
    if got.type == "RuntimeError" and "grad can be implicitly created only for scalar" in (got.message or ""):
        return "backward() needs a scalar: call .sum() first or pass gradient=..."
    if got.type == "CellTimeoutError":
        return "look for a loop that never ends (a while loop whose condition never becomes False)"
    if got.type == "RecursionError":
        return "a recursive backward hits Python's recursion limit on long graphs: use a loop with a list or heap"
    return None


# --- numbers, arrays, tensors ---------------------------------------------------------------

def _tolerances(got: Observed, rtol: float, atol: float) -> tuple[float, float]:
    """float32 answers carry ~1e-7 relative error; loosen the default tolerances for them."""
    if got.dtype in LOW_PRECISION:
        return max(rtol, 1e-4), max(atol, 1e-5)
    return rtol, atol


def _flatten_numeric(record: Observed) -> list[Observed] | None:
    """A tuple/list of numbers/arrays is compared item by item."""
    if record.kind == "sequence":
        return list(record.items or [])
    return None


def _as_array(record: Observed) -> Observed | None:
    """A list or tuple of numbers (nested, rectangular) as one array, for comparing with an array."""
    def values(item: Observed):
        if item.kind in ("number", "bool"):
            return item.data.item()
        if item.kind == "sequence" and item.type in ("list", "tuple"):
            return [values(i) for i in item.items or []]
        raise ValueError
    try:
        array = np.array(values(record))
    except (ValueError, TypeError):
        return None
    if array.dtype.kind not in "biufc":
        return None
    return Observed("array", type=record.type, data=array, dtype=str(array.dtype))


def compare_close(got: Observed, expected: Observed, *, what: str, rtol: float = 1e-5,
                  atol: float = 1e-6, context: str = "") -> Verdict:
    """Numerically equal (numbers, arrays, tensors, Variables, or tuples of them)."""
    unusable = _unusable(got, what, context)
    if unusable:
        return unusable
    if expected.kind == "none":
        if got.kind == "none":
            return _pass(what)
        return _verdict_fail(what, "should be None", got, expected, context=context)
    if got.kind == "sequence" and expected.data is not None:
        got = _as_array(got) or got  # [2.0, 4.0] for an expected array: compare the numbers
    elif expected.kind == "sequence" and got.data is not None and got.kind != "number":
        expected = _as_array(expected) or expected
    expected_items = _flatten_numeric(expected)
    if expected_items is not None:
        got_items = _flatten_numeric(got)
        if got_items is None or len(got_items) != len(expected_items):
            count = len(expected_items)
            return _verdict_fail(what, f"expected {count} values (a tuple or list), got {_describe_kind(got)}",
                                 got, expected, context=context,
                                 hint=f"return all {count} values, in the order the exercise gives" if count else None)
        for index, (g, e) in enumerate(zip(got_items, expected_items)):
            verdict = compare_close(g, e, what=f"{what}[{index}]", rtol=rtol, atol=atol, context=context)
            if not verdict.passed:
                return verdict
        return _pass(what)
    problem = _numeric_problem(got, expected, rtol, atol)
    if problem is None:
        return _pass(what)
    text, worst, hint = problem
    return _verdict_fail(what, text, got, expected, worst=worst, hint=hint, context=context)


def _describe_kind(record: Observed) -> str:
    if record.kind == "none":
        return "None"
    if record.kind == "sequence":
        return f"a {record.type} of {len(record.items or [])}"
    if record.kind == "number":
        return "a single number"
    if record.kind in ("array", "tensor", "variable"):
        return f"a {record.type} of shape {record.shape}"
    return f"a {record.type or record.kind}"


def _numeric_problem(got: Observed, expected: Observed, rtol: float, atol: float) -> tuple[str, str | None, str | None] | None:
    """None when equal; otherwise (problem, worst element, likely mistake)."""
    if got.kind == "none":
        return ("got None instead of a value", None,
                "a function that ends without `return` gives None; a gradient is None when backward() "
                "was not called, or the tensor is not a leaf that requires grad")
    if got.data is None:
        return (f"expected a number or array, got {_describe_kind(got)}", None,
                "return a number, a numpy array or a torch tensor" if got.kind != "str" else "return the value, not a string")
    g, e = got.data, expected.data
    if e is None:
        return (f"cannot compare with {_describe_kind(expected)}", None, None)
    if g.dtype == bool and e.dtype != bool:
        g = g.astype(np.float64)
    if g.shape != e.shape:
        if g.size == 1 and e.size == 1:
            g, e = g.reshape(()), e.reshape(())
        else:
            hint = None
            if g.ndim == 2 and g.shape == e.shape[::-1]:
                hint = "the shape is transposed" + (" (and the transpose has the right values)" if np.allclose(g.T, e, rtol=rtol, atol=atol) else "") + ": check the order of a matrix product or use .T"
            elif g.size == e.size:
                hint = "the right number of elements in the wrong shape: reshape the result"
            elif g.size == 1 and e.size > 1:
                hint = "one number where a whole array is expected: did you sum (or take .item()) too early?"
            return (f"shape {g.shape} where {e.shape} is expected", None, hint)
    rtol, atol = _tolerances(got, rtol, atol)
    if np.iscomplexobj(g) != np.iscomplexobj(e):
        g, e = g.astype(np.complex128), e.astype(np.complex128)
    with np.errstate(all="ignore"):
        ok = np.isclose(g.astype(e.dtype if e.dtype.kind in "fc" else np.float64), e, rtol=rtol, atol=atol, equal_nan=False)
    if ok.all():
        return None
    return ("does not match the expected value", _worst(g, e, ok), _likely_numeric_mistake(got, g, e, rtol, atol))


def _worst(g: np.ndarray, e: np.ndarray, ok: np.ndarray) -> str | None:
    if g.ndim == 0:
        return None
    with np.errstate(all="ignore"):
        error = np.abs(g.astype(np.complex128) - e.astype(np.complex128))
        error = np.where(np.isnan(error), np.inf, error)
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    wrong = int((~ok).sum())
    return (f"index {tuple(int(i) for i in index)}: got {g[index]:.6g}, expected {e[index]:.6g} "
            f"({wrong} of {ok.size} elements differ)")


def _likely_numeric_mistake(got: Observed, g: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> str | None:
    def near(a: np.ndarray, b: np.ndarray) -> bool:
        with np.errstate(all="ignore"):
            return bool(np.allclose(a, b, rtol=rtol, atol=atol))

    if got.kind == "bool" or e.dtype == bool:
        return None
    if g.dtype.kind in "iub" and e.dtype.kind == "f":
        return (f"your result has an integer dtype ({got.dtype}), which cannot hold fractions: "
                "use floats (3.0 instead of 3, or dtype=torch.float32)")
    if not np.any(e):
        return None
    if not np.any(g):
        return "your answer is all zeros: was the gradient reset before you read it, or was the graph detached?"
    if near(g, -e):
        return "your answer has the wrong sign: check a minus sign (for a descent step: x - lr * grad)"
    if near(g, 2 * e):
        return ("your answer is exactly 2× the expected one: a factor of 2 too many? (With autograd: did "
                "backward() run twice without resetting the gradient, x.grad = None or x.grad.zero_()?)")
    if near(g, 0.5 * e):
        return "your answer is exactly half the expected one: a factor of 2 is missing (d/dx x² = 2x)"
    for k in range(3, 11):
        if near(g, k * e):
            return (f"your answer is exactly {k}× the expected one: gradients add up over {k} backward() calls "
                    "unless you reset them (x.grad = None or x.grad.zero_()) in between")
    if g.ndim == 2 and g.shape[0] == g.shape[1] and g.shape[0] > 1 and near(g.T, e):
        return "your answer is the transpose of the expected one: check the order of a matrix product or use .T"
    if np.iscomplexobj(g) or np.iscomplexobj(e):
        return None
    if e.size > 1 and near(g - e, np.full_like(e, float(np.mean(g - e)))) and np.isfinite(g - e).all():
        return f"your answer is off by a constant {float(np.mean(g - e)):.6g} everywhere"
    return None


# --- exact values ---------------------------------------------------------------------------

def compare_equal(got: Observed, expected: Observed, *, what: str, context: str = "") -> Verdict:
    """Exactly equal: strings, integers, booleans, shapes, or arrays element for element."""
    unusable = _unusable(got, what, context)
    if unusable:
        return unusable
    if expected.kind == "str":
        if got.kind == "str" and got.value == expected.value:
            return _pass(what)
        hint = None
        if got.kind == "str" and got.value.strip() == expected.value.strip():
            hint = "extra spaces at the start or end"
        elif got.kind == "str" and got.value.lower() == expected.value.lower():
            hint = "upper/lower case differs"
        elif got.kind != "str":
            hint = "return the text as a string, e.g. type(t.grad_fn).__name__"
        return _verdict_fail(what, "is not the expected text", got, expected, hint=hint, context=context)
    if expected.kind == "sequence":
        got_items = got.items if got.kind == "sequence" else None
        if got_items is None or len(got_items) != len(expected.items or []):
            return _verdict_fail(what, f"expected {len(expected.items or [])} items, got {_describe_kind(got)}",
                                 got, expected, context=context)
        for index, (g, e) in enumerate(zip(got_items, expected.items or [])):
            verdict = compare_equal(g, e, what=f"{what}[{index}]", context=context)
            if not verdict.passed:
                return verdict
        return _pass(what)
    if expected.kind == "none":
        if got.kind == "none":
            return _pass(what)
        return _verdict_fail(what, "expected None", got, expected, context=context)
    if expected.data is not None and got.data is not None:
        if got.data.shape == expected.data.shape and np.array_equal(got.data, expected.data):
            if expected.kind == "bool" and got.kind != "bool":
                return _verdict_fail(what, "expected True or False", got, expected, context=context)
            return _pass(what)
    problem = _numeric_problem(got, expected, 0.0, 0.0) if expected.data is not None else None
    text, worst, hint = problem if problem else ("is not the expected value", None, None)
    return _verdict_fail(what, text if problem else "is not the expected value", got, expected,
                         worst=worst, hint=hint, context=context)


# --- tensors with properties ----------------------------------------------------------------

def compare_tensor(got: Observed, expected: Observed | None, *, what: str, requires_grad: bool | None = None,
                   dtype: str | None = None, leaf: bool | None = None, rtol: float = 1e-5, atol: float = 1e-6,
                   context: str = "") -> Verdict:
    """A torch tensor with the expected values and properties.

    ``dtype`` is a torch dtype name ("torch.float32"), or "floating" for any float.
    """
    unusable = _unusable(got, what, context)
    if unusable:
        return unusable
    if got.kind != "tensor":
        hint = "make it with torch.tensor(...)"
        if got.kind == "variable":
            hint = "this is a Variable of an autograd engine; the exercise asks for a torch tensor"
        return _verdict_fail(what, f"expected a torch tensor, got {_describe_kind(got)}", got, None,
                             hint=hint, context=context)
    integer = got.dtype is not None and not any(t in got.dtype for t in ("float", "complex"))
    if dtype == "floating" and integer:
        return _verdict_fail(what, f"has dtype {got.dtype}, a floating-point dtype is needed", got, None,
                             hint="only floating-point (and complex) tensors can require gradients: "
                                  "write 3.0 instead of 3, or pass dtype=torch.float32", context=context)
    if dtype not in (None, "floating") and got.dtype != dtype:
        return _verdict_fail(what, f"has dtype {got.dtype}, expected {dtype}", got, None,
                             hint=f"pass dtype={dtype} when you create it", context=context)
    if expected is not None:
        problem = _numeric_problem(got, expected, rtol, atol)
        if problem is not None:
            text, worst, hint = problem
            return _verdict_fail(what, text, got, expected, worst=worst, hint=hint, context=context)
    if requires_grad is True and not got.requires_grad:
        hint = ("pass requires_grad=True when you create it (torch.tensor(..., requires_grad=True))"
                if got.is_leaf else "it was detached from the graph (.detach(), .data, .item() or numpy)")
        return _verdict_fail(what, "does not require grad", got, None, hint=hint, context=context)
    if requires_grad is False and got.requires_grad:
        return _verdict_fail(what, "requires grad, but should not", got, None,
                             hint="compute it under `with torch.no_grad():` or call .detach()", context=context)
    if leaf is True and not got.is_leaf:
        return _verdict_fail(what, f"is the result of an operation ({got.grad_fn}), not a leaf tensor", got, None,
                             hint="create it directly with torch.tensor(...), or update it in place under "
                                  "torch.no_grad() instead of writing x = x - ...", context=context)
    if leaf is False and got.is_leaf:
        return _verdict_fail(what, "is a leaf, but should be the result of operations on other tensors", got, None,
                             context=context)
    return _pass(what)


# --- exceptions -----------------------------------------------------------------------------

def compare_raises(got: Observed, *, exception: str, match: str | None, what: str, context: str = "") -> Verdict:
    """The student's code raised ``exception`` (by class name), whose message contains ``match``."""
    if got.kind == "sequence" and got.type in ("used_torch", "unwatched"):
        return _unusable(got, what, context)
    if got.kind != "exception":
        return _verdict_fail(what, f"should raise {exception}, but returned {got.brief()}", None, None, context=context)
    if got.type != exception:
        return _verdict_fail(what, f"should raise {exception}, but raised {got.type}: {got.message}", None, None,
                             hint=_exception_hint(got), context=context)
    if match and match.lower() not in (got.message or "").lower():
        return _verdict_fail(what, f"raised {exception}, but its message does not mention {match!r}: {got.message}",
                             None, None, context=context)
    return _pass(what, f"raises {exception}")


# --- many calls, and backward ---------------------------------------------------------------

def _missing_results(got: Observed, expected: Observed, what: str) -> Verdict | None:
    """A verdict when ``got`` does not hold one result per expected one.

    Probes always return one result per input; anything else means the probe did
    not run as the grader sent it (its code was replaced), and must never pass
    by comparing nothing with nothing.
    """
    count = len(expected.items or [])
    if got.kind != "sequence" or len(got.items or []) != count:
        return _verdict_fail(what, f"the check received {_describe_kind(got)} instead of {count} result(s): "
                                   "it did not run as written (was the checking code changed?)", None, None)
    return None


def compare_calls(got: Observed, expected: Observed, *, what: str, inputs: list[str], rtol: float = 1e-5,
                  atol: float = 1e-6, exact: bool = False, against: str = "PyTorch") -> Verdict:
    """``probe_call`` results: the student's function against the reference on each input."""
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    wrong = 0
    first: Verdict | None = None
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        label = f"{what}({inputs[index]})"
        if g.kind == "sequence" and g.type == "repeat" and len(g.items or []) == 2:
            first_call, second_call = g.items
            comparable = first_call.data is not None or first_call.kind in ("sequence", "str", "none")
            same = compare_equal if exact else compare_close
            again = (same(second_call, first_call, what=label) if exact
                     else same(second_call, first_call, what=label, rtol=rtol, atol=atol))
            if comparable and not again.passed and second_call.kind != "exception":
                verdict = _verdict_fail(
                    label, "gives a different answer when called a second time with the same input",
                    second_call, first_call,
                    hint="gradients accumulate between calls: create fresh tensors inside your function "
                         "(or reset x.grad) so every call starts from zero")
                verdict.message = verdict.message.replace("expected:", "1st call:").replace("got:     ", "2nd call:")
                wrong += 1
                first = first or verdict
                continue
            g = first_call
        verdict = compare_equal(g, e, what=label) if exact else compare_close(g, e, what=label, rtol=rtol, atol=atol)
        if not verdict.passed:
            wrong += 1
            first = first or verdict
    total = len(expected.items or [])
    if first is not None:
        if total > 1:
            first.message += f"\n    ({wrong} of {total} inputs give a wrong answer)"
        return first
    return _pass(what, f"matches {against} on {total} input{'s' if total != 1 else ''}")


def compare_backward(got: Observed, expected: Observed, *, what: str, inputs: list[str], names: list[str],
                     rtol: float = 1e-5, atol: float = 1e-6, check_output: bool = True,
                     noun: str = "input") -> Verdict:
    """``probe_backward`` results per input set: the output value and every input's gradient."""
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        context = f" at {inputs[index]}" if len(expected.items or []) > 1 else ""
        unusable = _unusable(g, what, context) or _missing_results(g, e, what)
        if unusable:
            return unusable
        if e.kind == "exception":
            raise RuntimeError(f"the reference failed on {inputs[index]}: {e.type}: {e.message}")
        (g_out, g_grads), (e_out, e_grads) = g.items, e.items
        unusable = _missing_results(g_grads, e_grads, f"{what} (gradients)")
        if unusable:
            return unusable
        if check_output:
            verdict = compare_close(g_out, e_out, what=f"{what} (output)", rtol=rtol, atol=atol, context=context)
            if not verdict.passed:
                return verdict
        for name, g_grad, e_grad in zip(names, g_grads.items or [], e_grads.items or []):
            verdict = compare_close(g_grad, e_grad, what=f"{what}: gradient for {name}",
                                    rtol=rtol, atol=atol, context=context)
            if not verdict.passed:
                return verdict
    total = len(expected.items or [])
    return _pass(what, f"value and gradients match PyTorch on {total} {noun}{'s' if total != 1 else ''}")

