"""Grade a synthetic class with stock ``nbgrader autograde`` and with ``python -m grader autograde``.

    python benchmarks/grading.py                 # 20 students × every notebook of the course
    python benchmarks/grading.py --students 4 --assignments 02-backward

The class is made from the real course: each student's notebook is the student
version with the instructor's solutions filled in (correct), some of them
(partly right), none (blank), solutions that run but are wrong, or a solution
that loops forever. Every student's code is their own (each answer carries the
student's own comment), so no two submissions are the same file and no cache of
an earlier result can serve one for another. Both graders grade the same files, in two copies of the
course, with the same per-cell timeout. The script checks that every notebook
gets the same score from both, then prints students, notebooks, seconds,
milliseconds per notebook and the ratio. It exits non-zero if any score differs.

It also prints the floor: the students' cells and the probes of the test cells alone, back to back in
one warm process (torch imported once), without sandbox, tamper checks, planning or storing
(``--floor`` measures only that), and the peak memory of the run: of a worker, of a sandbox, and of
every process of the run together, sampled as it runs, with how it went from the first quarter of the
run to the last (``--students 40`` grades 280 notebooks: it should not grow).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from grader.notebooks import cell_source, fill_solutions, instructor_answers  # noqa: E402 (run as a script, from anywhere)

KINDS = {"correct": 0.55, "partly right": 0.2, "wrong": 0.1, "blank": 0.1, "looping": 0.05}


def student_notebook(source, release, kind: str, rng: random.Random, student: str = ""):
    """The student version, answered as a student of this kind would answer it (in their own words:
    each answer, or a blank student's first answer cell, ends with a comment of the student's)."""
    solutions = instructor_answers(source)
    ids = list(solutions)
    answered = set(ids)
    if kind == "partly right":
        answered = set(rng.sample(ids, k=max(1, len(ids) // 2)))
    elif kind in ("blank", "wrong"):
        answered = set()
    looping = rng.choice(ids) if kind == "looping" and ids else None
    answers = {grade_id: solutions[grade_id] for grade_id in answered}
    if kind == "wrong":
        answers = instructor_answers(source, region=lambda indent, code: f"{indent}pass\n")
    if looping:
        answers[looping] = instructor_answers(source, region=lambda indent, code: f"{indent}while True:\n"
                                              f"{indent}    pass\n")[looping]
    if student:
        if not answers and ids:  # a blank notebook: the released cell, with a note of the student's
            answers = {ids[0]: _released_source(release, ids[0])}
        answers = {grade_id: f"{code.rstrip()}\n# {student}: my own answer\n"
                   for grade_id, code in answers.items()}
    return fill_solutions(release, answers)


def _released_source(release, grade_id: str) -> str:
    return next(cell_source(cell) for cell in release.cells
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def make_course(folder: Path, assignments: list[str], timeout: float) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", folder / "nbgrader_config.py")
    with open(folder / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {int(timeout)}\nc.Sandbox.cell_timeout = {timeout}\n"
                     # The course turns stock autograde off (grader/stock.py); the benchmark measures it.
                     'c.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"\n')
    for assignment in assignments:
        shutil.copytree(ROOT / "course" / "source" / assignment, folder / "source" / assignment)
    _run([sys.executable, "-m", "grader", "release", "--no-check", "--course", str(folder), *assignments])
    return folder


def make_class(course: Path, assignments: list[str], students: int, seed: int,
               weights: dict[str, float] = KINDS) -> dict[tuple[str, str], str]:
    rng = random.Random(seed)
    kinds = {}
    for number in range(students):
        student = f"student{number:03d}"
        for assignment in assignments:
            kind = rng.choices(list(weights), weights=list(weights.values()))[0]
            source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
            release = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(student_notebook(source, release, kind, rng, student), folder / f"{assignment}.ipynb")
            kinds[(student, assignment)] = kind
    files = [path.read_bytes() for path in sorted((course / "submitted").glob("*/*/*.ipynb"))]
    if len(set(files)) != len(files):
        raise SystemExit("internal error: two submissions of the class are the same file")
    return kinds


@dataclass
class Run:
    """One grader's run: wall-clock seconds, CPU seconds of it and every process it waited for, and its output."""

    seconds: float = 0.0
    cpu: float = 0.0
    output: str = ""

    def __iadd__(self, other: "Run") -> "Run":
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.output += other.output
        return self


def _run(command: list[str], cwd: Path | None = None) -> Run:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(seconds, cpu, result.stdout)


