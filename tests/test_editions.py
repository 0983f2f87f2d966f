"""Editions in other languages (grader/authoring/translate.py): one source, translations keyed by cell id,
released beside the English student versions and graded with the same tests."""
from __future__ import annotations

import json
import re

import nbformat
import pytest

from fixture_course import CORRECT, ROOT, WRONG, _answered
from grader.authoring import translate
from grader.cli import main
from grader.notebooks import fill_solutions, is_solution_cell

INTRO_JA = "# 問題集 1\n小さな演習が三つあります。"
IMPORTS_JA = "import numpy as np  # 数値計算\nimport torch  # 自動微分"


DOCSTRINGS_JA = {
    "d/dx x² at x, with PyTorch's autograd.": "x における x² の導関数 (PyTorch の自動微分で)。",
    "A float tensor holding ``values`` that requires grad.": "``values`` を持ち、勾配を求める浮動小数点テンソル。",
    "The gradient of sum(x²) at the numpy array x, without PyTorch.": "numpy 配列 x における sum(x²) の勾配 "
                                                                     "(PyTorch を使わずに)。",
}


def _translate_ps1(course_dir, *, imports: str = IMPORTS_JA) -> None:
    """A complete Japanese translation of the fixture's ps1: its Markdown cell, its (read-only) imports and the
    docstrings of its solution cells."""
    source = nbformat.read(course_dir / "source" / "ps1" / "ps1.ipynb", as_version=4)
    english = {cell.id: cell.source for cell in source.cells}
    path = translate.translation_path(course_dir, "ja", "ps1")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("<!-- translation: ja; source: course/source/ps1/ps1.ipynb -->\n\n"
            f"<!-- cell intro en:{translate.fingerprint(english['intro'])} -->\n{INTRO_JA}\n\n"
            f"<!-- cell imports en:{translate.fingerprint(english['imports'])} -->\n{imports}\n\n")
    for grade_id in ("square-grad", "make-leaf", "norm-grad"):
        body = english[grade_id]
        for en, ja in DOCSTRINGS_JA.items():
            body = body.replace(en, ja)
        text += f"<!-- cell {grade_id} en:{translate.fingerprint(english[grade_id])} -->\n{body}\n\n"
    path.write_text(text, encoding="utf-8")


def _problems(course_dir) -> dict[str, list[str]]:
    source = nbformat.read(course_dir / "source" / "ps1" / "ps1.ipynb", as_version=4)
    return translate.problems(source, translate.load(course_dir, "ja", "ps1"))


def test_a_complete_translation_has_no_problems_and_a_changed_english_cell_makes_it_stale(course_dir):
    _translate_ps1(course_dir)
    assert not any(_problems(course_dir).values())
    path = course_dir / "source" / "ps1" / "ps1.ipynb"
    source = nbformat.read(path, as_version=4)
    source.cells[0].source += " (now four)"
    nbformat.write(source, path)
    found = _problems(course_dir)
    assert len(found["stale"]) == 1 and "cell intro: the English changed since" in found["stale"][0]
    # `translate --stamp --cell intro` says the translation still holds: it is current again
    assert main(["translate", "--course", str(course_dir), "--stamp", "ps1", "--cell", "intro"]) == 0
    assert not any(_problems(course_dir).values())


@pytest.mark.parametrize("imports, kind, says", [
    ("import numpy as npx  # 数値計算\nimport torch", "code", "changes the code"),
    ("import numpy as np\nimport torch\nprint('追加')", "code", "changes the code"),
    ("", "missing", "is empty"),
])
def test_a_translation_may_change_only_comments_and_strings(course_dir, imports, kind, says):
    _translate_ps1(course_dir, imports=imports)
    found = _problems(course_dir)
    assert len(found[kind]) == 1 and says in found[kind][0], found


def test_test_cells_are_never_translated_and_unknown_or_malformed_entries_are_reported(course_dir):
    _translate_ps1(course_dir)
    path = translate.translation_path(course_dir, "ja", "ps1")
    source = nbformat.read(course_dir / "source" / "ps1" / "ps1.ipynb", as_version=4)
    test = next(cell for cell in source.cells if cell.id == "test-square-grad")
    path.write_text(path.read_text(encoding="utf-8")
                    + f"\n<!-- cell test-square-grad en:{translate.fingerprint(test.source)} -->\n{test.source}\n"
                    + "\n<!-- cell gone en:0123456789ab -->\n消えたセル\n\n<!-- cell broken -->\n", encoding="utf-8")
    found = _problems(course_dir)
    assert any("a test cell is never translated" in p for p in found["code"])
    assert any("no cell has this id" in p for p in found["unknown"])
    assert any("malformed cell marker" in p for p in found["format"])


