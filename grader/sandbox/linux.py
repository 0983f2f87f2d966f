"""The sandbox a submission runs in: its own namespaces, a minimal filesystem, no network, limits.

Student code runs as an unprivileged user (root grader) or as the grader's own
user mapped into a user namespace (no root), in new mount, PID, network, IPC and
UTS namespaces:

* the filesystem is a fresh tmpfs holding read-only bind mounts of what Python
  needs (the system's /usr, /lib…, /etc, the Python installation, the virtual
  environment and the course's packages) and two writable, size-limited tmpfs:
  the working copy ``/home/student`` and ``/tmp``. The course directory
  (solutions, hidden tests, gradebook, other submissions) is simply not there;
* the network namespace has only a loopback interface that is down;
* the process is PID 1 of its own PID namespace, killed with everything it
  started when the grader kills its parent (``PR_SET_PDEATHSIG``);
* resource limits cap CPU time, memory, processes, open files and file size.

Where namespaces are not available (no root and no unprivileged user
namespaces, or not Linux), :func:`isolation_available` says so and the grader
runs submissions with resource limits only; verdicts are still decided outside
the student's process, but the student's code can then read and write what the
grader's user can. README.md's instructor section says the same.
"""
from __future__ import annotations

import ctypes
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Bool, Enum, Float, Integer
from traitlets.config import Configurable

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203, "s390x": 217, "riscv64": 41}

PR_SET_PDEATHSIG = 1

WORKDIR = "/home/student"


class Sandbox(Configurable):
    """Limits for each graded notebook; set them in nbgrader_config.py as ``c.Sandbox.<name> = …``."""

    cell_timeout = Float(30.0, help="Seconds a cell may run before it is interrupted").tag(config=True)
    notebook_timeout = Float(600.0, help="Seconds a whole notebook may take").tag(config=True)
    cpu_seconds = Integer(600, help="CPU seconds a notebook may use").tag(config=True)
    memory_mb = Integer(2048, help="Memory a notebook may allocate, in MiB, "
                                   "beyond the pre-loaded libraries").tag(config=True)
    max_processes = Integer(64, help="Processes and threads a notebook may run at once").tag(config=True)
    max_output_mb = Float(5.0, help="Output a notebook may send back to the grader, in MiB").tag(config=True)
    disk_mb = Integer(64, help="Size of the writable working copy and of /tmp, in MiB each").tag(config=True)
    isolation = Enum(["auto", "namespaces", "none"], "auto",
                     help="'namespaces' requires isolation; 'none' runs with resource limits only").tag(config=True)
    uid_base = Integer(61000, help="Unprivileged user ids for sandboxes run by a root grader: "
                                   "uid_base + slot").tag(config=True)
    run_demo_cells = Bool(False, help="Also run read-only cells tagged 'demo' (figures, timings)").tag(config=True)

    def limits(self) -> "Limits":
        return Limits(
            cell_timeout=self.cell_timeout, notebook_timeout=self.notebook_timeout, cpu_seconds=self.cpu_seconds,
            memory_mb=self.memory_mb, max_processes=self.max_processes,
            max_output_bytes=int(self.max_output_mb * 2**20), disk_mb=self.disk_mb,
            isolation=self.isolation, uid_base=self.uid_base, run_demo_cells=self.run_demo_cells,
        )


@dataclass
class Limits:
    """The limits of one job, as plain data (they travel with the job to any worker)."""

    cell_timeout: float = 30.0
    notebook_timeout: float = 600.0
    cpu_seconds: int = 600
    memory_mb: int = 2048
    max_processes: int = 64
    max_output_bytes: int = 5 * 2**20
    disk_mb: int = 64
    isolation: str = "auto"
    uid_base: int = 61000
    run_demo_cells: bool = False


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(
        source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
        ctypes.c_ulong(flags), data.encode() if data else None,
    ), f"mount {target}")


def prctl(option: int, value: int) -> None:
    zero = ctypes.c_ulong(0)  # the kernel checks some unused arguments are 0, all 64 bits of them
    _check(_libc.prctl(option, ctypes.c_ulong(value), zero, zero, zero), f"prctl({option})")


@dataclass
class Isolation:
    """How the sandbox is made on this machine."""

    mode: str  # "root", "userns" or "none"
    reason: str = ""


