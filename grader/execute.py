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
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.sandbox import Limits, visible_paths
from grader.zygote import THREAD_VARIABLES, receive_message, send_message

GRACE_SECONDS = 3.0  # after an interrupt, how long a code cell has to stop before the job is killed


@dataclass
class Job:
    """One notebook of one student, ready to grade (plain data: it may travel to a Dask worker)."""

    key: str
    cells: list[dict]  # {"index", "kind": "code" | "test" | "skip", "source" | "probes"}
    limits: Limits
    hidden: list[str] = field(default_factory=list)  # host paths the sandbox must never show
    files: dict[str, bytes] = field(default_factory=dict)  # other files of the assignment
    preload: list[str] = field(default_factory=list)  # modules the zygote imports up front


@dataclass
class Result:
    key: str
    status: str  # graded, timeout, notebook-timeout, output-limit, cpu-limit, memory-limit, died, error
    detail: str
    outputs: dict[int, list[dict]]  # code cell index → outputs
    observations: dict[int, list | None]  # test cell index → what its probes observed (None: did not run)
    flags: list[str]
    seconds: float
    isolation: str = ""
    cell_seconds: dict[int, float] = field(default_factory=dict)  # where the time went, for instructors
    timed_out: list[int] = field(default_factory=list)  # cells stopped after the cell time limit
    stopped_at: int | None = None  # the cell running when the notebook was stopped


# --- the worker's zygote -----------------------------------------------------------------------

class Zygote:
    """A pre-warmed fork server owned by this worker process."""

    def __init__(self, preload: list[str]) -> None:
        self.slot_lock = _claim_slot()
        self.slot = int(Path(self.slot_lock.name).stem.split("-")[1])
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env.update({name: "1" for name in THREAD_VARIABLES})
        env["MPLBACKEND"] = "Agg"
        env["PYTHONUNBUFFERED"] = "1"
        log = open(os.path.join(tempfile.gettempdir(), f"autograd-grader-zygote-{self.slot}.log"), "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.zygote", str(child.fileno()), json.dumps(preload)],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        child.close()
        log.close()
        self.log = log.name
        self.sock = parent
        self._ready = False
        self.isolation = self.isolation_reason = ""

    def ready(self) -> None:
        """Wait until the zygote has imported everything (it starts doing so at once, in the background)."""
        if self._ready:
            return
        hello, _ = receive_message(self.sock)
        if not hello or not hello.get("ready"):
            raise RuntimeError(f"the grading zygote did not start (see {self.log})")
        self.isolation = hello["isolation"]
        self.isolation_reason = hello.get("reason", "")
        self._ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self, job: dict) -> tuple[int, int]:
        self.ready()
        send_message(self.sock, {"cmd": "run", "job": job})
        reply, fds = receive_message(self.sock, with_fds=True)
        if reply is None or not fds:
            raise RuntimeError("the grading zygote stopped")
        return reply["pid"], fds[0]

    def finish(self) -> int:
        reply, _ = receive_message(self.sock)
        if reply is None:
            raise RuntimeError("the grading zygote stopped")
        return int(reply["exit"])

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


