"""Due dates, extensions and late penalties: one definition per assignment, in ``nbgrader_config.py``.

    c.Deadlines.due = {"ps1": "2026-12-01 23:59 Europe/Berlin"}
    c.Deadlines.extensions = {"ps1": {"1234": "2 days", "Zoë": "36 hours"}}
    c.LateSubmissionPlugin.penalty_method = "zero"     # nbgrader's own: "none" (default) or "zero"
    # or a plugin of your own: c.AssignLatePenalties.plugin_class = "mycourse.HalfPerDay"

The definition is copied into nbgrader's gradebook, where nbgrader keeps it: the
assignment's ``duedate`` and each submission's ``extension``. formgrader shows
them, and the penalty is nbgrader's ``late_submission_penalty`` of each notebook,
computed by the configured nbgrader plugin (``AssignLatePenalties.plugin_class``)
from nbgrader's ``total_seconds_late``. So ``autograde``'s summary, the gradebook,
``export`` and ``report`` all read one lateness. A due date changed in formgrader
is replaced by this one, with a warning: change it here.

When a submission was made is what the download says (``grader.intake.collect``): a
Moodle zip's entry times, the ``timestamp.txt`` of nbgrader's exchange, or, for
Canvas, whose download carries no submission times, only its ``LATE`` mark.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from traitlets import Dict
from traitlets.config import LoggingConfigurable

from grader.errors import GraderError

_UNITS = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks"}


class Deadlines(LoggingConfigurable):
    """The course's due dates and extensions (see this module's docstring)."""

    due = Dict(help='assignment → due date with its time zone: "2026-12-01 23:59 Europe/Berlin"').tag(config=True)
    extensions = Dict(help='assignment → {student id → "2 days" | "36 hours" | "90 minutes" | "1 week"}'
                      ).tag(config=True)


@dataclass(frozen=True)
class Lateness:
    """How late one submission was, as the gradebook computes it (with the LMS's mark where that is all there is)."""

    seconds: float = 0.0  # nbgrader's total_seconds_late: 0 when on time or when the time is unknown
    marked_by: str = ""  # "Canvas" when the download only says "late"
    extension: dt.timedelta | None = None  # this course's extension for the student

    @property
    def late(self) -> bool:
        """Late, as far as this grader can tell: an LMS's mark does not count against an extension given here,
        since the LMS's download does not say when it was submitted."""
        return self.seconds > 0 or (bool(self.marked_by) and not self.extension)

    def text(self) -> str:
        """ "late by 1 d 3 h", "late (marked by Canvas, which does not say by how much)", or "" when on time. """
        if self.seconds > 0:
            return f"late by {duration_text(self.seconds)}"
        if self.marked_by and self.extension:
            return (f"marked late by {self.marked_by}, not penalised: the extension of "
                    f"{duration_text(self.extension.total_seconds())} given here may cover it (check in "
                    f"{self.marked_by}, whose download does not say when)")
        if self.marked_by:
            return f"late (marked by {self.marked_by}, which does not say by how much)"
        return ""

    def seconds_for_penalty(self) -> float:
        """What the penalty plugin is told: the seconds, or 1 s when only the LMS's mark is known."""
        return self.seconds if self.seconds > 0 else (1.0 if self.marked_by else 0.0)


def duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(filter(None, parts)) or f"{seconds:.0f} s"


def parse_due(text: str, assignment: str) -> dt.datetime:
    """A due date with a time zone (a name, or an offset like +0100), as nbgrader stores it: naive UTC.

    Without a valid zone it is an error (nbgrader's parse_utc would take it as UTC, or "+0100" as 100 s).
    """
    import dateutil.parser
    import dateutil.tz

    parts = str(text).split()
    zone = dateutil.tz.gettz(parts[-1]) if len(parts) == 3 and not re.fullmatch(r"[+-]\d{4}", parts[-1]) else None
    if len(parts) != 3 or (zone is None and not re.fullmatch(r"[+-]\d{4}", parts[-1])):
        raise GraderError(f"c.Deadlines.due[{assignment!r}] = {text!r} is not a due date with a time zone: write it "
                          f'as "2026-12-01 23:59 Europe/Berlin" (date, time, zone) in nbgrader_config.py')
    try:
        when = dateutil.parser.parse(" ".join(parts[:2]) + ("" if zone else " " + parts[2]))
    except (ValueError, OverflowError) as error:
        raise GraderError(f"c.Deadlines.due[{assignment!r}] = {text!r} cannot be read ({error}): write it as "
                          '"2026-12-01 23:59 Europe/Berlin"') from error
    when = when.replace(tzinfo=zone) if zone else when
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None)


