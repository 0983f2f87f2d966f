"""Editions of the course in other languages, kept in step with the English source.

The instructor's notebooks in ``source/`` stay the only source. The text of an edition lives
beside them, one file per notebook, ``translations/<language>/<assignment>.md``::

    <!-- translation: ja; source: course/source/01-tensors/01-tensors.ipynb -->

    <!-- cell title en:1a2b3c4d5e6f -->
    # 01 — テンソル
    ...

Each entry is keyed by the cell's id and carries a fingerprint of the English it translates
(the first 12 hex digits of the SHA-256 of the cell's source). When the English cell changes,
its fingerprint no longer matches and the entry is *stale*: :func:`problems` reports it, and a
test fails until the translator updates it (``python -m grader translate --stamp``).

What an edition may change, and what it may not:

* every Markdown cell is translated;
* a code cell with a comment or a docstring is translated too, and a translation of a code cell
  may change only its comments and string constants: its code (the AST with every string blanked)
  must be the English one's, so both editions run the same program;
* a test cell is never translated: both editions have the same test cells, grade ids and
  solution-cell signatures, so ``autograde`` grades either with the same checks and hidden inputs.

``release`` makes each edition's student notebooks from the translated source with nbgrader's
own preprocessors (:func:`student_edition`) into ``release-<language>/``, and checks them as it
checks the English ones.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.errors import GraderError
from grader.notebooks import cell_source, is_test_cell
from grader.text import python_source

#: The languages the course has editions in, besides English.
LANGUAGES = ("ja",)

TODO = "TODO"
HEADER = "<!-- translation: {language}; source: {source} -->"
MARKER = re.compile(r"^<!-- cell (?P<id>\S+) en:(?P<fingerprint>[0-9a-f]{12}|TODO) -->$")
#: Where the edition records its language in a notebook's metadata (the grader reads it).
METADATA_KEY = "autograd_lab"


def fingerprint(english: str) -> str:
    """The fingerprint an entry carries of the English cell source it translates."""
    return hashlib.sha256(english.encode("utf-8")).hexdigest()[:12]


@dataclass
class Entry:
    cell_id: str
    fingerprint: str
    text: str
    line: int


@dataclass
class Translation:
    """One notebook's translation file."""

    language: str
    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what is wrong with the file itself


def translation_path(course_root: Path, language: str, assignment: str) -> Path:
    return course_root / "translations" / language / f"{assignment}.md"


def edition_release(course_root: Path, language: str) -> Path:
    """Where an edition's student notebooks go (``release-ja/``, beside nbgrader's ``release/``)."""
    return course_root / f"release-{language}"


def read_translation(path: Path, language: str) -> Translation:
    """Parse a translation file; its format problems are in ``.problems``, never raised."""
    translation = Translation(language, path)
    lines = path.read_text(encoding="utf-8").split("\n")
    current: Entry | None = None
    body: list[str] = []

    def finish() -> None:
        if current is None:
            return
        while body and not body[-1].strip():
            body.pop()
        current.text = "\n".join(body)
        if current.cell_id in translation.entries:
            translation.problems.append(f"{path.name}:{current.line}: cell {current.cell_id} is translated twice")
        translation.entries[current.cell_id] = current

    for number, line in enumerate(lines, start=1):
        match = MARKER.match(line)
        if match:
            finish()
            current, body = Entry(match["id"], match["fingerprint"], "", number), []
        elif line.startswith("<!-- cell "):
            translation.problems.append(
                f"{path.name}:{number}: a malformed cell marker {line!r}: write `<!-- cell CELL_ID en:FINGERPRINT -->`")
        elif current is not None:
            body.append(line)
        elif line.strip() and not line.startswith("<!-- translation:"):
            translation.problems.append(f"{path.name}:{number}: text before the first cell marker")
    finish()
    return translation


def write_translation(translation: Translation, source_label: str) -> None:
    parts = [HEADER.format(language=translation.language, source=source_label), ""]
    for entry in translation.entries.values():
        parts += [f"<!-- cell {entry.cell_id} en:{entry.fingerprint} -->", entry.text, ""]
    translation.path.parent.mkdir(parents=True, exist_ok=True)
    translation.path.write_text("\n".join(parts), encoding="utf-8")


