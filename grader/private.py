"""The grader's own working files on a shared host: one private folder per user, links never followed.

On a JupyterHub or a lab machine other users share ``/tmp``. Files with names
anyone can predict there (a lock, a log) are a trap: another user can put a link
under that name, and a grader that opens it follows the link into its own files
(truncating the gradebook, say). So the grader keeps such files in a folder of its
own: ``$XDG_RUNTIME_DIR/autograd-grader`` where the session has one, else
``<temporary folder>/autograd-grader-<uid>``. The folder is created 0700; an
existing one is used only if it is a real folder (not a link), owned by this user
and closed to everyone else, and files in it are opened with ``O_NOFOLLOW``.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from grader.errors import GraderError


def private_folder() -> Path:
    """This user's private working folder for the grader, made if need be, checked every time."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _is_private(runtime):
        folder = Path(runtime) / "autograd-grader"
    else:
        folder = Path(tempfile.gettempdir()) / f"autograd-grader-{os.getuid()}"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    if not _is_private(folder):
        raise GraderError(
            f"{folder} is not a private folder of this user (it is a link, belongs to someone else, or others "
            "can open it), so the grader will not keep its files there. Remove it, or point TMPDIR at a "
            "folder only you can open, and run again.")
    return folder


def _is_private(path: str | os.PathLike) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def open_private(name: str, flags: int) -> int:
    """A file descriptor of ``name`` in the private folder, opened without following a link (0600 if new)."""
    return os.open(private_folder() / name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
