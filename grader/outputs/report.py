"""``report``: how the class did, exercise by exercise, so an instructor sees where it struggles.

For each assignment: the pass rate of every test cell (from the gradebook), how
many got it wrong and how many did not attempt it, the most common diagnosed
mistakes with their share of the class (``grader.autograde.diagnose``), a histogram of
notebook scores (after late penalties), the statuses of the grading run, the
missing and late students, and the submissions flagged for review. Written to ``reports/<assignment>.md`` with two figures
(``<assignment>-exercises.png``, ``<assignment>-scores.png``), and printed.

Student ids, flags and the like come from submissions: each goes in as text
(:func:`markdown_text`), so none can break the table or become HTML, a link or
an image when the report is rendered.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from grader.records import UNGRADABLE, Status, assignment_records
from grader.autograde.diagnose import NOT_ATTEMPTED
from grader.intake.roster import ClassList, roster_student_id
from grader.course import Course
from grader.text import markdown_text

@dataclass
class ExerciseStats:
    grade_id: str
    notebook: str
    points: float
    attempts: int = 0  # graded notebooks (whether or not the student tried this exercise)
    passed: int = 0
    not_attempted: int = 0
    mistakes: Counter = field(default_factory=Counter)  # grader.autograde.diagnose.diagnosis() of failed attempts

    @property
    def wrong(self) -> int:
        return self.attempts - self.passed - self.not_attempted

    @property
    def rate(self) -> float:
        return self.passed / self.attempts if self.attempts else 0.0


@dataclass
class AssignmentReport:
    assignment: str
    exercises: list[ExerciseStats] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    max_score: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    flagged: list[tuple[str, str, list[str]]] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (student, notebook, why)
    late: dict[str, str] = field(default_factory=dict)  # student → "late by 2 h, late penalty 5"


def build(course: Course, assignment: str, roster: ClassList | None = None) -> AssignmentReport:
    report = AssignmentReport(assignment)
    records = dict(assignment_records(course, assignment))
    with course.gradebook() as gradebook:
        for person in roster.people if roster else []:  # on the class list, nothing handed in at all
            student = roster_student_id(roster, person)
            if student not in records and not (course.submitted / student / assignment).exists():
                report.missing.append((f"{student} ({person.full_name})", "—", "no submission"))
        for notebook in gradebook.find_assignment(assignment).notebooks:
            solutions = {cell.name for cell in notebook.solution_cells}
            order = {cell.name: index for index, cell in enumerate(notebook.source_cells)}
            stats = {cell.name: ExerciseStats(cell.name, notebook.name, cell.max_score)
                     for cell in sorted(notebook.grade_cells, key=lambda c: order.get(c.name, 0))
                     if cell.name not in solutions}
            report.max_score += notebook.max_score
            for submitted in notebook.submissions:
                record = records.get(submitted.student.id)
                outcome = record.notebooks.get(notebook.name) if record else None
                if outcome is None:
                    continue
                report.statuses[outcome.status] += 1
                if outcome.flags:
                    report.flagged.append((submitted.student.id, notebook.name, outcome.flags))
                if outcome.status == Status.MISSING:
                    report.missing.append((submitted.student.id, notebook.name, outcome.detail))
                late_penalty = float(submitted.late_submission_penalty or 0.0)
                if record.late:
                    report.late[submitted.student.id] = record.late + (
                        f", late penalty {late_penalty:g}" if late_penalty else "")
                if outcome.status in (Status.MISSING, *UNGRADABLE):
                    continue
                report.scores.append(float(submitted.score) - late_penalty)
                for grade in submitted.grades:
                    if grade.name in stats:
                        exercise = stats[grade.name]
                        exercise.attempts += 1
                        passed = grade.score is not None and grade.score >= grade.max_score
                        exercise.passed += int(passed)
                        found = outcome.diagnoses.get(grade.name)
                        if not passed and found == NOT_ATTEMPTED:
                            exercise.not_attempted += 1
                        elif not passed and found:
                            exercise.mistakes[found] += 1
            report.exercises.extend(stats.values())
    return report


def text(report: AssignmentReport) -> str:
    lines = [f"# {markdown_text(report.assignment)}", ""]
    if not report.scores:
        lines.append("No graded submissions yet.")  # the missing and late are still listed
    else:
        mean = sum(report.scores) / len(report.scores)
        lines += [f"{len(report.scores)} graded notebook(s); mean score {mean:.2f} / {report.max_score:g}.", "",
                  "| exercise | points | passed | pass rate | wrong | not attempted | most common mistakes |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for stats in sorted(report.exercises, key=lambda s: s.rate):
            common = "; ".join(f"{markdown_text(mistake)} ({100 * count / stats.attempts:.0f}%)"
                               for mistake, count in stats.mistakes.most_common(3))
            lines.append(f"| {markdown_text(stats.grade_id)} | {stats.points:g} | {stats.passed}/{stats.attempts} | "
                         f"{100 * stats.rate:.0f}% | {stats.wrong} | {stats.not_attempted} | {common} |")
    if report.statuses:
        lines += ["", "Grading: " + ", ".join(f"{markdown_text(status)} {count}"
                                              for status, count in sorted(report.statuses.items()))]
    if report.missing:
        lines += ["", "Missing:"]
        lines += [f"- {markdown_text(student)} / {markdown_text(notebook)}: {markdown_text(why)}"
                  for student, notebook, why in sorted(report.missing)]
    if report.late:
        lines += ["", "Late:"]
        lines += [f"- {markdown_text(student)}: {markdown_text(late)}" for student, late in sorted(report.late.items())]
    if report.flagged:
        lines += ["", "Flagged for review:"]
        for student, notebook, flags in report.flagged:
            lines.append(f"- {markdown_text(student)} / {markdown_text(notebook)}: "
                         + "; ".join(markdown_text(flag) for flag in flags[:5]))
    return "\n".join(lines)


def figures(report: AssignmentReport, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    exercises = sorted(report.exercises, key=lambda s: s.rate)
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(exercises) + 1.2))
    axes.barh([s.grade_id for s in exercises], [100 * s.rate for s in exercises], color="#4c72b0")
    axes.set_xlim(0, 100)
    axes.set_xlabel("students passing (%)")
    axes.set_title(f"{report.assignment}: pass rate per exercise (hardest at the top)")
    axes.invert_yaxis()
    figure.tight_layout()
    paths.append(folder / f"{report.assignment}-exercises.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    bins = max(5, min(20, int(report.max_score) + 1))
    axes.hist(report.scores, bins=bins, range=(0, report.max_score or 1), color="#55a868", edgecolor="white")
    axes.set_xlabel(f"score (out of {report.max_score:g})")
    axes.set_ylabel("students")
    axes.set_title(f"{report.assignment}: scores")
    figure.tight_layout()
    paths.append(folder / f"{report.assignment}-scores.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths


def report(course: Course, assignments: list[str] | None, say=print, roster: ClassList | None = None) -> list[Path]:
    written = []
    for assignment in course.select(assignments):
        built = build(course, assignment, roster)
        body = text(built)
        say(body)
        say("")
        course.reports.mkdir(parents=True, exist_ok=True)
        markdown = course.reports / f"{assignment}.md"
        images = figures(built, course.reports) if built.scores else []
        markdown.write_text(body + "".join(f"\n\n![]({p.name})" for p in images) + "\n")
        written += [markdown, *images]
    return written
