"""``feedback``: an HTML report per student and notebook, without the hidden tests' code.

nbgrader's own feedback (``GenerateFeedback``) shows every test cell as the
grader ran it, hidden tests included, which hands students the hidden inputs and
checks. Here the same converter runs with nbgrader's ``ClearHiddenTests`` first
(the hidden part of each test cell is replaced by a one-line note; its verdict,
the output, stays), and a first cell that says how the notebook was graded:
its status, score, and what happened if it was stopped. A notebook that could
not be graded (missing, unreadable) gets a short page that says why.

The pages are inert, because the instructor opens what students wrote: see
:class:`InertHTMLExporter`. Nothing in a page can run a script, load anything
from elsewhere, or add elements of its own. So mathematics is not typeset by
MathJax: Markdown's TeX is converted to MathML when the page is built
(:class:`MathAsMathML`), which browsers render themselves. The contents list
names each test by its grading id, not "Test cell".

Students are converted in parallel, one process per core; a student whose
grades have not changed since their pages were written is skipped; and a
student whose pages cannot be made is reported while the others go on.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nh3
from jinja2 import DictLoader
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode, default

from autograd_lab import i18n
from autograd_lab.i18n import N_, _
from grader.authoring.translate import edition_of
from grader.course import Course, write_atomically
from grader.outputs.inert import clean_html
from grader.records import Status, load_record, record_path
from grader.text import markdown_text, printable

HIDDEN_NOTE = N_("(hidden tests: their code is not shown; the result below is theirs too)")

STATUS_TEXT = {
    Status.GRADED: N_("Graded."),
    Status.TIMEOUT: N_("Graded; a cell ran too long and was stopped, so the tests that depend on it could not pass."),
    Status.NOTEBOOK_TIMEOUT: N_("Graded as far as it ran: the notebook took too long and was stopped."),
    Status.OUTPUT_LIMIT: N_("Graded as far as it ran: the notebook printed too much and was stopped."),
    Status.CPU_LIMIT: N_("Graded as far as it ran: the notebook used too much computing time and was stopped."),
    Status.MEMORY_LIMIT: N_("Graded as far as it ran: the notebook used too much memory and was stopped."),
    Status.DISK_LIMIT: N_("Graded as far as it ran: the notebook wrote too large a file and was stopped."),
    Status.DIED: N_("Graded as far as it ran: the kernel stopped unexpectedly."),
    Status.INVALID: N_("Not graded: the file could not be read as a notebook. Your instructor has been told."),
    Status.MISSING: N_("Not submitted."),
    Status.ERROR: N_("Not graded yet: the grader had a problem with this notebook. Your instructor has been told."),
}


#: Nothing runs and nothing is fetched: no script at all (so no MathJax: math is MathML, built in), only the
#: page's own inline styles, and only images embedded in the page (figures are data: URLs).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
                           "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")
_POLICY_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'


def inert(page: str) -> str:
    """``page`` made inert: its body through nh3, and :data:`CONTENT_SECURITY_POLICY` first in its head.

    The head is the template's own (styles, the notebook's name); everything a
    submission wrote is in the body, where nh3 keeps text, layout, tables and
    embedded images, and drops scripts, styles, event handlers, forms, frames and
    every link to or image from elsewhere.
    """
    head, body_tag, rest = page.partition("<body>")
    body, end_tag, tail = rest.rpartition("</body>")
    head, found = re.subn(r"<head\b[^>]*>", lambda tag: tag.group(0) + _POLICY_META, head, count=1, flags=re.I)
    if not (body_tag and end_tag and found):
        raise ValueError("a feedback page without <head> and <body>: it cannot be made inert")
    return head + body_tag + clean_html(body) + end_tag + tail


class InertHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter, as nbgrader's feedback uses it, writing pages that cannot run anything.

    nbconvert's own ``sanitize_html`` is not enough here: nbgrader's feedback
    template renders Markdown cells (and grade ids) without it, and its allow-list
    shows paragraphs and headings as escaped tags. So the whole body goes through
    nh3 instead (:func:`inert`), and MathJax, the one script the template loads
    (from a CDN), is left out.
    """

    @default("extra_loaders")
    def _extra_loaders_default(self):
        # Found before nbconvert's mathjax.html.j2: the macro the template's header calls writes nothing.
        return [DictLoader({"mathjax.html.j2": "{%- macro mathjax(url=None) -%}{%- endmacro -%}"})]

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        with i18n.speaking(edition_of(nb)):  # the template's words in the language of the student's edition
            output = _template_words(output)
        return inert(_name_tests(output)), resources


