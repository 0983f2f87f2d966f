"""nbgrader configuration of the autograd course (read by `nbgrader ...` and by `python -m grader ...`)."""
import os

from nbgrader.converters import GenerateAssignment

c = get_config()  # noqa: F821 (provided by traitlets when this file is loaded)

c.CourseDirectory.course_id = "autograd-lab"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# nbgrader's exchange (for JupyterHub set-ups) lives in the course, not in /usr/local/share.
c.Exchange.root = os.path.join(c.CourseDirectory.root, "exchange")

# Student versions get an "Open in Colab" badge and a Colab set-up cell (grader/authoring/colab.py).
c.GenerateAssignment.preprocessors = GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default() + [
    "grader.authoring.colab.AddColabCells",
]
# The one place the repository's address is written: badges and Colab set-up cells are made from it.
c.AddColabCells.repository = "https://github.com/autograd-lab/autograd-lab"
c.AddColabCells.branch = "main"
c.AddColabCells.release_path = "course/release"

# Stock `nbgrader autograde` and `nbgrader generate_feedback` (and formgrader's Autograde and Generate Feedback
# buttons) are turned off with a message naming `python -m grader autograde` / `feedback` (grader/stock.py):
# stock autograde runs submissions without the sandbox, and stock feedback shows the hidden tests' code.
c.Autograde.exporter_class = "grader.stock.UseGraderAutograde"
c.GenerateFeedback.exporter_class = "grader.stock.UseGraderFeedback"
c.Execute.timeout = 30
# python -m grader autograde: limits for each graded notebook (see README, "Grading safely").
# c.Sandbox.cell_timeout = 30
# c.Sandbox.memory_mb = 2048
