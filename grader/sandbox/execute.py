"""Running one notebook in the sandbox, within its limits.

This runs in a worker process (one per core, or on a Dask worker). :func:`run`
takes a :class:`Job` (the sanitized notebook and the probes the grader planned
for its test cells, as plain data) and returns a :class:`Result`: the outputs of
its code cells, what each test cell's probes observed, a status and any flags.
A worker never sees a test's code or expected values, and never decides a
verdict: the grading process does that (``grader/autograde.py``), and it alone
writes the gradebook. So a worker needs no PyTorch, only its zygote does.
"""
from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Hashable

from autograd_lab.checks.observed import Observed
from grader.sandbox import channel
from grader.private import open_private, private_folder
from grader.sandbox.linux import Limits, send_signal, visible_paths
from grader.text import printable
from grader.records import Status
from grader.sandbox.zygote import THREAD_VARIABLES, receive_message, send_message

#: Where a notebook's time goes in a worker (Result.phases), by this process's clock; "tamper checks" is the
#: runner's own report of its snapshot after each cell, part of the cells' time (the sandbox's word, kept for the
#: breakdown only: nothing is decided by it).
PHASES = ("zygote wait", "sandbox start", "code cells", "test cells", "tamper checks (within cells)", "between cells",
          "sandbox end")
GRACE_SECONDS = 3.0  # after an interrupt, how long a code cell has to stop before the job is killed
#: The folder that holds the `grader` package (grader/sandbox/execute.py is three levels below it).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Job:
    """One notebook of one student, ready to grade (plain data: it may travel to a Dask worker)."""

    key: Hashable  # the caller's name for this job (autograde: a grader.records.NotebookKey)
    cells: list[dict]  # {"index", "kind": "code" | "test" | "skip", "source" | "probes"}
    limits: Limits
    hidden: list[str] = field(default_factory=list)  # host paths the sandbox must never show
    files: dict[str, bytes] = field(default_factory=dict)  # other files of the assignment
    preload: list[str] = field(default_factory=list)  # modules the zygote imports up front


@dataclass
class Result:
    key: Hashable
    status: Status  # any but missing, invalid and pending
    detail: str
    outputs: dict[int, list[dict]]  # code cell index → outputs
    observations: dict[int, list[Observed] | None]  # test cell index → what its probes observed, read once
    flags: list[str]
    seconds: float
    isolation: str = ""
    timed_out: list[int] = field(default_factory=list)  # cells stopped after the cell time limit
    stopped_at: int | None = None  # the cell running when the notebook was stopped
    cgroups: str = ""  # "v1" or "v2" where each sandbox had cgroups of its own, else why not
    max_rss_mb: float = 0.0  # the sandbox's largest process, as the kernel measured it from outside
    worker_rss_mb: float = 0.0  # the worker process's own peak so far (it grades many notebooks)
    cpu_seconds: float = 0.0  # the sandbox's CPU time, all its processes (from the zygote, outside it)
    phases: dict[str, float] = field(default_factory=dict)  # where this notebook's time went (PHASES), seconds
    worker: str = ""  # which worker graded it ("host:pid"), and when (its clock, time.time()): for --timings
    started_at: float = 0.0
    ended_at: float = 0.0


# --- the worker's zygote -----------------------------------------------------------------------

