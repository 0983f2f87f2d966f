"""Where grading work runs: in this process, on every local core, or on a Dask cluster.

Each executor takes an iterator of :class:`~grader.sandbox.execute.Job` and yields a
:class:`~grader.sandbox.execute.Result` for each, in whatever order they finish. Only
results come back; the gradebook stays with the one process that stores them.
A job that crashes the grader's own code becomes a result with status "error",
so one broken submission never stops a run.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from grader.errors import GraderError
from grader.records import Status
from grader.sandbox.execute import Job, Result, run, shutdown, warm_up

_lock = threading.Lock()  # a worker's zygote serves one job at a time (Dask may use threads)


def run_safely(job: Job) -> Result:
    """:func:`grader.sandbox.execute.run`, turning a failure of the grader itself into an "error" result."""
    with _lock:
        started = time.time()
        try:
            result = run(job)
            result.worker_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except Exception as error:
            result = failed(job.key, f"the grader failed on this notebook: {type(error).__name__}: {error}",
                            traceback.format_exc(limit=3)[-500:])
        result.worker = f"{socket.gethostname()}:{os.getpid()}"
        result.started_at, result.ended_at = started, time.time()
        return result


def failed(key: str, detail: str, trace: str = "") -> Result:
    """The grader's own failure on a notebook: recorded as ``error``, with the trace in the detail.

    Never in ``flags``: those are what the submission did, and a grader failure is not the student's.
    """
    return Result(key=key, status=Status.ERROR, detail=f"{detail}\n{trace}".strip(), outputs={}, observations={},
                  flags=[], seconds=0.0)


class InProcess:
    """One worker: this process (and its zygote)."""

    def __init__(self, preload: list[str]) -> None:
        warm_up(preload)

    def run(self, jobs: Iterable[Job]) -> Iterator[Result]:
        for job in jobs:
            yield run_safely(job)

    def close(self) -> None:
        shutdown()


def _worker_exit() -> None:
    shutdown()


def _worker_start(preload: list[str], parent: int) -> None:
    import atexit

    if sys.platform.startswith("linux"):
        from grader.sandbox.linux import die_with_parent

        die_with_parent(parent)  # a killed autograde takes its workers, and so their zygotes, with it
    atexit.register(_worker_exit)
    warm_up(preload)


def _nothing() -> None:
    pass


class LocalPool:
    """``workers`` processes, each with its own zygote; at most two jobs each in flight.

    The workers and their zygotes start at once, so that their imports overlap
    with the planning of the tests in the grading process.
    """

    def __init__(self, workers: int, preload: list[str]) -> None:
        self.workers = workers
        self.preload = preload
        self.pool = self._new_pool()
        for _ in range(workers):
            self.pool.submit(_nothing)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(self.preload, os.getpid()))

    def run(self, jobs: Iterable[Job]) -> Iterator[Result]:
        source = iter(jobs)
        in_flight: dict = {}

        def submit_next() -> bool:
            job = next(source, None)
            if job is None:
                return False
            in_flight[self.pool.submit(run_safely, job)] = job
            return True

        while len(in_flight) < 2 * self.workers and submit_next():
            pass
        while in_flight:
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                job = in_flight.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    # A worker process died (not a sandbox: the sandbox is a separate process): start over.
                    self.pool.shutdown(wait=False, cancel_futures=True)
                    self.pool = self._new_pool()
                    retry = list(in_flight.values())
                    in_flight.clear()
                    yield failed(job.key, "the grading worker died while grading this notebook")
                    for again in retry:
                        in_flight[self.pool.submit(run_safely, again)] = again
                    break
                submit_next()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskCluster:
    """The same jobs on a Dask distributed cluster (``pip install 'autograd-lab[dask]'``)."""

    def __init__(self, address: str, window: int = 64) -> None:
        try:
            from distributed import Client
        except ImportError as error:
            raise GraderError("--scheduler needs Dask: pip install 'autograd-lab[dask]'") from error
        try:
            self.client = Client(address, timeout="20s")
        except Exception as error:
            raise GraderError(f"cannot connect to the Dask scheduler at {address}: {error}") from error
        self.window = window

    def run(self, jobs: Iterable[Job]) -> Iterator[Result]:
        from distributed import as_completed

        source = iter(jobs)
        keys: dict = {}

        def submit(job: Job):
            future = self.client.submit(run_safely, job, pure=False)
            keys[future] = job.key
            return future

        queue = as_completed([submit(job) for job in _take(source, self.window)])
        for future in queue:
            key = keys.pop(future)
            try:
                yield future.result()
            except Exception as error:  # a Dask worker died, or could not import the grader
                yield failed(key, f"the Dask worker failed: {error}")
            for job in _take(source, 1):
                queue.add(submit(job))

    def close(self) -> None:
        self.client.close()


def _take(source: Iterator[Job], count: int) -> list[Job]:
    taken = []
    for _ in range(count):
        job = next(source, None)
        if job is None:
            break
        taken.append(job)
    return taken


def start_executor(workers: int, scheduler: str | None = None, preload: list[str] = ()):
    """The executor, started (its workers and their zygotes begin their imports now); ``close()`` it when done."""
    if scheduler:
        return DaskCluster(scheduler)
    if workers <= 1:
        return InProcess(list(preload))
    return LocalPool(workers, list(preload))


@contextlib.contextmanager
def make_executor(workers: int, scheduler: str | None = None, preload: list[str] = ()):
    executor = start_executor(workers, scheduler, preload)
    try:
        yield executor
    finally:
        executor.close()
