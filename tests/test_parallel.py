"""Grading in parallel, on a Dask cluster, and after a crash gives exactly the scores of grading in order.

And every notebook starts from the same clean state, whatever the one before it did.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from fixture_course import CORRECT, _answered, copy_course, write_class
from grader.autograde.run import Autograder
from grader.records import SubmissionRecord
from grader.cli import main
from grader.course import open_course

pytestmark = pytest.mark.slow


def _outcomes(course) -> dict[str, tuple]:
    found = {}
    for path in sorted((course.root / ".grader" / "results" / "ps1").glob("*.json")):
        outcome = SubmissionRecord.load(path).notebooks["ps1"]
        found[path.stem] = (outcome.status, outcome.score, sorted(outcome.tests.items()))
    return found


def _gradebook(course) -> dict[str, float]:
    with course.gradebook() as gradebook:
        return {s.student.id: s.score for s in gradebook.find_assignment("ps1").submissions}


def _collected(course_dir: Path, tmp_path: Path) -> Path:
    download = tmp_path / f"download-{course_dir.name}"
    write_class(course_dir, download)
    main(["collect", "--course", str(course_dir), "ps1", str(download)])
    return course_dir


def test_parallel_and_dask_grading_give_the_scores_of_sequential_grading(course_template, tmp_path):
    sequential = open_course(_collected(copy_course(course_template, tmp_path / "sequential"), tmp_path))
    parallel = open_course(_collected(copy_course(course_template, tmp_path / "parallel"), tmp_path))
    Autograder(sequential, workers=1, progress=False, report=lambda _: None).run()
    Autograder(parallel, workers=2, progress=False, report=lambda _: None).run()
    assert _outcomes(parallel) == _outcomes(sequential)
    assert _gradebook(parallel) == _gradebook(sequential)

    from distributed import LocalCluster

    dask = open_course(_collected(copy_course(course_template, tmp_path / "dask"), tmp_path))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        Autograder(dask, scheduler=cluster.scheduler_address, progress=False, report=lambda _: None).run()
    assert _outcomes(dask) == _outcomes(sequential)
    assert _gradebook(dask) == _gradebook(sequential)


def test_state_set_by_one_student_is_invisible_to_the_next(course_dir):
    """One worker, one zygote: each notebook still starts from a fresh process with nothing left behind."""
    course = open_course(course_dir)
    polluter = _answered(course_dir, CORRECT)
    polluter.cells.append(new_code_cell(
        "import os, sys, numpy as np, torch, autograd_lab, builtins\n"
        "autograd_lab.LEAKED = 1\nbuiltins.leaked_name = 1\nnp.LEAKED = 1\nos.environ['LEAKED'] = '1'\n"
        "torch.manual_seed(12345)\nsys.modules['leaked_module'] = object()\n"
        "open('/tmp/leaked.txt', 'w').write('x')\nopen('leaked.txt', 'w').write('x')\n"
        "import autograd_lab.checks as c\nc.close = None\nleaked_global = 1"))
    checker = _answered(course_dir, CORRECT)
    checker.cells.append(new_code_cell(
        "import os, sys, numpy as np, torch, autograd_lab, builtins\n"
        "seen = [name for name, present in [\n"
        "    ('autograd_lab.LEAKED', hasattr(autograd_lab, 'LEAKED')), ('builtins', hasattr(builtins, 'leaked_name')),\n"
        "    ('numpy', hasattr(np, 'LEAKED')), ('environment', 'LEAKED' in os.environ),\n"
        "    ('sys.modules', 'leaked_module' in sys.modules), ('/tmp', os.path.exists('/tmp/leaked.txt')),\n"
        "    ('working copy', os.path.exists('leaked.txt')), ('globals', 'leaked_global' in globals()),\n"
        "    ('checks', __import__('autograd_lab.checks').checks.close is None),\n"
        "] if present]\n"
        "print('LEAKS:', seen)"))
    for student, notebook in (("a-polluter", polluter), ("b-checker", checker), ("c-checker", checker)):
        folder = course.submitted / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / "ps1.ipynb")
    Autograder(course, workers=1, progress=False, report=lambda _: None).run()
    for student in ("b-checker", "c-checker"):
        graded = nbformat.read(course.autograded / student / "ps1" / "ps1.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for o in graded.cells[-1].outputs)
        assert "LEAKS: []" in printed, printed
        assert SubmissionRecord.load(course.root / ".grader" / "results" / "ps1" / f"{student}.json").notebooks["ps1"].score == 5.0
    assert not Path("/tmp/leaked.txt").exists()


def test_killed_at_any_moment_and_run_again_the_class_is_graded_consistently(course_template, tmp_path):
    """kill -9 in the middle of grading; the next run finishes the class; the gradebook agrees with a clean run."""
    reference = open_course(_collected(copy_course(course_template, tmp_path / "reference"), tmp_path))
    Autograder(reference, workers=2, progress=False, report=lambda _: None).run()
    crashed = open_course(_collected(copy_course(course_template, tmp_path / "crashed"), tmp_path))
    submitted_before = {p: p.read_bytes() for p in crashed.submitted.rglob("*") if p.is_file()}
    results = crashed.root / ".grader" / "results" / "ps1"
    for kill_after in (1, 4):  # kill once early, and once again later in the re-run
        process = subprocess.Popen([sys.executable, "-m", "grader", "autograde", "--course", str(crashed.root),
                                    "--workers", "2", "--no-progress"], start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(results.glob("*.json"))) < kill_after:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # the grader, its workers and its zygotes, at once
        process.wait()
    assert main(["autograde", "--course", str(crashed.root), "--no-progress"]) == 0
    assert _outcomes(crashed) == _outcomes(reference)
    assert _gradebook(crashed) == _gradebook(reference)
    with crashed.gradebook() as gradebook:
        assert len(gradebook.find_assignment("ps1").submissions) == len(_outcomes(reference))
    assert {p: p.read_bytes() for p in crashed.submitted.rglob("*") if p.is_file()} == submitted_before
    assert not list(crashed.root.rglob("*.tmp")), "the re-run cleans up what the killed run was writing"
    for record in results.glob("*.json"):
        json.loads(record.read_text())  # every record is whole
