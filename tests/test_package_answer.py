"""Exercises whose answer autograd_lab already holds, and exercises plugged into a reference engine.

* ``forbid``: a submission that calls the package's own answer (a gradient checker, a
  topological order) fails, in a notebook and when graded, with a message that says so;
  the same submission written by hand passes.
* ``plug``: a check runs the student's code inside a reference engine (``autograd_lab.reference05``),
  so an earlier exercise left undone does not fail it.
* ``suspects.suspects``: the Functions that grade a student's gradient checker are
  labelled by PyTorch, and a careful checker agrees with every label.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from autograd_lab import reference05, suspects
from autograd_lab.checks import CheckFailed, judge_cell
from autograd_lab.checks.observed import from_json
from grader.sandbox.kernel_probes import run_planned
from grader.autograde.plan import plan_notebook
from tests.test_wrong_answers import (CHECKER_GY_ONES, CHECKER_PACKAGE, TOPO_PREORDER, TOPO_RECURSIVE, _cells,
                                      _grade_id, _run)


class Variable:
    """Notebook 05's Variable at the gradient checker (engine v2)."""

    def __init__(self, data):
        self.data = data
        self.grad = None
        self.creator = None
        self.generation = 0

    def set_creator(self, func):
        self.creator = func
        self.generation = func.generation + 1


def _defined(source: str, name: str):
    """A function defined by some code (a solution cell, a wrong answer), with numpy as np."""
    namespace = {"np": np, "Variable": Variable}
    exec(compile(source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), f"<{name}>", "exec"),
         namespace)
    return namespace[name]


def _solution(grade_id: str) -> str:
    return "".join(next(cell["source"] for cell in _cells(NOTEBOOK) if _grade_id(cell) == grade_id))


NOTEBOOK = "05-build-your-own-autograd"
careful_checker = _defined(_solution("gradient-check-answer"), "gradient_check")
ones_checker = _defined(CHECKER_GY_ONES, "gradient_check")
package_checker = _defined(CHECKER_PACKAGE, "gradient_check")
own_order = _defined(_solution("topological-order-answer"), "topological_order")
recursive_order = _defined(TOPO_RECURSIVE, "topological_order")
preorder = _defined(TOPO_PREORDER, "topological_order")


CHECKER_CELL = '''
import numpy as np
from autograd_lab import checks
from autograd_lab import suspects as _s
_forbid = ["autograd_lab.numerical"]
_ones = {"a checker whose gy is all ones": lambda function, *xs: _s.agrees_with_torch(function, *xs, upstream="ones")}
_cases = _s.suspects(checks.rng("test-checker"), 10) + [(_s.suspect("exp", "forgets gy"), np.array([0.5, -1.0]))]
checks.function(gradient_check, _s.agrees_with_torch, _cases, exact=True, forbid_torch=True, forbid=_forbid,
                mistakes=_ones)
'''


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Graded kernels run one thread; a thread an earlier test left in this process is not the student's."""
    from autograd_lab.checks.probes import TorchWatch

    monkeypatch.setattr(TorchWatch, "_other_threads", lambda self: None)


def _planned(source: str, namespace: dict):
    plan = plan_notebook([("cell", source)])
    observations = json.loads(json.dumps(run_planned([c.spec for c in plan.checks["cell"]], namespace)))
    return judge_cell(plan.checks["cell"], [from_json(observation) for observation in observations])


def _plain(source: str, namespace: dict) -> None:
    exec(compile(source, "<test cell>", "exec"), dict(namespace, np=np))


def _failure(mode: str, source: str, namespace: dict) -> str | None:
    """The first failure of a test cell run in a notebook ("plain") or by the grader ("planned"); None if it passed."""
    if mode == "plain":
        try:
            _plain(source, namespace)
        except CheckFailed as failure:
            return str(failure)
        return None
    _, failed = _planned(source, namespace)
    return None if failed is None else failed.message


def test_suspects_are_labelled_by_pytorch_and_a_careful_checker_agrees():
    cases = suspects.suspects(np.random.default_rng(3), 120)
    kinds = {suspects.KIND[case[0].__name__][1] for case in cases}
    assert {None, "forgets gy", "sign flipped", "transposed", "inputs swapped", "factor missing"} <= kinds
    labels = [suspects.agrees_with_torch(*case) for case in cases]
    assert labels == [suspects.KIND[case[0].__name__][1] is None for case in cases]
    assert [careful_checker(*case) for case in cases] == labels


