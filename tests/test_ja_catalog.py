"""The Japanese message catalog: every message translated, compiled as committed, shipped, and shown."""
from __future__ import annotations

import base64
import io
import re
import string
import tomllib
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autograd_lab import checks, i18n
from autograd_lab.checks import CheckFailed

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(i18n.__file__).parent
FOLDER = PACKAGE / "locale" / "ja" / "LC_MESSAGES"
GLOSSARY = ROOT / "course" / "translations" / "ja" / "glossary.md"


def _catalog():
    from babel.messages.pofile import read_po

    with open(FOLDER / f"{i18n.DOMAIN}.po", "rb") as handle:
        return read_po(handle, locale="ja", domain=i18n.DOMAIN)


#: The grader's modules whose messages a student reads (feedback pages, the grading kernel's time-outs): they
#: mark them with autograd_lab.i18n's _ and N_, and the same catalog translates them.
GRADER_MODULES = ("grader/outputs/feedback.py", "grader/sandbox/kernel_probes.py", "grader/server/app.py",
                  "grader/server/policy.py", "grader/server/grading.py")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def _extracted() -> set:
    from babel.messages.extract import extract_from_dir, extract_from_file

    messages = {message for _, _, message, _, _ in extract_from_dir(str(PACKAGE), keywords=KEYWORDS)}
    for module in GRADER_MODULES:
        messages |= {message for _, message, _, _ in extract_from_file("python", str(ROOT / module),
                                                                       keywords=KEYWORDS)}
    return messages | _server_page_messages()


def _server_page_messages() -> set:
    """What the course server's pages say (Jinja templates, with ``_()``), as Babel extracts them."""
    import io

    from jinja2.ext import babel_extract

    from grader.server.app import _TEMPLATES

    return {message for template in _TEMPLATES.values()
            for _, _, message, _ in babel_extract(io.BytesIO(template.encode()), list(KEYWORDS), [],
                                                  {"extensions": "jinja2.ext.i18n"})
            if isinstance(message, str)}


def _fields(text: str) -> list[str]:
    """The placeholders of a str.format template, as written ("{got:.6g}"), sorted."""
    return sorted("{" + name + (":" + spec if spec else "") + "}"
                  for _, name, spec, _ in string.Formatter().parse(text) if name is not None)


def _japanese(text: str) -> bool:
    return any(unicodedata.name(c, "").startswith(("CJK UNIFIED", "HIRAGANA", "KATAKANA")) for c in text)


def _glossary() -> list[tuple[str, str]]:
    rows = [line.split("|")[1:3] for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| English")]
    return [(english.strip(), japanese.strip()) for english, japanese in rows]


@pytest.fixture
def japanese():
    i18n.set_language("ja")
    yield
    i18n.set_language(None)


def test_every_message_of_the_package_has_a_japanese_translation_with_the_same_placeholders():
    catalog = _catalog()
    assert catalog.plural_forms == "nplurals=1; plural=0;"
    problems = []
    for message in sorted(_extracted(), key=str):
        entry = catalog.get(message[0] if isinstance(message, tuple) else message)
        strings = entry.string if entry else ()
        translations = [strings] if isinstance(strings, str) else list(strings)
        if not translations or not all(t.strip() for t in translations):
            problems.append(f"untranslated: {message!r}")
            continue
        english = message if isinstance(message, tuple) else (message,)
        for translated in translations:
            if not _japanese(translated):
                problems.append(f"not Japanese: {translated!r}")
            if any(_fields(translated) != _fields(source) for source in english):
                problems.append(f"placeholders differ: {english[0]!r} -> {translated!r}")
    assert not problems, "\n".join(problems)


def test_the_extraction_covers_every_grader_module_that_marks_messages():
    import ast

    marking = set()
    for path in sorted((ROOT / "grader").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module == "autograd_lab.i18n"
                    and {alias.name for alias in node.names} & set(KEYWORDS)):
                marking.add(path.relative_to(ROOT).as_posix())
    assert marking == set(GRADER_MODULES)
    extracted = _extracted()
    assert "**Score:** {score} / {maximum}" in extracted and "Not submitted." in extracted


def test_the_catalog_uses_the_glossary_terms():
    """A message holding a glossary term (a whole word, any case) is translated with the glossary's Japanese."""
    terms = _glossary()
    assert len(terms) >= 40 and ("gradient", "勾配") in terms
    problems = []
    for entry in _catalog():
        if not entry.id:
            continue
        english = " ".join(entry.id) if isinstance(entry.id, tuple) else entry.id
        english = re.sub(r"`[^`]*`|\b\w+=\S*", " ", english)  # code (`x.grad`, gradient=...) is not a term
        translated = " ".join(entry.string) if isinstance(entry.string, tuple) else entry.string
        for word, term in terms:
            if re.search(rf"\b{re.escape(word)}\b", english, re.IGNORECASE) and term not in translated:
                problems.append(f"{word!r} -> {term!r} missing: {translated!r}")
    assert not problems, "\n".join(problems)


def test_the_committed_mo_is_the_po_compiled():
    from babel.messages.mofile import write_mo

    fresh = io.BytesIO()
    write_mo(fresh, _catalog())
    assert (FOLDER / f"{i18n.DOMAIN}.mo").read_bytes() == fresh.getvalue(), (
        "autograd_lab.mo is stale: compile autograd_lab.po again (babel: read_po, then write_mo)")


def test_the_catalog_ships_with_the_package_and_in_the_colab_notebooks():
    from grader.authoring.colab import package_archive

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["autograd_lab"]
    assert any((FOLDER / f"{i18n.DOMAIN}.mo").relative_to(PACKAGE).match(pattern) for pattern in patterns)
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(package_archive()))).namelist()
    assert f"autograd_lab/locale/ja/LC_MESSAGES/{i18n.DOMAIN}.mo" in names


