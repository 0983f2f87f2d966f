"""The grader's working files on a shared host: a private folder per user, never a link followed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader import private
from grader.errors import GraderError


@pytest.fixture
def shared_tmp(monkeypatch):
    """A stand-in for the shared /tmp (sticky, writable by all, reachable by every user)."""
    shared = Path(tempfile.mkdtemp(prefix="autograd-shared-", dir="/tmp" if os.path.isdir("/tmp") else None))
    shared.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield shared
    shutil.rmtree(shared, ignore_errors=True)


def test_the_folder_is_made_private_and_per_user(shared_tmp):
    folder = private.private_folder()
    assert folder == shared_tmp / f"autograd-grader-{os.getuid()}"
    info = os.lstat(folder)
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700


def test_a_link_planted_in_its_place_is_refused(shared_tmp):
    target = shared_tmp / "gradebook-folder"
    target.mkdir(mode=0o700)
    (shared_tmp / f"autograd-grader-{os.getuid()}").symlink_to(target)
    with pytest.raises(GraderError, match="not a private folder"):
        private.private_folder()


def test_a_folder_others_can_open_is_refused(shared_tmp):
    (shared_tmp / f"autograd-grader-{os.getuid()}").mkdir(mode=0o755)
    os.chmod(shared_tmp / f"autograd-grader-{os.getuid()}", 0o755)
    with pytest.raises(GraderError, match="Remove it, or point TMPDIR"):
        private.private_folder()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder of another user")
def test_a_folder_of_another_user_is_refused(shared_tmp):
    folder = shared_tmp / f"autograd-grader-{os.getuid()}"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(GraderError, match="not a private folder"):
        private.private_folder()


def test_files_in_it_are_never_opened_through_a_link(shared_tmp):
    """A link to the gradebook under a lock's name: the grader neither follows nor truncates it."""
    gradebook = shared_tmp / "gradebook.db"
    gradebook.write_bytes(b"grades")
    (private.private_folder() / "slot-0.lock").symlink_to(gradebook)
    with pytest.raises(OSError):
        private.open_private("slot-0.lock", os.O_RDWR | os.O_CREAT)
    assert gradebook.read_bytes() == b"grades"


def test_each_user_has_its_own_folder_so_a_root_run_leaves_nothing_in_the_way(shared_tmp):
    """A folder a root run left behind is root's own; another user's run makes and uses its own."""
    (shared_tmp / "autograd-grader-0").mkdir(mode=0o700)
    (shared_tmp / "autograd-grader-0" / "slot-0.lock").write_text("")
    assert private.private_folder().name == f"autograd-grader-{os.getuid()}"
    if os.geteuid() == 0 and shutil.which("setpriv"):
        code = ("import tempfile, os; tempfile.tempdir = %r; os.environ.pop('XDG_RUNTIME_DIR', None);"
                "from grader import private; print(private.private_folder())") % str(shared_tmp)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", code],
                              capture_output=True, text=True, cwd="/")
        assert done.stdout.strip() == str(shared_tmp / "autograd-grader-65534"), done.stderr
