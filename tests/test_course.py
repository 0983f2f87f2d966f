"""The course's notebooks: they teach, their tests test, and students get exactly what release makes.

* every source runs top to bottom in a real kernel with all its tests passing, and
  every student version runs to the end with all its graded tests failing (so the
  tests can fail);
* the secure grader gives the solutions full marks and the blanks nothing (it
  plans every test cell, skips the `demo` cells, judges outside the kernel);
* ``course/release`` is exactly what ``release`` generates from the sources, and
  tracked notebooks hold no outputs;
* each notebook has at least six graded exercises with hidden tests, figures,
  hints and a summary, and its student version opens on Colab.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.notebooks import fill_solutions, instructor_answers, is_solution_cell, is_test_cell

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())


def _course_copy(tmp_path: Path, *, release: bool) -> Path:
    """The course's configuration and sources (and student versions) in a scratch course directory."""
    copy = tmp_path / "course"
    copy.mkdir()
    shutil.copy(COURSE / "nbgrader_config.py", copy)
    shutil.copytree(COURSE / "source", copy / "source")
    shutil.copytree(COURSE / "translations", copy / "translations")  # the editions in other languages
    if release:
        shutil.copytree(COURSE / "release", copy / "release")
    return copy


def _notebook(kind: str, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(COURSE / kind / assignment / f"{assignment}.ipynb", as_version=4)


def test_the_course_has_its_eight_notebooks():
    assert ASSIGNMENTS == ["01-tensors", "02-backward", "03-gradient-descent", "04-how-computers-differentiate",
                           "05-build-your-own-autograd", "06-complete-engine", "07-forward-mode", "08-neural-network"]


#: No notebook over about 80 cells or 4,000 words of prose (issue 18). A notebook over a bound would be listed
#: here with what it had when the bound was set, so that it cannot grow; none is (02 and 03 were shortened).
MAX_CELLS, MAX_PROSE_WORDS = 80, 4000
ALLOWED: dict[str, dict[str, int]] = {}


def prose_words(markdown: str) -> int:
    """Words of prose in a markdown cell: fenced code blocks, LaTeX and HTML tags left out."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return sum(1 for word in text.split() if re.search(r"\w", word))


def test_prose_words_leave_out_code_latex_and_tags():
    assert prose_words("Two words $x^2 + y$ here\n\n```python\nx = 1\n```\n<details><summary>Hint</summary>\n"
                       "$$\\frac{a}{b}$$ - `x.grad` ok") == 6


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_notebook_is_longer_than_a_lesson(assignment):
    cells = _notebook("source", assignment).cells
    words = sum(prose_words(cell.source) for cell in cells if cell.cell_type == "markdown")
    allowed = ALLOWED.get(assignment, {})
    assert len(cells) <= allowed.get("cells", MAX_CELLS), f"{assignment}: {len(cells)} cells"
    assert words <= allowed.get("words", MAX_PROSE_WORDS), f"{assignment}: {words} words of prose"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_notebook_is_a_complete_lesson(assignment):
    source = _notebook("source", assignment)
    tests = [cell for cell in source.cells if is_test_cell(cell)]
    assert len(tests) >= 6, "at least six graded exercises"
    for cell in tests:
        meta = cell.metadata.nbgrader
        assert meta.points > 0 and meta.locked, meta.grade_id
        assert "### BEGIN HIDDEN TESTS" in cell.source, f"{meta.grade_id} has no hidden tests"
        hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
        assert "checks." in hidden, f"{meta.grade_id}: hidden tests must go through the checks"
    markdown = "\n".join(cell.source for cell in source.cells if cell.cell_type == "markdown")
    code = "\n".join(cell.source for cell in source.cells if cell.cell_type == "code")
    assert markdown.count("<details>") >= 3, "hints a stuck student can open"
    assert "summary" in markdown.lower()
    drawings = code.count("draw_torch_graph(") + code.count("plot_dot_graph(") + code.count("\ndraw_dot(")
    assert code.count("plt.show()") + drawings >= 2, "figures"
    solutions = [cell for cell in source.cells if is_solution_cell(cell)]
    assert all("### BEGIN SOLUTION" in cell.source for cell in solutions)


def test_the_first_four_notebooks_have_at_least_25_exercises():
    count = sum(sum(1 for c in _notebook("source", a).cells if is_test_cell(c)) for a in ASSIGNMENTS[:4])
    assert count >= 25


@pytest.mark.parametrize("kind", ["source", "release"])
def test_tracked_notebooks_hold_no_outputs(kind):
    for assignment in ASSIGNMENTS:
        for cell in _notebook(kind, assignment).cells:
            assert not cell.get("outputs"), f"{kind}/{assignment} has outputs: clear them"
            assert cell.get("execution_count") is None


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_versions_open_on_colab(assignment):
    from traitlets.config.loader import PyFileConfigLoader

    repository = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config().AddColabCells.repository
    cells = _notebook("release", assignment).cells
    badge, setup = cells[0], cells[1]
    assert f"colab.research.google.com/github/{repository.removeprefix('https://github.com/')}" in badge.source
    assert f"course/release/{assignment}/{assignment}.ipynb" in badge.source
    # The set-up needs no repository address: it carries the package (tests/test_colab.py runs it).
    assert '"google.colab" in sys.modules' in setup.source and repository not in setup.source
    assert "_package = (" in setup.source and setup.metadata.get("cellView") == "form"
    assert "BEGIN SOLUTION" not in json.dumps(nbformat.writes(_notebook("release", assignment)))
    assert "BEGIN HIDDEN TESTS" not in "".join(c.source for c in cells)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_student_version_answered_with_the_instructors_solutions(assignment):
    """``fill_solutions(release, instructor_answers(source))``: every solution cell holds the source's code without
    the solution markers, every other cell is the student version's, and the student version is left as it was."""
    source, release = _notebook("source", assignment), _notebook("release", assignment)
    answers = instructor_answers(source)
    filled = fill_solutions(release, answers)
    assert [c.source for c in filled.cells if is_solution_cell(c)] == list(answers.values())
    assert [c.source for c in source.cells if is_solution_cell(c)] != list(answers.values())
    assert not any(marker in answer for answer in answers.values() for marker in ("BEGIN SOLUTION", "END SOLUTION"))
    assert [c for c in filled.cells if not is_solution_cell(c)] == [c for c in release.cells if not is_solution_cell(c)]
    assert release == _notebook("release", assignment)
    passing = instructor_answers(source, region=lambda indent, code: f"{indent}pass\n")
    assert all(answer.count("pass\n") >= 1 and "BEGIN SOLUTION" not in answer for answer in passing.values())


def test_the_exercise_index_in_authoring_md_is_in_step_with_the_notebooks_and_the_tests():
    """course/AUTHORING.md's exercise index is what `python -m grader release --list --write` makes now."""
    from grader.authoring.exercises import BEGIN, END, exercises, markdown, tests_folder
    from grader.course import open_course

    course = open_course(COURSE)
    found = exercises(course, tests_folder(course))
    assert [e.grade_id for e in found] == [c.metadata.nbgrader.grade_id for a in ASSIGNMENTS
                                           for c in _notebook("source", a).cells if is_test_cell(c)]
    text = (COURSE / "AUTHORING.md").read_text(encoding="utf-8")
    committed = text[text.index(BEGIN):text.index(END) + len(END)]
    assert committed == markdown(found), "course/AUTHORING.md's exercise index is stale: run " \
                                         "python -m grader release --list --write"


@pytest.mark.slow
def test_release_is_in_sync_with_the_sources(tmp_path):
    """course/release is what `python -m grader release` generates, byte for byte."""
    copy = _course_copy(tmp_path, release=False)
    result = subprocess.run([sys.executable, "-m", "grader", "release", "--no-check", "--course", str(copy)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for assignment in ASSIGNMENTS:
        generated = (copy / "release" / assignment / f"{assignment}.ipynb").read_text()
        tracked = (COURSE / "release" / assignment / f"{assignment}.ipynb").read_text()
        assert generated == tracked, f"course/release/{assignment} is stale: run python -m grader release {assignment}"
    editions = sorted((COURSE / "translations").glob("*/[0-9]*.md"))
    assert editions, "the course has no edition in another language"
    for translation in editions:
        folder, assignment = f"release-{translation.parent.name}", translation.stem
        generated = (copy / folder / assignment / f"{assignment}.ipynb").read_text()
        tracked = (COURSE / folder / assignment / f"{assignment}.ipynb").read_text()
        assert generated == tracked, f"course/{folder}/{assignment} is stale: run python -m grader release {assignment}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_passes_and_blank_fails_in_a_real_kernel(assignment):
    """What `release` checks: the source passes every test, the blank fails every one."""
    from grader.course import open_course
    from grader.authoring.release import verify

    check = verify(open_course(COURSE), assignment, assignment)
    print(f"{assignment}: " + ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in check.seconds.items()))
    assert not check.problems, "\n".join(check.problems)


@pytest.mark.slow
def test_the_secure_grader_gives_solutions_full_marks_and_blanks_nothing(tmp_path):
    from grader.autograde.run import Autograder
    from grader.course import open_course

    copy = _course_copy(tmp_path, release=True)
    course = open_course(copy)
    from grader.authoring.release import generate

    for assignment in ASSIGNMENTS:
        generate(course, assignment)
        for student, kind in (("solutions", "source"), ("blank", "release")):
            folder = copy / "submitted" / student / assignment
            folder.mkdir(parents=True)
            release = _notebook("release", assignment)
            if kind == "source":  # the student version, answered with the instructor's solutions
                release = fill_solutions(release, instructor_answers(_notebook("source", assignment)))
            nbformat.write(release, folder / f"{assignment}.ipynb")
    summary = Autograder(course, workers=2, progress=False, report=lambda _: None).run()
    problems = []
    for student, assignment, outcome in summary.outcomes:
        expected = outcome.max_score if student == "solutions" else 0.0
        if outcome.status != "graded" or outcome.score != expected:
            failed = [g for g, ok in outcome.tests.items() if ok != (student == "solutions")]
            graded = nbformat.read(course.autograded / student / assignment / f"{assignment}.ipynb", as_version=4)
            messages = [o.get("evalue", "") for c in graded.cells
                        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in failed for o in c.outputs]
            problems.append(f"{student}/{assignment}: {outcome.status} {outcome.score}/{outcome.max_score} "
                            f"{outcome.detail} {failed} {messages} {outcome.flags[:3]}")
        if student == "solutions":
            assert not outcome.flags, f"{assignment}: false alarms {outcome.flags}"
    assert not problems, "\n".join(problems)
    assert len(summary.outcomes) == 2 * len(ASSIGNMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("salt", ["a course secret", "another one"])
def test_hidden_tests_can_be_planned_under_any_salt(assignment, salt):
    """The grader salts the hidden tests' random inputs with a secret of its own: every reference must
    still compute (a random graph whose output node has no edge once stopped a whole class's grading)."""
    from grader.autograde.plan import plan_notebook

    tests = [(cell.metadata.nbgrader.grade_id, cell.source) for cell in _notebook("source", assignment).cells
             if is_test_cell(cell)]
    plan_notebook(tests, salt=salt)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_first_hint_holds_code(assignment):
    """Hints go from a question or a concept to a partial step, and at most to a sketch in a last box labelled
    as one (issue 18): a first hint never shows a code block."""
    for cell in _notebook("source", assignment).cells:
        hints = re.findall(r"<details><summary>([^<]*)</summary>(.*?)</details>", cell.source, flags=re.S)
        if hints:
            title, text = hints[0]
            assert "```" not in text, f"{assignment} {cell.get('id')}: its first hint ({title!r}) shows code"
