"""A student's engine carried from one notebook to the next (autograd_lab.carry)."""
import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

from autograd_lab import carry

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
