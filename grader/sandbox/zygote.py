"""The pre-warmed fork server: pay for ``import torch`` once, not once per notebook.

Stock nbgrader starts a kernel (1.4 s) and imports torch (3 s) for every notebook.
A zygote imports torch, numpy, matplotlib, IPython and the course's libraries once,
prepares an IPython shell, and then forks a fresh copy for every submission, in
about 20 ms. Each copy is a new process, so nothing one student's code does is
seen by the next.

Process tree for one job::

    worker (trusted: plans tests, judges)      ── socket ──  zygote (imports done, holds no job data)
                                                                └─ job parent (makes the namespaces; waits)
                                                                     └─ init: PID 1 of the namespaces (reaps, relays)
                                                                          └─ runner: unprivileged, limited, runs the
                                                                             student's cells → pipe → worker

The worker talks to the zygote over a socket: ``run`` a job, and the zygote
answers with the job parent's pid and the read end of the runner's pipe
(passed as a file descriptor), then with the exit code when the job is over.
To interrupt a cell the worker sends SIGUSR1 to the job parent, which passes it
to the init, which sends SIGINT to the runner; to stop a job it kills the job
parent, and the kernel kills the init (PR_SET_PDEATHSIG) and with it everything
in its PID namespace.
The zygote never receives a test's expected values: only the probes.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def send_message(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    header = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(sock, [header + data], fds)
    else:
        sock.sendall(header + data)


def receive_message(sock: socket.socket, with_fds: bool = False) -> tuple[dict | None, list[int]]:
    """One length-prefixed JSON message (and file descriptors passed with it); None at end of stream."""
    fds: list[int] = []
    if with_fds:
        chunk, fds, _, _ = socket.recv_fds(sock, 4, 4)
    else:
        chunk = sock.recv(4)
    if not chunk:
        return None, fds
    while len(chunk) < 4:
        more = sock.recv(4 - len(chunk))
        if not more:
            return None, fds
        chunk += more
    (length,) = struct.unpack("!I", chunk)
    data = bytearray()
    while len(data) < length:
        more = sock.recv(min(1 << 20, length - len(data)))
        if not more:
            return None, fds
        data += more
    return json.loads(data), fds


def preload(modules: list[str]) -> None:
    """Import what notebooks use, and warm the lazy parts, before any fork."""
    import importlib
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(1)  # one thread per job: workers run in parallel, and forks stay safe
    for name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except Exception:
            pass  # a module the notebook imports may be missing; the student's cell will say so
    figure = plt.figure()
    figure.add_subplot().plot([0, 1], [0, 1])
    figure.canvas.draw()
    plt.close("all")
    _warm_torch(torch)


def _warm_torch(torch: Any) -> None:
    """Run, once, what PyTorch initialises lazily on first use: every fork would pay for it again.

    (The first optimizer step imports torch._dynamo, about a second; the first
    float64 backward with an explicit gradient, about 0.4 s.)
    """
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
        y = torch.tanh(x) * x ** 2 + torch.exp(-x).sum()
        y.backward(gradient=torch.ones(2, dtype=dtype))
        (grad,) = torch.autograd.grad(torch.sin(x).sum(), x, create_graph=True)
        grad.sum().backward()
        repr(x), repr(grad)
        model = torch.nn.Sequential(torch.nn.Linear(2, 3, dtype=dtype), torch.nn.Tanh(),
                                    torch.nn.Linear(3, 2, dtype=dtype))
        for optimizer in (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                          torch.optim.Adam(model.parameters(), lr=0.01)):
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
            loss = torch.nn.functional.cross_entropy(model(torch.ones(4, 2, dtype=dtype)), torch.tensor([0, 1, 0, 1]))
            loss = loss + torch.nn.functional.mse_loss(model(torch.ones(1, 2, dtype=dtype)),
                                                       torch.zeros(1, 2, dtype=dtype))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        torch.func.jvp(torch.sin, (x.detach(),), (torch.ones_like(x.detach()),))
        torch.autograd.functional.jacobian(lambda v: torch.tanh(v) * 2, x.detach())
        torch.linalg.lstsq(torch.ones(3, 2, dtype=dtype) + torch.eye(3, 2, dtype=dtype), torch.ones(3, 1, dtype=dtype))


def serve(sock: socket.socket, modules: list[str]) -> None:
    from grader.sandbox import cgroups
    from grader.sandbox import runner
    from grader.sandbox import linux

    preload(modules)
    shell = runner.prepare_shell()
    sys.modules["__main__"].__dict__["_grader_shell"] = shell
    sys.modules["__main__"].__dict__["_grader_snapshot"] = runner.Snapshot(shell)
    # Everything imported so far lives as long as the zygote: out of the collector's sight, a job's full
    # collections no longer walk torch's hundreds of thousands of objects (tens of ms each), and its
    # pages are not written by the collector (they stay shared with the zygote).
    gc.collect()
    gc.freeze()
    isolation = linux.isolation_available()
    groups = cgroups.probe() if sys.platform.startswith("linux") else cgroups.Cgroups(reason="not Linux")
    baseline = linux.memory_bytes("VmRSS")  # what a job's copy of this process may come to hold of its pages
    send_message(sock, {"ready": True, "isolation": isolation.mode, "reason": isolation.reason,
                        "cgroups": groups.version, "cgroups_reason": groups.reason})
    while True:
        message, _ = receive_message(sock)
        if message is None or message.get("cmd") == "exit":
            groups.remove()
            return
        workdir = _working_copy(message["job"], isolation)
        group = _job_group(groups, message["job"], baseline)
        report_read, report_write = os.pipe()  # runner → worker: what each cell did
        probe_read, probe_write = os.pipe()  # worker → runner: a test cell's probes, when its turn comes
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            if sys.platform.startswith("linux"):
                linux.die_with_parent(zygote)
            if group is not None:
                group.enter()  # before anything else: all the job starts is counted, and ends, with it
            sock.close()
            os.close(report_read)
            os.close(probe_write)
            _job_parent(message["job"], report_write, probe_read, isolation)
        os.close(report_write)
        os.close(probe_read)
        send_message(sock, {"pid": pid}, [report_read, probe_write])
        os.close(report_read)
        os.close(probe_write)
        _, status, usage = os.wait4(pid, 0)
        out_of_memory = False
        if group is not None:
            out_of_memory = group.out_of_memory()
            group.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        # The job's exit code and CPU time come from here, outside the sandbox: the runner cannot forge them.
        send_message(sock, {"exit": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime,
                            "max_rss_mb": usage.ru_maxrss / 1024, "out_of_memory": out_of_memory})


def _job_group(groups: Any, job: dict, baseline: int) -> Any:
    """The job's cgroups (see grader/sandbox/cgroups.py), or None where the machine offers none."""
    from grader.sandbox import cgroups

    if not groups.available or job["limits"].get("isolation") == "none":
        return None
    limits = job["limits"]
    memory = (limits["memory_mb"] + 2 * limits["disk_mb"]) * 2**20 + baseline
    try:
        return cgroups.JobGroup.make(groups, memory, limits["max_processes"])
    except OSError:  # the groups went away under us (removed by hand, say): per-process limits still hold
        return None


