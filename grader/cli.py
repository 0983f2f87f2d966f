"""``python -m grader``: the instructor's command line, one subcommand per stage.

    python -m grader release      make the student versions and check them
    python -m grader translate    the Japanese edition: what is missing or stale
    python -m grader merge        a notebook a student started, updated to a corrected release
    python -m grader collect      import an LMS bulk download of submissions
    python -m grader autograde    grade submissions (fast, sandboxed, in parallel)
    python -m grader regrade      one exercise regraded across the class after its test was fixed
    python -m grader feedback     an HTML report per student
    python -m grader export       grades as CSV for Canvas, Moodle or a spreadsheet
    python -m grader report       pass rates per exercise and a score histogram
    python -m grader tokens       students' tokens for the course server (issue, list, revoke)
    python -m grader serve        the course server: submissions graded as they arrive

Every subcommand takes ``--course DIR`` (default: ./course, or the current
directory when it holds nbgrader_config.py) and ``--help``.

Everything the commands print passes through :func:`say` (or :func:`warn`), which
drops the escape codes and control characters a submission could have put in a
file name, a message or a flag (see grader.text).
"""
from __future__ import annotations

import argparse
import os
import sys

from grader.errors import GraderError
from grader.text import say, warn


def _options() -> dict[str, argparse.ArgumentParser]:
    """Options several subcommands share, as argparse parents (one definition each)."""
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", metavar="DIR", help="the nbgrader course directory (default: ./course)")
    assignments = argparse.ArgumentParser(add_help=False)
    assignments.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="assignments (default: all)")
    students = argparse.ArgumentParser(add_help=False)
    students.add_argument("--student", action="append", metavar="ID", help="only this student (repeatable)")
    parallel = argparse.ArgumentParser(add_help=False)
    parallel.add_argument("--workers", type=_at_least_one, metavar="N",
                          help="parallel workers (default: every core)")
    parallel.add_argument("--no-progress", action="store_true", help="no progress bar")
    return {"course": course, "assignments": assignments, "students": students, "parallel": parallel}