#: nbgrader's feedback template writes these words itself (the group ``word``); each is found by the markup
#: around it, so a student's text that holds the same words is left alone, and given in the page's language.
_TEMPLATE_WORDS = [re.compile(pattern) for pattern in (
    r'(?:<h4>[^<]*|</a>|<li class="late-penalty">Late submission penalty) \((?P<word>Score): ',
    r'\n\s*(?P<word>Score): (?=[-\d.]+ / [-\d.]+ <a href="#top">)',
    r'<a href="#top">\((?P<word>Top)\)</a>',
    r'<li class="late-penalty">(?P<word>Late submission penalty)',
    r'<span class="nbgrader-label">(?P<word>Student\'s answer|Student\'s task)</span>',
    r'<span class="nbgrader-label">(?P<word>Grade cell|Task): <code>',
    r'<b>(?P<word>Comments):</b>',
    r'<a href="#[^"<>]*">(?P<word>Comment|Coding free-response|Written response)</a>',
)]
#: The words, for the message catalog.
_TEMPLATE_MESSAGES = (N_("Score"), N_("Top"), N_("Late submission penalty"), N_("Student's answer"),
                      N_("Student's task"), N_("Grade cell"), N_("Task"), N_("Comments"), N_("Comment"),
                      N_("Coding free-response"), N_("Written response"))


def _template_words(page: str) -> str:
    """``page`` with nbgrader's template words in the current language (as they are in English)."""
    def translated(match: re.Match) -> str:
        text, start = match.group(0), match.start()
        return text[:match.start("word") - start] + _(match["word"]) + text[match.end("word") - start:]

    for pattern in _TEMPLATE_WORDS:
        page = pattern.sub(translated, page)
    return page


def _name_tests(page: str) -> str:
    """The page's contents list each test by its exercise's name, not as "Test cell" ten times."""
    return re.sub(r'(<a href="#([^"<>]*)">)Test cell(</a>)',
                  lambda m: f"{m.group(1)}{html.escape(html.unescape(m.group(2)))}{m.group(3)}", page)


