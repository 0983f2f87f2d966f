"""The grader's one error type: its message says what to do next."""


class GraderError(Exception):
    """Something the instructor must fix before the command can go on; the message says how."""
