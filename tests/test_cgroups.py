"""One cgroup per sandbox (where the machine offers one): one student's load never reaches another's grade."""
from __future__ import annotations

import os
import sys

import pytest

from grader.sandbox import cgroups
from grader.sandbox.execute import Job, run, shutdown
from grader.sandbox.linux import Limits

GROUPS = cgroups.probe() if sys.platform.startswith("linux") else cgroups.Cgroups(reason="not Linux")
GROUPS.remove()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not GROUPS.available, reason=f"no cgroups for sandboxes here: {GROUPS.reason}")]


def _run(source: str, **limits) -> object:
    try:
        return run(Job("ps1/alice/ps1", [{"index": 0, "kind": "code", "source": source}],
                       Limits(cell_timeout=60, **limits)))
    finally:
        shutdown()


SPIN = '''import os, time
started = time.monotonic()
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    children.append(pid)
time.sleep(3)
ticks = 0
for pid in children:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks += int(fields[11]) + int(fields[12])
print("CPU", ticks / os.sysconf("SC_CLK_TCK"), "WALL", time.monotonic() - started)'''


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: a sandbox takes all of it anyway")
def test_a_sandbox_never_takes_more_than_one_core():
    """Four spinning children for 3 s: with every core they would use 3 s each; the sandbox gets one core."""
    result = _run(SPIN)
    printed = result.outputs[0][0]["text"].split()
    cpu, wall = float(printed[1]), float(printed[3])
    assert result.status == "graded" and result.cgroups.startswith("v")
    assert cpu <= 1.25 * wall, printed


HOG = '''import os, time
children = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        hog = b"x" * (120 * 2**20)  # under the address-space limit of each process
        time.sleep(10)
        os._exit(0)
    children.append(pid)
killed = sum(os.waitpid(pid, 0)[1] == 9 for pid in children)
print("KILLED", killed)'''


def test_memory_of_all_the_sandbox_processes_counts_against_one_limit():
    """Eight children of 120 MiB each, every one under its own limit: together they exceed the sandbox's."""
    result = _run(HOG, memory_mb=200, disk_mb=16)
    if result.status == "graded":
        assert int(result.outputs[0][0]["text"].split()[1]) > 0, result.outputs
    else:
        assert result.status == "memory-limit", result.detail


def test_the_groups_are_removed_after_each_job():
    """Each zygote removes its groups when it ends; none is left of a process that is gone."""
    _run("print(1)")
    for folder in GROUPS.parents.values():
        left = [entry.name for entry in folder.parent.glob("autograd-*")
                if not os.path.exists(f"/proc/{entry.name.split('-', 1)[1]}")]
        assert not left, (folder.parent, left)