class Zygote:
    """A pre-warmed fork server owned by this worker process."""

    def __init__(self, preload: list[str]) -> None:
        self.slot, self.slot_lock = _claim_slot()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.log = str(private_folder() / f"zygote-{self.slot}.log")
        log = os.fdopen(open_private(f"zygote-{self.slot}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.sandbox.zygote", str(child.fileno()), json.dumps(preload), str(os.getpid())],
            pass_fds=[child.fileno()], env=zygote_environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            # `-m` puts the working folder first on the path: the one that holds this worker's `grader` package,
            # so that the zygote imports the packages this worker uses, never a same-named folder where the
            # instructor happens to be (nor, beside an editable install, another checkout).
            cwd=PACKAGE_ROOT,
        )
        child.close()
        log.close()
        self.sock = parent
        self._ready = False
        self.isolation = self.isolation_reason = ""
        self.cgroups, self.cgroups_reason = 0, ""

    def ready(self) -> None:
        """Wait until the zygote has imported everything (it starts doing so at once, in the background)."""
        if self._ready:
            return
        hello, _ = receive_message(self.sock)
        if not hello or not hello.get("ready"):
            raise RuntimeError(f"the grading zygote did not start (see {self.log})")
        self.isolation = hello["isolation"]
        self.isolation_reason = hello.get("reason", "")
        self.cgroups, self.cgroups_reason = hello.get("cgroups", 0), hello.get("cgroups_reason", "")
        self._ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self, job: dict) -> tuple[int, int, int]:
        """Start a job: its parent's pid, the runner's report pipe (read end) and its probe pipe (write end)."""
        self.ready()
        send_message(self.sock, {"cmd": "run", "job": job})
        reply, fds = receive_message(self.sock, with_fds=True)
        if reply is None or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise RuntimeError("the grading zygote stopped")
        return reply["pid"], fds[0], fds[1]

    def finish(self, timeout: float = 30.0) -> dict:
        """The job's end as the zygote saw it (outside the sandbox): its exit code and CPU time."""
        self.sock.settimeout(timeout)
        try:
            reply, _ = receive_message(self.sock)
        except TimeoutError:
            reply = None
        finally:
            self.sock.settimeout(None)
        if reply is None:
            self.process.kill()  # out of step with this worker: the next job starts a new one
            raise RuntimeError("the grading zygote stopped answering")
        return reply

    def close(self) -> None:
        try:
            send_message(self.sock, {"cmd": "exit"})
        except OSError:
            pass
        self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


#: What the zygote (and so every sandbox forked from it) may inherit of the grader's environment.
#: It is exec'ed with only these, so not even ``/proc/self/environ`` holds the grader's secrets.
ZYGOTE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "TZ")


