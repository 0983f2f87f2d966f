"""What the course server allows, per assignment, in ``nbgrader_config.py``.

    c.Submissions.default = {"counts": "best", "per_day": 5}
    c.Submissions.assignments = {
        "02-backward": {"opens": "2026-11-20 09:00 Europe/Berlin", "attempts": 10, "per_day": 3,
                        "counts": "last", "details_before_deadline": False, "leaderboard": True},
    }
    c.Submissions.per_minute = 4           # uploads per student and minute, all assignments together

An assignment's settings are its entry, else ``default``, else: open from release,
no limit on attempts, the best attempt counts, details shown, no leaderboard.
The due date, extensions and late penalty are not here: they are ``c.Deadlines``
(grader/deadlines.py), the one definition ``autograde`` uses too.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from traitlets import Dict, Int
from traitlets.config import LoggingConfigurable

from autograd_lab.i18n import N_, Later
from grader.deadlines import CourseDeadlines, parse_due
from grader.errors import GraderError

_KEYS = {"opens", "attempts", "per_day", "counts", "details_before_deadline", "leaderboard"}


class Submissions(LoggingConfigurable):
    """The course server's rules (see this module's docstring)."""

    default = Dict(help="settings for every assignment without its own entry in `assignments`").tag(config=True)
    assignments = Dict(help='assignment → {"opens": "2026-11-20 09:00 Europe/Berlin", "attempts": 10, '
                            '"per_day": 3, "counts": "best" | "last", "details_before_deadline": True, '
                            '"leaderboard": False}').tag(config=True)
    per_minute = Int(4, help="uploads a student may make per minute (all assignments together)").tag(config=True)


@dataclass(frozen=True)
class Policy:
    assignment: str
    opens: dt.datetime | None = None  # naive UTC, as nbgrader keeps times
    attempts: int | None = None  # in all; None: no limit
    per_day: int | None = None  # per UTC day; None: no limit
    counts: str = "best"  # "best" or "last": which attempt is the grade
    details_before_deadline: bool = True  # False: before the due date, pass/fail per exercise only
    leaderboard: bool = False


def _whole(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraderError(f"{where} = {value!r}: write a whole number, 1 or more (or None for no limit)")
    return value


def _policy(assignment: str, settings: dict, where: str) -> Policy:
    if not isinstance(settings, dict):
        raise GraderError(f"{where} must be a dict of settings, like {{\"attempts\": 10, \"counts\": \"best\"}}")
    unknown = set(settings) - _KEYS
    if unknown:
        raise GraderError(f"{where} has unknown setting(s) {', '.join(sorted(unknown))}; the settings are "
                          f"{', '.join(sorted(_KEYS))}")
    opens = settings.get("opens")
    if opens is not None:
        try:
            opens = parse_due(opens, assignment)
        except GraderError:
            raise GraderError(f'{where}["opens"] = {opens!r} is not a time with a time zone: write it as '
                              '"2026-11-20 09:00 Europe/Berlin" in nbgrader_config.py') from None
    counts = settings.get("counts", "best")
    if counts not in ("best", "last"):
        raise GraderError(f'{where}["counts"] = {counts!r}: write "best" or "last"')
    for flag in ("details_before_deadline", "leaderboard"):
        if flag in settings and not isinstance(settings[flag], bool):
            raise GraderError(f'{where}["{flag}"] = {settings[flag]!r}: write True or False')
    return Policy(assignment, opens, _whole(settings.get("attempts"), f'{where}["attempts"]'),
                  _whole(settings.get("per_day"), f'{where}["per_day"]'), counts,
                  settings.get("details_before_deadline", True), settings.get("leaderboard", False))


class CoursePolicy:
    """Every assignment's rules and deadlines, read and checked once, when the server starts."""

    def __init__(self, config, assignments: list[str]) -> None:
        settings = Submissions(config=config)
        unknown = set(settings.assignments) - set(assignments)
        if unknown:
            raise GraderError(f"c.Submissions.assignments names {', '.join(sorted(unknown))}, which the course does "
                              f"not have (it has: {', '.join(assignments)})")
        _policy("*", settings.default, "c.Submissions.default")
        self.per_minute = settings.per_minute
        if self.per_minute < 1:
            raise GraderError(f"c.Submissions.per_minute = {self.per_minute}: write a whole number, 1 or more")
        self.policies = {a: _policy(a, {**settings.default, **settings.assignments.get(a, {})},
                                    f"c.Submissions.assignments[{a!r}]" if a in settings.assignments
                                    else "c.Submissions.default") for a in assignments}
        self.deadlines = CourseDeadlines(config)

    def __getitem__(self, assignment: str) -> Policy:
        return self.policies[assignment]

    def due(self, assignment: str, student: str) -> dt.datetime | None:
        """The student's due date (naive UTC), with their extension: as autograde and nbgrader compute lateness."""
        due = self.deadlines.due.get(assignment)
        if due is None:
            return None
        return due + (self.deadlines.extensions.get(assignment, {}).get(student) or dt.timedelta())

    def refusal(self, assignment: str, student: str, earlier: list[float], now: dt.datetime) -> Later | None:
        """Why this student may not submit to this assignment now (``earlier``: their submissions' times), or None."""
        policy = self.policies[assignment]
        if policy.opens is not None and now < policy.opens:
            return Later(N_("submissions to {assignment} open at {time} UTC"), assignment=assignment,
                         time=f"{policy.opens:%Y-%m-%d %H:%M}")
        if policy.attempts is not None and len(earlier) >= policy.attempts:
            return Later(N_("you have used all {count} attempts at {assignment}"), count=policy.attempts,
                         assignment=assignment)
        if policy.per_day is not None:
            today = [t for t in earlier if dt.datetime.fromtimestamp(t, dt.timezone.utc).date() == now.date()]
            if len(today) >= policy.per_day:
                return Later(N_("you have used today's {count} attempts at {assignment}; more from 00:00 UTC "
                                "tomorrow"), count=policy.per_day, assignment=assignment)
        return None

    def attempts_left(self, assignment: str, earlier: list[float], now: dt.datetime) -> int | None:
        """Attempts left now (the smaller of the total's and today's), or None without a limit."""
        policy = self.policies[assignment]
        left = []
        if policy.attempts is not None:
            left.append(policy.attempts - len(earlier))
        if policy.per_day is not None:
            today = [t for t in earlier if dt.datetime.fromtimestamp(t, dt.timezone.utc).date() == now.date()]
            left.append(policy.per_day - len(today))
        return max(0, min(left)) if left else None

    def details_shown(self, assignment: str, student: str, now: dt.datetime) -> bool:
        """Whether a verdict shows each exercise's messages now, or pass/fail only (until the due date)."""
        due = self.due(assignment, student)
        return self.policies[assignment].details_before_deadline or due is None or now >= due


def utc_now() -> dt.datetime:
    """Now, as naive UTC (how nbgrader and grader.deadlines keep times)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