def test_a_failed_check_reads_as_japanese(japanese):
    with pytest.raises(CheckFailed) as failure:
        checks.close(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 3.0], [2.0, 4.0]]))
    message = str(failure.value)
    assert "正解と一致しません" in message and "注: 解答は正解の転置です" in message
    assert "最もずれている要素: 添字 (0, 1): 解答は 2、正解は 3（4 個の要素のうち 2 個が違います）" in message
    lines = message.splitlines()
    labels = [line for line in lines if line.startswith(("    正解:", "    解答:"))]
    columns = {sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line[:line.index("array")])
               for line in labels}
    assert len(labels) == 2 and len(columns) == 1  # the values line up: a CJK character takes two columns
    english = ["expected", "worst element", "does not match", "note:", "transpose"]
    assert not [word for word in english if word in message]


def test_a_diagnosis_and_a_pass_line_read_as_japanese(japanese):
    import torch

    with pytest.raises(CheckFailed) as failure:
        checks.tensor(torch.tensor(3), torch.tensor(3.0), requires_grad=True, dtype="floating")
    assert "考えられる誤り: 勾配を求められるのは浮動小数点数（と複素数）のテンソルだけです" in str(failure.value)
    assert "only floating-point" not in str(failure.value)
    with pytest.raises(CheckFailed) as failure:
        checks.function(lambda x: x * 3, [2.0, 4.0], [(1.0,), (2.0,)])
    assert "（2 個の入力のうち 2 個で答えが違います）" in str(failure.value)
    i18n.set_language(None)
    with pytest.raises(CheckFailed) as failure:
        checks.function(lambda x: x * 3, [2.0, 4.0], [(1.0,), (2.0,)])
    assert "(2 of 2 inputs give a wrong answer)" in str(failure.value)


def test_a_check_without_its_arguments_source_names_the_answer_in_japanese(japanese, capsys):
    """Where the first argument's source cannot be read (exec'd code), the check's label is the fallback."""
    with pytest.raises(CheckFailed) as failure:
        exec("checks.close(2.0, 1.0)", {"checks": checks})
    assert "あなたの解答" in str(failure.value) and "your answer" not in str(failure.value)
    exec("checks.function(lambda x: x * 2, lambda x: x * 2, [(1.0,)])", {"checks": checks})
    assert "✓ あなたの関数:" in capsys.readouterr().out
    i18n.set_language(None)
    with pytest.raises(CheckFailed) as failure:
        exec("checks.close(2.0, 1.0)", {"checks": checks})
    assert "your answer" in str(failure.value)


@pytest.mark.parametrize(("counts", "counting", "english", "japanese_text"), [
    ("best", True, "This attempt is the one that counts (best attempt).",
     "今回の提出が成績に使われます（最高得点の提出を採用）。"),
    ("last", True, "This attempt is the one that counts (last attempt).",
     "今回の提出が成績に使われます（最後の提出を採用）。"),
    ("best", False, "Your best attempt still counts.", "成績には、これまでで最高得点の提出が引き続き使われます。"),
    ("last", False, "Your last attempt still counts.",
     "成績には、これまでに採点された最後の提出が引き続き使われます。"),
])
def test_the_verdict_says_which_attempt_counts_in_each_language(capsys, counts, counting, english, japanese_text):
    from autograd_lab.submit import _print_verdict

    view = {"assignment": "ps1", "verdict": {"score_text": "5 / 5", "summary": "passed"}, "attempts_left": None,
            "counts": counts, "counting": counting}
    _print_verdict(view)
    assert capsys.readouterr().out.splitlines()[-1] == english
    with i18n.speaking("ja"):
        _print_verdict(view)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == japanese_text and counts not in last


def test_the_feedback_status_cell_reads_as_japanese():
    from grader.outputs.feedback import HIDDEN_NOTE, status_markdown
    from grader.records import NotebookOutcome, Status

    outcome = NotebookOutcome("ps1", Status.MEMORY_LIMIT, detail="stopped at 2 GB", score=3.0, max_score=5.0)
    with i18n.speaking("ja"):
        text, note = status_markdown(outcome), i18n._(HIDDEN_NOTE)
    assert text.splitlines()[0].startswith("**採点：** 実行できたところまで採点しました。")
    assert "**得点：** 3 / 5" in text and "**詳細：** stopped at 2 GB" in text
    assert _japanese(note) and "hidden" not in note
    assert status_markdown(outcome).startswith("**Grading:** Graded as far as it ran")


def test_the_carried_engine_says_which_engine_it_uses_in_japanese(japanese, capsys, tmp_path):
    from autograd_lab import carry

    engine = carry.load_engine(["Variable"], path=[tmp_path / "my_engine.py", tmp_path / "elsewhere.py"])
    out = capsys.readouterr().out
    assert engine.source == "reference" and out.startswith("講座の参照用エンジンを使います。理由: ")
    assert "my_engine.py または " in out and "reference engine" not in out
