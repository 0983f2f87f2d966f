"""A control group per sandbox, where the machine offers one: the whole sandbox's CPU, memory and processes.

Resource limits (``setrlimit``) count per process: a notebook that forks forty
spinning children gets forty CPU-time budgets and takes every core, and memory
that is not mapped into a process (tmpfs files) is not counted at all. A cgroup
counts the whole sandbox as one:

* ``cpu``: at most one core (``cpu.max`` / ``cpu.cfs_quota_us``), whatever it starts;
* ``memory``: ``memory_mb`` plus what the pre-loaded libraries hold plus its two
  tmpfs (``memory.max`` / ``memory.limit_in_bytes``, swap included where the
  kernel counts it); the kernel's OOM killer ends the sandbox beyond that, which
  the grader reports as ``memory-limit``;
* ``pids``: ``max_processes`` processes and threads in all (``pids.max``);
* at the job's end every process left in it is killed, and the group removed.

The groups are made beneath the zygote's own (read from ``/proc/self/cgroup``),
never elsewhere, named ``autograd-<zygote pid>``, one at a time per zygote, and
removed after each job; groups left by a zygote that was killed are removed when
empty by the next one.

Where they can be made:

* cgroup v1 (each controller its own hierarchy): by root;
* cgroup v2 (the unified hierarchy, systemd's default): where the zygote's group
  is delegated to the grader's user with the ``cpu``, ``memory`` and ``pids``
  controllers, e.g. ``systemd-run --user --scope -p Delegate=yes python -m grader
  autograde ...``; as root, anywhere the controllers are enabled. Because v2
  forbids processes in a group whose controllers are handed down, the zygote
  first moves itself into a leaf group of its own (``autograd-<pid>/zygote``).

Elsewhere :func:`probe` says why not, and the grader says so in its summary.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CONTROLLERS = ("cpu", "memory", "pids")
PERIOD_US = 100_000


@dataclass
class Cgroups:
    """Where this zygote's sandbox groups go: ``version`` 1 or 2, and the parent folder per controller."""

    version: int = 0
    parents: dict[str, Path] = field(default_factory=dict)  # controller → folder (v2: one folder for all)
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.version in (1, 2)

    def remove(self) -> None:
        """Remove this zygote's parent groups (v2: its own leaf stays until it exits; the next one tidies)."""
        _remove(set(self.parents.values()))


