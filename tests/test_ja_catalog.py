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


def _extracted() -> set:
    from babel.messages.extract import extract_from_dir

    return {message for _, _, message, _, _ in extract_from_dir(str(PACKAGE), keywords={"_": None, "N_": None,
                                                                                       "ngettext": (1, 2)})}


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


def test_the_catalog_uses_the_glossary_terms():
    """A message holding a glossary term (a whole word, any case) is translated with the glossary's Japanese."""
    terms = _glossary()
    assert len(terms) >= 40 and ("gradient", "勾配") in terms
    problems = []
    for entry in _catalog():
        if not entry.id:
            continue
        english = " ".join(entry.id) if isinstance(entry.id, tuple) else entry.id
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
    assert "期待値と一致しません" in message and "注: 解答は期待値の転置です" in message
    assert "最もずれている要素: 添字 (0, 1): 解答は 2、期待値は 3（4 個の要素のうち 2 個が違います）" in message
    lines = message.splitlines()
    labels = [line for line in lines if line.startswith(("    期待値:", "    解答:"))]
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
