"""Red team: what the instructor opens is inert, whatever a submission (or the LMS) put in it.

* Feedback pages: a student's HTML, Markdown and JavaScript outputs, Markdown cells
  and the grading details they can choose run nothing, load nothing and add no
  elements (fast checks on the HTML; the real pages in headless Chromium).
* CSV exports: a name, id or note that starts like a formula is written as text.
* The terminal and reports/*.md: escape codes and control characters are dropped,
  and Markdown a flag could carry stays text.
"""
from __future__ import annotations

import csv
import html.parser
import io
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from grader.autograde.summary import Summary

from grader.records import NotebookOutcome
from grader.cli import main

#: What a terminal or a Markdown viewer must never get: escape sequences (colour, clear screen,
#: set the window title), a bare carriage return, and a right-to-left override.
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m\r\u202e"


def payload(base: str) -> str:
    """HTML that runs script or fetches ``base`` + a path, every way a page allows."""
    return (f"<script>window.__pwned = 'script'; document.title = 'pwned'</script>"
            f"<img src=x onerror=\"window.__pwned = 'onerror'; document.title = 'pwned'\">"
            f"<svg onload=\"window.__pwned = 'svg'\"><circle r=1 /></svg>"
            f"<img src=\"{base}/img\"> ![]({base}/markdown-image)"
            f"<a href=\"javascript:window.__pwned = 'link'\">link</a>"
            f"<iframe src=\"{base}/iframe\"></iframe><object data=\"{base}/object\"></object>"
            f"<meta http-equiv=\"refresh\" content=\"0;url={base}/refresh\"><base href=\"{base}/base/\">"
            f"<style>body {{ background: url({base}/css) }}</style>"
            f"<form action=\"{base}/form\"><input name=q></form>"
            f"<link rel=stylesheet href=\"{base}/link\">"
            # MathML, which feedback pages keep: links, actions and embedded HTML through it.
            f"<math href=\"javascript:window.__pwned = 'mathml-href'\"><mi>x</mi></math>"
            f"<math><maction actiontype=\"statusline\"><mi>y</mi><mtext>javascript:</mtext></maction></math>"
            f"<math><semantics><mi>z</mi><annotation-xml encoding=\"text/html\"><img src=\"{base}/mathml-img\" "
            f"onerror=\"window.__pwned = 'annotation'\"></annotation-xml></semantics></math>"
            f"<math><mtext><img src=\"{base}/mtext-img\"></mtext><mglyph src=\"{base}/mglyph\"></mglyph></math>")


