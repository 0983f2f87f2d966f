"""``python -m grader``: the instructor's command line, one subcommand per stage.

    python -m grader release      make the student versions and check them
    python -m grader collect      import an LMS bulk download of submissions
    python -m grader autograde    grade submissions (fast, sandboxed, in parallel)
    python -m grader feedback     an HTML report per student
    python -m grader export       grades as CSV for Canvas, Moodle or a spreadsheet
    python -m grader report       pass rates per exercise and a score histogram

Every subcommand takes ``--course DIR`` (default: ./course, or the current
directory when it holds nbgrader_config.py) and ``--help``.
"""
from __future__ import annotations

import argparse
import os
import sys

from grader.errors import GraderError


def _add_course(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--course", metavar="DIR", help="the nbgrader course directory (default: ./course)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    release = commands.add_parser("release", help="generate the student versions of assignments and check them",
                                  description="Generate student versions (nbgrader generate_assignment) into "
                                              "release/, then check that every source passes its own tests and "
                                              "every blank student version fails them.")
    _add_course(release)
    release.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="assignments (default: all)")
    release.add_argument("--no-check", action="store_true", help="generate only; skip running the notebooks")
    release.add_argument("--no-generate", action="store_true", help="check the existing student versions only")
    release.set_defaults(run=_release)
    return parser


def _release(args: argparse.Namespace) -> int:
    from grader.course import open_course
    from grader.release import release

    release(open_course(args.course), args.assignments, generate_versions=not args.no_generate,
            check=not args.no_check)
    return 0


def _put_environment_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: find the ones beside this Python
    even when the virtual environment is not activated (``.venv/bin/python -m grader``)."""
    scripts = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _put_environment_on_path()
    try:
        return args.run(args)
    except GraderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