_isolation: Isolation | None = None


def isolation_available() -> Isolation:
    """Probe once (in a throwaway child) whether namespaces can be made here."""
    global _isolation
    if _isolation is not None:
        return _isolation
    if not sys.platform.startswith("linux"):
        _isolation = Isolation("none", f"namespaces need Linux; this is {sys.platform}")
        return _isolation
    root = os.geteuid() == 0
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if not root:
        flags |= CLONE_NEWUSER
    pid = os.fork()
    if pid == 0:
        try:
            unshare(flags)
            os._exit(0)
        except OSError as error:
            os._exit(10 + (error.errno or 0) % 100)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        _isolation = Isolation("root" if root else "userns")
    else:
        detail = os.strerror(code - 10) if code >= 10 else "unknown error"
        _isolation = Isolation("none", f"cannot create namespaces here ({detail}); run the grader as root, "
                                       "or enable unprivileged user namespaces "
                                       "(sysctl kernel.unprivileged_userns_clone=1)")
    return _isolation


# --- inside the child ------------------------------------------------------------------------

def enter_namespaces(isolation: Isolation) -> None:
    """In the per-job child, before it forks the runner: new namespaces for what follows.

    CLONE_NEWPID takes effect for the children of the caller, so the runner it
    forks next is PID 1 of a namespace of its own.
    """
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    if isolation.mode == "userns":
        flags |= CLONE_NEWUSER
    unshare(flags)
    if isolation.mode == "userns":
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


@dataclass
class Filesystem:
    """What the sandbox can see: read-only paths from the host, and the files of the working copy."""

    root: str
    read_only: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def visible_paths(hidden: list[str]) -> list[str]:
    """Host paths a Python process with this environment needs, read-only.

    The system's directories, the Python installation, the virtual environment,
    and the directories of this project's packages (editable installs live in
    the repository). A path that contains one of ``hidden`` (the course
    directory: solutions, hidden tests, gradebook, submissions) is never
    included; the caller is told if that leaves Python without what it needs.
    """
    candidates = ["/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc",
                  sys.base_prefix, sys.prefix, sys.exec_prefix]
    for name in ("autograd_lab", "grader"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            candidates.append(os.path.dirname(module.__file__))
    secret = [os.path.realpath(path) for path in hidden]
    chosen: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates if os.path.exists(p)}, key=len):
        if any(s == path or s.startswith(path + os.sep) for s in secret):
            if path in (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)):
                raise RuntimeError(f"the course directory is inside {path}, which the sandbox must show; "
                                   "move the course out of the Python installation")
            continue
        if any(path == kept or path.startswith(kept + os.sep) for kept in chosen):
            continue
        chosen.append(path)
    return chosen