def _claim_slot():
    """A slot number unique among the graders running on this machine (it picks the sandbox's uid)."""
    folder = Path(tempfile.gettempdir()) / "autograd-grader-slots"
    folder.mkdir(exist_ok=True)
    for number in range(1000):
        handle = open(folder / f"slot-{number}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except OSError:
            handle.close()
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
    kernel_job = {
        "cells": [cell for cell in job.cells if cell["kind"] in ("code", "test")],
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
    if out_of_memory and status == "graded":
        status = "memory-limit"
        detail = (f"cell {out_of_memory[0]} ran out of memory (the limit is {job.limits.memory_mb} MiB "
                  "beyond the libraries)")
    return Result(job.key, status, detail, outputs, observations, execution.flags, time.perf_counter() - started,
                  zygote.isolation, execution.cell_seconds, execution.timed_out, execution.stopped_at)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Run:
    """Reads the runner's reports and enforces the time, output and life limits."""

    def __init__(self, job: Job, zygote: Zygote) -> None:
        self.job = job
        self.zygote = zygote
        self.outputs: dict[int, list[dict]] = {}
        self.observations: dict[int, list[dict] | None] = {}
        self.flags: list[str] = []
        self.timed_out: list[int] = []
        self.status = "graded"
        self.detail = ""
        self.stopped_at: int | None = None
        self.current: int | None = None
        self.finished = False
        self.exit: dict = {}
        self.cell_seconds: dict[int, float] = {}

    def execute(self, kernel_job: dict) -> None:
        limits = self.job.limits
        pid, fd = self.zygote.start(kernel_job)
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        buffer = b""
        received = 0
        start = time.monotonic()
        cell_started = start
        interrupted_at: float | None = None
        killed = False
        try:
            while True:
                now = time.monotonic()
                deadlines = [start + limits.notebook_timeout]
                if self.current is not None:
                    deadlines.append(cell_started + limits.cell_timeout)
                if interrupted_at is not None:
                    deadlines.append(interrupted_at + self._grace())
                wait = max(0.0, min(deadlines) - now)
                if selector.select(timeout=wait):
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > limits.max_output_bytes:
                        self._stop(pid, "output-limit",
                                   f"the notebook produced more than {limits.max_output_bytes // 2**20} MiB of output")
                        killed = True
                        break
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if self._handle(line):
                            cell_started = time.monotonic()
                            interrupted_at = None
                    if self.exit:
                        break  # the job parent reported the runner's end; what it left behind is killed below
                    continue
                now = time.monotonic()
                if now >= start + limits.notebook_timeout:
                    self._stop(pid, "notebook-timeout", f"the notebook ran longer than {limits.notebook_timeout:g} s")
                    killed = True
                    break
                if interrupted_at is not None and now >= interrupted_at + self._grace():
                    self._stop(pid, "timeout", f"cell {self.current} did not stop when interrupted after "
                                               f"{limits.cell_timeout:g} s")
                    killed = True
                    break
                if self.current is not None and interrupted_at is None and now >= cell_started + limits.cell_timeout:
                    os.kill(pid, signal.SIGUSR1)  # the job parent turns it into KeyboardInterrupt in the cell
                    self.timed_out.append(self.current)
                    interrupted_at = now
        finally:
            selector.close()
            os.close(fd)
            if self.zygote.isolation == "none" or limits.isolation == "none":
                _kill_group(pid)  # without a PID namespace, processes the notebook started may linger
            code = self.zygote.finish()
        if not killed and not self.finished:
            self._died(int(self.exit.get("code", code)), float(self.exit.get("cpu", 0.0)))
        elif self.status == "graded" and self.timed_out:
            self.status = "timeout"
            self.detail = f"cell {self.timed_out[0]} ran longer than {limits.cell_timeout:g} s and was interrupted"

    def _grace(self) -> float:
        """How long an interrupted cell may go on: a code cell stops at once; a test cell goes on with
        its other probes (a function that looped is not called again), for at most one more time limit."""
        kinds = {cell["index"]: cell["kind"] for cell in self.job.cells}
        return self.job.limits.cell_timeout if kinds.get(self.current) == "test" else GRACE_SECONDS

    def _handle(self, line: bytes) -> bool:
        """Process one report; True when a new cell started."""
        try:
            message = json.loads(line)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            self._flag("the notebook wrote to the grader's channel (ignored)")
            return False
        if event == "start":
            self.current = int(message["cell"])
            return True
        if event == "done":
            index = int(message["cell"])
            outputs = message.get("outputs")
            self.outputs[index] = outputs if isinstance(outputs, list) else []
            if "observations" in message:
                self.observations[index] = message["observations"]
            if isinstance(message.get("seconds"), (int, float)):
                self.cell_seconds[index] = float(message["seconds"])
            for change in message.get("tampering", [])[:20]:
                self._flag(f"cell {index}: {change}")
            self.current = None
            return False
        if event == "runner-exit":
            self.exit = message
            return False
        if event == "finished":
            self.finished = True
        elif event == "sandbox-error":
            self.status, self.detail = "error", f"the grader could not set up the sandbox: {message.get('message')}"
        return False

    def _flag(self, text: str) -> None:
        if text not in self.flags and len(self.flags) < 50:
            self.flags.append(str(text)[:300])

    def _stop(self, pid: int, status: str, detail: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.status, self.detail, self.stopped_at = status, detail, self.current

    def _died(self, code: int, cpu: float) -> None:
        if self.status == "error":
            return
        where = f"in cell {self.current}" if self.current is not None else "between cells"
        self.stopped_at = self.current
        if code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL) and cpu >= self.job.limits.cpu_seconds - 0.5:
            self.status, self.detail = "cpu-limit", f"the notebook used more than {self.job.limits.cpu_seconds} s of CPU ({where})"
        elif code == 128 + signal.SIGKILL:
            self.status, self.detail = "memory-limit", f"the kernel was killed, probably for using too much memory ({where})"
        elif code == 128 + signal.SIGXFSZ:
            self.status, self.detail = "disk-limit", f"the notebook wrote a file larger than {self.job.limits.disk_mb} MiB ({where})"
        else:
            self.status, self.detail = "died", f"the kernel died {where} (exit code {code})"
