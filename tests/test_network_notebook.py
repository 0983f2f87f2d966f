"""The network notebook (08-neural-network, notebook 08 in the course's text) runs on the student's engine.

* With a ``my_engine.py`` saved from notebook 05's solutions (what notebook 06 saves), the notebook
  loads it as the student's engine, and every test cell passes on it.
* Without one it says so and runs on the reference engine (``test_course`` runs it that way).
* No cascades: a blank exercise fails its own tests only, since each test of sections 1 to 4 plugs
  its exercise into :mod:`autograd_lab.reference08`; the training exercise runs on the notebook's own engine.
"""
from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from autograd_lab import carry
from grader.notebooks import is_test_cell
from tests import test_package_answer as package_tests
from tests.test_wrong_answers import _cells, _grade_id

NETWORK = "08-neural-network"
ENGINE_NOTEBOOK = "05-build-your-own-autograd"
#: The cells of 05 that define the engine notebook 06 ends with (06's own exercises are 05's today).
ENGINE_CELLS = ["imports", "as-array", "engine-v2", "functions-v2", "add-mul-answer", "gradient-check-answer",
                "final-variable-answer", "operators-answer", "sigmoid-answer", "matmul", "engine-answer"]
SAVED = ["as_array", "Function", "Variable", "as_variable", "Square", "Exp", "Sin", "Add", "Mul", "Neg", "Sigmoid",
         "MatMul", "Div", "Pow", "ReLU", "add", "mul", "neg", "sub", "div", "power", "relu", "sigmoid", "matmul",
         "square", "gradient_check"]


def _source(cell: dict) -> str:
    return re.sub(r"(?m)^ *### (BEGIN|END) SOLUTION\n?", "", "".join(cell["source"]))


def _save_engine_from_05(folder) -> None:
    """my_engine.py written by carry.save_engine from 05's solution cells, run in IPython as a student would."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    cells = {_grade_id(cell) or cell.get("id"): cell for cell in _cells(ENGINE_NOTEBOOK)}
    with contextlib.redirect_stdout(io.StringIO()):
        for name in ENGINE_CELLS:
            assert shell.run_cell(_source(cells[name]), store_history=False).success, name
        carry.save_engine(*[shell.user_ns[name] for name in SAVED], path=folder / carry.ENGINE_FILE)
    path = folder / carry.ENGINE_FILE
    if "import heapq" not in path.read_text():  # (carry's import detection comes with notebook 06)
        path.write_text(path.read_text().replace("import numpy as np", "import heapq\n\nimport numpy as np", 1))


def _test_results(blanks: list[str] = ()) -> tuple[dict[str, str | None], dict]:
    """Each test cell's first failure (None: passed), the notebook run top to bottom with ``blanks`` left blank."""
    namespace: dict = {"__name__": "__main__"}
    return package_tests._test_results(NETWORK, list(blanks), namespace=namespace), namespace


@pytest.mark.slow
def test_the_notebook_runs_on_the_students_saved_engine(tmp_path, monkeypatch):
    from autograd_lab.checks.probes import TorchWatch

    # Graded kernels run one thread; IPython's history thread (of the shell that saved the engine) is not the student's.
    monkeypatch.setattr(TorchWatch, "_other_threads", lambda self: None)
    _save_engine_from_05(tmp_path)
    monkeypatch.chdir(tmp_path)
    results, namespace = _test_results()
    assert namespace["engine"].source == "yours"
    assert "reference05" not in namespace["Variable"].backward.__code__.co_filename  # the student's own backward
    assert {name: failure for name, failure in results.items() if failure} == {}
    assert len(results) == 8
    # ...and as the grader runs them: planned in its process, the probes in the student's namespace.
    for cell in _cells(NETWORK):
        if is_test_cell(cell):
            _, failed = package_tests._planned("".join(cell["source"]), namespace)
            assert failed is None, f"{_grade_id(cell)}: {failed.message}"


def test_without_a_saved_engine_the_notebook_says_so_and_uses_the_reference(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    setup = next(cell for cell in _cells(NETWORK) if _grade_id(cell) == "setup")
    namespace: dict = {}
    exec("".join(setup["source"]), namespace)
    assert namespace["engine"].source == "reference"
    assert "reference engine: there is no my_engine.py" in capsys.readouterr().out
    x = namespace["Variable"](np.array(2.0))
    y = 1.0 / x + x ** 3 + namespace["relu"](x - 3.0)  # 06's engine: operators, Div, Pow, ReLU
    y.backward()
    assert (float(y.data), float(x.grad)) == (8.5, 11.75)


#: (solution cells left blank, test cells that must pass all the same)
CASCADES = [
    (["sum-to-code", "broadcast-code"],
     ["sum-backward", "reshape-transpose", "matmul-backward", "cross-entropy", "mlp"]),
    (["sum-code", "matmul-code", "cross-entropy-code"], ["sum-to", "broadcast", "reshape-transpose", "mlp"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("blanks, passing", CASCADES)
def test_a_blank_exercise_fails_only_its_own_tests(tmp_path, monkeypatch, blanks, passing):
    monkeypatch.chdir(tmp_path)
    results, _ = _test_results(blanks)
    assert {grade_id: results[grade_id] for grade_id in passing if results[grade_id]} == {}
    own = {"sum-to-code": "sum-to", "broadcast-code": "broadcast", "sum-code": "sum-backward",
           "matmul-code": "matmul-backward", "cross-entropy-code": "cross-entropy"}
    assert all("NotImplementedError" in results[own[blank]] for blank in blanks)
    assert results["train"] is not None  # training runs on the notebook's own engine, blanks included
