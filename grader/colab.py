"""The Colab path: an "Open in Colab" badge and a set-up cell at the top of each student notebook.

nbgrader does not run on Google Colab, but the checks do (they are plain
Python), so a self-learner can open any student notebook there. This nbgrader
preprocessor, run by ``generate_assignment`` (see ``course/nbgrader_config.py``),
adds two cells to each student version:

* a badge that opens the notebook from the repository on Colab;
* a set-up cell that, on Colab only, installs this course's package
  (``autograd_lab``) and torchviz; anywhere else it does nothing.

The repository's address is configured once, as ``AddColabCells.repository``.
"""
from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

SETUP_MARKER = "# Colab set-up"


class AddColabCells(NbGraderPreprocessor):
    """Put the Colab badge and the Colab set-up cell at the top of a student notebook."""

    repository = Unicode("", help="The course repository's address, https://github.com/OWNER/NAME").tag(config=True)
    branch = Unicode("main", help="The branch Colab opens").tag(config=True)
    release_path = Unicode("course/release", help="Where the student notebooks are in the repository").tag(config=True)

    def preprocess(self, nb, resources):
        if not self.repository:
            return nb, resources
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        cells = [
            new_markdown_cell(badge_markdown(self.repository, self.branch, self.release_path, assignment, notebook)),
            new_code_cell(setup_code(self.repository, self.branch)),
        ]
        for index, cell in enumerate(cells):
            cell["id"] = f"colab-{'badge' if index == 0 else 'setup'}"
            cell["metadata"]["tags"] = ["colab"]
        nb.cells = cells + [cell for cell in nb.cells if "colab" not in cell.get("metadata", {}).get("tags", [])]
        return nb, resources


def colab_url(repository: str, branch: str, release_path: str, assignment: str, notebook: str) -> str:
    owner_and_name = repository.rstrip("/").removeprefix("https://github.com/")
    return (f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/"
            f"{release_path}/{assignment}/{notebook}.ipynb")


def badge_markdown(repository: str, branch: str, release_path: str, assignment: str, notebook: str) -> str:
    url = colab_url(repository, branch, release_path, assignment, notebook)
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_code(repository: str, branch: str) -> str:
    return f'''{SETUP_MARKER} (does nothing outside Google Colab): install this course's package.
import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("autograd_lab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "autograd-lab @ git+{repository.rstrip('/')}@{branch}", "torchviz"], check=True)'''
