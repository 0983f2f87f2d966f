"""``python -m grader tokens`` and ``python -m grader serve``: the course server's two instructor commands."""
from __future__ import annotations

import argparse
import os
import sys

from grader.errors import GraderError


def add_commands(commands, shared: dict[str, argparse.ArgumentParser], at_least_one) -> None:
    """The server's subcommands, with the options shared with the others (``grader.cli._options``)."""
    tokens = commands.add_parser(
        "tokens", parents=[shared["course"], shared["students"]], help="issue, list or revoke students' tokens for the course server",
        description="Tokens for the course server (python -m grader serve). `issue` makes one per student (from "
                    "--roster, --student or --ids) and writes them once, as CSV for mail-merge; the server keeps "
                    "only their hashes. A student who has a token keeps it (--replace issues new ones). `revoke` "
                    "ends a student's token at once; `issue` again gives them a new one.")
    tokens.add_argument("action", choices=["issue", "list", "revoke"])
    tokens.add_argument("--roster", metavar="CSV", help="the LMS's class list (default: c.Roster.file)")
    tokens.add_argument("--ids", metavar="FILE", help="a text file with one student id a line")
    tokens.add_argument("--replace", action="store_true", help="issue new tokens for students who have one")
    tokens.add_argument("--output", "-o", metavar="FILE",
                        help="write the new tokens here (made readable by you only) instead of printing them")
    tokens.set_defaults(run=_tokens)

    serve = commands.add_parser(
        "serve", parents=[shared["course"]], help="the course server: students submit notebooks and get their verdicts in seconds",
        description="Serve the course: students submit a notebook (submit() in the notebook, or the web page) "
                    "with their token and get each exercise's verdict, graded by autograde's own pipeline (the "
                    "same sandbox, checks and gradebook) on workers kept warm. Listens on 127.0.0.1: put it "
                    "behind an HTTPS reverse proxy for real use (README).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--workers", type=at_least_one, metavar="N", help="grading workers (default: every core)")
    serve.add_argument("--scheduler", metavar="ADDRESS", help="grade on a Dask cluster at ADDRESS, as autograde does")
    serve.add_argument("--behind-proxy", action="store_true",
                       help="behind an HTTPS reverse proxy on this machine: trust its X-Forwarded-For/-Proto "
                            "headers (from 127.0.0.1 only) and send session cookies over HTTPS only")
    serve.add_argument("--regrade", nargs="?", const="", metavar="ASSIGNMENT",
                       help="grade every submission kept (of ASSIGNMENT, default all) again on start, as after a "
                            "test was fixed and released: each gets a new verdict, and the gradebook the counting one")
    serve.set_defaults(run=_serve)


def _tokens(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grader.cli import say, warn
    from grader.course import open_course
    from grader.server.store import Store
    from grader.server.tokens import issue, students_from, write_private

    course = open_course(args.course)
    store = Store(course)
    if args.action == "list":
        for row in store.tokens():
            say(f"{row['student']}\t{'revoked' if row['revoked'] else 'valid'}")
        return 0
    if args.action == "revoke":
        if not args.student:
            raise GraderError("whose token? give --student ID (repeatable)")
        for student in args.student:
            say(f"{student}: revoked" if store.revoke(student) else f"{student}: has no valid token")
        return 0
    students = students_from(course, args.roster, args.student, args.ids)
    text, kept = issue(store, students, replace=args.replace)
    issued = len(students) - len(kept)
    if args.output:
        write_private(Path(args.output), text)
        say(f"{issued} token(s) written to {args.output} (readable by you only): send each student theirs")
    else:
        sys.stdout.write(text)
    if kept:
        warn(f"{len(kept)} student(s) already have a token and kept it (--replace issues new ones)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from grader.cli import say
    from grader.course import open_course
    from grader.server.app import Server, build_app

    course = open_course(args.course)
    workers = args.workers or os.cpu_count() or 1
    say(f"starting {workers} grading worker(s) (they import torch once)")
    server = Server(course, workers=workers, scheduler=args.scheduler, log=say)
    if args.regrade is not None:
        if args.regrade and args.regrade not in server.assignments:
            raise GraderError(f"--regrade {args.regrade}: no such released assignment ({', '.join(server.assignments)})")
        say(f"{server.store.regrade(args.regrade or None)} submission(s) queued to be graded again")
    app = build_app(server, secure_cookies=args.behind_proxy)
    say(f"serving {course.root} on http://{args.host}:{args.port}/ ({server.store.waiting()} submission(s) queued)")
    uvicorn.run(app, host=args.host, port=args.port, server_header=False, proxy_headers=args.behind_proxy,
                forwarded_allow_ips="127.0.0.1" if args.behind_proxy else None, timeout_keep_alive=5,
                limit_concurrency=512, log_level="info")
    return 0
