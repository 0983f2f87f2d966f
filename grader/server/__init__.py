"""The course server: students submit a notebook and get its hidden tests' verdicts in seconds.

    python -m grader tokens issue --roster roster.csv -o tokens.csv    one token per student, stored hashed
    python -m grader serve                                              the server, on 127.0.0.1:8000

It grades with the grader that exists (``grader.autograde.Autograder``: the same
sandbox, checks and gradebook), on one set of pre-warmed workers kept for the
whole term. Its parts:

- :mod:`grader.server.store`: every submission (the notebook as received, its
  verdict, when), the queue, the tokens' digests and display names, in SQLite
  (WAL) in ``.grader/server/``; it survives ``kill -9``;
- :mod:`grader.server.tokens`: tokens from a roster, hashed at rest, revocable;
- :mod:`grader.server.policy`: per assignment, when submissions open, attempts,
  which attempt counts, details before the deadline, the leaderboard;
- :mod:`grader.server.grading`: the queue's one consumer, which puts a submission
  in ``submitted/``, grades it, reads its verdict and keeps the counting one in the gradebook;
- :mod:`grader.server.app`: the HTTP API and the web page (Starlette, served by uvicorn).
"""
