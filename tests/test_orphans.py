"""Nothing the grader starts outlives it: ``kill -9`` of ``autograde`` ends its workers, zygotes and sandboxes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fixture_course import CORRECT, _answered

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process trees read from /proc")]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.parametrize("workers, stop", [("1", signal.SIGKILL), ("2", signal.SIGKILL), ("1", signal.SIGTERM)])
def test_kill_9_of_autograde_leaves_no_process_behind(course_dir, workers, stop):
    """Students whose cells sleep keep the sandboxes busy; autograde is killed mid-run (SIGKILL, or SIGTERM as a
    Dask worker is stopped: with one worker, the zygote is this process's own, as it is a Dask worker's)."""
    sleeping = dict(CORRECT, **{"make-leaf": "import time\n    time.sleep(600)"})
    for student in ("sleepy-a", "sleepy-b", "sleepy-c"):
        folder = course_dir / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(_answered(course_dir, sleeping), folder / "ps1.ipynb")
    (course_dir / "nbgrader_config.py").write_text(
        (course_dir / "nbgrader_config.py").read_text() + "\nc.Sandbox.cell_timeout = 300\n")
    run = subprocess.Popen([sys.executable, "-m", "grader", "autograde", "ps1", "--course", str(course_dir),
                            "--no-progress", "--workers", workers], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        sandboxes: set[int] = set()
        while time.monotonic() < deadline and not sandboxes:
            time.sleep(0.5)
            family = _descendants(run.pid)
            zygotes = {pid for pid in family if "grader.sandbox.zygote" in _command(pid)}
            sandboxes = {pid for zygote in zygotes for pid in _descendants(zygote)}
        assert sandboxes, "no sandbox started"
        family = _descendants(run.pid)
        run.send_signal(stop)
        run.wait()
        deadline = time.monotonic() + 20
        while _alive(family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(family)
        assert not left, {pid: _command(pid) for pid in left}
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
