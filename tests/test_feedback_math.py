"""Feedback pages show mathematics as mathematics, with no script: TeX becomes MathML when the page is built.

The pages forbid every script (grader.outputs.feedback's Content-Security-Policy), so MathJax
cannot run; browsers render MathML themselves. The screenshot of a page in Chromium
is left in build/browser/feedback-math.png.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell

from grader.outputs.feedback import inert, math_as_mathml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
EXPLANATION = (r"By the chain rule, $\frac{\partial L}{\partial x} = \sum_i \frac{\partial L}{\partial y_i}"
               r"\frac{\partial y_i}{\partial x}$, so for $y = x^2$:" "\n\n"
               r"$$\nabla_x \|x\|^2 = 2x$$" "\n\n" r"It costs \$5, and `$code$` stays code.")


def test_tex_becomes_mathml_and_code_and_dollars_stay():
    out = math_as_mathml(EXPLANATION)
    assert out.count("<math") == 3 and 'display="block"' in out and 'display="inline"' in out
    assert r"\frac" not in out and "<mfrac>" in out
    assert r"It costs \$5" in out and "`$code$`" in out
    assert math_as_mathml(r"broken: $\frac{$ stays") == r"broken: $\frac{$ stays"
    assert "<math" not in math_as_mathml("<p><code>$x$</code> and <pre>$$y$$</pre></p>")  # as graded notebooks hold it


def test_mathml_survives_the_inert_page_and_nothing_rides_on_it():
    page = ("<html><head></head><body>" + math_as_mathml(r"$$x^2$$")
            + '<math href="javascript:alert(1)"><maction actiontype="statusline"><mi>a</mi></maction>'
              '<semantics><annotation-xml encoding="text/html"><script>alert(1)</script></annotation-xml>'
              "</semantics></math></body></html>")
    body = inert(page).split("<body>")[1]
    assert "<msup><mi>x</mi><mn>2</mn></msup>" in body
    for gone in ("href", "maction", "annotation", "semantics", "script", "alert(1)</script>"):
        assert gone not in body, gone


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="needs Chromium and ChromeDriver (python3 manage.py test installs them as root on Debian)")
def test_a_feedback_page_renders_its_mathematics_in_chromium(course_dir):
    from fixture_course import CORRECT, _answered
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from grader.cli import main
    from grader.course import open_course

    course = open_course(course_dir)
    notebook = _answered(course_dir, CORRECT)
    notebook.cells.insert(3, new_markdown_cell(EXPLANATION))
    (course.submitted / "ann" / "ps1").mkdir(parents=True)
    nbformat.write(notebook, course.submitted / "ann" / "ps1" / "ps1.ipynb")
    assert main(["autograde", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    assert main(["feedback", "--course", str(course_dir), "--workers", "1", "--no-progress"]) == 0
    page = course.feedback / "ann" / "ps1" / "ps1.html"
    text = page.read_text()
    assert text.count("<math") == 3 and "script-src 'none'" in text
    assert '<a href="#test-square-grad" rel="noopener noreferrer">test-square-grad</a>' in text
    assert ">Test cell<" not in text

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(page.as_uri())
        sizes = browser.execute_script(
            "return [...document.querySelectorAll('math')].map(m => {"
            "  const box = m.getBoundingClientRect(); return [box.width, box.height, m.namespaceURI]; })")
        assert len(sizes) == 3
        for width, height, namespace in sizes:
            assert width > 5 and height > 5 and namespace == "http://www.w3.org/1998/Math/MathML"
        fraction = browser.execute_script("const f = document.querySelector('mfrac').getBoundingClientRect();"
                                          "const m = document.querySelector('math').getBoundingClientRect();"
                                          "return [f.height, m.height]")
        assert fraction[0] > 15, "a fraction is laid out stacked, taller than one line of text"
        browser.execute_script("document.querySelector('math').scrollIntoView({block: 'center'})")
        shots = ROOT / "build" / "browser"
        shots.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shots / "feedback-math.png"))
        assert not browser.get_log("browser") or all("Content Security Policy" not in entry["message"]
                                                      or "script" not in entry["message"]
                                                      for entry in browser.get_log("browser"))
    finally:
        browser.quit()
