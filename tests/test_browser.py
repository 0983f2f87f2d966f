"""The course as a student meets it: JupyterLab in a real (headless) browser, Run All, look at the result.

Starts JupyterLab on a copy of a notebook, drives Chromium with Selenium through
the Run menu, and checks that every cell ran, figures were drawn, the checks
printed their ✓ lines and nothing failed. A screenshot is left in
``build/browser/`` to look at.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs Chromium and ChromeDriver "
                              "(python3 manage.py test installs them as root on Debian)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    notebook = "02-backward.ipynb"
    shutil.copy(ROOT / "course" / "source" / "02-backward" / notebook, tmp_path / notebook)
    with _lab(tmp_path, notebook) as url:
        yield url


@contextlib.contextmanager
def _lab(folder: Path, notebook: str, environment: dict | None = None):
    """JupyterLab on ``folder``, serving ``notebook``'s address; stopped afterwards."""
    port = _free_port()
    settings = folder / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')  # every cell in the page, so the test can read them all
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         f"--notebook-dir={folder}",
         "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={folder / 'workspaces'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}/lab/tree/{notebook}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1400,2200"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _run_all(browser, url: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, 120)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")))
    wait.until(lambda b: "Idle" in b.execute_script(
        "return document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') "
        "|| document.body.innerText") or _kernel_idle(b))
    _menu(browser, wait, "Run", "Run All Cells")
    wait.until(lambda b: _all_executed(b) or b.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"))
    time.sleep(1)
    return wait


WRONG_ANSWER = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "answer", "source":
         "import torch\n\n\ndef descend_autograd(x0, lr, steps):\n    x = torch.tensor(x0, requires_grad=True)\n"
         "    for _ in range(steps):\n        (x ** 2 + torch.exp(-x)).backward()\n        with torch.no_grad():\n"
         "            x -= lr * x.grad\n    return x"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "test", "source": ""},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def failing_check_screenshot(folder: Path, name: str, environment: dict | None = None) -> str:
    """Run 03's visible descend-autograd test on a loop without zero_grad in JupyterLab; screenshot; its text."""
    import json

    from selenium.webdriver.common.by import By

    from grader.autograde.plan import test_sources

    source = json.loads((ROOT / "course" / "source" / "03-gradient-descent" / "03-gradient-descent.ipynb").read_text())
    test = dict(test_sources(source["cells"]))["descend-autograd"].split("### BEGIN HIDDEN TESTS")[0]
    notebook = json.loads(json.dumps(WRONG_ANSWER))
    notebook["cells"][1]["source"] = test
    (folder / "wrong.ipynb").write_text(json.dumps(notebook))
    with _lab(folder, "wrong.ipynb", environment) as url:
        browser = _browser()
        try:
            _run_all(browser, url)
            output = browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")[1]
            browser.execute_script("arguments[0].scrollIntoView();", output)
            screenshots = ROOT / "build" / "browser"
            screenshots.mkdir(parents=True, exist_ok=True)
            output.screenshot(str(screenshots / name))
            return output.text
        finally:
            browser.quit()


def test_a_failing_check_reads_in_one_screen(tmp_path):
    text = failing_check_screenshot(tmp_path, "failing-check.png")
    assert "✗ descend_autograd(3.0, 0.3, 30): does not match the expected value" in text
    assert "likely mistake: gradients add up over your backward() calls" in text
    assert "Traceback" not in text and "checks.py" not in text and "_submit" not in text


