"""Simulated students submitting to the real course server over HTTP: throughput, latency, the server's overhead.

    python benchmarks/server.py                               # 100 students × 3 submissions of 02-backward
    python benchmarks/server.py --students 20 --submissions 2 --burst 5

A copy of the real course is released into a temporary folder, a token issued per
student, and ``python -m grader serve`` started on a free localhost port. Every
student then submits, one after another, ``--submissions`` notebooks made from the
course as ``benchmarks/grading.py`` makes them (correct, partly right, wrong, blank,
looping), each as soon as the previous verdict arrived (the server takes one in
flight per student). All students start within ``--burst`` seconds: a rush before a
deadline. Printed: throughput, p50/p95 time from upload to verdict (as the student
sees it, polling every 0.2 s), and, from the server's own records, how that time
divides into waiting in the queue, the grading run itself and the server's own
work around it (placing the file, reading the verdict, the store; restoring a best
attempt is counted there too).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grading import KINDS, make_course, student_notebook  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def _student(client: httpx.AsyncClient, token: str, notebooks: list[bytes], start: float,
                   latencies: list[float], deadline: float) -> None:
    await asyncio.sleep(start)
    headers = {"Authorization": f"Bearer {token}"}
    for data in notebooks:
        sent = time.perf_counter()
        reply = await client.post("/api/submissions", content=data, headers=headers)
        if reply.status_code != 202:
            raise SystemExit(f"upload refused: {reply.status_code} {reply.text}")
        number = reply.json()["id"]
        while time.perf_counter() < deadline:
            try:
                view = (await client.get(f"/api/submissions/{number}", headers=headers)).json()
            except httpx.TransportError:  # a kept-alive connection the server had just closed: ask again
                continue
            if view["state"] == "done":
                latencies.append(time.perf_counter() - sent)
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"no verdict for #{number} in time")


async def _drive(url: str, tokens: dict[str, str], notebooks: dict[str, list[bytes]], burst: float,
                 limit: float) -> tuple[list[float], float]:
    rng = random.Random(1)
    latencies: list[float] = []
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=len(tokens) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(_student(client, tokens[s], notebooks[s], rng.uniform(0, burst), latencies,
                                        started + limit) for s in tokens))
    return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--submissions", type=int, default=3, help="per student, one after another")
    parser.add_argument("--assignment", default="02-backward")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--burst", type=float, default=10.0, help="seconds in which all students start")
    parser.add_argument("--timeout", type=float, default=10.0, help="the sandbox's cell timeout")
    parser.add_argument("--limit", type=float, default=3600.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    from grader.course import open_course
    from grader.server.store import Store
    from grader.server.tokens import Student, issue

    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    os.environ["PATH"] = env["PATH"]
    with tempfile.TemporaryDirectory(prefix="server-bench-") as folder:
        course = make_course(Path(folder) / "course", [args.assignment], args.timeout)
        with open(course / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.Submissions.per_minute = {10 * args.submissions}\n")
        students = [f"student{n:03d}" for n in range(args.students)]
        text, _ = issue(Store(open_course(course)), [Student(s) for s in students])
        tokens = dict(line.split(",")[0::3] for line in text.splitlines()[1:])
        rng = random.Random(2)
        source = nbformat.read(course / "source" / args.assignment / f"{args.assignment}.ipynb", as_version=4)
        release = nbformat.read(course / "release" / args.assignment / f"{args.assignment}.ipynb", as_version=4)
        notebooks = {s: [nbformat.writes(student_notebook(source, release, rng.choices(
            list(KINDS), weights=list(KINDS.values()))[0], rng)).encode() for _ in range(args.submissions)]
            for s in students}
        port = _free_port()
        log = Path(folder) / "server.log"
        process = subprocess.Popen([sys.executable, "-m", "grader", "serve", "--course", str(course), "--port",
                                    str(port), "--workers", str(args.workers)], stdout=log.open("w"),
                                   stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            ready = time.perf_counter()
            while True:
                if process.poll() is not None:
                    raise SystemExit("the server stopped:\n" + log.read_text()[-3000:])
                try:
                    httpx.get(url + "/", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.3)
            startup = time.perf_counter() - ready
            try:
                latencies, seconds = asyncio.run(_drive(url, tokens, notebooks, args.burst, args.limit))
            except httpx.HTTPError as error:
                raise SystemExit(f"{type(error).__name__}: {error}; the server's log ends:\n"
                                 + log.read_text()[-3000:]) from error
        finally:
            process.terminate()
            process.wait(timeout=60)
        with sqlite3.connect(course / ".grader" / "server" / "server.db") as db:
            rows = db.execute("SELECT received, started, finished, grading_seconds, status FROM submissions "
                              "WHERE state = 'done'").fetchall()
    waited = [started - received for received, started, _, _, _ in rows]
    batches: dict[float, tuple[float, float]] = {}  # a batch's submissions share their start
    for _, started, finished, grading, _ in rows:
        batches[started] = (max(finished - started, batches.get(started, (0.0, 0.0))[0]), grading)
    own = [total - grading for total, grading in batches.values()]
    grading = [g for _, g in batches.values()]
    count = len(latencies)
    print(f"{args.students} students × {args.submissions} submissions of {args.assignment}, {args.workers} "
          f"worker(s), all starting within {args.burst:g} s; server ready in {startup:.1f} s")
    print()
    print("| submissions | seconds | per minute | p50 s | p95 s | max s | queue p50 s | grading run s/batch | "
          "notebooks/batch | server's own s/batch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {count} | {seconds:.1f} | {60 * count / seconds:.1f} | {statistics.median(latencies):.2f} | "
          f"{_percentile(latencies, 0.95):.2f} | {max(latencies):.2f} | {statistics.median(waited):.2f} | "
          f"{statistics.mean(grading):.2f} | {len(rows) / len(batches):.1f} | {statistics.mean(own):.3f} |")
    statuses = {}
    for *_, status in rows:
        statuses[status] = statuses.get(status, 0) + 1
    print()
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