class MemorySampler:
    """The resident memory of every process of a run, sampled every ``interval`` seconds while it runs.

    Summed as proportional set size (a page shared by n processes counts 1/n: the sandboxes are forks
    of one zygote) where /proc lets this process read it, else as resident set size.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: list[float] = []  # MiB, every process of the run together
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            parents = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
                        parents[int(entry)] = int(fields[1])
                    except (OSError, IndexError, ValueError):
                        pass
            total = 0.0
            for pid in parents:
                ancestor = parents.get(pid)
                while ancestor and ancestor != me:
                    ancestor = parents.get(ancestor)
                if ancestor == me:
                    total += _resident_kib(pid) / 1024
            self.samples.append(total)

    def text(self) -> str:
        if not self.samples:
            return "memory of the whole run: no sample"
        quarter = max(1, len(self.samples) // 4)
        second, last = self.samples[quarter:2 * quarter] or self.samples, self.samples[-quarter:]
        return (f"memory of the whole run (every process, summed): peak {max(self.samples):.0f} MiB; "
                f"peak in the second quarter of the run (the workers started) {max(second):.0f} MiB, in the last "
                f"{max(last):.0f} MiB ({len(self.samples)} samples)")


def _resident_kib(pid: int) -> int:
    for name, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(name).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return 0


def floor(course_path: Path, timeout: float) -> dict[str, float]:
    """The students' cells and the probes alone, back to back in this warm process (no sandbox, no
    tamper checks, no planning or storing timed): what grading costs at the very least.

    Planned first (not timed); then each notebook in a fresh namespace of one IPython shell, its code cells
    (not the demo cells, as when grading) and its test cells' probes, each cell stopped at ``timeout``.
    """
    import signal

    from grader.autograde.jobs import course_imports, gradebook_tests
    from grader.autograde.plan import plan_notebook
    from grader.autograde.run import DEFAULT_PRELOAD
    from grader.course import open_course
    from grader.notebooks import is_demo_cell, is_test_cell, read_notebook
    from grader.sandbox import kernel_probes, runner
    from grader.sandbox.zygote import preload

    course = open_course(course_path)
    with course.gradebook() as gradebook:
        assignments = {path.name for path in course.submitted.glob("*/*") if path.is_dir()}
        tests = gradebook_tests(gradebook, assignments)
        modules = DEFAULT_PRELOAD + course_imports(gradebook, assignments)
    preload(modules)
    # As in a sandbox: graded (a notebook runs on the reference engine, not on a file another one saved), in a
    # scratch folder (what a notebook writes, 05's my_engine.py, lands there and not in the repository).
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    os.chdir(tempfile.mkdtemp(prefix="floor-"))
    shell = runner.prepare_shell()
    import torch
    from matplotlib import pyplot

    jobs = []
    for path in sorted(course.submitted.glob("*/*/*.ipynb")):
        notebook = read_notebook(path)
        plan = plan_notebook(tests[(path.parent.name, path.stem)], salt=str(path))
        cells = []
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or (is_demo_cell(cell) and not is_test_cell(cell)):
                continue
            label = (path.stem, _cell_label(index, cell))
            if is_test_cell(cell):
                cells.append(("test", [check.spec for check in plan.checks[cell.metadata.nbgrader.grade_id]], label))
            else:
                cells.append(("code", cell.source, label))
        jobs.append(cells)

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    gc.collect()
    gc.freeze()  # as the zygote does: the imports out of the collector's sight
    default_dtype = torch.get_default_dtype()
    by_cell: dict[tuple[str, str], list[float]] = {}  # (notebook, cell) → [CPU-s summed over the class, runs, most]
    started, cpu = time.perf_counter(), time.process_time()
    for cells in jobs:
        shell.reset(new_session=False)
        kernel_probes._stopped.clear()
        torch.set_default_dtype(default_dtype)  # (a set-up cell changes it; a notebook graded gets a fresh process)
        for kind, content, label in cells:
            cell_cpu = time.process_time()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                if kind == "code":
                    runner._execute(shell, content)
                else:
                    runner._quietly(lambda: kernel_probes.run_planned(content, shell.user_ns))
            except KeyboardInterrupt:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            pyplot.close("all")
            spent, used = by_cell.setdefault(label, [0.0, 0, 0.0]), time.process_time() - cell_cpu
            spent[0] += used
            spent[1] += 1
            spent[2] = max(spent[2], used)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    top = sorted(by_cell.items(), key=lambda item: -item[1][0])[:15]
    return {"notebooks": len(jobs), "seconds": seconds, "cpu": cpu,
            "cells": [[notebook, cell, *spent] for (notebook, cell), spent in top]}


def _cell_label(index: int, cell) -> str:
    """A cell as the floor's table names it: its grade id, else its number and first line."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if grade_id:
        return grade_id
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index}: {first[:50]}"


