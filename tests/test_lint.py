"""Release lints: of an exercise's promises (visible checks check what hidden ones do; hints do not hold the
solution), of its test cells (they bind only ``_private`` names) and of its demo cells (grading skips them, so
nothing graded may take a name from one)."""
from __future__ import annotations

import pytest

from autograd_lab.checks import AuthoringError
from grader.authoring.lint import check_kinds, solution_in_hint_problems, visible_promise_problems
from grader.autograde.plan import demo_cell_problems, lint_test_cell


@pytest.mark.parametrize("visible, hidden, missing", [
    ("checks.close(f(1.0), 2.0)", "checks.backward(f, _ref, _inputs)", "gradients"),
    ("checks.close(derivative(poly, 2.0), 8.0)", "checks.close(derivative(poly, _x), _y, forbid_torch=True)",
     "no PyTorch"),
    ("checks.tensor(make(3.0), _t)", "checks.tensor(make(_v), _t, requires_grad=True)", "requires_grad"),
    ("checks.close(step(_m), 0.7)", "checks.steps(step, _rows, _inputs)", "steps in a row"),
    ("checks.backward(f, _ref, _inputs, leaf=Variable)", "checks.backward(f, _ref, _more, leaf=Variable)", None),
    ("checks.function(f, _ref, _inputs)", "checks.function(f, _ref, _more)\nchecks.close(f(_x), _y)", None),
])
def test_a_property_only_hidden_tests_check_is_a_problem(visible, hidden, missing):
    source = f"from autograd_lab import checks\n{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS\n"
    problems = visible_promise_problems("cell", source)
    if missing is None:
        assert problems == []
    else:
        assert len(problems) == 1 and missing in problems[0]


def test_keyword_arguments_that_are_not_properties_add_none():
    assert check_kinds("checks.backward(f, r, i, leaf=Variable)") == {"value", "gradients"}
    assert check_kinds("checks.graph(o, s, leaf=Variable, forbid_torch=False)") == {"value", "gradients"}
    assert check_kinds("checks.tensor(t, requires_grad=None)") == {"a tensor"}


def _exercise(task: str, hint: str, solution: str) -> list[dict]:
    return [
        {"cell_type": "markdown", "source": task + f"\n\n<details><summary>Hint 1</summary>\n\n{hint}\n\n</details>\n"
                                                  "<details><summary>Hint 2</summary>\n\n`return gy, gy`\n\n</details>"},
        {"cell_type": "code", "metadata": {"nbgrader": {"solution": True, "grade_id": "add-answer"}},
         "source": f"def backward(self, gy):\n    ### BEGIN SOLUTION\n{solution}\n    ### END SOLUTION\n"},
    ]


def test_a_first_hint_that_holds_the_solution_is_reported_and_a_later_one_is_not():
    solution = "    return gy, gy"
    assert solution_in_hint_problems(_exercise("Write `Add.backward`.", "`return gy, gy`", solution))
    assert not solution_in_hint_problems(_exercise("Write `Add.backward`.", "What is dy/dx0?", solution))


# -- test cells bind only _private names (grader/autograde/plan.py) --------------------------------


@pytest.mark.parametrize("source, bound", [
    ("_x = 1", None),
    ("_t: int = 1", None),
    ("_x.attr = 1\n_d['k'] = 1", None),  # changes an object, binds no name
    ("import numpy as np\nfrom autograd_lab import checks", None),  # imports are allowed
    ("def _helper():\n    x = 1", None),  # a function's body is a scope of its own
    ("_y = [i for i in range(3)]", None),  # and so is a comprehension's
    ("_f = lambda x: x", None),
    ("%time _x = 1", None),  # IPython syntax is read as the kernel reads it
    ("x = 1", "x"),
    ("x += 1", "x"),
    ("a, _b = 1, 2", "a"),
    ("(y := 3)", "y"),
    ("for i in range(3):\n    pass", "i"),
    ("with open('f') as fh:\n    pass", "fh"),
    ("global z\nz = 1", "z"),
    ("def helper():\n    pass", "helper"),
    ("async def g():\n    pass", "g"),
    ("class K:\n    pass", "K"),
], ids=["private", "annotated", "attribute-and-item", "imports", "function-body", "comprehension", "lambda", "magic",
        "assign", "augmented", "unpacking", "walrus", "for-loop", "with", "global", "def", "async-def", "class"])
