"""Honest students graded beside an abusive one: their scores and times, with and without the abuser.

    python benchmarks/abuse.py                    # 8 students × 02-backward, 2 workers
    python benchmarks/abuse.py --students 12 --assignments 02-backward 03-gradient-descent

The class is made from the real course (the instructor's solutions filled in:
every honest notebook is correct). It is graded twice by ``python -m grader
autograde``, in two copies of the course: once as it is, and once with one more
student whose notebook, in every assignment, starts processes that spin on every
core and outlive their cell, and fills its /tmp, while the honest notebooks are
graded beside it on the other workers. The script prints, per run, the honest
notebooks' scores and their seconds (median and slowest, as the grader recorded
them), and the ratio of the two runs. It exits non-zero if an honest score
differs between the runs or the abuser's notebook stopped the run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading import ROOT, _run, make_class, make_course  # noqa: E402 (this folder is not a package)

ABUSE = [
    # Forty processes that spin on every core, started by one cell and left running after it.
    "import os\nfor _ in range(40):\n    if os.fork() == 0:\n        while True:\n            pass",
    # A cell that sleeps while they spin, then files that fill /tmp (memory outside the processes).
    "import time\ntime.sleep(4)\n"
    "try:\n    open('/tmp/fill', 'wb').write(b'x' * (2 ** 30))\nexcept OSError as error:\n    print(error)",
]


def add_abuser(course: Path, assignments: list[str]) -> None:
    for assignment in assignments:
        notebook = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        notebook.cells[1:1] = [new_code_cell(source) for source in ABUSE]
        folder = course / "submitted" / "abuser" / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")


def honest_outcomes(course: Path) -> dict[tuple[str, str], tuple[float | None, float]]:
    """(student, assignment) → (score, seconds) of every honest notebook, from the grader's records."""
    sys.path.insert(0, str(ROOT))
    from grader.records import SubmissionRecord

    found = {}
    for path in sorted((course / ".grader" / "results").glob("*/*.json")):
        if path.stem != "abuser":
            for outcome in SubmissionRecord.load(path).notebooks.values():
                found[(path.stem, path.parent.name)] = (outcome.score, outcome.seconds)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--assignments", nargs="*", default=["02-backward"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-cell timeout (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="abuse-benchmark-"))
    try:
        runs = {}
        for name in ("honest only", "with the abuser"):
            course = make_course(scratch / name.replace(" ", "-"), args.assignments, args.timeout)
            make_class(course, args.assignments, args.students, args.seed, weights={"correct": 1.0})
            if name == "with the abuser":
                add_abuser(course, args.assignments)
            seconds = _run([sys.executable, "-m", "grader", "autograde", "--course", str(course), "--workers",
                            str(args.workers), "--no-progress", "--force"])
            runs[name] = (seconds, honest_outcomes(course))
        print()
        print("| run | honest notebooks | their points | median s | slowest s | run s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, (seconds, outcomes) in runs.items():
            times = [s for _, s in outcomes.values()]
            points = sum(score or 0 for score, _ in outcomes.values())
            print(f"| {name} | {len(outcomes)} | {points:g} | {statistics.median(times):.2f} | {max(times):.2f} | "
                  f"{seconds:.1f} |")
        (_, alone), (_, beside) = runs.values()
        slowdown = statistics.median(s for _, s in beside.values()) / statistics.median(s for _, s in alone.values())
        print(f"\nhonest notebooks' median time beside the abuser / alone: {slowdown:.2f}")
        differ = {key: (alone[key][0], beside.get(key, (None,))[0]) for key in alone
                  if alone[key][0] != beside.get(key, (None,))[0]}
        if differ:
            for key, (before, after) in sorted(differ.items()):
                print(f"SCORE DIFFERS {key}: alone {before}, beside the abuser {after}")
            return 1
        print(f"identical honest scores in both runs ({len(alone)} notebooks)")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