def _working_copy(job: dict, isolation: Any) -> str | None:
    """Without namespaces, a private folder of the job's own (0700, a random name) as its working copy.

    Made and removed here, in the zygote, so that it goes even when the job is killed. With
    namespaces the sandbox's own /home/student is the working copy, and this returns None.
    """
    if isolation.mode != "none" and job["limits"].get("isolation") != "none":
        return None
    workdir = tempfile.mkdtemp(prefix="autograd-sandbox-")
    for name, data in job.get("files", {}).items():
        target = os.path.realpath(os.path.join(workdir, name))
        if target.startswith(workdir + os.sep):  # names come from the course, but never outside the copy
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(bytes.fromhex(data))
    job["workdir"] = workdir
    return workdir


def _job_parent(job: dict, channel: int, probes: int, isolation: Any) -> None:
    """The per-job parent, outside the sandbox: make the namespaces, start the init, pass interrupts on."""
    from grader.sandbox import linux

    code = 70
    try:
        limits = linux.Limits(**job["limits"])
        if limits.isolation == "namespaces" and isolation.mode == "none":
            raise RuntimeError(f"isolation is required but not available: {isolation.reason}")
        mode = isolation if limits.isolation != "none" else linux.Isolation("none")
        if mode.mode != "none":
            linux.enter_namespaces(mode)
        else:
            os.setsid()
        init: list[int] = []
        for number in (signal.SIGUSR1, signal.SIGUSR2):  # interrupt the cell; the cell ended
            signal.signal(number, lambda received, _: init and linux.send_signal(init[0], received))
        pid = os.fork()
        if pid == 0:
            _init(job, channel, probes, mode, limits)
        init.append(pid)
        os.close(channel)
        os.close(probes)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException as error:
        _report_error(channel, error)
        code = 71
    finally:
        os._exit(code)