def test_a_student_runs_a_notebook_in_jupyterlab(jupyterlab):
    from selenium.webdriver.common.by import By

    browser = _browser()
    try:
        wait = _run_all(browser, jupyterlab)
        cells = browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")
        wait.until(lambda b: _all_executed(b))
        screenshots = ROOT / "build" / "browser"
        screenshots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(screenshots / "02-backward-top.png"))
        text = browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").text
        errors = browser.find_elements(By.CSS_SELECTOR,
                                       ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        images = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
        browser.execute_script("arguments[0].scrollIntoView();", images[0])
        browser.save_screenshot(str(screenshots / "02-backward-figure.png"))
        assert len(cells) > 20
        assert not [e.text[:200] for e in errors], "a cell wrote an error"
        assert len(images) >= 2, "figures are drawn"
        assert text.count("✓") >= 10, "the checks print their pass lines"
        assert "Traceback" not in text
    finally:
        browser.quit()


def _menu(browser, wait, top: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    wait.until(lambda b: any(e.text == top for e in b.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")))
    next(e for e in browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == top).click()
    wait.until(lambda b: any(e.text == item for e in b.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")))
    next(e for e in browser.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel") if e.text == item).click()


def _kernel_idle(browser) -> bool:
    return bool(browser.execute_script(
        "return [...document.querySelectorAll('.jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator')]"
        ".some(e => /idle/i.test(e.getAttribute('title') || e.getAttribute('data-status') || ''))"))


def _all_executed(browser) -> bool:
    """Every code cell shows an execution count, and none is running ([*])."""
    prompts = browser.execute_script(
        "return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)")
    # (a cell whose input is hidden, as the Colab set-up cell of a student notebook, shows no prompt at all)
    return any(p.strip() for p in prompts) and all(p.strip() not in ("[ ]:", "[*]:") for p in prompts)


def test_a_failing_check_reads_in_japanese_in_the_japanese_edition(tmp_path):
    """What `manage.py lab --lang ja` gives the kernel (AUTOGRAD_LAB_LANGUAGE=ja): the same check, in Japanese."""
    import os

    text = failing_check_screenshot(tmp_path, "failing-check-ja.png", {**os.environ, "AUTOGRAD_LAB_LANGUAGE": "ja"})
    assert "✗ descend_autograd(3.0, 0.3, 30): 正解と一致しません" in text
    assert "考えられる誤り: backward() を呼ぶたびに勾配が足し合わされています" in text
    assert "Traceback" not in text and "does not match" not in text


def test_a_japanese_notebook_runs_with_japanese_figures_in_jupyterlab(tmp_path):
    """The Japanese 04 (answered) opened from release-ja/ as a student would: its set-up cell chooses Japanese, every
    cell runs, its figures are drawn with Japanese labels and no glyph is missing; screenshots of a figure."""
    import nbformat
    from selenium.webdriver.common.by import By

    from grader.authoring import translate
    from grader.notebooks import fill_solutions, instructor_answers

    assignment = "04-how-computers-differentiate"
    student = nbformat.read(translate.edition_release(ROOT / "course", "ja") / assignment / f"{assignment}.ipynb",
                            as_version=4)
    source = nbformat.read(ROOT / "course" / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    nbformat.write(fill_solutions(student, instructor_answers(source)), tmp_path / f"{assignment}.ipynb")
    with _lab(tmp_path, f"{assignment}.ipynb") as url:
        browser = _browser()
        try:
            _run_all(browser, url)
            from selenium.webdriver.support.ui import WebDriverWait
            WebDriverWait(browser, 300).until(lambda b: _all_executed(b) or b.find_elements(
                By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"))
            text = browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").text
            failed = browser.find_elements(
                By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            assert not [e.text[:500] for e in failed], "a cell raised"
            errors = browser.find_elements(
                By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            images = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
            screenshots = ROOT / "build" / "browser"
            screenshots.mkdir(parents=True, exist_ok=True)
            browser.execute_script("arguments[0].scrollIntoView();", images[0])
            browser.save_screenshot(str(screenshots / "04-ja-figure.png"))
            assert not [e.text[:300] for e in errors], "a cell wrote to stderr (a missing glyph warns there)"
            assert len(images) >= 3, "figures are drawn"
            assert "数値微分" in text and text.count("✓") >= 5, "the Japanese text, and the checks' pass lines"
            assert "Traceback" not in text
        finally:
            browser.quit()
