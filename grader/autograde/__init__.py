"""``autograde``: grade a whole class, fast and safely, into nbgrader's gradebook.

For each submitted notebook (``submitted/<student>/<assignment>/<notebook>.ipynb``):

1. *sanitize*, in this process, with nbgrader's own preprocessors: clear outputs,
   de-duplicate cell ids, restore the kernel spec, restore test and read-only
   cells from the gradebook and put back test cells the student deleted
   (``OverwriteCells``); note every test cell that was edited, duplicated,
   renamed or deleted, and read the student's code for signs of tampering;
2. *grade*, in parallel (``--workers``, or a Dask cluster with ``--scheduler``):
   run it in a sandbox forked from a pre-warmed zygote, with the tests judged
   outside it (``grader/sandbox/execute.py``);
3. *store*, in this process only (SQLite allows one writer): the scores, by
   nbgrader's own rule (``determine_grade``), in one transaction per notebook;
   the graded notebook in ``autograded/``; and a record with the status and
   flags in ``.grader/results/`` (:mod:`grader.records`), written last and atomically.

A submission is never modified in place. Killed at any moment (even kill -9)
and run again, it finishes the class: what was fully recorded is skipped, what
was not is graded again (grading is idempotent). A submission that cannot be
graded is recorded as such, with a reason, never as a silent 0.

Modules, in the order a submission meets them: :mod:`~grader.autograde.run` (the
run), :mod:`~grader.autograde.jobs` (a notebook becomes a job), :mod:`~grader.autograde.sanitize`,
:mod:`~grader.autograde.tamper`, :mod:`~grader.autograde.plan`, then :mod:`grader.sandbox`,
then :mod:`~grader.autograde.store` and :mod:`~grader.autograde.diagnose`; :mod:`~grader.autograde.summary`
prints what the run did.
"""
