"""What one autograde run did, and the summary it prints for the instructor."""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from grader.autograde.diagnose import blank
from grader.records import NotebookOutcome, Status
from grader.text import printable


class Phases(Counter):
    """Seconds per phase of the work, for the time breakdown (``autograde --timings``, benchmarks/grading.py).

    ``cpu``: the CPU-seconds of the phases timed here, by this thread's own clock (on a busy machine the
    seconds count the waits for a core too).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cpu: Counter = Counter()

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self[phase] += time.perf_counter() - started
            self.cpu[phase] += time.thread_time() - cpu


@dataclass
class Summary:
    outcomes: list[tuple[str, str, NotebookOutcome]] = field(default_factory=list)  # (student, assignment, outcome)
    late: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, assignment) → "late by 2 h"
    tests_changed: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (assignment, notebook) → grade ids
    regraded_for_tests: int = 0
    skipped: int = 0
    busy: list[tuple[str, str, str]] = field(default_factory=list)  # (student, assignment, who grades it)
    seconds: float = 0.0
    workers: int = 1
    isolation: str = ""
    cgroups: str = ""  # "v1"/"v2", or "none: why" (from the workers' zygotes)
    phases: Phases = field(default_factory=Phases)  # the grading process's own work, by phase
    worker_phases: Phases = field(default_factory=Phases)  # the workers', summed over notebooks
    worker_rss_mb: float = 0.0  # the largest peak resident memory of a worker process
    sandbox_rss_mb: float = 0.0  # the largest of any notebook's sandbox
    sandbox_cpu: float = 0.0  # CPU-seconds of every sandbox, summed
    started_at: float = 0.0  # when the run started (time.time())
    process_cpu: float = 0.0  # the grading process's CPU-seconds when the run ended (since it started: imports too)
    #: each worker's notebooks, (started, ended) by time.time(): when the workers were busy, for --timings
    worker_spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def counts(self) -> Counter:
        return Counter(outcome.status for _, _, outcome in self.outcomes)


def counts_text(counts: Counter) -> str:
    return " ".join(f"{status} {count}" for status, count in sorted(counts.items()))


def print_summary(summary: Summary, report: Callable[[str], None] = print) -> None:
    graded = [o for _, _, o in summary.outcomes if o.status != Status.MISSING]
    ran = [o for o in graded if o.seconds]
    report("")
    report(f"{len(summary.outcomes)} notebook(s) of {len({(s, a) for s, a, _ in summary.outcomes})} submission(s) "
           f"in {summary.seconds:.1f} s" + (f" ({1000 * summary.seconds / len(ran):.0f} ms per notebook run, "
                                          f"{summary.workers} worker(s))" if ran else "")
           + (f"; {summary.skipped} submission(s) unchanged since last graded (use --force to regrade)"
              if summary.skipped else ""))
    report("status: " + (counts_text(summary.counts()) or "nothing"))
    if summary.tests_changed:
        report("tests changed since last graded: " + ", ".join(
            f"{assignment}/{notebook} ({', '.join(sorted(ids))})"
            for (assignment, notebook), ids in sorted(summary.tests_changed.items()))
            + f"; {summary.regraded_for_tests} submission(s) regraded")
    for student, assignment, holder in summary.busy:
        report(f"  {printable(student, newlines=False)}/{assignment}: left to another run, which is grading it "
               f"({printable(holder, newlines=False)}); run again when it is done")
    if summary.isolation == "none":
        report("warning: submissions ran WITHOUT a sandbox (no namespaces on this machine): see README, Grading safely")
    elif summary.cgroups.startswith("none"):
        report(f"note: no cgroup per sandbox ({summary.cgroups[len('none: '):]}). What still holds: each notebook's "
               "processes end with each cell and with the notebook, and its CPU time and memory are limited per "
               "process; but while a cell runs, its processes together may use more than one core and more memory "
               "than memory_mb (see README, Grading safely)")
    attention = [(s, a, o) for s, a, o in summary.outcomes if o.status != Status.GRADED]
    for student, assignment, outcome in attention:
        report(f"  {student}/{assignment}/{outcome.notebook}: {outcome.status}: {outcome.detail}")
    for student, assignment, outcome in summary.outcomes:
        if blank(outcome.diagnoses, outcome.tests):
            report(f"  {student}/{assignment}/{outcome.notebook}: blank, no exercise attempted")
        for grade_id, found in sorted(outcome.diagnoses.items()):
            if found.startswith(("misspelled", "not defined")):
                report(f"  {student}/{assignment}/{outcome.notebook}: {grade_id}: {found}")
    penalties = Counter()
    for student, assignment, outcome in summary.outcomes:
        penalties[(student, assignment)] += outcome.penalty
    for (student, assignment), late in sorted(summary.late.items()):
        taken = penalties[(student, assignment)]
        report(f"  {student}/{assignment}: {late}" + (f"; late penalty {taken:g} point(s)" if taken else ""))
    for student, assignment, outcome in summary.outcomes:
        if outcome.flags:
            report(f"  flagged {student}/{assignment}/{outcome.notebook}: " + "; ".join(outcome.flags[:3])
                   + (f" (+{len(outcome.flags) - 3} more)" if len(outcome.flags) > 3 else ""))


def print_timings(summary: Summary, report: Callable[[str], None] = print) -> None:
    """Where the run's time went: the grading process by phase, the workers' time by phase (summed)."""
    ran = sum(1 for _, _, outcome in summary.outcomes if outcome.seconds) or 1
    report("")
    report(f"where the time went ({ran} notebook(s) run; wall {summary.seconds:.1f} s):")
    report("| where | phase | s | ms per notebook run | CPU-s |")
    report("|---|---|---:|---:|---:|")
    for where, phases in (("grading process", summary.phases), ("workers (summed)", summary.worker_phases)):
        for phase, seconds in phases.most_common():
            cpu = f"{phases.cpu[phase]:.2f}" if phase in phases.cpu else ""
            report(f"| {where} | {phase} | {seconds:.2f} | {1000 * seconds / ran:.0f} | {cpu} |")
    report(f"CPU-seconds of the sandboxes (every process of each, measured outside it): {summary.sandbox_cpu:.1f}")
    if summary.process_cpu:
        timed = sum(summary.phases.cpu.values())
        report(f"CPU-seconds of the grading process since it started: {summary.process_cpu:.1f} (the phases above "
               f"{timed:.1f}; the rest is its imports, starting the workers and reading their results)")
    spans = timeline(summary)
    if spans:
        report(spans)
    report(f"peak resident memory: a worker {summary.worker_rss_mb:.0f} MiB, "
           f"a sandbox {summary.sandbox_rss_mb:.0f} MiB")


def timeline(summary: Summary) -> str:
    """When the workers were busy: how long the run took to give them their first notebook, and how long each
    waited at the end for the others (the tail)."""
    spans = {worker: sorted(times) for worker, times in summary.worker_spans.items() if times}
    if not spans or not summary.started_at:
        return ""
    end = summary.started_at + summary.seconds
    first = min(times[0][0] for times in spans.values()) - summary.started_at
    last = max(times[-1][1] for times in spans.values()) - summary.started_at
    idle = []
    for number, (worker, times) in enumerate(sorted(spans.items(), key=lambda item: item[1][0][0]), 1):
        busy = sum(ended - started for started, ended in times)
        idle.append(f"worker {number}: {len(times)} notebooks, busy {busy:.1f} s, first from "
                    f"{times[0][0] - summary.started_at:.1f} s, idle {end - times[-1][1]:.1f} s at the end")
    return (f"workers' timeline (s into the run of {summary.seconds:.1f} s): the first notebook started at "
            f"{first:.1f} s, the last ended at {last:.1f} s; " + "; ".join(idle))
