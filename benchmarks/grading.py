"""Grade a synthetic class with stock ``nbgrader autograde`` and with ``python -m grader autograde``.

    python benchmarks/grading.py                 # 20 students × every notebook of the course
    python benchmarks/grading.py --students 4 --assignments 02-backward

The class is made from the real course: each student's notebook is the student
version with the instructor's solutions filled in (correct), some of them
(partly right), none (blank), solutions that run but are wrong, or a solution
that loops forever. Both graders grade the same files, in two copies of the
course, with the same per-cell timeout. The script checks that every notebook
gets the same score from both, then prints students, notebooks, seconds,
milliseconds per notebook and the ratio. It exits non-zero if any score differs.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from grader.notebooks import fill_solutions, instructor_answers  # noqa: E402 (run as a script, from anywhere)

KINDS = {"correct": 0.55, "partly right": 0.2, "wrong": 0.1, "blank": 0.1, "looping": 0.05}


def student_notebook(source, release, kind: str, rng: random.Random):
    """The student version, answered as a student of this kind would answer it."""
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
    return fill_solutions(release, answers)


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
            nbformat.write(student_notebook(source, release, kind, rng), folder / f"{assignment}.ipynb")
            kinds[(student, assignment)] = kind
    return kinds


def _run(command: list[str], cwd: Path | None = None) -> float:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}")
    return time.perf_counter() - start


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
    args = parser.parse_args(argv)
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

        stock_seconds = 0.0
        for assignment in assignments if not args.only else []:
            stock_seconds += _run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"], cwd=stock)
        print(f"stock nbgrader autograde: {stock_seconds:.1f} s", flush=True)
        ours_seconds = _run([sys.executable, "-m", "grader", "autograde", "--course", str(ours), "--workers",
                             str(args.workers), "--no-progress", "--force"])
        print(f"python -m grader autograde --workers {args.workers}: {ours_seconds:.1f} s", flush=True)

        if args.only:
            return 0
        stock_scores, our_scores = scores(stock), scores(ours)
        differ = {key: (stock_scores.get(key), our_scores.get(key)) for key in kinds
                  if stock_scores.get(key) != our_scores.get(key)}
        print()
        print("| students | notebooks | workers | stock s | ours s | stock ms/notebook | ours ms/notebook | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.students} | {notebooks} | {args.workers} | {stock_seconds:.1f} | {ours_seconds:.1f} | "
              f"{1000 * stock_seconds / notebooks:.0f} | {1000 * ours_seconds / notebooks:.0f} | "
              f"{stock_seconds / ours_seconds:.1f}× |")
        print()
        if differ:
            for (student, assignment), (theirs, mine) in sorted(differ.items()):
                print(f"SCORE DIFFERS {student}/{assignment} ({kinds[(student, assignment)]}): stock {theirs}, ours {mine}")
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