#: TeX in Markdown: $$…$$ and \[…\] (display), $…$ and \(…\) (inline); code (Markdown's, or HTML's <code>
#: and <pre>, as graded notebooks hold students' Markdown) is left alone.
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`|<code\b.*?</code>|<pre\b.*?</pre>)", re.S | re.I)
_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)|\\\((.+?)\\\)", re.S)


def math_as_mathml(markdown: str) -> str:
    """The Markdown with its TeX replaced by MathML, which a browser renders with no script (so with the
    page's policy); TeX that cannot be converted is left as it was."""
    from latex2mathml.converter import convert

    def mathml(match: re.Match) -> str:
        display, display2, inline, inline2 = match.groups()
        tex = display or display2 or inline or inline2
        try:
            return convert(tex.strip(), display="block" if (display or display2) else "inline")
        except Exception:  # latex2mathml raises assorted errors on TeX it does not know
            return match.group(0)

    parts = _CODE.split(markdown)
    return "".join(part if index % 2 else _MATH.sub(mathml, part) for index, part in enumerate(parts))


class MathAsMathML(NbGraderPreprocessor):
    """Every Markdown cell's mathematics as MathML (see :func:`math_as_mathml`)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            cell.source = math_as_mathml(cell.source)
        return cell, resources


class ShowHiddenTestsAsNote(NbGraderPreprocessor):
    """nbgrader's ClearHiddenTests, leaving a note where the hidden tests were."""

    language = None

    def preprocess(self, nb, resources):
        self.language = edition_of(nb)  # the note in the language of the edition the student used
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        from nbgrader.preprocessors import ClearHiddenTests

        clear = ClearHiddenTests(config=self.config)
        before = cell.source
        cell, resources = clear.preprocess_cell(cell, resources, index)
        if cell.source != before:
            with i18n.speaking(self.language):
                cell.source = cell.source.rstrip("\n") + "\n# " + _(HIDDEN_NOTE)
        return cell, resources


class GradingStatus(NbGraderPreprocessor):
    """A first cell saying how this notebook was graded."""

    course_root = Unicode("").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        student, assignment, notebook = info.get("student"), info.get("assignment"), info.get("notebook")
        record = load_record(Course(Path(self.course_root), self.config), assignment, student)
        outcome = record.notebooks.get(notebook) if record else None
        # The Colab badge (an outside image the page's policy blocks) and set-up cell (the package as a zip) are
        # for running the notebook, not for reading its grades.
        nb.cells = [cell for cell in nb.cells if "colab" not in cell.get("metadata", {}).get("tags", [])]
        if outcome is not None:
            with i18n.speaking(edition_of(nb)):  # the page in the language of the edition the student used
                nb.cells.insert(0, new_markdown_cell(status_markdown(outcome)))
        return nb, resources


def status_markdown(outcome) -> str:
    """The first cell's Markdown; the status and detail (a submission can choose them) are escaped as text."""
    status = _(STATUS_TEXT[outcome.status]) if outcome.status in STATUS_TEXT else outcome.status
    lines = [_("**Grading:** {status}").format(status=markdown_text(status))]
    if outcome.score is not None:
        lines.append(_("**Score:** {score} / {maximum}").format(score=f"{outcome.score:g}",
                                                                maximum=f"{outcome.max_score:g}"))
    if outcome.detail and outcome.status != Status.GRADED:
        lines.append(_("**What happened:** {detail}").format(detail=markdown_text(outcome.detail)))
    return "\n\n".join(lines)


@dataclass
class FeedbackSummary:
    written: int = 0  # pages (re)written
    current: int = 0  # students whose pages were newer than their grades, left as they were
    failed: list[str] = field(default_factory=list)  # "<student>/<assignment>: why"


def feedback(course: Course, assignments: list[str] | None, students: list[str] | None, *,
             workers: int | None = None, force: bool = False, progress: bool = False,
             say=print) -> FeedbackSummary:
    """Write feedback/<student>/<assignment>/<notebook>.html for every graded submission.

    Students are independent, so they are shared out among ``workers`` processes
    (default: every core). A student whose pages were written from their grades as
    they are now is skipped unless ``force``. A student whose feedback cannot be
    made is reported in the summary and the others go on.
    """
    todo: list[tuple[str, str]] = []
    summary = FeedbackSummary()
    for assignment in course.select(assignments):
        records = sorted((course.results / assignment).glob("*.json"))
        if not records:
            say(f"{assignment}: nothing graded yet (run `python -m grader autograde {assignment}`)")
        for path in records:
            if students and path.stem not in students:
                continue
            if not force and _is_current(course, assignment, path):
                summary.current += 1
            else:
                todo.append((assignment, path.stem))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="student", desc="feedback", dynamic_ncols=True)
    if workers == 1:
        results = (_feedback_for(str(course.root), assignment, student) for assignment, student in todo)
        _collect(zip(todo, results), summary, bar)
    else:
        context = multiprocessing.get_context("spawn")  # a fresh process: no gradebook connection is shared
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_feedback_for, str(course.root), assignment, student): (assignment, student)
                       for assignment, student in todo}
            _collect(((futures[f], _result(f)) for f in as_completed(futures)), summary, bar)
    if bar is not None:
        bar.close()
    say(f"feedback: {summary.written} page(s) written to {course.feedback.relative_to(course.root)}/"
        f"<student>/<assignment>/"
        + (f", {summary.current} submission(s) already up to date (--force rewrites them)" if summary.current else ""))
    for failure in summary.failed:
        say(f"  could not make feedback for {failure}")
    return summary


def _collect(results, summary: FeedbackSummary, bar) -> None:
    for (assignment, student), (written, error) in results:
        summary.written += written
        if error:
            summary.failed.append(f"{student}/{assignment}: {error}")
        if bar is not None:
            bar.update()


def _result(future) -> tuple[int, str | None]:
    try:
        return future.result()
    except Exception as error:  # the worker itself died
        return 0, f"{type(error).__name__}: {error}"


def _stamp(course: Course, assignment: str, student: str) -> Path:
    return course.feedback_stamps / assignment / f"{student}.done"


def _digest(course: Course, assignment: str, student: str) -> str:
    """What the pages are made from: the grading record and the graded notebooks, and how they are made
    inert (pages written before, or under another policy or sanitiser, are written again)."""
    digest = hashlib.sha256(f"{CONTENT_SECURITY_POLICY}\0nh3 {nh3.__version__}\0".encode())
    digest.update(record_path(course, assignment, student).read_bytes())
    for notebook in sorted((course.autograded / student / assignment).glob("*.ipynb")):
        digest.update(notebook.name.encode() + b"\0" + notebook.read_bytes())
    return digest.hexdigest()


def _is_current(course: Course, assignment: str, record: Path) -> bool:
    """This student's pages were all written, completely, from the grades as they are now.

    A stamp holding the digest of the record and the graded notebooks is written
    after the last page, so a run killed half way through a student's pages writes
    them again next time.
    """
    stamp = _stamp(course, assignment, record.stem)
    pages = course.feedback / record.stem / assignment
    return (stamp.exists() and stamp.read_text() == _digest(course, assignment, record.stem)
            and (pages / "timestamp.txt").exists())  # pages from before release_feedback was supported


@functools.lru_cache(maxsize=None)
def _course(root: str) -> Course:
    """The course, opened once per (worker) process."""
    from grader.course import open_course

    return open_course(root)


@functools.lru_cache(maxsize=None)
def _feedback_api(root: str, assignment: str):
    """nbgrader's API configured for this feedback, made once per process and assignment."""
    return _api(_course(root), _feedback_config(_course(root)))


def _feedback_for(root: str, assignment: str, student: str) -> tuple[int, str | None]:
    """Write one student's pages for one assignment; (pages written, why it failed or None)."""
    course = _course(root)
    record = load_record(course, assignment, student)
    if record is None:
        return 0, "its grading record cannot be read; run `python -m grader autograde --force` for it"
    written = 0
    try:
        if any((course.autograded / student / assignment / f"{n}.ipynb").exists() for n in record.notebooks):
            result = _feedback_api(root, assignment).generate_feedback(assignment, student)
            if not result.get("success"):
                log = (result.get("error") or result.get("log") or "").strip().splitlines()
                return 0, "nbgrader could not convert it: " + (log[-1] if log else "no reason given")
        for notebook, outcome in record.notebooks.items():
            target = course.feedback / student / assignment / f"{notebook}.html"
            if not (course.autograded / student / assignment / f"{notebook}.ipynb").exists():
                write_atomically(target, _page(student, assignment, notebook, outcome).encode())
            written += 1
        _exchange_files(course, assignment, student)
        write_atomically(_stamp(course, assignment, student), _digest(course, assignment, student).encode())
    except Exception as error:
        return written, f"{type(error).__name__}: {error}"
    return written, None


def _exchange_files(course: Course, assignment: str, student: str) -> None:
    """What nbgrader's ``release_feedback`` reads beside the pages: the submission's timestamp.txt and
    submission_secret.txt (which names the page in the exchange so only that student's ``fetch_feedback``
    finds it). A submission that came without a secret (copied by hand) gets a new one: its pages are
    released, and no one can fetch them through the exchange, since no one submitted it there."""
    import secrets

    submitted = course.submitted / student / assignment
    for name in ("timestamp.txt", "submission_secret.txt"):
        source, target = submitted / name, course.feedback / student / assignment / name
        if source.is_file() and not source.is_symlink():
            data = source.read_bytes()
        elif target.exists():
            continue  # made for this submission before: a new secret would rename released pages
        elif name == "timestamp.txt":
            data = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z").encode()
        else:
            data = secrets.token_hex(16).encode()
        if not target.exists() or target.read_bytes() != data:
            write_atomically(target, data)


def _feedback_config(course: Course):
    from traitlets.config import Config

    config = Config(course.config)
    config.GenerateFeedback.exporter_class = InertHTMLExporter
    config.GenerateFeedback.preprocessors = [ShowHiddenTestsAsNote, "nbgrader.preprocessors.GetGrades",
                                             "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor", GradingStatus,
                                             MathAsMathML]
    config.GradingStatus.course_root = str(course.root)
    config.ClearHiddenTests.enforce_metadata = False
    return config


def _api(course: Course, config):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course.root)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _page(student: str, assignment: str, notebook: str, outcome) -> str:
    """The page of a notebook that could not be graded: every field escaped, under the same policy."""
    def text(value: str) -> str:
        return html.escape(printable(value))

    body = text(_(STATUS_TEXT[outcome.status]) if outcome.status in STATUS_TEXT else outcome.status)
    detail = f"<p>{text(outcome.detail)}</p>" if outcome.detail else ""
    return inert(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{text(notebook)}</title></head>"
                 f"<body><h1>{text(assignment)} / {text(notebook)}</h1>"
                 f"<p>Student: {text(student)}</p><p>{body}</p>{detail}</body></html>")


__all__ = ["CONTENT_SECURITY_POLICY", "FeedbackSummary", "InertHTMLExporter", "feedback", "inert"]
