"""The course's editions in other languages are complete, current and use the glossary's terms."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from grader.authoring import translate
from grader.notebooks import cell_source

COURSE = Path(__file__).resolve().parents[1] / "course"
TRANSLATIONS = sorted((COURSE / "translations").glob("*/*.md"))
NOTEBOOKS = [path for path in TRANSLATIONS if path.name != "glossary.md"]


def _source(path: Path) -> nbformat.NotebookNode:
    assignment = path.stem
    return nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)


def test_the_japanese_edition_exists():
    assert any(path.parent.name == "ja" for path in NOTEBOOKS), "no notebook of the Japanese edition is translated"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_translation_is_missing_stale_or_changes_code(path):
    found = translate.problems(_source(path), translate.read_translation(path, path.parent.name))
    listed = [problem for items in found.values() for problem in items]
    assert not listed, (f"{len(listed)} problem(s); `python -m grader translate --lang {path.parent.name} "
                        f"{path.stem}` lists them:\n" + "\n".join(listed[:20]))


def glossary(language: str) -> list[tuple[str, str]]:
    """(English term, the edition's term) from translations/<language>/glossary.md's table."""
    rows = []
    for line in (COURSE / "translations" / language / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0] and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[1]))
    return rows[1:]  # the header


def _prose(text: str) -> str:
    """What a reader reads as words: without code spans, code blocks, math and link targets."""
    text = re.sub(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\]\([^)]*\)", " ", text, flags=re.S)
    return text


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "ja"], ids=lambda p: p.stem)
def test_the_japanese_text_uses_the_glossarys_terms(path):
    terms = glossary("ja")
    assert len(terms) >= 30, "the glossary holds the lectures' vocabulary: 30 terms at least"
    english = {cell.get("id"): cell_source(cell) for cell in _source(path).cells if cell.cell_type == "markdown"}
    misses = []
    for cell_id, entry in translate.read_translation(path, "ja").entries.items():
        if cell_id not in english:
            continue
        for term, japanese in terms:
            if re.search(rf"\b{re.escape(term)}\b", _prose(english[cell_id]), re.I) and japanese not in entry.text:
                misses.append(f"cell {cell_id}: {term!r} is translated without {japanese!r}")
    assert not misses, "\n".join(misses)