@pytest.mark.parametrize("mode", ["plain", "planned"])
def test_a_checker_is_graded_on_fresh_functions(mode):
    namespace = {"gradient_check": careful_checker, "Variable": Variable}
    if mode == "plain":
        _plain(CHECKER_CELL, namespace)
    else:
        lines, failed = _planned(CHECKER_CELL, namespace)
        assert failed is None and len(lines) == 1


@pytest.mark.parametrize("mode", ["plain", "planned"])
@pytest.mark.parametrize("checker, must", [
    (package_checker, "autograd_lab.numerical.numerical_grad, autograd_lab's own answer"),
    (ones_checker, "a checker whose gy is all ones"),
    (lambda function, *inputs: True, "does not match"),
])
def test_a_wrong_checker_fails_with_its_message(mode, checker, must):
    namespace = {"gradient_check": checker, "Variable": Variable}
    if mode == "plain":
        with pytest.raises(CheckFailed) as failure:
            _plain(CHECKER_CELL, namespace)
        message = str(failure.value)
    else:
        _, failed = _planned(CHECKER_CELL, namespace)
        message = failed.message
    assert must in message
    if checker is not ones_checker:
        assert "all ones" not in message


TOPO_CELL = '''
import numpy as np
from autograd_lab import checks
from autograd_lab import reference05 as _r
_ops = {"square": _r.Square, "sin": _r.Sin, "add": _r.Add, "mul": _r.Mul}
_diamond = [["square", [0]], ["square", [1]], ["square", [1]], ["add", [2, 3]]]
checks.graph(_ops, [{"inputs": [np.array(2.0)], "nodes": _diamond}, checks.chain("sin", 3_000)], leaf=_r.Variable,
             plug=(_r.ordered_by, topological_order), forbid=["autograd_lab.reference05:topological_order"])
'''


@pytest.mark.parametrize("mode", ["plain", "planned"])
@pytest.mark.parametrize("order, must", [
    (reference05.topological_order, "autograd_lab.reference05.topological_order, autograd_lab's own answer"),
    (recursive_order, "RecursionError"),
    (preorder, "exactly half"),
    (None, None),
])
def test_a_topological_order_is_plugged_into_the_reference_engine(mode, order, must):
    message = _failure(mode, TOPO_CELL, {"topological_order": order or own_order})
    assert reference05.Variable.order is None  # the plug is taken out again
    if must is None:
        assert message is None
        return
    assert must in message
    assert "overwrites" not in message and "generation" not in message  # the engine is not the student's


def test_reference_engine_replaces_and_restores_a_students_methods():
    class Broken:
        def __init__(self, data):
            self.data, self.grad, self.creator, self.generation = data, None, None, 0

        def backward(self):
            raise RuntimeError("not written yet")

        def cleargrad(self):
            pass

    x = Broken(np.array(2.0))
    a = reference05.Square()(x)
    y = reference05.Add()(reference05.Square()(a), reference05.Square()(a))
    with reference05.reference_engine((Broken,)):
        y.backward()
        assert float(x.grad) == 64.0
        x.cleargrad()
        assert x.grad is None
    with pytest.raises(RuntimeError):
        y.backward()


# --- no cascades in 05 and 06: an exercise left blank does not fail the ones after it -----------

#: (the notebooks run one after the other in one folder, each with the solution cells left blank; the test
#: cells that must pass all the same). 06 runs on the engine the blank 05 saved: a Variable whose backward,
#: and Add and Mul whose rules, raise NotImplementedError.
CASCADES = [
    ([(NOTEBOOK, ["square-exp-answer", "add-mul-answer"])],
     ["manual-backprop", "backward-loop", "accumulate", "generations", "long-chain"]),
    ([(NOTEBOOK, ["square-exp-answer", "add-mul-answer", "final-variable-answer"]),
      ("06-complete-engine", ["sigmoid-answer"])],
     ["topological-order", "cleargrad", "operators", "two-layer-net", "to-dot", "engine"]),
]