def _mounts() -> tuple[Path | None, dict[str, tuple[Path, str]]]:
    """The unified (v2) mount, and each v1 controller's mount with its root, from /proc/self/mountinfo."""
    unified: Path | None = None
    v1: dict[str, tuple[Path, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        parts, kinds = head.split(), tail.split()
        if len(parts) < 5 or len(kinds) < 3:
            continue
        root, point = parts[3], Path(parts[4])
        if kinds[0] == "cgroup2":
            unified = point
        elif kinds[0] == "cgroup":
            for option in kinds[2].split(","):
                if option in CONTROLLERS:
                    v1[option] = (point, root)
    return unified, v1


def _own_groups() -> dict[str, str]:
    """This process's group per v1 controller, and "" → its v2 group, from /proc/self/cgroup."""
    groups: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            groups[""] = path
        for controller in controllers.split(","):
            groups[controller] = path
    return groups


def _beneath(point: Path, root: str, path: str) -> Path:
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return (point / relative).resolve() if relative != "." else point


def probe(pid: int | None = None) -> Cgroups:
    """Make this process's parent groups for its sandboxes, if the machine lets it; say why not otherwise."""
    pid = pid or os.getpid()
    try:
        unified, v1 = _mounts()
        own = _own_groups()
    except OSError as error:
        return Cgroups(reason=f"cannot read this process's cgroups ({error})")
    if all(c in v1 for c in CONTROLLERS) and all(c in own for c in CONTROLLERS):
        parents = {}
        try:
            for controller in CONTROLLERS:
                point, root = v1[controller]
                parent = _beneath(point, root, own[controller]) / f"autograd-{pid}"
                _tidy(parent.parent)
                parent.mkdir(exist_ok=True)
                parents[controller] = parent
            return Cgroups(version=1, parents=parents)
        except OSError as error:
            _remove(parents.values())
            return Cgroups(reason=f"cannot make cgroups v1 groups ({error.strerror}; they need root)")
    if unified is not None and "" in own:
        return _probe_v2(_beneath(unified, "/", own[""]), pid)
    return Cgroups(reason="this machine has no cgroup hierarchy with the cpu, memory and pids controllers")


def _probe_v2(mine: Path, pid: int) -> Cgroups:
    try:
        offered = set((mine / "cgroup.controllers").read_text().split())
    except OSError as error:
        return Cgroups(reason=f"cannot read the cgroup v2 controllers ({error.strerror})")
    missing = [c for c in CONTROLLERS if c not in offered]
    if missing:
        return Cgroups(reason=f"the grader's cgroup ({mine}) is not given the {', '.join(missing)} controller(s): "
                              "run it in a delegated group, e.g. systemd-run --user --scope -p Delegate=yes")
    parent = mine / f"autograd-{pid}"
    try:
        _tidy(mine)
        parent.mkdir(exist_ok=True)
        (parent / "zygote").mkdir(exist_ok=True)
        (parent / "zygote" / "cgroup.procs").write_text(str(pid))
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    except OSError as error:
        _remove([parent / "zygote", parent])
        return Cgroups(reason=f"cannot make cgroup v2 groups in {mine} ({error.strerror}): "
                              "run the grader in a delegated group, e.g. systemd-run --user --scope -p Delegate=yes")
    return Cgroups(version=2, parents={c: parent for c in CONTROLLERS})


def _tidy(folder: Path) -> None:
    """Remove empty groups left by zygotes that were killed (their pid in the name is gone)."""
    try:
        entries = list(folder.glob("autograd-*"))
    except OSError:
        return
    for entry in entries:
        number = entry.name.split("-", 1)[1]
        if number.isdigit() and not os.path.exists(f"/proc/{number}"):
            _remove(sorted(entry.glob("*/"), reverse=True) + [entry])


def _remove(folders) -> None:
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            pass


@dataclass
class JobGroup:
    """The groups of one job: made by the zygote before the job starts, removed after it ends."""

    cgroups: Cgroups
    folders: list[Path] = field(default_factory=list)

    @classmethod
    def make(cls, cgroups: Cgroups, memory_bytes: int, processes: int) -> "JobGroup":
        group = cls(cgroups)
        if cgroups.version == 2:
            folder = cgroups.parents["cpu"] / "job"
            folder.mkdir(exist_ok=True)
            group.folders = [folder]
            _write(folder / "cpu.max", f"{PERIOD_US} {PERIOD_US}")
            _write(folder / "memory.max", str(memory_bytes))
            _write(folder / "memory.swap.max", "0", required=False)
            _write(folder / "pids.max", str(processes))
        else:
            for controller in CONTROLLERS:
                folder = cgroups.parents[controller] / "job"
                folder.mkdir(exist_ok=True)
                group.folders.append(folder)
            cpu, memory, pids = group.folders
            _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(PERIOD_US))
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes), required=False)
            _write(pids / "pids.max", str(processes))
        return group

    def enter(self) -> None:
        """Put the calling process (the job parent, before it starts anything) into the job's groups."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text("0")

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer ended a process of the job (the memory limit was reached)."""
        folder = self.folders[0] if self.cgroups.version == 2 else self.folders[1]
        try:
            if self.cgroups.version == 2:
                events = dict(line.split() for line in (folder / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0
            control = dict(line.split() for line in (folder / "memory.oom_control").read_text().splitlines())
            return int(control.get("oom_kill", 0)) > 0
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """Kill whatever is left in the job's groups, and remove them."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = set()
            for folder in self.folders:
                try:
                    left |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
                except OSError:
                    pass
            if not left:
                break
            if self.cgroups.version == 2 and (self.folders[0] / "cgroup.kill").exists():
                _write(self.folders[0] / "cgroup.kill", "1", required=False)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)
        _remove(self.folders)


def _write(path: Path, value: str, required: bool = True) -> None:
    try:
        path.write_text(value)
    except OSError:
        if required:
            raise
