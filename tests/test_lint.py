"""Release lints of an exercise's promises: visible checks check what hidden ones do; hints do not hold the solution."""
from __future__ import annotations

import pytest

from grader.authoring.lint import check_kinds, solution_in_hint_problems, visible_promise_problems


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