class _Elements(html.parser.HTMLParser):
    """Every element of a page, with its attributes, and which part of the page it is in."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], str]] = []
        self.part = "top"

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "body"):
            self.part = tag
        self.elements.append((tag, {k: v or "" for k, v in attrs}, self.part))


def assert_inert(page: str) -> None:
    """The page starts its head with the policy and holds nothing that runs, fetches, or came from a student."""
    from grader.outputs.feedback import CONTENT_SECURITY_POLICY

    parser = _Elements()
    parser.feed(page)
    head = [(tag, attrs) for tag, attrs, part in parser.elements if part == "head" and tag != "head"]
    assert head and head[0] == ("meta", {"http-equiv": "Content-Security-Policy", "content": CONTENT_SECURITY_POLICY})
    assert "script-src 'none'" in CONTENT_SECURITY_POLICY and "img-src data:" in CONTENT_SECURITY_POLICY
    problems = []
    for tag, attrs, part in parser.elements:
        if tag in ("script", "iframe", "object", "embed", "form", "input", "base", "link", "frame", "svg"):
            problems.append(f"<{tag}>")
        if tag == "meta" and attrs.get("http-equiv", "").lower() not in ("", "content-security-policy"):
            problems.append(f"<meta http-equiv={attrs['http-equiv']}>")
        if tag == "style" and part == "body":
            problems.append("<style> in the body")
        problems += [f"<{tag} {name}=...>" for name in attrs if name.startswith("on") or name == "style"]
        if "src" in attrs and not attrs["src"].startswith("data:image/"):
            problems.append(f"<{tag} src={attrs['src']!r}>")
        if attrs.get("href", "").strip().lower().startswith(("javascript:", "data:")):
            problems.append(f"<{tag} href={attrs['href']!r}>")
    assert not problems, problems


def attack_notebook(base: str) -> nbformat.NotebookNode:
    """A graded notebook, as autograde leaves it, whose cells and outputs are the payload in every form."""
    attack = payload(base)
    code = new_code_cell("from IPython.display import display, HTML", execution_count=1, outputs=[
        new_output("display_data", data={"text/html": attack, "text/plain": "HTML"}),
        new_output("display_data", data={"text/markdown": attack}),
        new_output("display_data", data={"application/javascript": "window.__pwned = 'javascript output'"}),
        new_output("display_data", data={"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' "
                                                          "onload=\"window.__pwned = 'svg output'\"/>"}),
        new_output("display_data", data={"text/html": attack}, metadata={"text/html": {"isolated": True}}),
        new_output("display_data", data={"image/png": "iVBORw0KGgo="},
                   metadata={"filenames": {"image/png": f"{base}/png-filename"}}),
        new_output("stream", name="stdout", text=attack),
        new_output("error", ename="ValueError", evalue=attack, traceback=[attack]),
    ])
    code.metadata.tags = ['"><script>window.__pwned = "tag"</script>']
    graded = new_code_cell("pass", metadata={"nbgrader": {"grade": True, "solution": False, "points": 1, "score": 0,
                                                          "grade_id": 'x"><img src=x onerror="window.__pwned=1">',
                                                          "schema_version": 3}})
    return new_notebook(cells=[new_markdown_cell(attack), code, graded,
                               new_raw_cell(attack, metadata={"raw_mimetype": "text/html"})])


def forged(base: str, status: str = "died") -> NotebookOutcome:
    """An outcome whose detail says what a submission chose (an exception's message, a forged channel write)."""
    return NotebookOutcome("ps1", status, detail=payload(base) + ESCAPES, score=1.0, max_score=5.0)


# --- feedback pages: the HTML --------------------------------------------------------------------

def test_the_status_cell_shows_a_forged_detail_as_text():
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from grader.outputs.feedback import status_markdown

    rendered = markdown2html_mistune(status_markdown(forged("http://127.0.0.1:9")))
    parser = _Elements()
    parser.feed(rendered)
    assert {tag for tag, _, _ in parser.elements} <= {"p", "strong"}, rendered
    assert "&lt;script&gt;" in rendered and "onerror" in rendered  # shown, as text
    assert "\x1b" not in rendered and "\u202e" not in rendered


def test_the_feedback_exporter_writes_inert_pages(course_dir):
    """The exporter feedback configures nbgrader with, on a notebook that attacks every way it can."""
    from nbgrader.converters import GenerateFeedback

    from grader.course import open_course
    from grader.outputs.feedback import _api, _feedback_config, status_markdown

    course = open_course(course_dir)
    config = _feedback_config(course)
    converter = GenerateFeedback(coursedir=_api(course, config).coursedir, config=config)
    exporter = converter.exporter_class(parent=converter, config=converter.config)
    notebook = attack_notebook("http://127.0.0.1:9")
    notebook.cells.insert(0, new_markdown_cell(status_markdown(forged("http://127.0.0.1:9"))))
    page, _ = exporter.from_notebook_node(notebook, resources={"nbgrader": {
        "notebook": "ps1", "score": 1, "max_score": 5, "late_penalty": 0}})
    assert_inert(page)
    assert "cdnjs" not in page, "MathJax (a script from a CDN) is left out"
    # What the student wrote is still there to read, as text.
    assert "What happened:" in page and "&lt;script&gt;window.__pwned" in page


def formgrader_page(notebook: nbformat.NotebookNode) -> str:
    """The page formgrader shows an instructor for a graded notebook: its own exporter and template."""
    import os

    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": "ps1", "notebook_id": "ps1", "submission_id": "1", "index": 0, "total": 1,
                 "base_url": "/", "student": "attacker", "last_name": "A", "first_name": "B",
                 "notebook_path": os.path.join("autograded", "attacker", "ps1", "ps1.ipynb")}
    page, _ = HTMLExporter(config=config).from_notebook_node(notebook, resources=resources)
    return page


