"""``export``: the class's grades as CSV, a row per student, a column per notebook and a total.

Scores come from nbgrader's gradebook (so manual changes in formgrader count).
A notebook that could not be graded is never written as 0.0:

* ``--format plain`` (a spreadsheet): the cell says why ("not graded: invalid"),
  and a Notes column lists every problem;
* ``--format canvas``: Canvas's gradebook import columns (Student, ID, SIS User ID,
  SIS Login ID, Section, then one column per notebook); the cell is left empty,
  which Canvas treats as "no change", and the problems are printed;
* ``--format moodle``: a file for Moodle's "Import grades from CSV" (map
  "Username" or "ID number" to the users, and each notebook column to a grade item);
  empty cells, problems printed.

A missing notebook counts 0 (nothing was handed in) and is marked "missing" in
the plain format's Notes ("missing, wrong file type uploaded (answers.pdf)" when
something else was). A late submission's score is after nbgrader's late penalty
(``grader.deadlines``), and the Notes say how late and what was taken off.

Names, ids and notes come from the LMS and from submissions. A spreadsheet would
run one that starts like a formula (``=HYPERLINK(...)``), so every text cell goes
through :func:`spreadsheet_text`, as OWASP recommends for CSV injection; scores
stay numbers.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from grader.records import UNGRADABLE, Status, load_record
from grader.intake.collect import WRONG_TYPE
from grader.course import Course
from grader.intake.roster import ClassList, lms_columns
from grader.text import printable

#: A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: str) -> str:
    """A text cell no spreadsheet runs: one line, printable, and a leading ``'`` before a formula's first character."""
    value = printable(value, newlines=False)
    return "'" + value if value.startswith(FORMULA_START) else value


@dataclass
class Row:
    student: str
    name: str = ""
    lms_id: str = ""
    scores: dict[str, float | None] = field(default_factory=dict)  # column → score, None = not graded
    notes: list[str] = field(default_factory=list)
    email: str = ""
    ungraded: list[str] = field(default_factory=list)  # the notes of notebooks that could not be graded

    @property
    def total(self) -> float:
        return sum(score for score in self.scores.values() if score is not None)


def gather(course: Course, assignments: list[str] | None) -> tuple[list[str], dict[str, float], list[Row]]:
    """(columns, maximum per column, rows) from the gradebook and the grading records."""
    selected = course.select(assignments)
    columns: list[str] = []
    maximum: dict[str, float] = {}
    rows: dict[str, Row] = {}
    with course.gradebook() as gradebook:
        for student in gradebook.students:
            rows[student.id] = Row(student.id, " ".join(filter(None, [student.first_name, student.last_name])),
                                   student.lms_user_id or "", email=student.email or "")
        many = {a: len(course.notebooks(a)) > 1 for a in selected}
        for assignment in selected:
            try:
                notebooks = gradebook.find_assignment(assignment).notebooks
            except Exception:
                continue
            for notebook in notebooks:
                column = f"{assignment}/{notebook.name}" if many[assignment] else assignment
                columns.append(column)
                maximum[column] = notebook.max_score
                for submitted in notebook.submissions:
                    student = submitted.student.id
                    record = load_record(course, assignment, student)
                    outcome = record.notebooks.get(notebook.name) if record else None
                    row = rows[student]
                    if outcome is not None and outcome.status in UNGRADABLE:
                        row.scores[column] = None
                        note = f"{column}: not graded ({outcome.status}: {outcome.detail})"
                        row.notes.append(note)
                        row.ungraded.append(note)
                        continue
                    late_penalty = float(submitted.late_submission_penalty or 0.0)
                    row.scores[column] = float(submitted.score) - late_penalty
                    if record is not None and record.late:
                        row.notes.append(f"{column}: {record.late}" + (f", late penalty {late_penalty:g}"
                                                                        if late_penalty else ""))
                    if outcome is not None and outcome.status == Status.MISSING:
                        wrong = outcome.detail.startswith(WRONG_TYPE)
                        row.notes.append(f"{column}: {outcome.detail if wrong else 'missing'}")
                    elif outcome is not None and outcome.status != Status.GRADED:
                        row.notes.append(f"{column}: {outcome.status}")
                    if submitted.flagged:
                        row.notes.append(f"{column}: flagged for review")
    return columns, maximum, [rows[key] for key in sorted(rows) if rows[key].scores]


def export(course: Course, assignments: list[str] | None, fmt: str = "plain",
           roster: ClassList | None = None) -> tuple[str, list[str]]:
    """The CSV text, and the problems an instructor must look at."""
    columns, maximum, rows = gather(course, assignments)
    out = io.StringIO()
    writer = csv.writer(out)
    problems = [f"{row.student}: {note}" for row in rows for note in row.ungraded]
    headers = lms_columns(course, roster) if fmt != "plain" else {}

    def cell(row: Row, column: str, mark: bool) -> str:
        if column not in row.scores:
            return ""
        score = row.scores[column]
        if score is None:
            return "not graded" if mark else ""
        return f"{score:g}"

    header = [spreadsheet_text(headers.get(column, column)) for column in columns]
    if fmt == "canvas":
        problems += [f"{row.student}: no Canvas user id, so Canvas's import cannot match this row (collect it from "
                     "a Canvas download)" for row in rows if not row.lms_id]
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *header])
        writer.writerow(["Points Possible", "", "", "", "", *[f"{maximum[c]:g}" for c in columns]])
        for row in rows:
            name, student, lms_id = _people(row)
            # Canvas matches rows by ID (its user id). The student id is that same id when collect
            # imported the class from Canvas; it is a login only when it is something else.
            login = "" if student == lms_id else student
            writer.writerow([name or student, lms_id, "", login, "", *[cell(row, c, False) for c in columns]])
    elif fmt == "moodle":
        # Moodle's "Import grades from CSV" maps a column to the user's email, ID number, username or user id;
        # a download gives none of them (its participant ids are per assignment): the roster does.
        problems += [f"{row.student}: no email address, so Moodle's import cannot match this row (collect with "
                     "--roster, Moodle's participants export)" for row in rows if not row.email]
        writer.writerow(["Email address", "ID number", "Full name", "Student id", *header, "Total"])
        for row in rows:
            name, student, lms_id = _people(row)
            # Without the roster the gradebook's LMS id is a Moodle download's participant id, which is not
            # the user's ID number and could match someone else's: only the roster's is written.
            lms_id = lms_id if row.email else ""
            writer.writerow([spreadsheet_text(row.email), lms_id, name, student,
                             *[cell(row, c, False) for c in columns], f"{row.total:g}"])
    else:
        writer.writerow(["student", "name", "lms_id", *header, "total", "max", "notes"])
        for row in rows:
            name, student, lms_id = _people(row)
            writer.writerow([student, name, lms_id, *[cell(row, c, True) for c in columns],
                             f"{row.total:g}", f"{sum(maximum.values()):g}", spreadsheet_text("; ".join(row.notes))])
    return out.getvalue(), problems


def _people(row: Row) -> tuple[str, str, str]:
    """A row's name, student id and LMS id, as text cells."""
    return spreadsheet_text(row.name), spreadsheet_text(row.student), spreadsheet_text(row.lms_id)