def _peak_children_mb() -> float:
    """The largest peak resident memory of any process this benchmark waited for (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def scores(course: Path) -> dict[tuple[str, str], float]:
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                found[(submission.student.id, assignment.name)] = float(submission.score)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--assignments", nargs="*", help="default: every assignment of course/source")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-cell timeout for both graders (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the two course copies")
    parser.add_argument("--only", choices=["ours"], help="grade with this project's grader only (for profiling)")
    parser.add_argument("--floor", metavar="COURSE", type=Path, help=argparse.SUPPRESS)  # (the floor's own process)
    args = parser.parse_args(argv)
    if args.floor:
        print(json.dumps(floor(args.floor, args.timeout)))
        return 0
    assignments = args.assignments or sorted(p.name for p in (ROOT / "course" / "source").iterdir() if p.is_dir())

    scratch = Path(tempfile.mkdtemp(prefix="grading-benchmark-"))
    try:
        stock = make_course(scratch / "stock", assignments, args.timeout)
        ours = make_course(scratch / "ours", assignments, args.timeout)
        kinds = make_class(stock, assignments, args.students, args.seed)
        shutil.copytree(stock / "submitted", ours / "submitted")
        notebooks = len(kinds)
        print(f"class: {args.students} students × {len(assignments)} notebooks = {notebooks} notebooks; "
              + ", ".join(f"{kind} {sum(1 for k in kinds.values() if k == kind)}" for kind in KINDS), flush=True)

        stock_run = Run()
        for assignment in assignments if not args.only else []:
            stock_run += _run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"], cwd=stock)
        stock_seconds = stock_run.seconds
        print(f"stock nbgrader autograde: {stock_seconds:.1f} s ({stock_run.cpu:.1f} CPU-s)", flush=True)
        with MemorySampler() as memory:
            ours_run = _run([sys.executable, "-m", "grader", "autograde", "--course", str(ours), "--workers",
                             str(args.workers), "--no-progress", "--force", "--timings"])
        ours_seconds = ours_run.seconds
        print(f"python -m grader autograde --workers {args.workers}: {ours_seconds:.1f} s ({ours_run.cpu:.1f} CPU-s)",
              flush=True)
        timings = ours_run.output[ours_run.output.find("where the time went"):]
        print(timings.rstrip(), flush=True)
        print(f"largest resident memory of any process either grader started: {_peak_children_mb():.0f} MiB",
              flush=True)
        print(memory.text(), flush=True)
        measured = json.loads(_run([sys.executable, __file__, "--floor", str(ours), "--timeout",
                                    str(args.timeout)]).output.strip().splitlines()[-1])
        print(f"floor (the students' cells and the probes alone, back to back in one warm process): "
              f"{measured['seconds']:.1f} s, {measured['cpu']:.1f} CPU-s for {measured['notebooks']} notebooks "
              f"({1000 * measured['cpu'] / max(1, measured['notebooks']):.0f} ms each); ours is "
              f"{ours_run.cpu / measured['cpu']:.2f}x its CPU-s, and {ours_seconds / measured['seconds']:.2f}x its "
              f"seconds on {args.workers} worker(s) (at best {1 / args.workers:.2f}x)", flush=True)
        print("the floor's costliest cells (CPU-s summed over the class, how many notebooks ran it, the most one "
              "took):")
        print("| notebook | cell | CPU-s | runs | ms per run | most, ms |\n|---|---|---:|---:|---:|---:|")
        for notebook, cell, spent, runs, most in measured["cells"]:
            print(f"| {notebook} | {cell} | {spent:.2f} | {runs} | {1000 * spent / runs:.0f} | {1000 * most:.0f} |")

        if args.only:
            print(f"total points of the class: {sum(scores(ours).values()):g} for {len(scores(ours))} notebooks")
            return 0
        stock_scores, our_scores = scores(stock), scores(ours)
        differ = {key: (stock_scores.get(key), our_scores.get(key)) for key in kinds
                  if stock_scores.get(key) != our_scores.get(key)}
        print()
        print("| students | notebooks | workers | stock s | ours s | stock ms/notebook | ours ms/notebook | ratio "
              "| stock CPU-s | ours CPU-s | CPU ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.students} | {notebooks} | {args.workers} | {stock_seconds:.1f} | {ours_seconds:.1f} | "
              f"{1000 * stock_seconds / notebooks:.0f} | {1000 * ours_seconds / notebooks:.0f} | "
              f"{stock_seconds / ours_seconds:.1f}× | {stock_run.cpu:.1f} | {ours_run.cpu:.1f} | "
              f"{stock_run.cpu / ours_run.cpu:.1f}× |")
        print()
        if differ:
            for (student, assignment), (theirs, mine) in sorted(differ.items()):
                print(f"SCORE DIFFERS {student}/{assignment} ({kinds[(student, assignment)]}): "
                      f"stock {theirs}, ours {mine}")
            return 1
        print(f"identical scores for all {notebooks} notebooks "
              f"(total {sum(our_scores.values()):g} points of the class)")
        return 0
    finally:
        if args.keep:
            print(f"course copies kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
