"""What depends on where the packages' files lie: kept right when modules move between folders."""
from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import autograd_lab
from grader.authoring.colab import package_archive
from grader.sandbox import execute


def test_the_zygote_starts_in_the_folder_that_holds_this_grader():
    """`python -m grader.sandbox.zygote` run there imports this checkout's grader, not another install's."""
    assert (Path(execute.PACKAGE_ROOT) / "grader" / "sandbox" / "execute.py").samefile(execute.__file__)


def test_the_colab_setup_carries_every_module_of_the_package():
    names = set(zipfile.ZipFile(io.BytesIO(base64.b64decode(package_archive()))).namelist())
    package = Path(autograd_lab.__file__).parent
    expected = {f"autograd_lab/{path.relative_to(package).as_posix()}" for path in package.rglob("*.py")}
    assert expected <= names and "autograd_lab/checks/__init__.py" in names