def _epilog() -> str:
    """The module docstring's commands and options, for --help: without its notes for developers or their markup."""
    commands, options = __doc__.split("\n\n")[1:3]
    return f"{commands}\n\n{options}".replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader", description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog(),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = _options()
    course, assignments, students, parallel = (shared[name] for name in ("course", "assignments", "students",
                                                                          "parallel"))

    release = commands.add_parser(
        "release", parents=[course, assignments],
        help="generate the student versions of assignments and check them",
        description="Generate student versions (nbgrader generate_assignment) into "
                    "release/, then check that every source passes its own tests and "
                    "every blank student version fails them.")
    release.add_argument("--no-check", action="store_true", help="generate only; skip running the notebooks")
    release.add_argument("--no-generate", action="store_true", help="check the existing student versions only")
    release.add_argument("--list", action="store_true",
                         help="print the exercise index (each test cell's notebook cell, checks, engine code and "
                              "tests) instead; nothing is generated or run")
    release.add_argument("--write", action="store_true",
                         help="with --list: write the index into the course's AUTHORING.md instead of printing it")
    release.set_defaults(run=_release)

    translate = commands.add_parser(
        "translate", parents=[course, assignments],
        help="the course's editions in other languages: what is missing or stale, start or stamp a translation",
        description="Translations live in translations/LANGUAGE/ASSIGNMENT.md, one entry per cell, keyed by cell "
                    "id with a fingerprint of the English it translates. release makes each edition's student "
                    "notebooks (release-LANGUAGE/) when its translation is complete and current.")
    translate.add_argument("--lang", default="ja", help="the edition's language (default: ja)")
    action = translate.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="list translated, missing and stale cells (default)")
    action.add_argument("--add", action="store_true",
                        help="append the English text, marked en:TODO, of every cell still untranslated")
    action.add_argument("--stamp", action="store_true",
                        help="mark entries as translating the current English: the en:TODO ones, or the --cell ones "
                             "(when the English changed in a way that needs no new translation)")
    translate.add_argument("--cell", action="append", default=[], metavar="CELL_ID", help="with --stamp: this cell")
    translate.set_defaults(run=_translate)

    merge = commands.add_parser(
        "merge", parents=[course],
        help="a notebook a student started, updated to the corrected release (their answers kept)",
        description="Merge a student's notebook, started from an earlier release, into the assignment's current "
                    "student version, matched by cell id: the course's cells (a fixed test, corrected text) are the "
                    "new ones; the student's answers (solution cells) and the cells they added are kept.")
    merge.add_argument("assignment", metavar="ASSIGNMENT")
    merge.add_argument("started", metavar="NOTEBOOK", help="the student's notebook")
    merge.add_argument("--output", "-o", metavar="FILE", required=True, help="where to write the merged notebook")
    merge.add_argument("--notebook", metavar="NAME",
                       help="which of the assignment's notebooks it is (default: the only one, or the same name)")
    merge.set_defaults(run=_merge)

    collect = commands.add_parser(
        "collect", parents=[course], help="import a folder or zip of submissions (an LMS bulk download)",
        description="Import submissions into submitted/<student>/<assignment>/ from a Canvas or Moodle bulk "
                    "download (zip or unpacked) or from a folder per student. Renamed notebooks ('Copy of …', "
                    "'… (1)') are matched; earlier submissions are moved to .grader/replaced/, never deleted.")
    collect.add_argument("assignment", metavar="ASSIGNMENT")
    collect.add_argument("source", metavar="PATH", help="a .zip file or a folder")
    collect.add_argument("--lms", choices=["auto", "canvas", "moodle", "folders"], default="auto",
                         help="how the download names files (default: tell from the names)")
    collect.add_argument("--dry-run", action="store_true", help="show what would be imported; change nothing")
    collect.add_argument("--roster", metavar="CSV", help="the class list the LMS exports (Canvas gradebook or Moodle "
                                                         "participants), to know who is who across assignments "
                                                         "(default: c.Roster.file)")
    collect.set_defaults(run=_collect)

    autograde = commands.add_parser(
        "autograde", parents=[course, assignments, students, parallel],
        help="grade submissions: sandboxed, in parallel, verdicts outside the student's process",
        description="Grade the submissions in submitted/ into the gradebook and autograded/. Each notebook runs in "
                    "a sandbox forked from a pre-warmed process; its tests are judged by the grader, outside the "
                    "student's process. Submissions graded before and unchanged since are skipped (--force regrades).")
    autograde.add_argument("--scheduler", metavar="ADDRESS",
                           help="send the work to a Dask cluster at ADDRESS (tcp://host:8786) instead of local cores")
    autograde.add_argument("--force", action="store_true", help="regrade submissions already graded")
    autograde.add_argument("--cell-timeout", type=float, metavar="SECONDS", help="override c.Sandbox.cell_timeout")
    autograde.add_argument("--timings", action="store_true",
                           help="also print where the time went (the grading process's and the workers' phases) "
                                "and peak memory")
    autograde.set_defaults(run=_autograde, start=_early_workers)

    regrade = commands.add_parser(
        "regrade", parents=[course, parallel],
        help="regrade one exercise across the class after its test was fixed (releasing the fix first)",
        description="After fixing an exercise's test in source/: release the fix when it is not released yet, "
                    "regrade every submission not yet graded with the current test (each on its same hidden "
                    "inputs), and say whose score for the exercise moved, up or down.")
    regrade.add_argument("assignment", metavar="ASSIGNMENT")
    regrade.add_argument("grade_id", metavar="TEST", help="the test cell's grade id (e.g. poly-derivative)")
    regrade.add_argument("--no-release", action="store_true",
                         help="never release: stop, saying what to run, when source/ holds an unreleased fix")
    regrade.add_argument("--force", action="store_true",
                         help="also rerun submissions already graded with the current test")
    regrade.set_defaults(run=_regrade)

    feedback = commands.add_parser(
        "feedback", parents=[course, assignments, students, parallel],
        help="an HTML report per student and notebook (hidden tests' code left out)",
        description="Write feedback/<student>/<assignment>/<notebook>.html from the graded "
                    "notebooks: each cell's output and score, the grading status, and "
                    "the hidden tests' results without their code. Students are "
                    "converted in parallel; pages already made from the current grades "
                    "are kept (--force rewrites them); a student whose pages cannot be "
                    "made is reported and the others go on.")
    feedback.add_argument("--force", action="store_true",
                          help="rewrite pages already written from the current grades")
    feedback.set_defaults(run=_feedback)

    export = commands.add_parser(
        "export", parents=[course, assignments],
        help="grades as CSV (plain, Canvas or Moodle)",
        description="A row per student, a column per notebook and a total. Notebooks that "
                    "could not be graded are marked, never written as 0.")
    export.add_argument("--format", choices=["plain", "canvas", "moodle"], default="plain")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of printing")
    export.add_argument("--roster", metavar="CSV", help="Canvas's gradebook export, whose 'Name (id)' columns the "
                                                        "assignments are exported under (default: c.Roster.file)")
    export.set_defaults(run=_export)

    report = commands.add_parser(
        "report", parents=[course, assignments],
        help="pass rate per exercise and a score histogram",
        description="For each assignment: pass rates of every exercise, a histogram of "
                    "scores, grading statuses and flagged submissions, in reports/.")
    report.add_argument("--roster", metavar="CSV", help="the class list, to list who handed in nothing at all "
                                                        "(default: c.Roster.file)")
    report.set_defaults(run=_report)

    from grader.server.commands import add_commands

    add_commands(commands, shared, _at_least_one)
    return parser


