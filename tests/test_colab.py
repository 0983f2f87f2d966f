"""Colab from anywhere: every student notebook's set-up and checks, where autograd_lab is not installed.

A simulated Colab: a fresh Python process with what Colab preinstalls (torch, numpy,
matplotlib, IPython) but no ``autograd_lab`` and no torchviz (the editable install's finder is
removed, and the repository is not on the path), ``google.colab`` present, and no
network (sockets refuse to connect; pip may not use an index). In it, each release
notebook's set-up cell runs, then the notebook's cells with the solutions filled in
(the source notebook, hidden tests included); every cell must run without error.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

COURSE = Path(__file__).resolve().parent.parent / "course"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())

DRIVER = r'''
import importlib.util, json, socket, sys, types

# No autograd_lab: drop the editable install's finders and the repository from the path.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "").lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path[:] = [p for p in sys.path if p not in ("", REPOSITORY)]
sys.path_importer_cache.clear()
assert importlib.util.find_spec("autograd_lab") is None, "autograd_lab is still importable"

# torchviz is optional: not here, and pip cannot fetch it.
import importlib.machinery
class _PathFinderWithoutTorchviz(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] == "torchviz" else super().find_spec(name, path, target)
sys.meta_path[:] = [_PathFinderWithoutTorchviz if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.modules.pop("torchviz", None)

# Colab, and no network.
sys.modules["google.colab"] = types.ModuleType("google.colab")
class _NoNetwork(socket.socket):
    def connect(self, *args):
        raise OSError("no network in this simulated Colab")
socket.socket = _NoNetwork
socket.create_connection = lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no network"))

from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
cells = json.load(open(sys.argv[1]))
report = []
for label, source in cells:
    result = shell.run_cell(source, silent=False)
    report.append([label, result.success])
    if not result.success:
        break
import autograd_lab
print("RESULT", json.dumps({"cells": report, "autograd_lab": autograd_lab.__file__}))
'''


def _cells(assignment: str) -> list[tuple[str, str]]:
    """The release's set-up cell, then the source's cells (solutions, all tests), demo cells left out."""
    from grader.notebooks import is_demo_cell

    release = nbformat.read(COURSE / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    source = nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    setup = next(cell for cell in release.cells if "colab" in cell.metadata.get("tags", []) and cell.cell_type == "code")
    cells = [("colab-setup", setup.source)]
    for index, cell in enumerate(source.cells):
        if cell.cell_type == "code" and not is_demo_cell(cell):
            cells.append((cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}", cell.source))
    return cells


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_notebook_runs_its_checks_on_a_simulated_colab_without_the_package_installed(assignment, tmp_path):
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps(_cells(assignment)))
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # pip may use no index (no network), and installs into a folder of its own (so what this machine
    # has installed does not count as already there).
    environment.update(MPLBACKEND="Agg", PIP_NO_INDEX="1", PIP_TARGET=str(tmp_path / "pip"), TMPDIR=str(tmp_path))
    driver = DRIVER.replace("REPOSITORY", repr(str(COURSE.parent)))
    result = subprocess.run([sys.executable, "-c", driver, str(cells)], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=600)
    line = next((line for line in result.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert line is not None, result.stdout[-3000:] + result.stderr[-3000:]
    outcome = json.loads(line.removeprefix("RESULT "))
    failed = [label for label, success in outcome["cells"] if not success]
    assert not failed, f"cell {failed[0]} failed:\n{result.stdout[-4000:]}"
    assert len(outcome["cells"]) == len(_cells(assignment))
    assert outcome["autograd_lab"].startswith(str(tmp_path)), "the checks did not use the notebook's own copy"
    assert "autograd_lab: using the copy this notebook carries" in result.stdout
    assert "torchviz could not be installed" in result.stdout  # and the set-up went on
