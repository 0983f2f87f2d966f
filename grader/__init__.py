"""The instructor's grader: nbgrader's pipeline, made fast (pre-warmed, parallel) and safe
(verdicts decided outside the student's process, submissions sandboxed).

Run ``python -m grader --help``.
"""