def _has_reader_text(source: str) -> bool:
    """A comment or a docstring: text a student reads in a code cell."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(python_source(source)).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    if any(token.type == tokenize.COMMENT and token.string.lstrip("#").strip() for token in tokens):
        return True
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return False
    return any(ast.get_docstring(node) for node in ast.walk(tree)
               if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def needs_translation(cell: dict) -> bool:
    """A cell an edition must translate: Markdown with text, or code (not a test) with a comment or docstring."""
    text = cell_source(cell)
    if cell.get("cell_type") == "markdown":
        return bool(text.strip())
    return cell.get("cell_type") == "code" and not is_test_cell(cell) and _has_reader_text(text)


class _BlankStrings(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def code_shape(source: str) -> str | None:
    """The code of a cell with every string constant blanked (comments are not in an AST); None if it does not parse."""
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return None
    return ast.dump(_BlankStrings().visit(tree))


def problems(notebook: nbformat.NotebookNode, translation: Translation) -> dict[str, list[str]]:
    """What keeps a translation from being released, by kind: format, missing, stale, unknown, code."""
    found: dict[str, list[str]] = {"format": list(translation.problems), "missing": [], "stale": [], "unknown": [],
                                   "code": []}
    cells = {cell.get("id"): cell for cell in notebook.cells}
    for cell_id, entry in translation.entries.items():
        cell = cells.get(cell_id)
        where = f"{translation.path.name}:{entry.line}: cell {cell_id}"
        if cell is None:
            found["unknown"].append(f"{where}: no cell has this id in the source (removed or renamed?)")
            continue
        english = cell_source(cell)
        if entry.fingerprint != fingerprint(english):
            state = "not yet stamped (en:TODO)" if entry.fingerprint == TODO else "the English changed since"
            found["stale"].append(f"{where}: {state}; translate it again, then `grader translate --stamp`")
        if cell.get("cell_type") == "code":
            if is_test_cell(cell):
                found["code"].append(f"{where}: a test cell is never translated (both editions share it); remove it")
            elif code_shape(entry.text) != code_shape(english):
                found["code"].append(f"{where}: the translation changes the code, not only comments and strings")
        if not entry.text.strip():
            found["missing"].append(f"{where}: the translation is empty")
    for cell in notebook.cells:
        if needs_translation(cell) and cell.get("id") not in translation.entries:
            kind = "Markdown" if cell.get("cell_type") == "markdown" else "code"
            found["missing"].append(f"{translation.path.name}: {kind} cell {cell.get('id')} has no translation")
    return found


def translated_notebook(notebook: nbformat.NotebookNode, translation: Translation) -> nbformat.NotebookNode:
    """The instructor's notebook in the edition's language (cells without an entry stay English)."""
    edition = copy.deepcopy(notebook)
    for cell in edition.cells:
        entry = translation.entries.get(cell.get("id"))
        if entry is not None and not is_test_cell(cell):
            cell["source"] = entry.text
    edition.metadata.setdefault(METADATA_KEY, {})["edition"] = translation.language
    return edition


def edition_of(notebook: nbformat.NotebookNode) -> str | None:
    """The language of the edition a (submitted) notebook comes from; None for English."""
    value = notebook.get("metadata", {}).get(METADATA_KEY, {}).get("edition")
    return value if value in LANGUAGES else None


def student_edition(course, assignment: str, notebook_name: str, translated: nbformat.NotebookNode,
                    language: str) -> nbformat.NotebookNode:
    """The student version of a translated instructor notebook, made by nbgrader's ``generate_assignment``
    itself, in a scratch course with a scratch gradebook: the course's gradebook holds the English source, and
    what it checks (test cells, grade ids, checksums of tests) is identical in both editions."""
    import shutil
    import tempfile

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = copy.deepcopy(course.config)
    release_path = config.AddColabCells.get("release_path", "course/release")
    config.AddColabCells.release_path = f"{release_path}-{language}"
    config.AddColabCells.language = language
    with tempfile.TemporaryDirectory(prefix="edition-") as scratch:
        root = Path(scratch)
        folder = root / "source" / assignment
        shutil.copytree(course.source / assignment, folder, ignore=shutil.ignore_patterns("*.ipynb", ".*"))
        nbformat.write(translated, folder / f"{notebook_name}.ipynb")
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.db_url = f"sqlite:///{root / 'unused.db'}"
        coursedir = CourseDirectory(config=config)
        coursedir.root = str(root)
        result = NbGraderAPI(coursedir=coursedir, config=config).generate_assignment(assignment, force=True,
                                                                                    create=True)
        if not result.get("success"):
            raise GraderError(f"nbgrader could not make the {language} student version of {assignment}:\n"
                              f"{result.get('error') or ''}\n{result.get('log') or ''}".strip())
        return nbformat.read(root / "release" / assignment / f"{notebook_name}.ipynb", as_version=4)


def structure_problems(english: nbformat.NotebookNode, edition: nbformat.NotebookNode) -> list[str]:
    """Why a student edition would not grade like the English one: test cells, grade ids, order."""
    found = []

    def graded(nb):
        return [(cell.get("id"), cell.metadata.get("nbgrader", {}).get("grade_id"), cell.cell_type)
                for cell in nb.cells if cell.metadata.get("nbgrader")]

    if graded(english) != graded(edition):
        found.append("its graded cells (ids, grade ids, order) differ from the English edition's")
    tests = {cell.metadata.nbgrader.grade_id: cell for cell in english.cells if is_test_cell(cell)}
    for cell in edition.cells:
        if is_test_cell(cell):
            original = tests.get(cell.metadata.nbgrader.grade_id)
            if original is None or cell_source(original) != cell_source(cell) or (
                    original.metadata.nbgrader != cell.metadata.nbgrader):
                found.append(f"test cell {cell.metadata.nbgrader.grade_id} differs from the English edition's")
    for cell in edition.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            twin = next((c for c in english.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                         == meta.get("grade_id")), None)
            if twin is not None and code_shape(cell_source(twin)) != code_shape(cell_source(cell)):
                found.append(f"solution cell {meta['grade_id']}: its stub differs from the English one beyond "
                             "comments and strings")
    return found


def editions(course_root: Path, assignment: str) -> list[str]:
    """The languages with a translation file for ``assignment``."""
    return [language for language in LANGUAGES if translation_path(course_root, language, assignment).exists()]


def load(course_root: Path, language: str, assignment: str) -> Translation:
    path = translation_path(course_root, language, assignment)
    if not path.exists():
        raise GraderError(f"no {language} translation of {assignment} ({path}): "
                          f"`python -m grader translate --lang {language} --add {assignment}` starts one")
    return read_translation(path, language)


def _source(course, assignment: str) -> tuple[str, nbformat.NotebookNode]:
    from grader.notebooks import read_notebook

    notebooks = course.notebooks(assignment)
    if len(notebooks) != 1:
        raise GraderError(f"{assignment} has {len(notebooks)} notebooks; an edition is made for one-notebook "
                          "assignments")
    return notebooks[0], read_notebook(course.source / assignment / f"{notebooks[0]}.ipynb")


def status(course, language: str, assignments: list[str]) -> list[str]:
    """One line per assignment (translated, missing, stale), then each problem."""
    lines = []
    for assignment in assignments:
        path = translation_path(course.root, language, assignment)
        if not path.exists():
            lines.append(f"{assignment}: no {language} edition (start one: --add {assignment})")
            continue
        _, notebook = _source(course, assignment)
        translation = read_translation(path, language)
        found = problems(notebook, translation)
        needed = sum(needs_translation(cell) for cell in notebook.cells)
        counts = ", ".join(f"{len(items)} {kind}" for kind, items in found.items() if items) or "complete"
        lines.append(f"{assignment}: {len(translation.entries)} cells translated of {needed} to translate; {counts}")
        lines += [f"    - {problem}" for items in found.values() for problem in items]
    return lines


def add_skeleton(course, language: str, assignment: str) -> int:
    """Append an entry, with the English text and ``en:TODO``, for every cell that needs one and has none.

    Entries are kept in notebook order. Returns how many were added.
    """
    name, notebook = _source(course, assignment)
    path = translation_path(course.root, language, assignment)
    translation = read_translation(path, language) if path.exists() else Translation(language, path)
    ordered: dict[str, Entry] = {}
    added = 0
    for cell in notebook.cells:
        entry = translation.entries.get(cell.get("id"))
        if entry is None and needs_translation(cell):
            entry = Entry(cell["id"], TODO, cell_source(cell), 0)
            added += 1
        if entry is not None:
            ordered[cell["id"]] = entry
    ordered.update({key: entry for key, entry in translation.entries.items() if key not in ordered})
    translation.entries = ordered
    write_translation(translation, f"course/source/{assignment}/{name}.ipynb")
    return added


def stamp(course, language: str, assignment: str, cell_ids: list[str]) -> list[str]:
    """Mark entries as translating the current English: the ``TODO`` ones, or exactly ``cell_ids``."""
    name, notebook = _source(course, assignment)
    translation = load(course.root, language, assignment)
    english = {cell.get("id"): cell_source(cell) for cell in notebook.cells}
    unknown = [cell_id for cell_id in cell_ids if cell_id not in translation.entries or cell_id not in english]
    if unknown:
        raise GraderError(f"no translated cell {', '.join(unknown)} in {translation.path.name} (or no such cell in "
                          "the source)")
    chosen = cell_ids or [key for key, entry in translation.entries.items() if entry.fingerprint == TODO]
    for cell_id in chosen:
        if cell_id in english:
            translation.entries[cell_id].fingerprint = fingerprint(english[cell_id])
    write_translation(translation, f"course/source/{assignment}/{name}.ipynb")
    return chosen
