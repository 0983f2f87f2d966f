"""The sandbox's filesystem, built for real (needs root or user namespaces, like the grader)."""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import sys
import threading
import tempfile
import traceback
from pathlib import Path

import pytest

from grader.sandbox import confine

from grader.sandbox import linux

STUDENT_HOST_UID = 61999
#: The isolation modes this machine can test: a root test run can make both.
MODES = ["root", "userns"] if os.geteuid() == 0 else ["userns"]

pytestmark = pytest.mark.skipif(linux.isolation_available().mode == "none",
                                reason="needs Linux namespaces (root or user namespaces)")


def _inside(fs: linux.Filesystem, check, *, mode: str | None = None, student: bool = False) -> int:
    """Exit code of ``check()`` run as the sandbox's runner would be: new namespaces, new root.

    With ``student``, the check runs as the student's code does: after the runner
    became the student (no capability, the seccomp filter). ``mode`` is the
    isolation to use ("root" or "userns"; default: what this machine gives).
    """
    isolation = linux.Isolation(mode) if mode else linux.isolation_available()
    uid = STUDENT_HOST_UID if isolation.mode == "root" else 0
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            linux.enter_namespaces(isolation)
            inner = os.fork()
            if inner == 0:
                try:
                    linux.build_filesystem(fs, linux.Limits(), uid, uid)
                    if student:
                        confine.become_student(isolation.mode, uid, uid)
                    os._exit(0 if check() else 1)
                except BaseException:
                    traceback.print_exc()
                    os._exit(98)
            _, status = os.waitpid(inner, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_read_only_paths_below_tmp_stay_visible_and_the_course_does_not():
    """A checkout in /tmp (CI's, say) must not vanish under the sandbox's private /tmp."""
    with tempfile.TemporaryDirectory(dir="/tmp") as checkout, tempfile.TemporaryDirectory() as course, \
            tempfile.NamedTemporaryFile(dir="/tmp") as host_file:
        (Path(checkout) / "library.py").write_text("VALUE = 1\n")
        (Path(course) / "gradebook.db").write_text("secret")
        read_only = linux.visible_paths(hidden=[course]) + [checkout]
        fs = linux.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt", read_only=read_only,
                                files={"notebook.ipynb": b"{}"})

        def check() -> bool:
            private = not os.path.exists(host_file.name)  # the host's /tmp is not the sandbox's
            writable_tmp = Path("/tmp/scratch").write_text("x") == 1
            try:
                (Path(checkout) / "library.py").write_text("changed")
                read_only_ok = False
            except OSError:
                read_only_ok = True
            return (Path(checkout, "library.py").read_text() == "VALUE = 1\n" and read_only_ok
                    and not os.path.exists(course) and os.getcwd() == linux.WORKDIR
                    and os.path.exists("notebook.ipynb") and private and writable_tmp)

        assert _inside(fs, check) == 0


def test_no_network_inside():
    import socket

    fs = linux.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt",
                            read_only=linux.visible_paths(hidden=[]))

    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=1)
        except OSError as error:
            return "unreachable" in str(error).lower() or "refused" in str(error).lower()
        return False

    assert _inside(fs, check) == 0


# --- the student's process cannot leave, whatever it calls --------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _refused(result: int) -> bool:
    return result == -1 and ctypes.get_errno() in (errno.EPERM, errno.ENOSYS)


def _syscall(name: str, *args) -> int:
    return _libc.syscall(ctypes.c_long(confine.syscall_number(name)), *args)


def _chroot_climb() -> str:
    """The classic escape: chroot into a subfolder, climb out with a directory opened before, chroot there."""
    try:
        os.makedirs("jail", exist_ok=True)
        outside = os.open("/", os.O_RDONLY)
        os.chroot("jail")
        os.fchdir(outside)
        for _ in range(100):
            os.chdir("..")
        os.chroot(".")
        return "ESCAPED " + " ".join(sorted(os.listdir("/")))
    except OSError as error:
        return f"refused: {error}"


def _capabilities() -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16)
            for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("Cap")}


def _sandbox_with_a_host_secret(check, mode: str) -> int:
    with tempfile.TemporaryDirectory() as course:
        secret = Path(course, "secret")
        secret.write_text("the instructor's secret")
        fs = linux.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt",
                                read_only=linux.visible_paths(hidden=[course]))
        return _inside(fs, lambda: check(str(secret)), mode=mode, student=True)