def _init(job: dict, channel: int, probes: int, isolation: Any, limits: Any) -> None:
    """PID 1 of the sandbox's namespaces: build the filesystem, start the runner, reap, report.

    The student's code does not run as PID 1, which the kernel protects from
    signals (a CPU limit's SIGXCPU among them); this small process does, and
    dies (taking the whole namespace with it) when the grader kills its parent.
    """
    from grader.sandbox import linux

    code = 72
    try:
        for fd in range(3, 1024):
            if fd not in (channel, probes):
                try:
                    os.close(fd)
                except OSError:
                    pass
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # C-level output of libraries goes nowhere; Python's is captured per cell
        os.close(null)
        uid = gid = None
        if isolation.mode != "none":
            linux.die_with_parent()
            uid = gid = limits.uid_base + int(job.get("slot", 0)) if isolation.mode == "root" else 0
            files = {name: bytes.fromhex(data) for name, data in job.get("files", {}).items()}
            fs = linux.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt", read_only=job["visible"],
                                    files=files)
            linux.build_filesystem(fs, limits, uid, gid)
        runner: list[int] = []
        signal.signal(signal.SIGUSR1, lambda *_: runner and linux.send_signal(runner[0], signal.SIGINT))
        go_read, go_write = os.pipe()  # init → runner: "the cell's processes are gone, start the next"
        os.set_blocking(go_write, False)
        session = os.getsid(0) if isolation.mode == "none" else None
        signal.signal(signal.SIGUSR2, lambda *_: runner and _end_of_cell(runner[0], go_write, session))
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            _runner(job, channel, probes, isolation, limits, uid, gid, go_read)
        runner.append(pid)
        os.close(go_read)
        os.close(channel)  # from here on, only the runner (and what it starts) can write to the worker
        os.close(probes)
        while True:  # reap everything; stop when the runner is gone (the kernel then kills the rest)
            try:
                child, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if child == pid:
                code = os.waitstatus_to_exitcode(status)
                code = code if code >= 0 else 128 - code
                break
    except BaseException as error:
        _report_error(channel, error)
    os._exit(code)


def _end_of_cell(runner: int, go: int, session: int | None) -> None:
    """A cell ended (the worker says so): everything it started ends with it, then the runner may go on.

    In the sandbox's PID namespace that is every process but this init and the runner; without
    namespaces, every process of the job's session but the job parent, this init and the runner.
    The runner waits for the word before its next cell, so what that cell starts is never caught.
    """
    from grader.sandbox import linux

    linux.kill_all_but({os.getpid(), os.getppid(), runner}, session)
    try:
        os.write(go, b"\n")
    except OSError:
        pass


def _runner(job: dict, channel: int, probes: int, isolation: Any, limits: Any, uid: int | None,
            gid: int | None, go: int | None = None) -> None:
    """The process that runs the student's notebook: unprivileged, limited, in a clean environment."""
    from grader.sandbox import confine
    from grader.sandbox import runner
    from grader.sandbox import linux

    code = 0
    try:
        if isolation.mode == "none" and job.get("workdir"):
            os.chdir(job["workdir"])
        confine.become_student(isolation.mode, uid, gid)
        # The process limit counts per user: the sandbox's own (root), or the student's in its own user namespace.
        own_user = isolation.mode == "root" or (isolation.mode == "userns" and linux.nproc_counts_per_namespace())
        linux.apply_limits(limits, per_user_processes=own_user)
        linux.clean_environment()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    except BaseException as error:  # the sandbox could not be set up: the grader's problem
        _report_error(channel, error)
        os._exit(72)
    try:
        runner.run_job(job, channel, probes, go)
    except BaseException:  # the notebook broke its own kernel: it died, graded as far as it ran
        code = 73
    os._exit(code)



def _report_error(channel: int, error: BaseException) -> None:
    try:
        from grader.sandbox.channel import SandboxError

        os.write(channel, SandboxError(f"{type(error).__name__}: {error}").line().encode())
    except OSError:
        pass


def main() -> None:
    from grader.sandbox import linux

    fd = int(sys.argv[1])
    modules = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    if len(sys.argv) > 3 and sys.platform.startswith("linux"):
        linux.die_with_parent(int(sys.argv[3]))  # the worker that started it, and it alone
    sock = socket.socket(fileno=fd)
    serve(sock, modules)


if __name__ == "__main__":
    main()
