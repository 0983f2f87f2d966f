"""The Colab path: an "Open in Colab" badge and a set-up cell at the top of each student notebook.

nbgrader does not run on Google Colab, but the checks do (they are plain
Python), so a self-learner can open any student notebook there. This nbgrader
preprocessor, run by ``generate_assignment`` (see ``course/nbgrader_config.py``),
adds two cells to each student version:

* a badge that opens the notebook from the repository on Colab;
* a set-up cell that makes this course's package (``autograd_lab``) importable
  wherever the notebook was opened: where the package is installed it does
  nothing; elsewhere (Colab, a notebook uploaded or opened from Drive or a fork)
  it unpacks the copy of the package the cell itself carries (a zip of its
  sources, base64). No network and no repository address is needed. On Colab it
  also tries to install torchviz, which only the graph drawings use; without it
  (or without a network) the drawings fall back to ``autograd_lab.graph.torch_dot``.

The repository's address, configured once as ``AddColabCells.repository``, is
used by the badge only.
"""
from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

SETUP_MARKER = "# Colab set-up"


class AddColabCells(NbGraderPreprocessor):
    """Put the Colab badge and the Colab set-up cell at the top of a student notebook."""

    repository = Unicode("", help="The course repository's address, https://github.com/OWNER/NAME").tag(config=True)
    branch = Unicode("main", help="The branch Colab opens").tag(config=True)
    release_path = Unicode("course/release", help="Where the student notebooks are in the repository").tag(config=True)
    language = Unicode("", help="The edition's language (``ja``): the set-up cell sets the checks' language").tag(
        config=True)

    def preprocess(self, nb, resources):
        if not self.repository:
            return nb, resources
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        cells = [
            new_markdown_cell(badge_markdown(self.repository, self.branch, self.release_path, assignment, notebook)),
            new_code_cell(setup_code(package_archive(), language=self.language)),
        ]
        for index, cell in enumerate(cells):
            cell["id"] = f"colab-{'badge' if index == 0 else 'setup'}"
            cell["metadata"]["tags"] = ["colab"]
        cells[1]["metadata"]["cellView"] = "form"                  # Colab shows the title, not the code
        cells[1]["metadata"]["jupyter"] = {"source_hidden": True}  # so does JupyterLab
        nb.cells = cells + [cell for cell in nb.cells if "colab" not in cell.get("metadata", {}).get("tags", [])]
        return nb, resources


def colab_url(repository: str, branch: str, release_path: str, assignment: str, notebook: str) -> str:
    owner_and_name = repository.rstrip("/").removeprefix("https://github.com/")
    return (f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/"
            f"{release_path}/{assignment}/{notebook}.ipynb")


def badge_markdown(repository: str, branch: str, release_path: str, assignment: str, notebook: str) -> str:
    url = colab_url(repository, branch, release_path, assignment, notebook)
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def package_archive() -> str:
    """``autograd_lab``'s Python sources and message catalogs as a zip, base64: the same bytes for the same files."""
    import autograd_lab

    package = Path(autograd_lab.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted([*package.rglob("*.py"), *package.glob("locale/*/LC_MESSAGES/*.mo")]):
            info = zipfile.ZipInfo(f"autograd_lab/{path.relative_to(package).as_posix()}",
                                   date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def setup_code(archive: str, width: int = 100, language: str = "") -> str:
    """The set-up cell: the package from this cell where it is not installed; torchviz, optionally, on Colab.

    In an edition in another language, it also chooses that language for the checks' messages.
    """
    digest = hashlib.sha256(archive.encode()).hexdigest()[:12]
    lines = "\n".join(f'    "{archive[i:i + width]}"' for i in range(0, len(archive), width))
    return _setup_text(SETUP_MARKER, digest, lines, language)


#: What the set-up cell says, in each edition's language (the code is the same in all of them).
_SETUP_WORDS = {
    "": {
        "title": "run this cell first (it does nothing where the course is installed)",
        "comment": "# Where `autograd_lab`, the course's package, is not installed (Colab, a notebook opened from\n"
                   "# Drive or uploaded), this cell unpacks the copy it carries (_package, at the end), so the checks\n"
                   "# work with no network at all. On Colab it also tries to install torchviz, which only the graph\n"
                   "# drawings use.",
        "carried": "autograd_lab: using the copy this notebook carries",
        "no_torchviz": "torchviz could not be installed (no network?): graph drawings use a plainer style",
    },
    "ja": {
        "title": "最初にこのセルを実行してください（講座のパッケージが入っている環境では何もしません）",
        "comment": "# 講座のパッケージ `autograd_lab` が入っていない環境（Colab、Drive から開いた\n"
                   "# ノートブック、アップロードしたノートブック）では、このセルが末尾の _package に\n"
                   "# 入っている複製を展開するので、ネットワークがなくてもチェックが動きます。\n"
                   "# Colab では、グラフの描画だけに使う torchviz のインストールも試みます。",
        "carried": "autograd_lab: このノートブックに入っている複製を使います",
        "no_torchviz": "torchviz をインストールできませんでした（ネットワークがない？）: "
                       "グラフは簡素な描き方になります",
    },
}


def _setup_text(marker: str, digest: str, lines: str, language: str = "") -> str:
    chosen = ("    if \"google.colab\" in sys.modules and importlib.util.find_spec(\"matplotlib_fontja\") is None:\n"
              "        try:  # a Japanese font for the figures (without it, i18n says what to install)\n"
              "            subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",\n"
              "                            \"matplotlib-fontja\"], timeout=120, capture_output=True)\n"
              "        except (subprocess.SubprocessError, OSError):\n"
              "            pass\n"
              "    from autograd_lab import i18n\n"
              f"    i18n.set_language({language!r})  # the checks speak this edition's language\n" if language else "")
    words = _SETUP_WORDS.get(language, _SETUP_WORDS[""])
    return (
        f"#@title {marker.lstrip('# ')}: {words['title']}\n"
        f"{words['comment']}\n"
        "import base64, importlib.util, io, os, subprocess, sys, tempfile, zipfile\n"
        "\n"
        "\n"
        "def _set_up():\n"
        "    if importlib.util.find_spec(\"autograd_lab\") is None:\n"
        f"        home = os.path.join(tempfile.gettempdir(), \"autograd_lab_{digest}\")\n"
        "        if not os.path.isdir(os.path.join(home, \"autograd_lab\")):\n"
        "            zipfile.ZipFile(io.BytesIO(base64.b64decode(_package))).extractall(home)\n"
        "        sys.path.insert(0, home)\n"
        f"        print(\"{words['carried']}\")\n"
        "    if \"google.colab\" in sys.modules and importlib.util.find_spec(\"torchviz\") is None:\n"
        "        try:\n"
        "            subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", \"torchviz\"],\n"
        "                           check=True, timeout=120, capture_output=True)\n"
        "        except (subprocess.SubprocessError, OSError):\n"
        f"            print(\"{words['no_torchviz']}\")\n"
        f"{chosen}"
        "\n"
        "\n"
        "_package = (\n"
        f"{lines}\n"
        ")\n"
        "_set_up()"
    )