def test_add_writes_the_english_to_translate_and_stamp_marks_it_current(course_dir, capsys):
    assert main(["translate", "--course", str(course_dir), "--add", "ps1"]) == 0
    path = translate.translation_path(course_dir, "ja", "ps1")
    text = path.read_text(encoding="utf-8")
    assert "<!-- cell intro en:TODO -->\n# Problem set 1" in text and "test-square-grad" not in text
    assert main(["translate", "--course", str(course_dir), "ps1"]) == 1  # --status: stale (TODO) entries
    assert "not yet stamped" in capsys.readouterr().out
    for en, ja in {"# Problem set 1\nThree small exercises.": INTRO_JA, **DOCSTRINGS_JA}.items():
        text = text.replace(en, ja)
    path.write_text(text, encoding="utf-8")
    assert main(["translate", "--course", str(course_dir), "--stamp", "ps1"]) == 0
    assert main(["translate", "--course", str(course_dir), "ps1"]) == 0
    assert "complete" in capsys.readouterr().out
    assert main(["translate", "--course", str(course_dir), "--stamp", "ps1", "--cell", "nope"]) != 0
    assert "no translated cell nope" in capsys.readouterr().err


def _ja_answered(course_dir, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The Japanese student version with the same answers as fixture_course._answered puts in the English one."""
    nb = nbformat.read(translate.edition_release(course_dir, "ja") / "ps1" / "ps1.ipynb", as_version=4)
    heads = {cell.metadata.nbgrader.grade_id: cell.source.split("# YOUR CODE HERE")[0]
             for cell in nb.cells if is_solution_cell(cell)}
    return fill_solutions(nb, {grade_id: heads[grade_id] + body for grade_id, body in answers.items()})


@pytest.mark.slow
def test_release_makes_the_japanese_edition_and_both_editions_grade_alike(course_dir):
    _translate_ps1(course_dir)
    assert main(["release", "--course", str(course_dir), "ps1"]) == 0  # checks both: source passes, blank fails
    english = nbformat.read(course_dir / "release" / "ps1" / "ps1.ipynb", as_version=4)
    japanese = nbformat.read(translate.edition_release(course_dir, "ja") / "ps1" / "ps1.ipynb", as_version=4)
    assert translate.structure_problems(english, japanese) == []
    assert INTRO_JA in [cell.source for cell in japanese.cells]
    assert "release-ja/ps1/ps1.ipynb" in japanese.cells[0].source  # its Colab badge opens the Japanese notebook
    assert "i18n.set_language('ja')" in japanese.cells[1].source
    assert translate.edition_of(japanese) == "ja" and translate.edition_of(english) is None

    partly = dict(CORRECT, **{"make-leaf": WRONG["make-leaf"], "norm-grad": WRONG["norm-grad"]})
    submissions = {"en-correct": _answered(course_dir, CORRECT), "ja-correct": _ja_answered(course_dir, CORRECT),
                   "en-partly": _answered(course_dir, partly), "ja-partly": _ja_answered(course_dir, partly)}
    for student, nb in submissions.items():
        folder = course_dir / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "ps1.ipynb")
    assert main(["autograde", "--course", str(course_dir), "--workers", "2", "--no-progress"]) == 0
    results = {student: json.loads((course_dir / ".grader" / "results" / "ps1" / f"{student}.json").read_text())
               for student in submissions}
    scores = {student: record["notebooks"]["ps1"]["score"] for student, record in results.items()}
    assert scores == {"en-correct": 5.0, "ja-correct": 5.0, "en-partly": 2.0, "ja-partly": 2.0}
    assert results["ja-correct"]["notebooks"]["ps1"]["flags"] == []  # translated read-only cells are no edit
    graded = nbformat.read(course_dir / "autograded" / "ja-partly" / "ps1" / "ps1.ipynb", as_version=4)
    assert IMPORTS_JA in [cell.source for cell in graded.cells]  # kept as released, not replaced by the English
    failed = next(cell for cell in graded.cells if cell.get("id") == "test-make-leaf")
    text = "".join(output.get("text", "") + output.get("evalue", "") for output in failed.outputs)
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), f"the check's message is not in Japanese: {text}"
    assert "解答:" in text and "got:" not in text  # the verdict's labels too

    # The feedback pages: a Japanese submission's page speaks Japanese, an English one's English.
    assert main(["feedback", "--course", str(course_dir), "--no-progress"]) == 0
    japanese_page = (course_dir / "feedback" / "ja-partly" / "ps1" / "ps1.html").read_text(encoding="utf-8")
    english_page = (course_dir / "feedback" / "en-partly" / "ps1" / "ps1.html").read_text(encoding="utf-8")
    assert "採点済みです。" in japanese_page and "Graded." not in japanese_page
    assert "Graded." in english_page and "採点済みです。" not in english_page
    for english in ["(Score: ", "Student's answer", "Grade cell:", "(Top)"]:  # nbgrader's template's own words
        assert english not in japanese_page and english in english_page, english
    assert "(得点: " in japanese_page and "採点セル: <code>" in japanese_page
    assert "_package" not in japanese_page and "Open In Colab" not in english_page  # no set-up cell, no badge
    kept = ROOT / "build" / "feedback"  # to look at, as the browser tests' screenshots
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "ps1-ja.html").write_text(japanese_page, encoding="utf-8")


def test_japanese_figures_have_a_font_with_japanese_glyphs(recwarn):
    """In Japanese, set_language makes matplotlib draw Japanese labels (no "Glyph missing" warnings)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autograd_lab import i18n

    try:
        i18n.set_language("ja")
        figure, axes = plt.subplots()
        axes.set_title("勾配降下法の損失")
        axes.set_xlabel("学習率")
        figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)
    finally:
        i18n.set_language(None)
    missing = [str(w.message) for w in recwarn if "missing from" in str(w.message)]
    assert not missing, missing