def parse_extension(text: str, where: str) -> dt.timedelta:
    """ "2 days", "36 hours", "90 minutes", "1 week" (or a number of hours) as a timedelta."""
    if isinstance(text, (int, float)):
        return dt.timedelta(hours=text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(minute|hour|day|week)s?\s*", str(text).lower())
    if not match:
        raise GraderError(f"{where} = {text!r} is not an extension: write \"2 days\", \"36 hours\", \"90 minutes\" "
                          "or \"1 week\" in nbgrader_config.py")
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


class CourseDeadlines:
    """The course's deadlines, checked once, and written into nbgrader's gradebook."""

    def __init__(self, config) -> None:
        settings = Deadlines(config=config)
        self.due = {name: parse_due(text, name) for name, text in settings.due.items()}
        self.extensions: dict[str, dict[str, dt.timedelta]] = {}
        for name, students in settings.extensions.items():
            if not isinstance(students, dict):
                raise GraderError(f"c.Deadlines.extensions[{name!r}] must map student ids to extensions, "
                                  f'like {{"1234": "2 days"}}')
            self.extensions[name] = {str(student): parse_extension(text, f"c.Deadlines.extensions[{name!r}][{student!r}]")
                                     for student, text in students.items()}
        self.config = config

    def describe(self, assignment: str, student: str) -> str:
        """What lateness depends on, for autograde's fingerprint: a changed deadline regrades."""
        due = self.due.get(assignment)
        extension = self.extensions.get(assignment, {}).get(student)
        return f"{due.isoformat() if due else ''}+{extension.total_seconds() if extension else 0}"

    def sync_assignment(self, gradebook, assignment: str, warn) -> None:
        """Write the due date into the gradebook's assignment; a different one set elsewhere is replaced, with a warning."""
        if assignment not in self.due:
            return
        record = gradebook.update_or_create_assignment(assignment)
        wanted = self.due[assignment]
        if record.duedate is not None and record.duedate != wanted:
            warn(f"warning: the gradebook's due date of {assignment} ({record.duedate} UTC, set in formgrader or by "
                 f"`nbgrader db`) is replaced by nbgrader_config.py's c.Deadlines.due ({wanted} UTC): change it there")
        if record.duedate != wanted:
            record.duedate = wanted
            gradebook.db.commit()

    def sync_submission(self, gradebook, assignment: str, student: str, timestamp: dt.datetime | None):
        """The submission's time and extension, in the gradebook; returns nbgrader's submission."""
        extension = self.extensions.get(assignment, {}).get(student)
        return gradebook.update_or_create_submission(assignment, student, timestamp=timestamp, extension=extension)

    def penalty_plugin(self):
        """nbgrader's configured late-penalty plugin (``AssignLatePenalties.plugin_class``)."""
        from nbgrader.preprocessors import AssignLatePenalties

        step = AssignLatePenalties(config=self.config)
        step.init_plugin()
        return step


def lateness(submission, marked_by: str = "") -> Lateness:
    """nbgrader's own seconds late of a gradebook submission, and the LMS's mark where it gave one."""
    return Lateness(float(submission.total_seconds_late or 0.0), marked_by, submission.extension)


def penalty(step, student: str, score: float, late: Lateness) -> float | None:
    """The notebook's late penalty by nbgrader's plugin, bounded as nbgrader bounds it (0 ≤ penalty ≤ score)."""
    if not late.late:
        return None
    value = step.plugin_inst.late_submission_penalty(student, score, late.seconds_for_penalty())
    if value is None:
        return None
    return min(max(float(value), 0.0), float(score))