def _blank(source: str) -> str:
    """A solution cell as the student gets it: each solution replaced by ``raise NotImplementedError()``."""
    import re

    return re.sub(r"( *)### BEGIN SOLUTION.*?### END SOLUTION",
                  lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()", source,
                  flags=re.S)


def _test_results(notebook: str, blanks: list[str], namespace: dict | None = None) -> dict[str, str | None]:
    """Each test cell's first failure (None: passed), in ``notebook`` run top to bottom with the ``blanks`` left
    blank, in the current folder (where 05 saves its engine and 06 loads it), in ``namespace`` if given."""
    import contextlib
    import io

    import matplotlib

    matplotlib.use("Agg")
    from grader.notebooks import is_demo_cell, is_test_cell

    namespace = {"__name__": "__main__"} if namespace is None else namespace
    results: dict[str, str | None] = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        for index, cell in enumerate(_cells(notebook)):
            if cell["cell_type"] != "code" or is_demo_cell(cell):
                continue
            source = "".join(cell["source"])
            source = _blank(source) if _grade_id(cell) in blanks else source
            try:
                _run(source, namespace, f"<{notebook} cell {index}>")  # its text kept, as IPython keeps a cell's
                if is_test_cell(cell):
                    results[_grade_id(cell)] = None
            except Exception as error:  # a blank exercise's own cells raise, as in the student's notebook
                if is_test_cell(cell):
                    results[_grade_id(cell)] = str(error)
    results["printed"] = printed.getvalue()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("runs, passing", CASCADES)
def test_a_blank_exercise_fails_only_its_own_tests(runs, passing, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results: dict[str, str | None] = {}
    for notebook, blanks in runs:
        results.update(_test_results(notebook, blanks))
    if len(runs) > 1:
        assert "Using your engine from my_engine.py" in results["printed"]
    assert {grade_id: results[grade_id] for grade_id in passing if results[grade_id]} == {}
    own = {"square-exp-answer": "square-exp", "add-mul-answer": "add-mul", "final-variable-answer": "generations",
           "sigmoid-answer": "sigmoid"}
    assert all("NotImplementedError" in results[own[blank]] for _, blanks in runs for blank in blanks)


# --- notebook 08: MatMul, which autograd_lab and both references hold -----------

NETWORK = "08-neural-network"


def _network_namespace(matmul_code: str) -> dict:
    """The network notebook's engine (the reference: no my_engine.py here) with this MatMul."""
    from autograd_lab import carry

    namespace: dict = {"np": np}
    setup = "".join(next(c["source"] for c in _cells(NETWORK) if _grade_id(c) == "setup"))
    engine_names = setup.split("ENGINE = ")[1].split("]")[0] + "]"
    carry.load_engine(eval(engine_names), path="no-such-file.py", into=namespace)
    exec(matmul_code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)
    return namespace


_OWN_MATMUL = "".join(next(c["source"] for c in _cells(NETWORK) if _grade_id(c) == "matmul-code"))


@pytest.mark.parametrize("mode", ["plain", "planned"])
@pytest.mark.parametrize("code, must", [
    ("from autograd_lab.functions import MatMul", "calls autograd_lab.core.Function.__call__"),
    ("from autograd_lab import functions as F\nMatMul = F.MatMul", "calls autograd_lab.core.Function.__call__"),
    ("from autograd_lab.reference08 import MatMul as _Theirs\n\n\nclass MatMul(_Theirs):\n    pass",
     "calls autograd_lab.reference08.MatMul.forward"),
    ("from autograd_lab import reference05\n\n\nclass MatMul(reference05.MatMul):\n    pass",
     "calls autograd_lab.reference05.MatMul.backward"),
    (_OWN_MATMUL, None),
])
def test_a_matmul_that_is_the_packages_fails_however_it_is_named(mode, code, must):
    """An alias or a subclass of autograd_lab's MatMul (or a reference's) runs their code: the check says so."""
    cell = "".join(next(c["source"] for c in _cells(NETWORK) if _grade_id(c) == "matmul-backward"))
    message = _failure(mode, cell, _network_namespace(code))
    if must is None:
        assert message is None
        return
    assert must in message and "autograd_lab's own answer" in message