def zygote_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in ZYGOTE_ENVIRONMENT if name in os.environ}
    env.update({name: "1" for name in THREAD_VARIABLES})
    folder = private_folder()
    matplotlib = folder / "matplotlib"
    try:
        os.mkdir(matplotlib, 0o700)
    except FileExistsError:
        pass
    env.update({"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "HOME": str(folder), "MPLCONFIGDIR": str(matplotlib)})
    return env


def _claim_slot():
    """A slot number unique among this user's graders on this machine (it picks a root grader's sandbox uid).

    Returns the number and the open file that holds its lock.
    """
    for number in range(1000):
        fd = open_private(f"slot-{number}.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return number, os.fdopen(fd, "r+b")  # unlocked when the zygote's object is gone
        except OSError:
            os.close(fd)
    raise RuntimeError("no free grading slot")


_zygote: Zygote | None = None


def _get_zygote(preload: list[str]) -> Zygote:
    global _zygote
    if _zygote is None or not _zygote.alive():
        _zygote = Zygote(preload)
    return _zygote


def warm_up(preload: list[str]) -> None:
    """Start this process's zygote now, so its imports overlap with other work."""
    _get_zygote(preload)


def shutdown() -> None:
    global _zygote
    if _zygote is not None:
        _zygote.close()
        _zygote = None


# --- grading a job -----------------------------------------------------------------------------

def run(job: Job) -> Result:
    """Run the notebook in the sandbox and collect what it did. Never raises for a bad submission."""
    started = time.perf_counter()
    zygote = _get_zygote(job.preload)
    zygote.ready()
    waited = time.perf_counter() - started
    kernel_job = {
        # A test cell's probes stay here until its turn (see _Run): the kernel gets its index only.
        "cells": [{"index": cell["index"], "kind": "test"} if cell["kind"] == "test" else cell
                  for cell in job.cells if cell["kind"] in ("code", "test")],
        "limits": asdict(job.limits),
        "visible": visible_paths(job.hidden),
        "slot": zygote.slot,
        "files": {name: data.hex() for name, data in job.files.items()},
    }
    execution = _Run(job, zygote)
    execution.execute(kernel_job)
    outputs = {cell["index"]: execution.outputs.get(cell["index"], []) for cell in job.cells if cell["kind"] == "code"}
    observations = {cell["index"]: execution.observations.get(cell["index"]) for cell in job.cells
                    if cell["kind"] == "test"}
    status, detail = execution.status, execution.detail
    out_of_memory = [index for index, cell_outputs in sorted(outputs.items())
                     if any(o.get("ename") == "MemoryError" for o in cell_outputs)]
    if out_of_memory and status == Status.GRADED:
        status = Status.MEMORY_LIMIT
        detail = (f"cell {out_of_memory[0]} ran out of memory (the limit is {job.limits.memory_mb} MiB "
                  "beyond the libraries)")
    return Result(job.key, status, detail, outputs, observations, execution.flags, time.perf_counter() - started,
                  zygote.isolation, execution.timed_out, execution.stopped_at,
                  cgroups=f"v{zygote.cgroups}" if zygote.cgroups else f"none: {zygote.cgroups_reason}",
                  max_rss_mb=execution.max_rss_mb(), phases={"zygote wait": waited, **execution.phases},
                  cpu_seconds=execution.cpu_seconds())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass



class _Run:
    """Reads the runner's reports, accepts only those that fit the job, and enforces every limit.

    The runner shares its process with the student's code, so its reports may be
    forged (see ``grader/sandbox/channel.py``). The order of the job's cells is known here:
    a cell's start is accepted only when it is that cell's turn, and its report
    only while it runs; a test cell's probes are sent only then. The clocks are
    this process's own: a cell's time runs from the accepted start of the last
    cell, whatever is reported after it. The exit code and CPU time come from
    the zygote, outside the sandbox. Whatever is rejected is flagged.
    """

    def __init__(self, job: Job, zygote: Zygote) -> None:
        self.job = job
        self.zygote = zygote
        self.outputs: dict[int, list[dict]] = {}
        self.observations: dict[int, list[Observed] | None] = {}
        self.flags: list[str] = []
        self.timed_out: list[int] = []
        self.status = Status.GRADED
        self.detail = ""
        self.stopped_at: int | None = None
        self.cells = {cell["index"]: cell for cell in job.cells if cell["kind"] in ("code", "test")}
        self.order = list(self.cells)
        self.position = 0  # how many cells have started
        self.current: int | None = None  # the cell running now
        self.last: int | None = None  # the cell that started last (the one a timeout stops)
        self.ready = False
        self.exit: dict | None = None
        self.clock = 0.0  # when the last accepted start or report came (or the job started)
        self.probe_pipe: int | None = None
        self.probes_unsent = bytearray()  # probes the runner has not read yet (written as its pipe takes them)
        self.pid: int | None = None  # the job parent's
        self.pidfd: int | None = None
        self.phases: dict[str, float] = dict.fromkeys(PHASES[1:], 0.0)  # from this process's own clock
        self._phase_clock = time.monotonic()

    @property
    def complete(self) -> bool:
        return self.position == len(self.order) and self.current is None

    def execute(self, kernel_job: dict) -> None:
        limits = self.job.limits
        pid, fd, self.probe_pipe = self.zygote.start(kernel_job)
        self.pid = pid
        self.pidfd = _pidfd(pid)  # signals go to this job's parent, never to a process that took its pid later
        os.set_blocking(self.probe_pipe, False)
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ, "reports")
        selector.register(self.zygote.sock, selectors.EVENT_READ, "zygote")
        self.selector = selector
        buffer = b""
        received = 0
        start = self.clock = time.monotonic()
        interrupted_at: float | None = None
        closed_at: float | None = None  # when the runner's pipe closed
        killed = False
        try:
            while self.exit is None:
                now = time.monotonic()
                deadlines = [start + limits.notebook_timeout]
                if interrupted_at is None:
                    deadlines.append(self.clock + limits.cell_timeout)
                else:
                    deadlines.append(interrupted_at + self._grace())
                if closed_at is not None:
                    deadlines.append(closed_at + GRACE_SECONDS)
                events = selector.select(timeout=max(0.0, min(deadlines) - now))
                for key, _ in events:
                    if key.data == "zygote":
                        self.exit = self.zygote.finish()
                        continue
                    if key.data == "probes":
                        self._write_probes()
                        continue
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        selector.unregister(fd)
                        closed_at = time.monotonic()
                        continue
                    received += len(chunk)
                    if received > limits.max_output_bytes:
                        self._stop(pid, Status.OUTPUT_LIMIT,
                                   f"the notebook produced more than {limits.max_output_bytes // 2**20} MiB of output")
                        killed = True
                        break
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        if self._handle(line):  # a cell started or reported: its clock, or the one between cells
                            self.clock = time.monotonic()
                            interrupted_at = None
                if killed or self.exit is not None:
                    break
                now = time.monotonic()
                if now >= start + limits.notebook_timeout:
                    self._stop(pid, Status.NOTEBOOK_TIMEOUT,
                               f"the notebook ran longer than {limits.notebook_timeout:g} s")
                    killed = True
                elif closed_at is not None and now >= closed_at + GRACE_SECONDS:
                    self._flag("the kernel closed its channel to the grader but went on running (stopped)")
                    self._stop(pid, Status.DIED, "the kernel stopped reporting to the grader "
                                            f"{self._where()} and was stopped")
                    killed = True
                elif interrupted_at is not None and now >= interrupted_at + self._grace():
                    self._stop(pid, Status.TIMEOUT, f"cell {self.last} did not stop when interrupted after "
                                               f"{limits.cell_timeout:g} s")
                    killed = True
                elif interrupted_at is None and now >= self.clock + limits.cell_timeout and self.current is None:
                    # between cells only the runner runs: there is nothing to interrupt, it has hung
                    self._stop(pid, Status.TIMEOUT, self._hung())
                    killed = True
                elif interrupted_at is None and now >= self.clock + limits.cell_timeout:
                    self._send(signal.SIGUSR1)  # the job parent turns it into KeyboardInterrupt in the cell
                    if self.last is not None and self.last not in self.timed_out:
                        self.timed_out.append(self.last)
                    interrupted_at = now
                if killed:
                    break
            if self.exit is not None:
                self._drain(fd, buffer)
        finally:
            selector.close()
            os.close(fd)
            os.close(self.probe_pipe)
            if self.zygote.isolation == "none" or limits.isolation == "none":
                _kill_group(pid)  # without a PID namespace, processes the notebook started may linger
            if self.exit is None:
                self._send(signal.SIGKILL)  # stopped here, or the runner ended its channel: end the job
                self.exit = self.zygote.finish()
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
            self._phase("sandbox end")
        if killed:
            return
        code, cpu = int(self.exit.get("exit", 0)), float(self.exit.get("cpu", 0.0))
        if self.status == Status.ERROR:
            return
        if code != 0 or not self.complete:
            self._died(code, cpu)
        elif self.timed_out:
            self.status = Status.TIMEOUT
            self.detail = f"cell {self.timed_out[0]} ran longer than {limits.cell_timeout:g} s and was interrupted"

    def _drain(self, fd: int, buffer: bytes) -> None:
        """The reports still in the pipe when the job ended (a finished runner wrote them before exiting)."""
        os.set_blocking(fd, False)
        left = self.job.limits.max_output_bytes
        while left > 0:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            left -= len(chunk)
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                self._handle(line)

    def _grace(self) -> float:
        """How long an interrupted cell may go on: a code cell stops at once; a test cell goes on with
        its other probes (a function that looped is not called again), for at most one more time limit."""
        kind = self.cells.get(self.last, {}).get("kind") if self.current is not None else None
        return self.job.limits.cell_timeout if kind == "test" else GRACE_SECONDS

    def _hung(self) -> str:
        """What the kernel failed to do in time, between cells."""
        limit = f"{self.job.limits.cell_timeout:g} s"
        if self.position == len(self.order):
            return f"the kernel did not end within {limit} after its last cell"
        after = f"after cell {self.last} ended" if self.last is not None else "of starting"
        return f"the kernel did not start cell {self.order[self.position]} within {limit} {after}"

    def _where(self) -> str:
        return f"in cell {self.current}" if self.current is not None else "between cells"

    def _handle(self, line: bytes) -> bool:
        """Process one report; True when a cell's start or report was accepted (a clock starts: the
        cell's, or the one between cells)."""
        if not line.strip():
            return False
        try:
            message = channel.parse(line)
        except channel.Rejected as error:
            self._flag(f"the notebook wrote to the grader's channel (ignored: {error})")
            return False
        if isinstance(message, channel.SandboxError):
            if self.ready:  # the student's code runs only after "ready": this one is forged
                self._flag("the notebook wrote a forged sandbox error to the grader's channel (ignored)")
            else:
                self.status, self.detail = Status.ERROR, f"the grader could not set up the sandbox: {message.message}"
            return False
        if isinstance(message, channel.Ready):
            if self.ready:
                self._flag("the notebook wrote a forged 'ready' to the grader's channel (ignored)")
            self.ready = True
            self._phase("sandbox start")
            return False
        if isinstance(message, channel.Start):
            expected = self.order[self.position] if self.position < len(self.order) else None
            if not self.ready or self.current is not None or message.cell != expected:
                self._flag(f"the kernel reported cell {message.cell} starting out of turn (a forged report; ignored)")
                return False
            self.current = self.last = message.cell
            self.position += 1
            self._phase("between cells")
            if self.cells[self.current]["kind"] == "test":
                self._send_probes(self.current)
            return True
        return self._done(message)

    def _phase(self, name: str) -> None:
        """The time since the last event goes to ``name``."""
        now = time.monotonic()
        self.phases[name] += now - self._phase_clock
        self._phase_clock = now

    def cpu_seconds(self) -> float:
        """The sandbox's CPU time (from the zygote, outside the sandbox)."""
        value = (self.exit or {}).get("cpu", 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    def max_rss_mb(self) -> float:
        """The peak resident memory of the sandbox's largest process (from the zygote, outside the sandbox)."""
        value = (self.exit or {}).get("max_rss_mb", 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    def _done(self, message: channel.Done) -> bool:
        index = message.cell
        if index != self.current:
            self._flag(f"the kernel reported cell {index} done out of turn (a forged report; ignored)")
            return False
        self.current = None  # from now the clock between cells runs (see execute)
        kind = self.cells[index]["kind"]
        self._phase("test cells" if kind == "test" else "code cells")
        self.phases["tamper checks (within cells)"] += message.check_seconds
        if self.pid is not None:
            self._send(signal.SIGUSR2)  # the job parent has the sandbox end what the cell started
        for change in message.tampering:
            self._flag(f"cell {index}: {change}")
        if self.cells[index]["kind"] == "test":
            probes = len(self.cells[index].get("probes", []))
            observations, problems = channel.clean_observations(message.observations, probes)
            if observations is not None:
                self.observations[index] = observations
            for problem in problems:
                self._flag(f"cell {index}: the kernel sent a malformed result, {problem} (that check failed)")
            return True
        try:
            self.outputs[index] = channel.clean_outputs(message.outputs)
        except channel.Rejected as error:
            self._flag(f"cell {index}: the kernel sent malformed outputs ({error}; not kept)")
            self.outputs[index] = [{"output_type": "error", "ename": "GraderError",
                                    "evalue": "the outputs of this cell could not be read", "traceback": []}]
        return True

    def _send_probes(self, index: int) -> None:
        """The cell's probes, now that it runs: the runner reads them from its own pipe.

        Written as the pipe takes them, between reports, never waiting: a notebook that does
        not read them only keeps its own test from running, never the grader from its clocks.
        """
        data = (json.dumps({"cell": index, "probes": self.cells[index].get("probes", [])}) + "\n").encode()
        self.probes_unsent += data
        self._write_probes()

    def _write_probes(self) -> None:
        try:
            while self.probes_unsent:
                del self.probes_unsent[:os.write(self.probe_pipe, self.probes_unsent)]
        except BlockingIOError:
            pass
        except OSError:  # the runner is gone
            self.probes_unsent.clear()
        waiting = self.probe_pipe in self.selector.get_map()
        if self.probes_unsent and not waiting:
            self.selector.register(self.probe_pipe, selectors.EVENT_WRITE, "probes")
        elif waiting and not self.probes_unsent:
            self.selector.unregister(self.probe_pipe)

    def _flag(self, text: str) -> None:
        text = printable(text, newlines=False)[:300]
        if text not in self.flags and len(self.flags) < 50:
            self.flags.append(text)

    def _send(self, number: int) -> None:
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, number)
            except ProcessLookupError:
                pass
        elif self.pid is not None:
            send_signal(self.pid, number)

    def _stop(self, pid: int, status: str, detail: str) -> None:
        self._send(signal.SIGKILL)
        self.status, self.detail, self.stopped_at = status, detail, self.current

    def _died(self, code: int, cpu: float) -> None:
        where = self._where()
        self.stopped_at = self.current
        if code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL) and cpu >= self.job.limits.cpu_seconds - 0.5:
            self.status, self.detail = Status.CPU_LIMIT, (
                f"the notebook used more than {self.job.limits.cpu_seconds} s of CPU ({where})")
        elif self.exit and self.exit.get("out_of_memory"):
            self.status, self.detail = Status.MEMORY_LIMIT, (
                f"the notebook used more than its {self.job.limits.memory_mb} MiB "
                f"of memory, counted for all its processes and files ({where})")
        elif code == 128 + signal.SIGKILL:
            self.status, self.detail = Status.MEMORY_LIMIT, (
                f"the kernel was killed, probably for using too much memory ({where})")
        elif code == 128 + signal.SIGXFSZ:
            self.status, self.detail = Status.DISK_LIMIT, (
                f"the notebook wrote a file larger than {self.job.limits.disk_mb} MiB ({where})")
        elif code == 0:
            self.status, self.detail = Status.DIED, f"the kernel ended {where} before running every cell"
        else:
            self.status, self.detail = Status.DIED, f"the kernel died {where} (exit code {code})"


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or the job parent already ended
        return None