def test_lint_test_cell(source, bound):
    if bound is None:
        lint_test_cell("test-x", source)
    else:
        with pytest.raises(AuthoringError, match=f"test cell 'test-x' binds the name '{bound}': call it _{bound}"):
            lint_test_cell("test-x", source)


def test_lint_test_cell_reports_a_syntax_error():
    with pytest.raises(AuthoringError, match="test cell 'test-x' has a syntax error"):
        lint_test_cell("test-x", "def (:")


# -- what grading runs takes nothing from a demo cell (grader/autograde/plan.py) ---------------------


def _code(source, *, demo: bool = False, grade_id: str | None = None, locked: bool = True) -> dict:
    """A code cell as a notebook file holds it; ``demo``: tagged demo (read-only unless ``locked`` is False)."""
    nbgrader = {"grade_id": grade_id} if grade_id else {}
    metadata = {"nbgrader": nbgrader}
    if demo:
        metadata["tags"] = ["demo"]
        nbgrader["locked"] = locked
    return {"cell_type": "code", "source": source, "metadata": metadata}


@pytest.mark.parametrize("cells, taken", [
    ([_code("fig = 1", demo=True), _code("print(fig)")], [("cell 1", "fig", "cell 0")]),
    ([_code("import matplotlib.pyplot as plt", demo=True), _code("plt.show()")], [("cell 1", "plt", "cell 0")]),
    ([_code("def helper():\n    return 1", demo=True), _code("helper()")], [("cell 1", "helper", "cell 0")]),
    ([_code("a = 1\nb = 2", demo=True), _code("print(b, a)")], [("cell 1", "a", "cell 0"), ("cell 1", "b", "cell 0")]),
    ([_code("fig = 1", demo=True, grade_id="fig-demo"), _code("print(fig)", grade_id="ex1")],
     [("ex1", "fig", "fig-demo")]),
    ([_code(["x = ", "1"], demo=True), _code("print(x)")], [("cell 1", "x", "cell 0")]),  # source as a list of lines
    ([_code("%matplotlib inline\nx = 1", demo=True), _code("print(x)")], [("cell 1", "x", "cell 0")]),
    ([_code("x = 1", demo=True), _code("x = 2\nprint(x)")], []),  # bound again before use, in the same cell
    ([_code("x = 1", demo=True), _code("x = 2"), _code("print(x)")], []),  # bound again by a graded cell
    ([_code("x = 1", demo=True), _code("print(x)", demo=True)], []),  # demo cells may share names
    ([_code("x = 1", demo=True), _code("def f(x):\n    return x")], []),  # an argument
    ([_code("x = 1", demo=True), _code("def f(*x, **k):\n    return x")], []),  # star arguments
    ([_code("x = 1", demo=True), _code("[x for x in range(3)]")], []),  # a comprehension's own name
    ([_code("x = 1", demo=True, locked=False), _code("print(x)")], []),  # not read-only: not a demo cell
    ([{"cell_type": "markdown", "source": "fig = 1", "metadata": {}}, _code("print(fig)")], []),
    ([_code("def (:", demo=True), _code("print(fig)")], []),  # a syntax error: release reports it elsewhere
], ids=["name", "import", "function", "two-names", "grade-ids", "list-source", "magic", "bound-in-the-cell",
        "bound-again", "demo-to-demo", "argument", "star-arguments", "comprehension", "unlocked-demo", "markdown",
        "syntax-error"])
def test_demo_cell_problems(cells, taken):
    assert demo_cell_problems(cells) == [
        f"{cell} uses {name!r}, which only the demo cell {demo} defines; grading skips demo cells: define it in a "
        "cell that is not tagged demo" for cell, name, demo in taken]