def _release(args: argparse.Namespace) -> int:
    from grader.course import open_course
    from grader.authoring.release import release

    if args.list or args.write:
        return _exercise_index(open_course(args.course), write=args.write)
    release(open_course(args.course), args.assignments, generate_versions=not args.no_generate,
            check=not args.no_check, report=say)
    return 0


def _translate(args: argparse.Namespace) -> int:
    from grader.authoring import translate
    from grader.course import open_course

    course = open_course(args.course)
    if args.lang not in translate.LANGUAGES:
        raise GraderError(f"no edition in {args.lang!r}: the course has {', '.join(translate.LANGUAGES)}")
    assignments = course.select(args.assignments)
    if args.add:
        for assignment in assignments:
            added = translate.add_skeleton(course, args.lang, assignment)
            say(f"{assignment}: {added} cell(s) to translate added to "
                f"{translate.translation_path(course.root, args.lang, assignment)}")
        return 0
    if args.stamp:
        if len(args.assignments) != 1:
            raise GraderError("--stamp takes one assignment: translate --stamp ASSIGNMENT [--cell CELL_ID ...]")
        stamped = translate.stamp(course, args.lang, assignments[0], args.cell)
        say(f"{assignments[0]}: stamped {len(stamped)} entr{'y' if len(stamped) == 1 else 'ies'}")
        return 0
    lines = translate.status(course, args.lang, assignments)
    for line in lines:
        say(line)
    return 1 if any(line.startswith("    - ") for line in lines) else 0