@pytest.mark.parametrize("mode", MODES)
def test_the_student_holds_no_capability_and_is_not_root(mode):
    def check(_secret: str) -> bool:
        caps = _capabilities()
        status = Path("/proc/self/status").read_text()
        return (os.getuid() != 0 and os.geteuid() != 0 and all(value == 0 for value in caps.values())
                and "NoNewPrivs:\t1" in status and "Seccomp:\t2" in status)

    assert _sandbox_with_a_host_secret(check, mode) == 0


@pytest.mark.parametrize("mode", MODES)
def test_chroot_climb_does_not_reach_the_host(mode):
    def check(secret: str) -> bool:
        return _chroot_climb().startswith("refused") and not os.path.exists(secret)

    assert _sandbox_with_a_host_secret(check, mode) == 0


@pytest.mark.parametrize("mode", MODES)
def test_no_new_namespace_so_no_capability_to_climb_with(mode):
    """A user namespace of its own would give the student every capability there: it cannot make one."""
    def check(secret: str) -> bool:
        flags = confine.CLONE_NEWUSER | confine.CLONE_NEWNS
        unshared = _refused(_libc.unshare(flags))
        cloned = _refused(_syscall("clone", ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None))
        entered = _refused(_libc.setns(os.open("/proc/self/ns/mnt", os.O_RDONLY), 0))
        return unshared and cloned and entered and _chroot_climb().startswith("refused") and not os.path.exists(secret)

    assert _sandbox_with_a_host_secret(check, mode) == 0


@pytest.mark.parametrize("mode", MODES)
def test_no_mount_and_no_read_write_remount(mode):
    def check(_secret: str) -> bool:
        package = os.path.dirname(linux.__file__)
        remount = _refused(_libc.mount(None, package.encode(), None,
                                       ctypes.c_ulong(linux.MS_BIND | linux.MS_REMOUNT), None))
        tmpfs = _refused(_libc.mount(b"tmpfs", b"/tmp", b"tmpfs", ctypes.c_ulong(0), b"size=4g"))
        unmount = _refused(_libc.umount2(b"/proc", ctypes.c_int(2)))
        pivot = _refused(_syscall("pivot_root", b".", b"."))
        try:
            Path(package, "pwned.py").write_text("x = 1")
            written = True
        except OSError:
            written = False
        return remount and tmpfs and unmount and pivot and not written

    assert _sandbox_with_a_host_secret(check, mode) == 0


@pytest.mark.parametrize("mode", MODES)
def test_no_memory_outside_the_limits(mode):
    """memfd_create and System V segments and queues make memory no address-space limit counts (a segment
    outlives its detach): the filter refuses them, however they are called."""
    def check(_secret: str) -> bool:
        try:
            os.memfd_create("hog")
            from_python = False
        except OSError:
            from_python = True
        ipc_private = 0
        segments = _refused(_syscall("shmget", ipc_private, ctypes.c_size_t(2**30), 0o1000 | 0o600))
        queues = _refused(_syscall("msgget", ipc_private, 0o1000 | 0o600))
        return from_python and _refused(_syscall("memfd_create", b"hog", ctypes.c_uint(0))) and segments and queues

    assert _sandbox_with_a_host_secret(check, mode) == 0


@pytest.mark.parametrize("mode", MODES)
def test_ordinary_programs_still_work_under_the_filter(mode):
    """Forks, threads and subprocesses (glibc's clone3 falls back to clone) run as usual."""
    def check(_secret: str) -> bool:
        child = os.fork()
        if child == 0:
            os._exit(7)
        forked = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 7
        results = []
        thread = threading.Thread(target=lambda: results.append(sum(range(10))))
        thread.start()
        thread.join()
        ran = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout
        return forked and results == [45] and ran.strip() == "42"

    assert _sandbox_with_a_host_secret(check, mode) == 0


def test_the_filter_is_well_formed_for_every_processor():
    for machine in confine.ARCHITECTURES:
        program = confine.filter_program(machine)
        assert len(program) % 8 == 0 and 0 < len(program) // 8 < 4096


def test_without_isolation_a_job_still_runs_in_a_working_copy_of_its_own(tmp_path, monkeypatch):
    """isolation = "none": not the worker's folder, the assignment's files there, and gone afterwards."""
    from grader.sandbox.execute import Job, run, shutdown

    monkeypatch.chdir(tmp_path)
    cells = [{"index": 0, "kind": "code", "source":
              "import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd(), open('data.csv').read())"}]
    try:
        result = run(Job("ps1/alice/ps1", cells, linux.Limits(cell_timeout=30, isolation="none"),
                         files={"data.csv": b"1,2,3"}))
    finally:
        shutdown()
    printed = result.outputs[0][0]["text"]
    workdir, data = printed.split()
    assert result.status == "graded" and data == "1,2,3"
    assert not (tmp_path / "scratch.txt").exists() and workdir != str(tmp_path)
    assert not os.path.exists(workdir)