def test_graded_notebooks_are_inert_where_formgrader_renders_them():
    """autograded/ is shown by formgrader in the instructor's own Jupyter: nothing the student wrote may run."""
    from grader.outputs.inert import inert_notebook

    page = formgrader_page(inert_notebook(attack_notebook("http://127.0.0.1:9")))
    parser = _Elements()
    parser.feed(page)
    problems = []
    for tag, attrs, _ in parser.elements:  # the template's own elements are there too: look for the student's
        problems += [f"<{tag} {name}={value!r}>" for name, value in attrs.items()
                     if "__pwned" in value or ("127.0.0.1:9" in value and tag != "a")]
    assert not problems, problems
    scripts = page.split("<script")[1:]
    assert not any("__pwned" in script.split("</script>")[0] for script in scripts), "a script of the student's"
    # Without the cleaning, the same page runs the student's script (so this test can fail).
    assert "window.__pwned = 'script'" in formgrader_page(attack_notebook("http://127.0.0.1:9"))


def test_the_page_of_an_ungraded_notebook_is_inert():
    from grader.outputs.feedback import _page

    page = _page("student\x1b[2J", "ps1", "ps1", forged("http://127.0.0.1:9", status="invalid"))
    assert_inert(page)
    assert "\x1b" not in page and "\u202e" not in page
    assert "could not be read as a notebook" in page


def test_pages_written_before_they_were_inert_are_written_again(course_dir):
    """A page made by the grader before it sanitised is not kept as "already up to date"."""
    import hashlib

    from grader.course import open_course
    from grader.outputs.feedback import _is_current, _stamp
    from grader.records import record_path

    course = open_course(course_dir)
    record = record_path(course, "ps1", "student")
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    _stamp(course, "ps1", "student").parent.mkdir(parents=True)
    _stamp(course, "ps1", "student").write_text(hashlib.sha256(record.read_bytes()).hexdigest())  # the old stamp
    assert not _is_current(course, "ps1", record)


# --- feedback pages: in a browser ----------------------------------------------------------------

class _Requests(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    """A web server on 127.0.0.1 that records every request: a page that fetches anything is caught."""
    _Requests.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Requests)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Requests.seen
    server.shutdown()
    server.server_close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="needs Chromium and ChromeDriver (python3 manage.py test installs them as root on Debian)")