def _exercise_index(course, *, write: bool) -> int:
    from grader.authoring.exercises import authoring_path, exercises, markdown, tests_folder, with_index

    index = markdown(exercises(course, tests_folder(course)))
    if not write:
        say(index)
        return 0
    path = authoring_path(course)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(with_index(text, index), encoding="utf-8")
    say(f"wrote the exercise index into {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grader.authoring.merge import merge_file
    from grader.course import open_course

    notebook = merge_file(open_course(args.course), args.assignment, Path(args.started), Path(args.output),
                          args.notebook)
    say(f"wrote {args.output}: {args.started} merged into release/{args.assignment}/{notebook}.ipynb "
        "(the course's cells are the new ones; the student's answers and own cells are kept)")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grader.intake.collect import collect, print_report
    from grader.course import open_course
    from grader.intake.roster import course_roster

    course = open_course(args.course)
    report = collect(course, args.assignment, Path(args.source), lms=args.lms, dry_run=args.dry_run,
                     roster=course_roster(course, args.roster))
    print_report(report, args.assignment, args.dry_run, say=say)
    return 0


def _at_least_one(text: str) -> int:
    """argparse type of --workers."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers: give a whole number, 1 or more")
    return value


def _autograde(args: argparse.Namespace) -> int:
    workers = getattr(args, "early_workers", None)  # started by main(), before the imports below
    try:
        from dataclasses import replace

        from grader.autograde.run import Autograder
        from grader.course import open_course
        from grader.sandbox.linux import Sandbox

        course = open_course(args.course)
        limits = Sandbox(config=course.config).limits()
        if args.cell_timeout:
            limits = replace(limits, cell_timeout=args.cell_timeout)
        grader = Autograder(course, workers=args.workers, scheduler=args.scheduler, force=args.force, limits=limits,
                            progress=not args.no_progress, report=say, executor=workers)
        summary = grader.run(args.assignments, args.student)
    finally:
        if workers is not None:
            workers.close()
    from grader.autograde.summary import print_summary, print_timings

    print_summary(summary, report=say)
    if args.timings:
        print_timings(summary, report=say)
    return 0


def _early_workers(args: argparse.Namespace):
    """The local workers, started before this process imports nbgrader and reads the gradebook (seconds), with
    what the released notebooks import to preload; None when there is nothing to grade here, or on Dask."""
    from pathlib import Path

    from grader.course import default_course_dir

    # jsonschema compiles a grammar for its "iri" format (rfc3987_syntax, over a CPU-second) when nbformat imports
    # it; nothing autograde does checks formats (nbformat validates without): unimported, as jsonschema allows.
    sys.modules.setdefault("rfc3987_syntax", None)
    root = Path(args.course) if args.course else default_course_dir()
    submitted = {path.name for path in root.glob("submitted/*/*") if path.is_dir()}
    assignments = sorted(submitted & set(args.assignments) if args.assignments else submitted)
    if args.scheduler or not assignments or not (root / "release").is_dir():
        return None
    from grader.autograde.preload import released_imports
    from grader.sandbox.executors import start_executor

    return start_executor(args.workers or os.cpu_count() or 1, None, released_imports(root / "release", assignments))


def _regrade(args: argparse.Namespace) -> int:
    from grader.autograde.regrade import print_regrade, regrade
    from grader.autograde.summary import print_summary
    from grader.course import open_course

    result = regrade(open_course(args.course), args.assignment, args.grade_id, release_first=not args.no_release,
                     force=args.force, report=say, workers=args.workers, progress=not args.no_progress)
    if result.summary is not None:
        print_summary(result.summary, report=say)
    print_regrade(result, report=say)
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from grader.course import open_course
    from grader.outputs.feedback import feedback

    summary = feedback(open_course(args.course), args.assignments, args.student, workers=args.workers,
                       force=args.force, progress=not args.no_progress, say=say)
    return 1 if summary.failed else 0


def _export(args: argparse.Namespace) -> int:
    from grader.course import open_course
    from grader.outputs.export import export
    from grader.intake.roster import course_roster

    course = open_course(args.course)
    text, problems = export(course, args.assignments, args.format, roster=course_roster(course, args.roster))
    if args.output:
        with open(args.output, "w", newline="") as handle:
            handle.write(text)
        say(f"wrote {args.output}")
    else:
        sys.stdout.write(text)  # every text cell is already printable (grader.outputs.export.spreadsheet_text)
    for problem in problems:
        warn(f"needs attention: {problem}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from grader.course import open_course
    from grader.outputs.report import report
    from grader.intake.roster import course_roster

    course = open_course(args.course)
    paths = report(course, args.assignments, say=say, roster=course_roster(course, args.roster))
    if paths:
        say("written: " + ", ".join(str(p) for p in paths))
    return 0


def _put_environment_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: find the ones beside this Python
    even when the virtual environment is not activated (``.venv/bin/python -m grader``)."""
    scripts = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path


def _quiet_libraries() -> None:
    """Warnings instructors can do nothing about: nbgrader's SQLAlchemy usage, nbformat's id repairs."""
    import warnings

    try:
        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("ignore", category=SAWarning)
    except ImportError:
        pass
    # Students' notebooks often have duplicated or missing cell ids; nbformat repairs them and says so.
    warnings.filterwarnings("ignore", message=".*(Non-unique cell id|Cell is missing an id field).*")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _put_environment_on_path()
    # autograde's workers, first: their imports (torch, in their zygotes) overlap with this process's (nbgrader).
    args.early_workers = args.start(args) if getattr(args, "start", None) else None
    _quiet_libraries()
    try:
        return args.run(args)
    except GraderError as error:
        warn(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        warn("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