_OTHER_PROCESSES = '''import os
def _others():
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), os.getppid(), 1, os.getsid(0)):
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == os.getsid(0) and fields[0] != "Z":
            found.append(int(entry))
    return found
print("OTHERS", _others())'''


SPINNERS = ("import os\nfor _ in range(4):\n    if os.fork() == 0:\n        while True:\n"
            "            pass\nprint('forked')")
#: Chains of shells that each start the next and exit: always on a new pid, so one reading of /proc misses them.
HOPPING = ("import subprocess\n"
           "open('/tmp/c.sh', 'w').write('n=$1\\nif [ $n -gt 0 ]; then sh /tmp/c.sh $((n-1)) & exit 0; fi\\n"
           "while :; do :; done\\n')\n"
           "for _ in range(8):\n    subprocess.Popen(['/bin/sh', '/tmp/c.sh', '3000'], start_new_session=True)\n"
           "import time\ntime.sleep(1)\nprint('started')")


@pytest.mark.parametrize("isolation, starter", [("auto", SPINNERS), ("none", SPINNERS), ("auto", HOPPING)])
def test_processes_a_cell_starts_end_with_the_cell(isolation, starter):
    """Children that spin on after their cell (they would take other students' CPU) are gone before the next."""
    from grader.sandbox.execute import Job, run, shutdown

    cells = [{"index": 0, "kind": "code", "source": starter},
             {"index": 1, "kind": "code", "source": _OTHER_PROCESSES},
             {"index": 2, "kind": "code", "source": "import subprocess, sys\n"
              "print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout)"}]
    try:
        result = run(Job("ps1/alice/ps1", cells, linux.Limits(cell_timeout=30, isolation=isolation)))
    finally:
        shutdown()
    assert result.status == "graded", result.detail
    assert result.outputs[1][0]["text"].strip() == "OTHERS []", result.outputs[1]
    assert result.outputs[2][0]["text"].strip() == "42"  # what the next cell starts is not caught


def test_the_zygote_imports_the_workers_packages_whatever_folder_the_grader_runs_in(tmp_path, monkeypatch):
    """`python -m` puts the working folder first on the path: a folder named like a package there is not used."""
    from grader.sandbox.execute import Job, run, shutdown

    decoy = tmp_path / "grader"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy grader package was imported')\n")
    (decoy / "zygote.py").write_text("")
    monkeypatch.chdir(tmp_path)
    try:
        result = run(Job("ps1/alice/ps1", [{"index": 0, "kind": "code", "source": "print(6 * 7)"}],
                         linux.Limits(cell_timeout=30)))
    finally:
        shutdown()
    assert result.status == "graded" and result.outputs[0][0]["text"] == "42\n"


def test_grading_notebook_after_notebook_grows_neither_the_worker_nor_its_zygote():
    """Each notebook is a fork that ends with it: after the first few, the worker and its zygote hold no more memory
    (benchmarks/grading.py --students 40 shows the same across 280 notebooks of the course)."""
    from grader.sandbox import execute
    from grader.sandbox.execute import Job, run, shutdown

    cells = [{"index": 0, "kind": "code", "source": "import numpy as np\nbig = np.ones(4_000_000)\nbig.sum()"},
             {"index": 1, "kind": "test", "probes": []},
             {"index": 2, "kind": "code", "source": "import torch\nprint(torch.ones(1000).sum().item())"}]

    def resident_mib(pid: int) -> float:
        return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")) / 1024

    sizes = []
    try:
        for number in range(24):
            result = run(Job(f"ps1/s{number}/ps1", cells, linux.Limits(cell_timeout=30)))
            assert result.status == "graded", result.detail
            assert result.max_rss_mb > 30  # the sandbox did hold the notebook's 32 MB array
            assert result.cpu_seconds > 0
            sizes.append((resident_mib(os.getpid()), resident_mib(execute._zygote.process.pid)))
    finally:
        shutdown()
    (worker_then, zygote_then), (worker_now, zygote_now) = sizes[3], sizes[-1]
    assert zygote_now - zygote_then < 2, sizes
    assert worker_now - worker_then < 8, sizes
