"""Comparisons: observed answer vs expected value → a verdict a beginner can act on.

Every comparison returns a :class:`Verdict` (never a bare bool) with the values
compared, the worst element, and, where it can be told, the likely mistake:
gradients accumulated over several ``backward()`` calls, a flipped sign, a factor
of 2, a transposed shape, an integer dtype, a detached tensor or a ``None`` grad.
Comparisons are pure functions of two :class:`~autograd_lab.checks.observed.Observed`
records; the grader runs them in its own process.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from autograd_lab.i18n import _, N_, ngettext
from autograd_lab.checks.observed import Observed, observe

PASS = "✓"
FAIL = "✗"
LOW_PRECISION = {"torch.float32", "torch.float16", "torch.bfloat16", "float32", "float16"}


@dataclass
class Verdict:
    """The outcome of one check, as data; :attr:`message` renders it.

    ``note`` states a fact about the answer against the expected value (exactly
    2×, the transpose, all zeros). ``hint`` names a likely mistake, and is set only
    on evidence specific to that mistake: the answer *is* what that mistake
    produces on these inputs, recomputed, or the answer's type says so. Without
    such evidence a failure says what was expected, what came, and the worst element.
    """

    passed: bool
    what: str
    problem: str
    got: Observed | None = None
    expected: Observed | None = None
    worst: str | None = None
    hint: str | None = None
    note: str | None = None
    context: str = ""
    labels: tuple[str, str] = (N_("expected"), N_("got"))  # translated when rendered
    extra: list[str] = field(default_factory=list)
    printed: str | None = None

    @property
    def message(self) -> str:
        if self.passed:
            lines = [f"{PASS} {self.what}: {self.problem}"]
        else:
            lines = [f"{FAIL} {self.what}{self.context}: {self.problem}"]
            labels = [_(label) for label in self.labels]
            width = max(_columns(label) for label in labels) + 2
            for label, record in zip(labels, (self.expected, self.got)):
                if record is not None:
                    lines.append(f"    {label}:" + " " * (width - _columns(label) - 1)
                                 + _indent(record.brief(), 4 + width))
            if self.worst:
                lines.append("    " + _("worst element: {worst}").format(worst=self.worst))
            if self.note:
                lines.append("    " + _("note: {note}").format(note=self.note))
            if self.hint:
                lines.append("    " + _("likely mistake: {hint}").format(hint=self.hint))
            lines += self.extra
        if self.printed:
            lines.append(self.printed)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message


def _verdict_fail(what: str, problem: str, got: Observed | None, expected: Observed | None,
                  *, worst: str | None = None, hint: str | None = None, note: str | None = None,
                  context: str = "") -> Verdict:
    return Verdict(False, what, problem, got, expected, worst=worst, hint=hint, note=note, context=context)


def _columns(text: str) -> int:
    """How many columns ``text`` takes in a terminal or notebook: a wide (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


def _indent(text: str, width: int = 14) -> str:
    return text.replace("\n", "\n" + " " * width)


def _pass(what: str, text: str | None = None) -> Verdict:
    return Verdict(True, what, text or _("matches the expected value"))


def printed_summary(got: Observed) -> str | None:
    """What the student's code printed during a check: the first call's output, shown once."""
    outputs = [text for text in _printed(got) if text]
    if not outputs:
        return None
    lines = outputs[0].rstrip("\n").splitlines() or [""]
    more = len(lines) - MAX_PRINTED_LINES
    shown = lines[:MAX_PRINTED_LINES] + ([_("... ({count} more lines)").format(count=more)] if more > 0 else [])
    title = (_("your code printed (by the first of {count} calls that printed; shown once):").format(count=len(outputs))
             if len(outputs) > 1 else _("your code printed:"))
    return "    " + title + "\n" + "\n".join("      | " + line for line in shown)


MAX_PRINTED_LINES = 10


def _printed(record: Observed, depth: int = 0) -> list[str]:
    found = [record.printed] if record.printed else []
    if depth < 4:
        for item in record.items or []:
            found += _printed(item, depth + 1)
    return found


# --- the student's code did not produce an answer -------------------------------------------

def _unusable(got: Observed, what: str, context: str = "") -> Verdict | None:
    """A verdict when ``got`` is not an answer at all: an exception, or PyTorch where it is forbidden."""
    if got.kind == "sequence" and got.type == "used_torch":
        return _verdict_fail(
            what, _("uses PyTorch ({call}), but this exercise asks you to build it without PyTorch").format(
                call=got.message),
            None, None, context=context,
            hint=_("use numpy (np.exp, np.sin, @, ...) and your own classes; PyTorch is only for checking"),
        )
    if got.kind == "sequence" and got.type == "used_package":
        return _verdict_fail(
            what, _("calls {call}, autograd_lab's own answer to this exercise").format(call=got.message),
            None, None, context=context,
            hint=_("write it yourself: autograd_lab is there to compare with, not to call here"),
        )
    if got.kind == "sequence" and got.type == "unwatched":
        return _verdict_fail(
            what, _("could not be checked for PyTorch ({reason}), and this exercise must be built without it").format(
                reason=got.message),
            None, None, context=context, hint=_unwatched_hint(got.message or ""),
        )
    if got.kind == "exception":
        problem = (_("your function did not return within {seconds} s (an infinite loop?)").format(seconds=got.message)
                   if got.type == "CallTimeout" else _("your code raised {error}").format(error=got.brief()))
        verdict = _verdict_fail(what, problem, None, None, hint=_exception_hint(got), context=context)
        verdict.extra = where_in_student_code(got.value if isinstance(got.value, str) else "")
        return verdict
    return None


def where_in_student_code(trace: str) -> list[str]:
    """The innermost frame of the student's code in a short traceback, as two message lines."""
    frames = re.findall(r'File "([^"]*)", line (\d+), in (\S+)\n(?:\s+(.*)\n?)?', trace)
    if not frames:
        return []
    filename, line, function, code = frames[-1]
    place = _("your cell") if "ipykernel" in filename or filename.startswith("<") else filename
    where = "    " + _("where: line {line} of {place}, in {function}").format(line=line, place=place, function=function)
    return [where] + ([f"        {code.strip()}"] if code.strip() else [])


def _unwatched_hint(reason: str) -> str | None:
    """What to change, from what the watch saw (each reason has its own)."""
    if "thread" in reason:
        return _("let threads you started finish before your function returns, and start none while it runs")
    if "was called" in reason:
        return _("do not call sys.setprofile, sys.settrace or threading.setprofile in this exercise")
    if "process" in reason:
        return _("compute the answer in your function itself: start no process or program while it runs")
    if "dispatch" in reason:
        return _("leave PyTorch's dispatch modes as they are in this exercise")
    return None


def _exception_hint(got: Observed) -> str | None:
    if got.type == "NotImplementedError":
        return _("this exercise is not done yet: replace `raise NotImplementedError()` with your solution")
    if got.type in ("NameError", "StudentNameError"):
        return _("run the cells above (Run ▸ Run All Above), and keep the names the exercise asks for")
    if got.type == "RuntimeError" and "does not require grad" in (got.message or ""):
        return _("backward() (or autograd.grad) ran on a result that depends on no tensor that requires grad: "
                 "its inputs were made without requires_grad=True, taken out of the graph (.detach(), .item(), "
                 "numpy), or it was computed under torch.no_grad() (a second derivative needs create_graph=True)")
    if got.type == "RuntimeError" and "backward through the graph a second time" in (got.message or ""):
        return _("build a fresh graph for every backward() (compute the output again), or pass retain_graph=True")
    if got.type == "RuntimeError" and "grad can be implicitly created only for scalar" in (got.message or ""):
        return _("backward() needs a scalar: call .sum() first or pass gradient=...")
    if got.type == "CellTimeoutError":
        return _("look for a loop that never ends (a while loop whose condition never becomes False)")
    if got.type == "RecursionError":
        return _("your code called itself deeper than Python allows (about 1,000 levels): on a long graph a "
                 "recursive backward does that; use a loop over a list (or a heap) of functions instead")
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


def _compare_dicts(got: Observed, expected: Observed, *, what: str, rtol: float, atol: float, context: str,
                   role: str) -> Verdict:
    """A dict of numbers against the expected dict: the same keys, each value close (in any order)."""
    if got.kind != "mapping" or got.type != "dict":
        return _verdict_fail(what, _("expected a dict, got {kind}").format(kind=_describe_kind(got)), got, expected,
                             context=context)
    got_values = dict(zip(got.keys or [], got.items or []))
    missing = [key for key in expected.keys or [] if key not in got_values]
    extra = [key for key in got_values if key not in (expected.keys or [])]
    if missing or extra:
        text = (_("has no entry for {keys}").format(keys=", ".join(repr(k) for k in missing[:5])) if missing
                else _("has entries the expected dict does not have: {keys}").format(
                    keys=", ".join(repr(k) for k in extra[:5])))
        return _verdict_fail(what, text, got, expected, context=context)
    for key, item in zip(expected.keys or [], expected.items or []):
        verdict = compare_close(got_values[key], item, what=f"{what}[{key!r}]", rtol=rtol, atol=atol, context=context,
                                role=role)
        if not verdict.passed:
            return verdict
    return _pass(what)


def compare_close(got: Observed, expected: Observed, *, what: str, rtol: float = 1e-5,
                  atol: float = 1e-6, context: str = "", role: str = "value") -> Verdict:
    """Numerically equal (numbers, arrays, tensors, Variables, or tuples of them).

    ``role`` says what the value is, for the message about a None (see :func:`_numeric_problem`).
    """
    if role == "value" and what.endswith(".grad"):
        role = "grad"
    unusable = _unusable(got, what, context)
    if unusable:
        return unusable
    if expected.kind == "none":
        if got.kind == "none":
            return _pass(what)
        return _verdict_fail(what, _("should be None"), got, expected, context=context)
    if expected.kind == "mapping" and expected.type == "dict":
        return _compare_dicts(got, expected, what=what, rtol=rtol, atol=atol, context=context, role=role)
    if got.kind == "sequence" and expected.data is not None:
        got = _as_array(got) or got  # [2.0, 4.0] for an expected array: compare the numbers
    elif expected.kind == "sequence" and got.data is not None and got.kind != "number":
        expected = _as_array(expected) or expected
    expected_items = _flatten_numeric(expected)
    if expected_items is not None:
        got_items = _flatten_numeric(got)
        if got.kind == "none":
            text, worst, note, hint = _none_problem(got, role)
            return _verdict_fail(what, text, got, expected, hint=hint, context=context)
        if got_items is None or len(got_items) != len(expected_items):
            count = len(expected_items)
            return _verdict_fail(what, _("expected {count} values (a tuple or list), got {kind}").format(
                                     count=count, kind=_describe_kind(got)), got, expected, context=context,
                                 hint=_("return all {count} values, in the order the exercise gives").format(
                                     count=count) if count else None)
        for index, (g, e) in enumerate(zip(got_items, expected_items)):
            verdict = compare_close(g, e, what=f"{what}[{index}]", rtol=rtol, atol=atol, context=context, role=role)
            if not verdict.passed:
                return verdict
        return _pass(what)
    problem = _numeric_problem(got, expected, rtol, atol, role)
    if problem is None:
        return _pass(what)
    text, worst, note, hint = problem
    return _verdict_fail(what, text, got, expected, worst=worst, note=note, hint=hint, context=context)


def _describe_kind(record: Observed) -> str:
    if record.kind == "none":
        return "None"
    if record.kind == "sequence":
        return _("a {type} of {count}").format(type=record.type, count=len(record.items or []))
    if record.kind == "number":
        return _("a single number")
    if record.kind in ("array", "tensor", "variable"):
        return _("a {type} of shape {shape}").format(type=record.type, shape=record.shape)
    return _("a {type}").format(type=record.type or record.kind)


def _numeric_problem(got: Observed, expected: Observed, rtol: float, atol: float,
                     role: str = "value") -> tuple[str, str | None, str | None, str | None] | None:
    """None when equal; otherwise (problem, worst element, note, likely mistake).

    ``role`` is what the value is: ``"value"`` (an answer), ``"result"`` (what a function
    returned) or ``"gradient"`` (a leaf's ``.grad`` after backward).
    """
    if got.kind == "none":
        return _none_problem(got, role)
    if got.data is None:
        hint = None
        if got.kind == "object" and got.value is not None and _is_exception_name(got.type):
            hint = _("you returned a {type} object; a value was expected").format(type=got.type)
        return (_("expected a number or array, got {kind}").format(kind=_describe_kind(got)), None, None, hint)
    g, e = got.data, expected.data
    if e is None:
        return (_("cannot compare with {kind}").format(kind=_describe_kind(expected)), None, None, None)
    if g.dtype == bool and e.dtype != bool:
        g = g.astype(np.float64)
    if g.shape != e.shape:
        if g.size == 1 and e.size == 1:
            g, e = g.reshape(()), e.reshape(())
        else:
            note = None
            if g.ndim == 2 and g.shape == e.shape[::-1]:
                note = (_("the shape is transposed and the transpose has the right values")
                        if np.allclose(g.T, e, rtol=rtol, atol=atol) else _("the shape is transposed"))
            elif g.size == e.size:
                note = _("the right number of elements in another shape")
            return (_("shape {got} where {expected} is expected").format(got=g.shape, expected=e.shape),
                    None, note, None)
    rtol, atol = _tolerances(got, rtol, atol)
    if np.iscomplexobj(g) != np.iscomplexobj(e):
        g, e = g.astype(np.complex128), e.astype(np.complex128)
    with np.errstate(all="ignore"):
        ok = np.isclose(g.astype(e.dtype if e.dtype.kind in "fc" else np.float64), e, rtol=rtol, atol=atol,
                        equal_nan=False)
    if ok.all():
        return None
    return (_("does not match the expected value"), _worst(g, e, ok), _relation(got, g, e, rtol, atol),
            _integer_mistake(got, g, e))


def _none_problem(got: Observed, role: str) -> tuple[str, None, None, str | None]:
    if role == "engine gradient":
        return (_("no gradient reached this input (its .grad is None)"), None, None, None)
    if role == "gradient":
        return (_("no gradient reached this input (its .grad is None)"), None, None,
                _("the output was not computed from this input by recorded operations: a value taken out "
                  "of the graph (numpy on .data, .item(), .detach(), a new tensor or Variable) has no gradient"))
    if got.printed:
        return (_("got None instead of a value"), None, None,
                _("your code printed its answer and returned None: return the value instead of printing it"))
    if role == "grad":
        return (_("got None instead of a value"), None, None,
                _("a .grad is None until backward() has run on a result computed from that tensor, "
                  "which must be a leaf that requires grad"))
    return (_("got None instead of a value"), None, None, None)


def _is_exception_name(name: str | None) -> bool:
    return bool(name) and (name.endswith("Error") or name.endswith("Exception"))


def _worst(g: np.ndarray, e: np.ndarray, ok: np.ndarray) -> str | None:
    if g.ndim == 0:
        return None
    with np.errstate(all="ignore"):
        error = np.abs(g.astype(np.complex128) - e.astype(np.complex128))
        error = np.where(np.isnan(error), np.inf, error)
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    wrong = int((~ok).sum())
    return _("index {index}: got {got:.6g}, expected {expected:.6g} ({wrong} of {size} elements differ)").format(
        index=tuple(int(i) for i in index), got=g[index], expected=e[index], wrong=wrong, size=ok.size)


def _integer_mistake(got: Observed, g: np.ndarray, e: np.ndarray) -> str | None:
    """An integer answer that is the expected one with its fractions cut off: the dtype is the mistake."""
    if not (g.dtype.kind in "iu" and e.dtype.kind == "f") or got.kind == "bool":
        return None
    with np.errstate(all="ignore"):
        if not (np.array_equal(g, np.trunc(e)) or np.array_equal(g, np.round(e)) or np.array_equal(g, np.floor(e))):
            return None
    return _("your result has an integer dtype ({dtype}) and holds the expected values without their "
             "fractions: compute in floats (3.0 instead of 3, dtype=torch.float32, or .float())").format(
                 dtype=got.dtype)


def _relation(got: Observed, g: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> str | None:
    """A fact about the answer against the expected value, without a guess at its cause."""
    def near(a: np.ndarray, b: np.ndarray) -> bool:
        with np.errstate(all="ignore"):
            return bool(np.allclose(a, b, rtol=rtol, atol=atol))

    if got.kind == "bool" or e.dtype == bool or not np.any(e) or np.iscomplexobj(g) or np.iscomplexobj(e):
        return None
    if not np.any(g):
        return _("your answer is all zeros")
    if near(g, -e):
        return _("your answer is the expected one with the opposite sign")
    if near(g, 0.5 * e):
        return _("your answer is exactly half the expected one")
    for k in range(2, 11):
        if near(g, k * e):
            return _("your answer is exactly {k}× the expected one").format(k=k)
    if g.ndim == 2 and g.shape[0] == g.shape[1] and g.shape[0] > 1 and near(g.T, e):
        return _("your answer is the transpose of the expected one")
    with np.errstate(all="ignore"):
        difference = (g - e).astype(np.float64)
    if (e.size > 1 and np.isfinite(difference).all()
            and near(difference, np.full_like(difference, float(np.mean(difference))))):
        return _("your answer is off by a constant {offset:.6g} everywhere").format(offset=float(np.mean(difference)))
    return None


# --- exact values ---------------------------------------------------------------------------

def compare_equal(got: Observed, expected: Observed, *, what: str, context: str = "",
                  role: str = "value") -> Verdict:
    """Exactly equal: strings, integers, booleans, shapes, or arrays element for element."""
    unusable = _unusable(got, what, context)
    if unusable:
        return unusable
    if expected.kind == "str":
        if got.kind == "str" and got.value == expected.value:
            return _pass(what)
        hint = None
        if got.kind == "str" and got.value.strip() == expected.value.strip():
            hint = _("extra spaces at the start or end")
        elif got.kind == "str" and got.value.lower() == expected.value.lower():
            hint = _("upper/lower case differs")
        elif got.kind == "object" and _is_exception_name(got.type) and got.value == expected.value:
            hint = _("you returned the {type} object itself: return its text, str(error)").format(type=got.type)
        elif got.kind == "none":
            hint = _none_problem(got, role)[3]
        return _verdict_fail(what, _("is not the expected text"), got, expected, hint=hint, context=context)
    if expected.kind == "sequence":
        got_items = got.items if got.kind == "sequence" else None
        if got_items is None or len(got_items) != len(expected.items or []):
            return _verdict_fail(what, _("expected {count} items, got {kind}").format(
                                     count=len(expected.items or []), kind=_describe_kind(got)),
                                 got, expected, context=context)
        for index, (g, e) in enumerate(zip(got_items, expected.items or [])):
            verdict = compare_equal(g, e, what=f"{what}[{index}]", context=context)
            if not verdict.passed:
                return verdict
        return _pass(what)
    if expected.kind == "none":
        if got.kind == "none":
            return _pass(what)
        return _verdict_fail(what, _("expected None"), got, expected, context=context)
    if expected.data is not None and got.data is not None:
        if got.data.shape == expected.data.shape and np.array_equal(got.data, expected.data):
            if expected.kind == "bool" and got.kind != "bool":
                return _verdict_fail(what, _("expected True or False"), got, expected, context=context)
            return _pass(what)
    problem = _numeric_problem(got, expected, 0.0, 0.0, role) if expected.data is not None else None
    text, worst, note, hint = problem if problem else (_("is not the expected value"), None, None, None)
    return _verdict_fail(what, text, got, expected, worst=worst, note=note, hint=hint, context=context)


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
        hint = None
        if got.kind == "variable":
            hint = _("this is a Variable of an autograd engine; the exercise asks for a torch tensor")
        elif expected is not None and got.data is not None and _numeric_problem(got, expected, rtol, atol) is None:
            made = {"number": ".item() or float()", "array": ".numpy()"}.get(got.kind, _("a conversion"))
            hint = _("the values are right, but {made} turned the tensor into a {type}: "
                     "return the tensor itself").format(made=made, type=got.type)
        elif got.kind == "none":
            hint = _none_problem(got, "result")[3]
        return _verdict_fail(what, _("expected a torch tensor, got {kind}").format(kind=_describe_kind(got)), got, None,
                             hint=hint, context=context)
    integer = got.dtype is not None and not any(t in got.dtype for t in ("float", "complex"))
    if dtype == "floating" and integer:
        return _verdict_fail(what, _("has dtype {dtype}, a floating-point dtype is needed").format(dtype=got.dtype),
                             got, None, hint=_("only floating-point (and complex) tensors can require gradients: "
                                               "write 3.0 instead of 3, or pass dtype=torch.float32"), context=context)
    if dtype not in (None, "floating") and got.dtype != dtype:
        return _verdict_fail(what, _("has dtype {dtype}, expected {expected}").format(dtype=got.dtype, expected=dtype),
                             got, None, hint=_("pass dtype={dtype} when you create it").format(dtype=dtype),
                             context=context)
    if expected is not None:
        problem = _numeric_problem(got, expected, rtol, atol)
        if problem is not None:
            text, worst, note, hint = problem
            return _verdict_fail(what, text, got, expected, worst=worst, note=note, hint=hint, context=context)
    if requires_grad is True and not got.requires_grad:
        # A tensor made without requires_grad=True and one taken out of a graph with .detach() or
        # .data look the same from outside: no guess at which it was.
        return _verdict_fail(what, _("does not require grad (its requires_grad is False)"), got, None, context=context)
    if requires_grad is False and got.requires_grad:
        return _verdict_fail(what, _("requires grad, but should not"), got, None,
                             hint=_("compute it under `with torch.no_grad():` or call .detach()"), context=context)
    if leaf is True and not got.is_leaf:
        return _verdict_fail(what, _("is the result of an operation ({grad_fn}), not a leaf tensor").format(
                                 grad_fn=got.grad_fn), got, None,
                             hint=_("create it directly with torch.tensor(...), or update it in place under "
                                    "torch.no_grad() instead of writing x = x - ..."), context=context)
    if leaf is False and got.is_leaf:
        return _verdict_fail(what, _("is a leaf, but should be the result of operations on other tensors"), got, None,
                             context=context)
    return _pass(what)


# --- exceptions -----------------------------------------------------------------------------

def compare_raises(got: Observed, *, exception: str, match: str | None, what: str, context: str = "") -> Verdict:
    """The student's code raised ``exception`` (by class name), whose message contains ``match``."""
    if got.kind == "sequence" and got.type in ("used_torch", "used_package", "unwatched"):
        return _unusable(got, what, context)
    if got.kind != "exception":
        hint = None
        if got.kind == "object" and got.type == exception:
            hint = _("your code returned a {exception} object: raise it instead (raise ...)").format(
                exception=exception)
        return _verdict_fail(what, _("should raise {exception}, but returned {value}").format(
                                 exception=exception, value=got.brief()), None, None,
                             hint=hint, context=context)
    if got.type != exception:
        return _verdict_fail(what, _("should raise {exception}, but raised {type}: {message}").format(
                                 exception=exception, type=got.type, message=got.message), None, None,
                             hint=_exception_hint(got), context=context)
    if match and match.lower() not in (got.message or "").lower():
        return _verdict_fail(what, _("raised {exception}, but its message does not mention {match}: {message}").format(
                                 exception=exception, match=repr(match), message=got.message),
                             None, None, context=context)
    return _pass(what, _("raises {exception}").format(exception=exception))


# --- many calls, and backward ---------------------------------------------------------------

def _missing_results(got: Observed, expected: Observed, what: str) -> Verdict | None:
    """A verdict when ``got`` does not hold one result per expected one.

    Probes always return one result per input; anything else means the probe did
    not run as the grader sent it (its code was replaced), and must never pass
    by comparing nothing with nothing.
    """
    count = len(expected.items or [])
    if got.kind != "sequence" or len(got.items or []) != count:
        return _verdict_fail(what, _("the check received {kind} instead of {count} result(s): it did not run as "
                                     "written (was the checking code changed?)").format(
                                         kind=_describe_kind(got), count=count),
                             None, None)
    return None


#: Gradients that add up over backward() calls, named in each engine's words.
RESET_WORDS = {
    "torch": ("optimizer.zero_grad()", "x.grad = None"),
    "autograd_lab": ("model.cleargrads()", "x.cleargrad()"),
}


def _evidence(record: Observed) -> dict[str, Observed]:
    """The probe's evidence mapping (``first``, ``second``, ``reset``...); a lone record is ``first``."""
    if record.kind == "mapping" and record.type == "evidence":
        return dict(zip(record.keys or [], record.items or []))
    return {"first": record}


def _reset_words(evidence: dict[str, Observed]) -> str:
    kinds = evidence.get("reset_kind")
    names = (kinds.value or "").split(",") if kinds is not None and kinds.kind == "str" else []
    ways = [RESET_WORDS[name] for name in names if name in RESET_WORDS] or [RESET_WORDS["torch"]]
    return "; ".join(_(" or ").join(way) for way in ways)


def _close(got: Observed, expected: Observed, rtol: float, atol: float, exact: bool = False) -> bool:
    if exact:
        return compare_equal(got, expected, what="").passed
    return compare_close(got, expected, what="", rtol=rtol, atol=atol).passed


def _mistake_named(got: Observed, mistakes: list[tuple[str, Observed]], rtol: float, atol: float,
                   exact: bool = False) -> str | None:
    """The first mistake whose recomputed results the student's results *are*, on every input."""
    for message, produced in mistakes:
        got_items, produced_items = got.items or [], produced.items or []
        if len(got_items) != len(produced_items) or not got_items:
            continue
        if all(_close(_evidence(g)["first"] if g.kind == "mapping" else g, p, rtol, atol, exact)
               for g, p in zip(got_items, produced_items)):
            return message
    return None


def _call_label(what: str, inputs: str) -> str:
    """A call in a message: ``poly_grad(3.0)`` for a function's name; a check's own description
    (``train: losses of a network``) keeps its words, and the arguments follow it."""
    if " " not in what:
        return f"{what}({inputs})"
    return _("{what}, called with ({inputs})").format(what=what, inputs=inputs)


def compare_calls(got: Observed, expected: Observed, *, what: str, inputs: list[str], rtol: float = 1e-5,
                  atol: float = 1e-6, exact: bool = False, against: str = "PyTorch",
                  mistakes: list[tuple[str, Observed]] | None = None) -> Verdict:
    """``probe_call`` results: the student's function against the reference on each input.

    ``mistakes`` are (message, results) pairs: what a typical mistake produces on the same
    inputs, computed by the check. A failure names one only if the student's results are it.
    """
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    wrong = 0
    first: Verdict | None = None
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        label = _call_label(what, inputs[index])
        evidence = _evidence(g)
        g = evidence.get("first") or Observed("exception", type="MissingObservation", message="no first call")
        verdict = compare_equal(g, e, what=label, role="result") if exact else compare_close(
            g, e, what=label, rtol=rtol, atol=atol, role="result")
        if verdict.passed and "second" in evidence and not _close(evidence["second"], g, rtol, atol, exact):
            verdict = _second_call_differs(label, evidence, e, rtol, atol, exact)
        elif not verdict.passed and g.kind != "exception":
            verdict.hint = _evidence_hint(evidence, e, rtol, atol, exact, between_calls=False) or verdict.hint
        if not verdict.passed:
            wrong += 1
            first = first or verdict
    total = len(expected.items or [])
    if first is not None:
        named = _mistake_named(got, mistakes or [], rtol, atol, exact)
        if named:
            first.hint = named
        if total > 1:
            first.extra.append("    " + _("({wrong} of {total} inputs give a wrong answer)").format(
                wrong=wrong, total=total))
        return first
    return _pass(what, ngettext("matches {against} on {total} input", "matches {against} on {total} inputs",
                                total).format(against=_(against), total=total))


def _evidence_hint(evidence: dict[str, Observed], expected: Observed, rtol: float, atol: float, exact: bool,
                   *, between_calls: bool) -> str | None:
    """A likely mistake the probe's re-runs show: gradients that add up, or randomness; else None."""
    if "reset" in evidence and _close(evidence["reset"], expected, rtol, atol, exact):
        if between_calls:
            return _("gradients add up between calls: your function back-propagates into a tensor that outlives "
                     "the call. Create fresh tensors inside your function, or reset the gradients ({reset})").format(
                reset=_reset_words(evidence))
        return _("gradients add up over your backward() calls: with them reset before every backward() your "
                 "function gives the expected answer. Reset them ({reset}) before each backward()").format(
            reset=_reset_words(evidence))
    differs = "second" in evidence and not _close(evidence["second"], evidence["first"], rtol, atol, exact)
    if differs and "seeded" in evidence and "seeded_again" in evidence and _close(
            evidence["seeded"], evidence["seeded_again"], rtol, atol, exact):
        return _("your answer depends on random numbers: with the random generators seeded alike, two calls agree. "
                 "Remove the randomness the exercise does not ask for (shuffle=True, torch.randn, np.random, ...)")
    return None


def _second_call_differs(label: str, evidence: dict[str, Observed], expected: Observed, rtol: float, atol: float,
                         exact: bool) -> Verdict:
    """The first call was right and the second, on a fresh copy of the same input, was not: why, on evidence."""
    first_call, second_call = evidence["first"], evidence["second"]
    hint = _evidence_hint(evidence, expected, rtol, atol, exact, between_calls=True)
    verdict = _verdict_fail(label, _("gives a different answer when called a second time with the same input"),
                            second_call, first_call, hint=hint)
    verdict.labels = (N_("1st call"), N_("2nd call"))
    return verdict


def compare_steps(got: Observed, expected: Observed, *, what: str, inputs: list[str], steps: int,
                  rtol: float = 1e-5, atol: float = 1e-6) -> Verdict:
    """``probe_steps`` results: the results of ``steps`` calls in a row on the same arguments."""
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        evidence = _evidence(g)
        run = evidence.get("run") or Observed("exception", type="MissingObservation", message="no steps")
        unusable = _unusable(run, what)
        if unusable:
            return unusable
        for step, (g_step, e_step) in enumerate(zip(run.items or [], e.items or [])):
            label = _("{what}({inputs}), call {step} of {steps} on the same arguments").format(
                what=what, inputs=inputs[index], step=step + 1, steps=steps)
            verdict = compare_close(g_step, e_step, what=label, rtol=rtol, atol=atol, role="result")
            if verdict.passed:
                continue
            reset = evidence.get("reset")
            if step > 0 and reset is not None and _close(reset, e, rtol, atol):
                verdict.hint = _("the first call is right and later ones drift: gradients add up from one step to "
                                 "the next. Clear them ({reset}) before backward() in every step").format(
                    reset=_reset_words(evidence))
            return verdict
        if len(run.items or []) != len(e.items or []):
            return _verdict_fail(_call_label(what, inputs[index]), _("made {made} of {steps} calls").format(
                                     made=len(run.items or []), steps=steps),
                                 None, None)
    total = len(expected.items or [])
    return _pass(what, ngettext("matches PyTorch over {steps} calls in a row on {total} input",
                                "matches PyTorch over {steps} calls in a row on {total} inputs", total).format(
        steps=steps, total=total))


def compare_unchanged(got: Observed, expected: Observed, *, what: str, inputs: list[str]) -> Verdict:
    """``probe_unchanged`` results: every argument after the call, as it was before."""
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        label = _call_label(what, inputs[index])
        unusable = _unusable(g, label)
        if unusable:
            return unusable
        for position, (g_arg, e_arg) in enumerate(zip(g.items or [], e.items or [])):
            if not compare_equal(g_arg, e_arg, what="").passed:
                verdict = _verdict_fail(label, _("changed its argument {position} (the caller's data)").format(
                                            position=position + 1),
                                        g_arg, e_arg)
                verdict.labels = (N_("before"), N_("after"))
                return verdict
    total = len(expected.items or [])
    return _pass(what, ngettext("leaves its arguments unchanged on {total} input",
                                "leaves its arguments unchanged on {total} inputs", total).format(total=total))


def compare_backward(got: Observed, expected: Observed, *, what: str, inputs: list[str], names: list[str],
                     rtol: float = 1e-5, atol: float = 1e-6, check_output: bool = True,
                     noun: str = "input", torch_leaves: bool = True,
                     mistakes: list[tuple[str, Observed]] | Callable[[], list] | None = None) -> Verdict:
    """``probe_backward`` results per input set: the output value and every input's gradient.

    ``torch_leaves``: the inputs were PyTorch leaves (a None gradient then means the output
    was not computed from that input); otherwise Variables of an engine, whose None
    gradient may also be a backward that returned too few. ``mistakes`` as in :func:`compare_calls`, or
    a function that computes them (called only when the results do not match).
    """
    verdict = _backward_verdict(got, expected, what=what, inputs=inputs, names=names, rtol=rtol, atol=atol,
                                check_output=check_output, role="gradient" if torch_leaves else "engine gradient")
    if verdict is None:
        total = len(expected.items or [])
        text = (ngettext("value and gradients match PyTorch on {total} graph",
                         "value and gradients match PyTorch on {total} graphs", total)
                if noun == "graph" else
                ngettext("value and gradients match PyTorch on {total} input",
                         "value and gradients match PyTorch on {total} inputs", total))
        return _pass(what, text.format(total=total))
    if got.kind == "sequence" and got.type == "cases":
        named = _mistake_named(got, (mistakes() if callable(mistakes) else mistakes) or [], rtol, atol)
        if named:
            verdict.hint = named
    return verdict


def _backward_verdict(got: Observed, expected: Observed, *, what: str, inputs: list[str], names: list[str],
                      rtol: float, atol: float, check_output: bool, role: str) -> Verdict | None:
    """The first failure among the cases, or None when every value and gradient matches."""
    unusable = _unusable(got, what) or _missing_results(got, expected, what)
    if unusable:
        return unusable
    for index, (g, e) in enumerate(zip(got.items or [], expected.items or [])):
        context = " " + _("at {input}").format(input=inputs[index]) if len(expected.items or []) > 1 else ""
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
            verdict = compare_close(g_out, e_out, what=_("{what} (output)").format(what=what), rtol=rtol, atol=atol,
                                    context=context, role="result")
            if not verdict.passed:
                return verdict
        for name, g_grad, e_grad in zip(names, g_grads.items or [], e_grads.items or []):
            verdict = compare_close(g_grad, e_grad, what=_("{what}: gradient for {name}").format(what=what, name=name),
                                    rtol=rtol, atol=atol, context=context, role=role)
            if not verdict.passed:
                return verdict
    return None


# --- a graph written as DOT text ------------------------------------------------------------

def compare_dot(got: Observed, expected: list[tuple[int, int]], *, what: str, inputs: list[str]) -> Verdict:
    """``probe_on_graph`` results: for each graph, DOT text with ``expected`` (nodes, edges).

    A node is a line with ``label=``, an edge a line with ``->``. A node written twice (the same
    id in two node lines) is named as the mistake: it is what a walk that meets a function or a
    variable again, without remembering what it wrote, produces.
    """
    unusable = _unusable(got, what) or _missing_results(
        got, Observed("sequence", items=[Observed("none")] * len(expected)), what)
    if unusable:
        return unusable
    for record, (nodes, edges), label in zip(got.items or [], expected, inputs):
        name = _call_label(what, label)
        verdict = _unusable(record, name)
        if verdict:
            return verdict
        if record.kind != "str":
            return _verdict_fail(name, _("returned {kind}, not DOT text").format(kind=_describe_kind(record)),
                                 record, None)
        lines = [line.strip() for line in record.value.strip().splitlines()]
        node_lines = [line for line in lines if "label=" in line]
        edge_lines = [line for line in lines if "->" in line]
        if not lines or not lines[0].startswith("digraph") or not lines[-1].endswith("}"):
            return _verdict_fail(name, _("the text must start with 'digraph g {{' and end with '}}'").format(),
                                 record, None)
        ids = [line.split("[", 1)[0].strip() for line in node_lines]
        twice = sorted({node for node in ids if ids.count(node) > 1})
        hint = (ngettext("{count} node is written more than once: remember the ids you have written (a set), "
                         "and write each Variable and each Function once",
                         "{count} nodes are written more than once: remember the ids you have written (a set), "
                         "and write each Variable and each Function once", len(twice)).format(count=len(twice))
                if twice else None)
        for noun, count, want in ((_("nodes (lines with label=)"), len(node_lines), nodes),
                                  (_("edges (lines with ->)"), len(edge_lines), edges)):
            if count != want:
                return _verdict_fail(name, _("wrong number of {noun}").format(noun=noun), observe(count),
                                     observe(want), hint=hint)
    total = len(expected)
    return _pass(what, ngettext("nodes and edges match PyTorch's graph on {total} graph",
                                "nodes and edges match PyTorch's graph on {total} graphs", total).format(total=total))
