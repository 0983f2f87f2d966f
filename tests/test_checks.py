"""The checks the exercises call: verdicts, messages a beginner can act on, silence on stderr,
and the same verdicts whether a test cell runs in the notebook or is planned by the grader."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from autograd_lab import checks
from autograd_lab.checks import AuthoringError, CheckFailed, judge_cell
from autograd_lab.checks.observed import from_json, observe, to_json
from autograd_lab.checks.wire import decode, encode
from grader.sandbox.kernel_probes import run_planned
from grader.autograde.plan import plan_notebook


def failure(call) -> str:
    with pytest.raises(CheckFailed) as info:
        call()
    return str(info.value)


# --- plain mode: messages ---------------------------------------------------------------------

def poly_grad(x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (t ** 2 + 2 * t + 1).backward()
    return t.grad.item()


def test_a_pass_prints_one_short_line_and_nothing_on_stderr(capsys):
    checks.function(poly_grad, lambda x: 2 * x + 2, [(3.0,), (-1.5,)])
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("✓ poly_grad") and "2 inputs" in out
    assert err == ""


def test_nothing_reaches_stderr_even_when_the_students_code_warns(capsys):
    import sys
    import warnings

    def noisy(x):
        print("debugging", file=sys.stderr)
        warnings.warn("a harmless warning")
        return 2 * x
    checks.function(noisy, lambda x: 2 * x, [(1.0,)])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("answer, note", [
    (lambda x: -(2 * x + 2), "opposite sign"),
    (lambda x: 2 * (2 * x + 2), "exactly 2×"),
    (lambda x: 3 * (2 * x + 2), "exactly 3×"),
    (lambda x: (2 * x + 2) / 2, "half"),
    (lambda x: 2 * x + 3, "off by a constant"),
])
def test_a_ratio_is_stated_as_a_fact_never_as_a_guessed_cause(answer, note):
    inputs = [(np.array([3.0, 0.5, -1.0]),), (np.array([0.25, 2.0, 1.5]),)]
    message = failure(lambda: checks.function(answer, lambda x: 2 * x + 2, inputs))
    assert "note: your answer is" in message and note in message
    assert "expected:" in message and "got:" in message
    assert "likely mistake" not in message  # many mistakes share a ratio: none is named


def test_gradients_that_accumulate_between_calls_are_caught():
    leaf = torch.tensor(2.0, requires_grad=True)

    def leaky(x):
        (leaf * leaf).backward()
        return leaf.grad.clone()
    message = failure(lambda: checks.function(leaky, lambda x: 4.0, [(2.0,)]))
    assert "second time" in message and "gradients add up between calls" in message


def test_integer_dtype_detached_tensor_and_none_grad():
    message = failure(lambda: checks.tensor(torch.tensor([3, 4]), requires_grad=True, dtype="floating"))
    assert "floating-point" in message and "3.0 instead of 3" in message
    detached = (torch.tensor([1.0], requires_grad=True) * 2).detach()
    message = failure(lambda: checks.tensor(detached, requires_grad=True))
    # Made without requires_grad or detached later: the same from outside, so no guess which.
    assert "does not require grad" in message and "likely mistake" not in message
    assert "until backward() has run" in failure(lambda: checks.close(torch.tensor(1.0).grad, 2.0))
    computed = torch.tensor([1.0], requires_grad=True) * 2
    assert "not a leaf" in failure(lambda: checks.tensor(computed, leaf=True))


def test_transposed_shape_and_worst_element():
    matrix = np.arange(6.0).reshape(2, 3)
    assert "transposed" in failure(lambda: checks.close(matrix.T, matrix))
    wrong = matrix.copy()
    wrong[1, 2] = 40.0
    message = failure(lambda: checks.close(wrong, matrix))
    assert "index (1, 2): got 40, expected 5 (1 of 6 elements differ)" in message


def test_not_done_yet_and_forbidden_torch():
    def blank(x):
        raise NotImplementedError()
    assert "replace `raise NotImplementedError()`" in failure(lambda: checks.function(blank, lambda x: x, [(1.0,)]))
    uses_torch = lambda x: torch.exp(torch.as_tensor(x)).item()  # noqa: E731
    message = failure(lambda: checks.function(uses_torch, lambda x: np.exp(x), [(1.0,)], forbid_torch=True))
    assert "uses PyTorch (torch.exp" in message or "uses PyTorch (torch.as_tensor" in message
    checks.function(lambda x: np.exp(x), lambda x: np.exp(x), [(1.0,)], forbid_torch=True)


def test_gradient_and_backward_against_pytorch():
    checks.gradient(lambda x: 2 * x, lambda x: (x ** 2).sum(), [(np.array([1.0, 2.0, 3.0]),)])

    def model(theta, x):
        return theta[0] * x[0] - theta[1] * torch.cos(theta[2] + x[1])
    checks.backward(model, model, [(np.array([0.2, 0.3, 0.4]), np.array([5.0, 1.0]))], names=["theta", "x"])

    def forgets_upstream(theta, x):
        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, t):
                ctx.save_for_backward(t)
                return t * t

            @staticmethod
            def backward(ctx, grad):
                (t,) = ctx.saved_tensors
                return 2 * t  # forgets to multiply by the incoming gradient
        return Square.apply(theta) * x
    message = failure(lambda: checks.backward(forgets_upstream, lambda t, x: t * t * x,
                                              [(np.array([1.0, 2.0]), np.array([3.0, 4.0]))], names=["theta", "x"]))
    assert "gradient for theta" in message


def test_lists_numbers_from_other_libraries_and_importable_functions():
    checks.close([2.0, 4.0], np.array([2.0, 4.0]))
    checks.close(np.array([1.0, 2.0]), (1.0, 2.0))

    def forward_difference(f, x, h):
        return (f(x + h) - f(x)) / h
    checks.function(forward_difference, lambda f, x, h: (f(x + h) - f(x)) / h, [(np.sin, 1.0, 1e-5)])


def test_raises_and_equal():
    checks.raises(lambda: torch.tensor([1, 2], requires_grad=True), exception=RuntimeError, match="floating point")
    assert "should raise" in failure(lambda: checks.raises(lambda: 1, exception=RuntimeError))
    checks.equal(type(torch.tensor(1.0, requires_grad=True).exp().grad_fn).__name__, "ExpBackward0")
    assert "upper/lower case" in failure(lambda: checks.equal("expbackward0", "ExpBackward0"))
    checks.function(lambda x: str(x), ["1", "2"], [(1,), (2,)], exact=True)
    assert "likely mistake" not in failure(lambda: checks.equal(False, True))


def test_graphs_on_an_engine():
    from autograd_lab import Variable
    from autograd_lab import functions as F

    specs = [checks.random_graph(["square", "exp", "sin", "+", "*"], key=f"t{i}") for i in range(3)]
    checks.graph({"square": F.square, "exp": F.exp, "sin": F.sin}, specs, leaf=Variable, seed="leaf")
    checks.graph({"sin": F.sin}, [checks.chain("sin", 2000)], leaf=Variable, seed="leaf")

    def broken_square(x):
        return x * 3
    message = failure(lambda: checks.graph({"square": broken_square, "exp": F.exp, "sin": F.sin}, specs,
                                           leaf=Variable, seed="leaf"))
    assert "your engine" in message


# --- the wire format is data only -------------------------------------------------------------

@pytest.mark.parametrize("value", [3, 2.5, True, None, "text", (1, 2.0), [1, [2, 3]], {"a": 1},
                                   np.arange(6.0).reshape(2, 3), torch.tensor([1.5, 2.5], requires_grad=True),
                                   np.float32(1.5), slice(1, None, 2)])
def test_arguments_survive_the_wire(value):
    back = decode(json.loads(json.dumps(encode(value))))
    assert observe(back).brief() == observe(value).brief()


@pytest.mark.parametrize("payload", [
    {"kind": "array", "data": {"dtype": "|O", "shape": [1], "b64": ""}},
    {"kind": "array", "data": {"dtype": "<f8", "shape": [10**9], "b64": ""}},
    {"kind": "array", "data": {"dtype": "<f8", "shape": [2], "b64": "AAAA"}},
    {"kind": "sequence", "items": "not a list"},
    {"kind": 3},
    "just a string",
])
def test_observations_from_a_sandbox_are_validated(payload):
    with pytest.raises(ValueError):
        from_json(payload)


def test_observations_round_trip():
    value = (torch.tensor([1.0, 2.0], requires_grad=True), np.arange(3), "x", None)
    record = observe(value)
    assert from_json(json.loads(json.dumps(to_json(record)))).brief() == record.brief()


# --- plan mode: the grader's view of the same test cells ---------------------------------------

TEST_CELL = '''
import numpy as np
from autograd_lab import checks
checks.close(poly_grad(3.0), 8.0)
### BEGIN HIDDEN TESTS
_rng = checks.rng("poly")
checks.function(poly_grad, lambda x: 2 * x + 2, [(float(v),) for v in _rng.uniform(-3, 3, 5)])
### END HIDDEN TESTS
'''


def _grade_in_two_processes(source: str, namespace: dict):
    plan = plan_notebook([("cell", source)])
    observations = json.loads(json.dumps(run_planned([c.spec for c in plan.checks["cell"]], namespace)))
    return judge_cell(plan.checks["cell"], [from_json(observation) for observation in observations])


def _run_plain(source: str, namespace: dict) -> None:
    """Run a test cell as a notebook does: its source is known (IPython registers cells in linecache)."""
    import linecache

    linecache.cache["<plain cell>"] = (len(source), None, source.splitlines(True), "<plain cell>")
    exec(compile(source, "<plain cell>", "exec"), namespace)


def test_planned_verdicts_equal_plain_verdicts(capsys):
    lines, failed = _grade_in_two_processes(TEST_CELL, {"poly_grad": poly_grad})
    assert failed is None and lines[0].startswith("✓ poly_grad(3.0)")
    _run_plain(TEST_CELL, {"poly_grad": poly_grad})
    assert capsys.readouterr().out.splitlines() == lines
    wrong = lambda x: 2 * x + 3  # noqa: E731
    lines, failed = _grade_in_two_processes(TEST_CELL, {"poly_grad": wrong})
    with pytest.raises(CheckFailed) as plain:
        _run_plain(TEST_CELL, {"poly_grad": wrong})
    assert failed.message == str(plain.value)


def test_hidden_inputs_change_with_the_graders_salt():
    first = plan_notebook([("cell", TEST_CELL)], salt="").checks["cell"][1].spec
    second = plan_notebook([("cell", TEST_CELL)], salt="course secret").checks["cell"][1].spec
    assert first != second and checks._planning is None  # planning leaves no state behind


#: Visible checks; checks on inputs drawn at random; on names earlier cells bound from them (by assignment, or
#: with `global` in a function); and on a name bound again, with nothing drawn, before it.
SHARED_TESTS = [("first", TEST_CELL + "_drawn = float(_rng.uniform(1, 2))\n_kept = float(_rng.uniform(1, 2))\n"),
                ("second", '''
from autograd_lab import checks
checks.close(poly_grad(1.0), 4.0)
_drawn = 0.5
checks.close(poly_grad(_drawn), 3.0)
def _bind():
    global _later
    _later = float(checks.rng("later").uniform(1, 2))
_bind()
'''), ("third", "from autograd_lab import checks\nchecks.close(poly_grad(2.0), 6.0)\n"
                  "checks.close(poly_grad(_later), 2 * _later + 2)\n"),
                ("fourth", "from autograd_lab import checks\nchecks.close(poly_grad(_kept), 2 * _kept + 2)\n")]


def test_checks_that_do_not_depend_on_the_salt_are_planned_once_for_every_salt():
    shared: dict = {}
    first = plan_notebook(SHARED_TESTS, salt="alice", shared=shared)
    again = plan_notebook(SHARED_TESTS, salt="bob", shared=shared)
    fresh = plan_notebook(SHARED_TESTS, salt="bob")
    reused = {grade_id: [a is b for a, b in zip(first.checks[grade_id], again.checks[grade_id])]
              for grade_id in first.checks}
    assert reused == {"first": [True, False], "second": [True, True], "third": [True, False], "fourth": [False]}
    canonical = re.compile(r'"ref": \d+')  # (a stand-in's serial number: one per plan)
    for grade_id in fresh.checks:
        assert ([canonical.sub("", json.dumps(check.spec)) for check in again.checks[grade_id]]
                == [canonical.sub("", json.dumps(check.spec)) for check in fresh.checks[grade_id]])
        for shared_check, fresh_check in zip(again.checks[grade_id], fresh.checks[grade_id]):
            for answer in (poly_grad, lambda x: 2 * x + 3):
                namespace = {"poly_grad": answer}
                got = from_json(json.loads(json.dumps(run_planned([fresh_check.spec], namespace)))[0])
                assert shared_check.verdict(got).passed == fresh_check.verdict(got).passed
    with pytest.raises(ValueError):
        plan_notebook([("cell", TEST_CELL)], salt="carol", shared=shared)


def test_a_missing_name_or_a_crash_is_a_verdict_not_an_error():
    _, failed = _grade_in_two_processes(TEST_CELL, {})
    assert "not defined" in failed.message
    _, failed = _grade_in_two_processes(TEST_CELL, {"poly_grad": lambda x: 1 / 0})
    assert "ZeroDivisionError" in failed.message


@pytest.mark.parametrize("source, complaint", [
    ("from autograd_lab import checks\nx = 3\nchecks.close(a, 1)", "binds the name 'x'"),
    ("from autograd_lab import checks\nif answer > 0:\n    pass", "outside a check"),
    ("from autograd_lab import checks\nchecks.close(len(answer), 1)", "outside a check"),
    ("from autograd_lab import checks\nchecks.close(3, 3)", "does not involve the student"),
    ("from autograd_lab import checks\nchecks.function(lambda x: x, lambda x: x, [(1.0,)])", "does not involve"),
    ("import torch", "no checks"),
])
def test_tests_the_grader_cannot_run_are_refused_with_a_reason(source, complaint):
    with pytest.raises(AuthoringError) as info:
        plan_notebook([("cell", source)])
    assert complaint in str(info.value)


def test_forged_observations_earn_nothing():
    plan = plan_notebook([("cell", TEST_CELL)])
    forged = [observe(8.0) for _ in plan.checks["cell"]]
    _, failed = judge_cell(plan.checks["cell"], forged)
    assert failed is not None and "did not run as written" in failed.message
    _, failed = judge_cell(plan.checks["cell"], [])
    assert failed is not None


def test_a_student_value_used_twice_is_one_object_in_the_kernel():
    source = '''from autograd_lab import checks
_model = make_model()
checks.close(same(_model, _model), True)
'''
    class Model:
        pass
    lines, failed = _grade_in_two_processes(source, {"make_model": Model, "same": lambda a, b: a is b})
    assert failed is None, failed


# --- evidence for a named mistake is recomputed, never a ratio ----------------------------------

def test_engines_with_one_mistake_give_the_numbers_the_notebook_names():
    from autograd_lab.checks.mistakes import run_mistaken

    diamond = {"inputs": [np.array(2.0)], "nodes": [["square", [0]], ["square", [1]], ["square", [1]], ["add", [2, 3]]]}
    twice = {"inputs": [np.array(3.0)], "nodes": [["add", [0, 0]]]}
    assert run_mistaken(diamond, "stack", True).items[1].items[0].data == 96.0     # no generations
    assert run_mistaken(diamond, "generation", True).items[1].items[0].data == 64.0  # the right engine
    assert run_mistaken(twice, "stack", False).items[1].items[0].data == 1.0        # overwrites: x + x gives 1


def test_a_step_function_is_checked_over_several_steps_on_one_model():
    from autograd_lab import functions as F
    from autograd_lab.layers import MLP
    from autograd_lab.optimizers import SGD
    from autograd_lab.datasets import two_moons

    x, t = two_moons(n=20, noise=0.1, seed=0)

    def right(model, optimizer, x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return float(loss.data)

    def keeps_gradients(model, optimizer, x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        loss.backward()
        optimizer.update()
        return float(loss.data)

    model = MLP((4, 2), in_size=2, seed=1)
    optimizer = SGD(lr=0.5).setup(model)
    expected = [right(model, optimizer, x, t) for _ in range(3)]
    fresh = MLP((4, 2), in_size=2, seed=1)
    checks.steps(right, [expected], [(fresh, SGD(lr=0.5).setup(fresh), x, t)])
    fresh = MLP((4, 2), in_size=2, seed=1)
    message = failure(lambda: checks.steps(keeps_gradients, [expected], [(fresh, SGD(lr=0.5).setup(fresh), x, t)]))
    assert "call 3 of 3" in message and "gradients add up from one step to the next" in message


def test_a_ratio_alone_names_no_cause_but_a_declared_mistake_is_named_when_it_is_the_answer():
    def half(x):
        return x
    message = failure(lambda: checks.function(half, lambda x: 2 * x, [(1.0,), (2.0,)],
                                              mistakes={"you forgot the 2": lambda x: x}))
    assert "likely mistake: you forgot the 2" in message
    message = failure(lambda: checks.function(half, lambda x: 2 * x, [(1.0,), (2.0,)],
                                              mistakes={"you squared": lambda x: x * x}))
    assert "likely mistake" not in message and "exactly half" in message


# --- failures a student can read in one screen -------------------------------------------------

def test_in_ipython_a_failed_check_is_its_message_alone(capfd):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("from autograd_lab import checks\n_answer = 1.0\nchecks.close(_answer, 2.0)")
    out = capfd.readouterr().out
    assert "✗ _answer: does not match the expected value" in out
    assert "Traceback" not in out and "checks.py" not in out and "_submit" not in out


def test_a_function_that_does_not_return_is_stopped_and_its_line_named(monkeypatch):
    monkeypatch.setattr(checks, "CALL_SECONDS", 0.5)

    def endless(x):
        while x > 0:
            x = x + 1
        return x
    message = failure(lambda: checks.function(endless, lambda x: x, [(1.0,)]))
    assert "did not return within 0.5 s (an infinite loop?)" in message
    assert "in endless" in message and "while x > 0:" in message


def test_an_exception_in_the_students_code_keeps_its_line():
    def crashes(x):
        return [][3]
    message = failure(lambda: checks.function(crashes, lambda x: x, [(1.0,)]))
    assert "raised IndexError" in message and "in crashes" in message and "return [][3]" in message


def test_an_error_raised_inside_numpy_names_the_students_line_that_called_it():
    def spreads(x):
        return np.broadcast_to(x, (3, 4))
    message = failure(lambda: checks.function(spreads, lambda x: x, [(np.ones(3),)]))
    assert "raised ValueError" in message and "in spreads" in message and "np.broadcast_to(x, (3, 4))" in message
    assert "site-packages" not in message


def test_what_a_function_prints_is_shown_once(capsys):
    def chatty(x):
        for _ in range(50):
            print("step")
        return 2 * x
    checks.function(chatty, lambda x: 2 * x, [(1.0,), (2.0,), (3.0,)])
    out = capsys.readouterr().out
    assert out.count("| step") == 10 and "more lines" in out and "first of 4 calls" in out


def test_graded_backward_checks_of_an_engine_judge_without_touching_the_students_names():
    """leaf=Variable is the student's class, a stand-in when planning: judging must not compare it."""
    from autograd_lab import Variable

    source = '''from autograd_lab import checks
checks.backward(Add(), lambda a, b: a + b, [(2.0, 3.0)], names=["x0", "x1"], leaf=Variable, seed="leaf")
'''
    from autograd_lab import functions as F

    class Add:
        def __call__(self, a, b):
            return F.add(a, b)
    lines, failed = _grade_in_two_processes(source, {"Add": Add, "Variable": Variable})
    assert failed is None, failed


