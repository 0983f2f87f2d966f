"""A student's engine carried from one notebook to the next (autograd_lab.carry)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

from autograd_lab import carry

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "import numpy as np\n"
    "class Function:\n"
    "    def __call__(self, *xs):\n"
    "        return self.forward(*xs)\n",
    "class Square(Function):\n"
    "    def forward(self, x):\n"
    "        return x ** 2\n"
    "class Quiet(Square):\n"
    "    pass\n"
    "def as_array(x):\n"
    "    return np.array(x) if np.isscalar(x) else x\n",
    # A second definition of Square, in a later cell: the newest is the one saved.
    "class Square(Function):\n"
    "    def forward(self, x):\n"
    "        return x * x * 1.0\n",
]


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    for cell in CELLS:
        assert shell.run_cell(cell).success
    yield shell


def test_saved_cells_load_in_a_fresh_process_as_the_students_engine(shell, tmp_path):
    ns = shell.user_ns
    path = carry.save_engine(ns["Function"], ns["Square"], ns["Quiet"], ns["as_array"])
    text = path.read_text()
    assert "x * x * 1.0" in text and "x ** 2" not in text  # the newest definition
    assert "class Quiet(Square):\n    pass" in text  # a class without methods of its own
    engine = carry.load_engine(["Function", "Square", "Quiet", "as_array"])
    assert engine.source == "yours"
    assert engine.Square()(np.array(3.0)) == 9.0 and engine.Quiet()(2.0) == 4.0


def test_a_lambda_or_an_unknown_object_is_refused_with_what_to_do(shell):
    with pytest.raises(carry.EngineError, match="as a `def`"):
        carry.save_engine(lambda x: x)
    with pytest.raises(carry.EngineError, match="not a function or a class"):
        carry.save_engine(3)
    with pytest.raises(carry.EngineError, match="name what to save"):
        carry.save_engine()


@pytest.mark.parametrize("content, reason", [
    (None, "there is no my_engine.py"),
    ("class Variable(:\n", "does not import: SyntaxError"),
    ("class Function:\n    pass\n", "has no Variable"),
])
def test_a_missing_or_broken_file_falls_back_to_the_reference_and_says_why(tmp_path, monkeypatch, capsys,
                                                                         content, reason):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / carry.ENGINE_FILE).write_text(content)
    engine = carry.load_engine(["Variable", "Function"])
    assert engine.source == "reference"
    from autograd_lab import reference05
    assert engine.Variable is reference05.Variable
    out = capsys.readouterr().out
    assert "reference engine" in out and reason in out


def test_into_runs_the_engine_in_the_notebooks_namespace_so_a_later_class_replaces_it(shell, tmp_path):
    ns = shell.user_ns
    carry.save_engine(ns["Function"], ns["Square"], ns["as_array"])
    (tmp_path / carry.ENGINE_FILE).write_text(
        (tmp_path / carry.ENGINE_FILE).read_text() + "\ndef square(x):\n    return Square()(x)\n")
    notebook: dict = {}
    engine = carry.load_engine(["Square", "square"], into=notebook)
    assert engine.source == "yours" and notebook["square"](3.0) == 9.0
    exec("class Square(Function):\n    def forward(self, x):\n        return -x\n", notebook)
    assert notebook["square"](3.0) == -3.0  # the function sees the notebook's new class
    fallback: dict = {}
    assert carry.load_engine(["Variable", "Mul"], path="missing.py", into=fallback).source == "reference"
    assert "Variable" in fallback and "Mul" in fallback


def test_a_save_that_cannot_write_says_so_and_the_notebook_goes_on(shell, tmp_path, capsys):
    ns = shell.user_ns
    assert carry.save_engine(ns["Function"], ns["Square"], path=tmp_path / "no such folder" / "my_engine.py") is None
    out = capsys.readouterr().out
    assert "was not saved" in out and "reference engine" in out


def test_load_engine_takes_the_first_of_several_places(shell, tmp_path, capsys):
    ns = shell.user_ns
    (tmp_path / "05").mkdir()
    carry.save_engine(ns["Function"], ns["Square"], path=tmp_path / "05" / "my_engine.py")
    places = ["my_engine.py", str(tmp_path / "05" / "my_engine.py")]
    assert carry.load_engine(["Square"], path=places).source == "yours"
    assert f"Using your engine from {tmp_path / '05' / 'my_engine.py'}" in capsys.readouterr().out
    assert carry.load_engine(["Square"], path=["my_engine.py", "elsewhere.py"]).source == "reference"
    assert "there is no my_engine.py or elsewhere.py" in capsys.readouterr().out


def test_the_imports_a_definition_uses_go_into_the_file(shell, tmp_path):
    assert shell.run_cell("import heapq\nfrom math import sqrt\n"
                          "def smallest_root(xs):\n"
                          "    heap = list(xs)\n"
                          "    heapq.heapify(heap)\n"
                          "    return sqrt(heap[0])\n").success
    path = carry.save_engine(shell.user_ns["smallest_root"])
    text = path.read_text()
    assert "from math import sqrt\nimport heapq\nimport weakref\n\nimport numpy as np\n" in text  # standard first
    notebook: dict = {}
    exec(compile(text, str(path), "exec"), notebook)  # a namespace that never imported heapq nor sqrt
    assert notebook["smallest_root"]([9.0, 4.0, 16.0]) == 2.0


def test_the_reference_engine_is_run_by_the_saved_file_not_copied_and_the_notebooks_names_win(tmp_path, monkeypatch):
    """A notebook that continued with the reference engine saves it as one call, then its own definitions."""
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.user_ns.clear()
    engine = carry.load_engine(["Variable", "Function", "Add", "Mul"], path="missing.py", into=shell.user_ns)
    assert engine.source == "reference"
    assert shell.run_cell("import numpy as np\n"
                          "class Neg(Function):\n"
                          "    def forward(self, x):\n"
                          "        return -x\n"
                          "    def backward(self, gy):\n"
                          "        return -gy\n"
                          "def neg(x):\n"
                          "    return Neg()(x)\n").success
    ns = shell.user_ns
    path = carry.save_engine(ns["Variable"], ns["Function"], ns["Add"], ns["Neg"], ns["neg"])
    text = path.read_text()
    assert "_carry.run_reference(globals())" in text and "class Neg(Function)" in text
    assert "class Variable" not in text and "def backward(self: Any)" not in text
    notebook: dict = {}
    loaded = carry.load_engine(["Variable", "Neg", "neg"], into=notebook)
    assert loaded.source == "yours"
    x = notebook["Variable"](np.array(3.0))
    y = -x  # the reference Variable's operator calls the file's neg, which replaced the reference's
    assert isinstance(y.creator, notebook["Neg"]) and y.data == -3.0
    y.backward()
    assert x.grad == -1.0


def _cell(assignment: str, cell_id: str) -> str:
    path = ROOT / "course" / "source" / assignment / f"{assignment}.ipynb"
    return "".join(next(c for c in json.loads(path.read_text())["cells"] if c.get("id") == cell_id)["source"])


def _saved_names(assignment: str) -> list[str]:
    source = _cell(assignment, "save-engine")
    call = source[source.index("carry.save_engine("):]
    return re.findall(r"\b([A-Za-z_]\w*)\s*(?=[,)])", call[:call.index("title=")])


def test_what_05_saves_is_what_06_loads_and_the_reference_has_everything_06_saves():
    load = _cell("06-complete-engine", "load-engine")
    loaded = re.findall(r'"(\w+)"', load[:load.index("path=")])
    saved05, saved06 = _saved_names("05-build-your-own-autograd"), _saved_names("06-complete-engine")
    assert sorted(loaded) == sorted(saved05)
    assert set(saved05) <= set(saved06) and len(saved06) == 27
    from autograd_lab import reference05

    assert [name for name in saved06 if not hasattr(reference05, name)] == []


def _run(notebook: Path, folder: Path):
    """Run a source notebook (solutions in) top to bottom in ``folder``, with this checkout's package."""
    import os

    import nbformat
    from nbclient import NotebookClient

    from grader.notebooks import PlainRun

    folder.mkdir(exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    run = PlainRun(nb, 0.0)
    outputs = {c.get("id"): "".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"}
    return run, outputs


@pytest.mark.slow
def test_the_solved_05_saves_an_engine_the_solved_06_runs_on_and_06_alone_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "")
    source = ROOT / "course" / "source"
    alone, out = _run(source / "06-complete-engine" / "06-complete-engine.ipynb", tmp_path / "alone")
    assert "Using the course's reference engine: there is no my_engine.py" in out["load-engine"]
    assert all(alone.test_results().values()) and not alone.errors_outside_tests()
    assert "from the reference engine" in out["save-engine"]

    course = tmp_path / "workspace"
    course.mkdir()
    first, out05 = _run(source / "05-build-your-own-autograd" / "05-build-your-own-autograd.ipynb",
                        course / "05-build-your-own-autograd")
    assert all(first.test_results().values()) and "Saved as_array, Function, Variable" in out05["save-engine"]
    second, out06 = _run(source / "06-complete-engine" / "06-complete-engine.ipynb", course / "06-complete-engine")
    assert "Using your engine from ../05-build-your-own-autograd/my_engine.py" in out06["load-engine"]
    assert all(second.test_results().values()) and not second.errors_outside_tests()
    assert "1876, gradient (-5376, 8064)" in out06["acceptance-functions"]
    saved = (course / "06-complete-engine" / "my_engine.py").read_text()
    assert "run_reference" not in saved and "class Div(Function)" in saved and "import heapq" in saved

    # The complete engine, in a namespace of its own as notebook 08 will load it: micrograd's example.
    monkeypatch.chdir(course / "06-complete-engine")
    ns: dict = {}
    assert carry.load_engine(["Variable", "relu"], into=ns).source == "yours"
    a, b = ns["Variable"](np.array(-4.0)), ns["Variable"](np.array(2.0))
    c, d = a + b, a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + ns["relu"](b + a)
    d += 3 * d + ns["relu"](b - a)
    f = (c - d) ** 2
    g = f / 2.0 + 10.0 / f
    g.backward()
    assert np.allclose([g.data, a.grad, b.grad], [24.7041, 138.8338, 645.5773], atol=1e-4)


def test_while_grading_a_notebook_runs_on_the_reference_whatever_file_is_beside_it(shell, tmp_path, monkeypatch,
                                                                                  capsys):
    """nbgrader's autograde (and this course's grader) set NBGRADER_EXECUTION=autograde: a file another
    notebook's grading saved, or the student put beside the notebook, is not what it is graded on."""
    ns = shell.user_ns
    carry.save_engine(ns["Function"], ns["Square"], ns["as_array"])
    assert carry.load_engine(["Function"]).source == "yours"
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert carry.load_engine(["Function"]).source == "reference"
    assert "while grading, every notebook runs on the reference engine" in capsys.readouterr().out
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # a student's validation: their own engine
    assert carry.load_engine(["Function"]).source == "yours"