def build_filesystem(fs: Filesystem, limits: Limits, uid: int, gid: int) -> None:
    """In the runner (PID 1 of the new namespaces): make the new root and chroot into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = fs.root
    os.makedirs(new, exist_ok=True)
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    # The writable, private directories first: a read-only path that lies below one of them
    # (a checkout in /tmp, say) is then mounted inside it, not hidden by it.
    size = f"size={limits.disk_mb}m"
    for path, mode in (("/tmp", "1777"), (WORKDIR, "0755")):
        os.makedirs(new + path, exist_ok=True)
        mount("tmpfs", new + path, "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode={mode}")
    for path in fs.read_only:
        target = new + path
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            Path(target).touch()
        mount(path, target, None, MS_BIND | MS_REC)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):  # a merged /usr's links (the loader's path)
        if os.path.islink("/" + name) and not os.path.lexists(new + "/" + name):
            os.symlink(os.readlink("/" + name), new + "/" + name)
    os.makedirs(new + "/dev", exist_ok=True)
    for device in ("null", "zero", "random", "urandom"):
        Path(new + "/dev/" + device).touch()
        mount("/dev/" + device, new + "/dev/" + device, None, MS_BIND)
    os.makedirs(new + "/proc", exist_ok=True)
    mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name, data in fs.files.items():
        target = Path(new + WORKDIR) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for directory, _, names in os.walk(new + WORKDIR):
        os.chown(directory, uid, gid)
        for name in names:
            os.chown(os.path.join(directory, name), uid, gid)
    enter_root(new)
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(WORKDIR)


def enter_root(new: str) -> None:
    """Make ``new`` this mount namespace's root, and detach the old root: the host's tree is gone.

    ``chroot`` would leave the host's tree mounted above the new root, where a
    process able to ``chroot`` again (in a user namespace of its own, say) could
    climb back to it. ``pivot_root`` swaps the namespace's root mount itself;
    the old root, stacked on the same directory, is then unmounted lazily, so
    no path, open directory or mount of this namespace leads to it any more.
    """
    os.chdir(new)
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT[platform.machine()]), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def kill_all_but(keep: set[int], session: int | None = None, wait: float = 1.0) -> None:
    """End every process this one can see in /proc but ``keep`` (only those of ``session``, if given),
    and wait (at most ``wait`` seconds) until they are dead.

    In a sandbox's PID namespace /proc shows just the sandbox's processes; without one, the
    session (the job's own, made with setsid) is what marks them. A process may fork between
    one reading of /proc and the next (a chain that forks and exits keeps moving to new pids),
    so they are first stopped, reading /proc again until a reading finds no process not yet
    stopped (a stopped process forks no more), and only then killed.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = [pid for pid in _visible(keep, session) if pid not in stopped]
        if not found:
            break
        for pid in found:
            send_signal(pid, 19)  # SIGSTOP
            stopped.add(pid)
    for pid in stopped:
        send_signal(pid, 9)
    left = list(stopped)
    while left and time.monotonic() < deadline + wait:  # SIGKILL takes effect when the process next runs
        left = [pid for pid in left if _stat(pid)[:1] not in ([], [b"Z"], [b"X"])]
        if left:
            time.sleep(0.001)


def _visible(keep: set[int], session: int | None) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        fields = _stat(int(entry))
        if not fields or fields[0] in (b"Z", b"X"):
            continue
        if session is not None and (len(fields) < 4 or int(fields[3]) != session):
            continue
        found.append(int(entry))
    return found


def send_signal(pid: int, number: int) -> None:
    """Signal ``pid`` if it is still there (and ours to signal); a process that has ended is no error."""
    try:
        os.kill(pid, number)
    except OSError:
        pass


def _stat(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command's name (state, ppid, pgrp, session, …); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when the one that started it ends, however it ends (``kill -9`` included).

    With ``parent``, the pid that started it: if that one has already ended (before this call),
    this process ends at once. Zygotes, job parents and inits chain this, so everything under an
    ``autograde`` run ends with it.
    """
    prctl(PR_SET_PDEATHSIG, 9)
    if parent is not None and os.getppid() != parent:
        os._exit(0)


def apply_limits(limits: Limits, *, per_user_processes: bool) -> None:
    """Resource limits of the runner and everything it starts."""
    def cap(kind: int, value: int) -> None:
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CPU, int(limits.cpu_seconds))
    cap(resource.RLIMIT_AS, _address_space() + limits.memory_mb * 2**20)
    cap(resource.RLIMIT_FSIZE, limits.disk_mb * 2**20)
    cap(resource.RLIMIT_NOFILE, 256)
    cap(resource.RLIMIT_CORE, 0)
    if per_user_processes:
        cap(resource.RLIMIT_NPROC, limits.max_processes)


def nproc_counts_per_namespace() -> bool:
    """Since Linux 5.14 the process limit counts a user's processes per user namespace: in the student's
    own namespace it counts the sandbox's processes alone, not every process of the grader's user."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (5, 14)
    except (IndexError, ValueError):
        return False


def _address_space() -> int:
    """Virtual memory already mapped (the pre-loaded libraries); the memory limit comes on top."""
    return memory_bytes("VmSize")


def memory_bytes(field: str) -> int:
    """One of this process's memory figures in /proc/self/status ("VmSize", "VmRSS"), in bytes (0 if unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def clean_environment() -> None:
    """The runner sees no secrets from the grader's environment."""
    keep = {"LANG", "LC_ALL", "PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MPLBACKEND"}
    for name in list(os.environ):
        if name not in keep:
            del os.environ[name]
    os.environ.update({"HOME": WORKDIR, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", "USER": "student",
                       # what nbgrader's autograde sets, for notebooks that skip work when graded
                       "NBGRADER_EXECUTION": "autograde"})