def test_feedback_pages_run_and_fetch_nothing_in_chromium(course_dir, listener):
    from fixture_course import CORRECT, _answered
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from grader.autograde.run import Autograder

    from grader.records import SubmissionRecord, record_path
    from grader.course import open_course

    base, requests = listener
    course = open_course(course_dir)
    # A student whose notebook displays the payload as HTML, Markdown, JavaScript, and in a Markdown cell.
    notebook = _answered(course_dir, CORRECT)
    notebook.cells.append(new_markdown_cell(payload(base)))
    notebook.cells.append(new_code_cell(
        "from IPython.display import display, HTML, Markdown, Javascript\n"
        f"display(HTML({payload(base)!r}))\ndisplay(Markdown({payload(base)!r}))\n"
        f"display(Javascript(\"window.__pwned = 'javascript'; new Image().src = '{base}/javascript'\"))"))
    (course.submitted / "attacker" / "ps1").mkdir(parents=True)
    nbformat.write(notebook, course.submitted / "attacker" / "ps1" / "ps1.ipynb")
    (course.submitted / "unreadable" / "ps1").mkdir(parents=True)
    (course.submitted / "unreadable" / "ps1" / "ps1.ipynb").write_text('{"cells": [')
    Autograder(course, workers=1, progress=False, report=lambda _: None).run()
    # The details as a submission could make them (an exception's message, a forged write to the channel).
    for student in ("attacker", "unreadable"):
        path = record_path(course, "ps1", student)
        record = json.loads(path.read_text())
        record["notebooks"]["ps1"]["detail"] = payload(base)
        if student == "attacker":
            record["notebooks"]["ps1"]["status"] = "died"
        path.write_text(json.dumps(record))
        assert SubmissionRecord.load(path).notebooks["ps1"].detail == payload(base)
    assert main(["feedback", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    pages = {student: course.feedback / student / "ps1" / "ps1.html" for student in ("attacker", "unreadable")}
    assert "window.__pwned" in pages["attacker"].read_text(), "the payload is in the page, as text"
    # And the graded notebook as formgrader shows it to the instructor (its own template, no CSP).
    graded = nbformat.read(course.autograded / "attacker" / "ps1" / "ps1.ipynb", as_version=4)
    pages["formgrader"] = course_dir / "formgrader-attacker.html"
    pages["formgrader"].write_text(formgrader_page(graded))

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        for student, page in pages.items():
            browser.get(page.as_uri())
            browser.execute_async_script("setTimeout(arguments[arguments.length - 1], 1500)")  # let it try
            assert browser.execute_script("return window.__pwned === undefined"), (student, "a script ran")
            assert browser.title != "pwned", student
            assert browser.current_url == page.as_uri(), (student, "the page navigated away")
            if student != "formgrader":
                text = browser.execute_script("return document.body.innerText")
                assert "window.__pwned" in text, "the student's payload is shown as text"
    finally:
        browser.quit()
    assert requests == [], f"the pages fetched {requests}"
    # The graded page still reads as feedback.
    graded = pages["attacker"].read_text()
    assert "✓ square_grad: matches PyTorch" in graded and "What happened:" in graded


# --- CSV exports ---------------------------------------------------------------------------------

def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("fmt", ["plain", "canvas", "moodle"])
def test_export_writes_formulas_as_text(course_dir, fmt):
    """OWASP's advice on CSV injection: a text cell starting with = + - @ tab or CR gets a leading '."""
    from grader.course import open_course
    from grader.outputs.export import export

    course = open_course(course_dir)
    people = {"=cmd|' /C calc'!A0": ("=HYPERLINK(\"http://x\",\"y\")", "@SUM(A1:A2)"),  # id: (name, LMS id)
              "-2+3": ("\r=1", "+1+1"), "@x": ("\tx", "-5")}
    with course.gradebook() as gradebook:
        for student, (name, lms_id) in people.items():
            gradebook.update_or_create_student(student, first_name=name, lms_user_id=lms_id, email=lms_id)
            gradebook.add_submission("ps1", student)
    text, _ = export(course, None, fmt)
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(cell)] == []
    for expected in ["'=cmd|' /C calc'!A0", "'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(A1:A2)", "'-2+3", "'=1",
                     "'+1+1", "'@x", "'\tx", "'-5"]:
        assert expected in cells, (expected, cells)


def test_export_keeps_negative_scores_numbers(monkeypatch):
    import grader.outputs.export as export_module
    from grader.outputs.export import Row

    rows = [Row("=evil", "-name", "+id", {"ps1": -1.5}, ["ps1: flagged for review"])]
    monkeypatch.setattr(export_module, "gather", lambda course, assignments: (["ps1"], {"ps1": 5.0}, rows))
    text, _ = export_module.export(None, None, "plain")
    row = list(csv.DictReader(io.StringIO(text)))[0]
    assert (row["student"], row["name"], row["lms_id"]) == ("'=evil", "'-name", "'+id")
    assert (row["ps1"], row["total"]) == ("-1.5", "-1.5")


# --- the terminal and reports/*.md ---------------------------------------------------------------

def _clean(text: str) -> bool:
    return not any(ch in text for ch in ("\x1b", "\x07", "\r", "\u202e"))


def _report(student: str = "student" + ESCAPES):
    from grader.outputs.report import AssignmentReport, ExerciseStats

    built = AssignmentReport("ps1", max_score=5.0, scores=[1.0, 4.0])
    built.exercises = [ExerciseStats("test-a|b<script>", "ps1", 2.0, attempts=2, passed=1)]
    built.statuses.update({"graded": 2})
    built.flagged = [(student, "ps1", ["replaced <script>alert(1)</script> | x | y", "![](http://127.0.0.1:9/x.png)",
                                       "[click](javascript:alert(1)) **bold** `code` $x$ &lt;b&gt;" + ESCAPES])]
    return built


def test_a_report_shows_what_submissions_chose_as_text():
    import mistune

    from grader.outputs.report import text

    markdown = text(_report())
    assert _clean(markdown)
    rendered = mistune.create_markdown(escape=False, plugins=["table", "url", "strikethrough"])(markdown)
    parser = _Elements()
    parser.feed(rendered)
    tags = [tag for tag, _, _ in parser.elements]
    assert not {"script", "img", "a", "code", "strong", "em", "del"} & set(tags), rendered
    assert tags.count("tr") == 2 and tags.count("td") == 7, "one row of seven cells: the | did not split it"
    assert "&lt;script&gt;" in rendered and "![](http://127.0.0.1:9/x.png)" in rendered  # shown, as text


def test_report_prints_and_writes_no_escape_codes(course_dir, monkeypatch, capsys):
    import grader.outputs.report as report_module

    monkeypatch.setattr(report_module, "build", lambda course, assignment, roster=None: _report())
    assert main(["report", "--course", str(course_dir)]) == 0
    out = capsys.readouterr().out
    written = (course_dir / "reports" / "ps1.md").read_text()
    assert "Flagged for review" in out and "Flagged for review" in written
    assert _clean(out) and _clean(written)


def test_autograde_summary_prints_no_escape_codes(course_dir, monkeypatch, capsys):
    import grader.autograde.run as autograde_module

    outcome = NotebookOutcome("ps1" + ESCAPES, "died", detail="it said " + ESCAPES, flags=["flag" + ESCAPES])
    monkeypatch.setattr(autograde_module.Autograder, "run",
                        lambda self, assignments=None, students=None: Summary([("student" + ESCAPES, "ps1", outcome)]))
    assert main(["autograde", "--course", str(course_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "it said" in out and "flagged student" in out
    assert _clean(out)


def test_export_problems_print_no_escape_codes(course_dir, tmp_path, monkeypatch, capsys):
    import grader.outputs.export as export_module

    monkeypatch.setattr(export_module, "export", lambda course, assignments, fmt, roster=None: (
        "student\n", ["student" + ESCAPES + ": ps1: not graded (invalid: " + ESCAPES + ")"]))
    assert main(["export", "--course", str(course_dir), "-o", str(tmp_path / "grades.csv")]) == 0
    error = capsys.readouterr().err
    assert "needs attention" in error and _clean(error)


def test_feedback_failures_print_no_escape_codes(course_dir, monkeypatch, capsys):
    import grader.outputs.feedback as feedback_module

    results = course_dir / ".grader" / "results" / "ps1"
    results.mkdir(parents=True)
    (results / "student.json").write_text("{}")
    monkeypatch.setattr(feedback_module, "_feedback_for", lambda root, assignment, student: (0, "boom" + ESCAPES))
    assert main(["feedback", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "could not make feedback for student/ps1: boom" in out and _clean(out)


def test_error_messages_print_no_escape_codes(tmp_path, capsys):
    folder = tmp_path / ("course" + ESCAPES.replace("\r", ""))
    folder.mkdir()
    assert main(["autograde", "--course", str(folder)]) == 1
    error = capsys.readouterr().err
    assert "not a course directory" in error and _clean(error)