def test_random_answers_under_the_pytorch_watch_are_not_taken_for_pytorch():
    import random

    def noisy(x):
        return x + random.random()
    message = failure(lambda: checks.function(noisy, lambda x: x, [(1.0,)], forbid_torch=True))
    assert "uses PyTorch" not in message and "random numbers" in message


def _course_cell(notebook: str, cell_id: str) -> str:
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "course" / "source" / notebook / f"{notebook}.ipynb"
    return next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c.get("id") == cell_id)


def test_to_dot_is_graded_on_the_reference_functions_planned_and_plain_alike(capsys):
    """06's to-dot test builds its graphs with reference05's Functions on the student's Variable: a
    student whose Sigmoid, Add and Mul are blank still gets to_dot's points, and a wrong to_dot fails the
    same way whether the cell runs in the notebook or is planned by the grader."""
    from autograd_lab import reference05

    def blank(*args):
        raise NotImplementedError()

    namespace = {"np": np, "Variable": reference05.Variable, "Sigmoid": blank, "Add": blank, "Mul": blank}
    exec(_course_cell("06-complete-engine", "dot-helpers"), namespace)
    exec(_course_cell("06-complete-engine", "to-dot-answer"), namespace)
    test = _course_cell("06-complete-engine", "to-dot")
    lines, failed = _grade_in_two_processes(test, dict(namespace))
    assert failed is None and len(lines) == 2 and "match PyTorch's graph on 3 graphs" in lines[0]
    _run_plain(test, dict(namespace))
    assert capsys.readouterr().out.splitlines() == lines
    wrong = _course_cell("06-complete-engine", "to-dot-answer").replace("if id(node) not in seen:", "if True:")
    exec(wrong, namespace)
    lines, failed = _grade_in_two_processes(test, dict(namespace))
    with pytest.raises(CheckFailed) as plain:
        _run_plain(test, dict(namespace))
    assert failed.message == str(plain.value) and "nodes are written more than once" in failed.message
