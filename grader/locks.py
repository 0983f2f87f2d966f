"""Who is grading what: a lock per student and assignment, so runs of one course can work side by side.

Two ``autograde`` runs of one course at once (two terminals, a cron job, a server
that grades all term) must not clobber each other's half-written files or
records. Each run takes, before it touches a submission's files, an exclusive
``flock`` on ``.grader/locks/<assignment>/<student>.lock`` and keeps it until the
submission is recorded; the file says who holds it (process, user, machine,
since when). A submission another run holds is left to that run and named in the
summary, with its holder. The kernel releases a lock when its process ends, however
it ends, so a killed run never leaves a submission locked.
"""
from __future__ import annotations

import fcntl
import getpass
import os
import socket
import time
from pathlib import Path


class Locks:
    """The locks this run holds (released by :meth:`release_all`, or when the process ends)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # Course.locks
        self.held: dict[tuple[str, str], int] = {}

    def take(self, assignment: str, student: str) -> str | None:
        """Lock one submission; None when taken, else who holds it (as a sentence's subject)."""
        folder = self.folder / assignment
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{student}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another run"
            os.close(fd)
            return holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, _me().encode(), 0)
        self.held[(assignment, student)] = fd
        return None

    def release(self, assignment: str, student: str) -> None:
        fd = self.held.pop((assignment, student), None)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)

    def release_all(self) -> None:
        for assignment, student in list(self.held):
            self.release(assignment, student)


def _me() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container, say)
        user = f"uid {os.getuid()}"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return f"process {os.getpid()} of {user} on {socket.gethostname()}, since {since}"
