"""nbgrader's own ``autograde`` and ``generate_feedback`` (the command line and formgrader's buttons), turned off.

Stock autograde runs submissions with the grader's rights and without the sandbox,
and stock feedback shows the hidden tests' code. The course's ``nbgrader_config.py``
points both converters at an exporter from here, which stops them before they
touch anything (the exporter is made after the notebooks are listed and before any
folder or gradebook row is written) with a message naming the command to run:

    c.Autograde.exporter_class = "grader.stock.UseGraderAutograde"
    c.GenerateFeedback.exporter_class = "grader.stock.UseGraderFeedback"

``nbgrader autograde ps1`` prints the message and exits 1; formgrader shows it
in its error dialog. ``python -m grader feedback`` sets its own exporter, so it is
not affected. Everything else of nbgrader's (generate, the exchange's release,
collect and release_feedback, formgrader's manual grading) works as usual.
"""
from __future__ import annotations

from nbconvert.exporters import NotebookExporter


class _UseGrader(NotebookExporter):
    command = ""
    what = ""

    def __init__(self, *args, **kwargs) -> None:
        from nbgrader.converters.base import NbGraderException

        super().__init__(*args, **kwargs)
        message = (f"This course's {self.what} is done by its own grader, not by nbgrader's: run "
                   f"`{self.command}` in the course's repository (see README.md, For instructors). "
                   "Nothing was changed.")
        if self.parent is not None:
            self.parent.log.error(message)
        raise NbGraderException(message)


class UseGraderAutograde(_UseGrader):
    command = "python -m grader autograde ASSIGNMENT"
    what = "autograding (sandboxed, with the hidden tests judged outside the student's process)"


class UseGraderFeedback(_UseGrader):
    command = "python -m grader feedback ASSIGNMENT"
    what = "feedback (pages without the hidden tests' code)"
