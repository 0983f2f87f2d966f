"""The course server (grader/server/): tokens, policy, refusals, and the real server over real HTTP.

The fast tests run the app in this process without grading (refusals need no
sandbox). The slow ones start ``python -m grader serve`` as a subprocess on a free
localhost port and talk to it with httpx: grading and verdicts, the web page, a
``kill -9`` with submissions waiting, ``autograde`` on the same gradebook at the same
time, and ``submit()`` from a notebook run by nbclient.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell

from grader.errors import GraderError

ROOT = Path(__file__).resolve().parents[1]
# Starlette's TestClient (the in-process tests) runs on httpx, which Starlette now calls deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def _student_notebook(course: Path, answers: str) -> bytes:
    from fixture_course import CORRECT, WRONG, _answered

    return nbformat.writes(_answered(course, CORRECT if answers == "correct" else WRONG)).encode()


def _config(course: Path, text: str) -> None:
    with open(course / "nbgrader_config.py", "a") as handle:
        handle.write("\n" + text + "\n")


# -- policy -------------------------------------------------------------------------------------------

def _policy(settings: dict, default: dict | None = None, **extra):
    from traitlets.config import Config

    from grader.server.policy import CoursePolicy

    config = Config()
    config.Submissions.assignments = settings
    config.Submissions.default = default or {}
    for key, value in extra.items():
        setattr(config.Submissions, key, value)
    return CoursePolicy(config, ["ps1", "ps2"])


def test_policy_per_assignment_falls_back_to_the_default():
    policy = _policy({"ps1": {"attempts": 3, "counts": "last"}}, {"per_day": 2, "leaderboard": True})
    assert (policy["ps1"].attempts, policy["ps1"].per_day, policy["ps1"].counts) == (3, 2, "last")
    assert (policy["ps2"].attempts, policy["ps2"].per_day, policy["ps2"].counts) == (None, 2, "best")
    assert policy["ps2"].leaderboard and policy["ps1"].leaderboard


@pytest.mark.parametrize("settings, words", [
    ({"ps1": {"counts": "first"}}, 'write "best" or "last"'),
    ({"ps1": {"attempt": 3}}, "unknown setting(s) attempt"),
    ({"ps1": {"attempts": 0}}, "1 or more"),
    ({"ps1": {"opens": "tomorrow"}}, "not a time with a time zone"),
    ({"ps9": {"attempts": 1}}, "names ps9, which the course does not have"),
    ({"ps1": {"leaderboard": "yes"}}, "write True or False"),
])
def test_a_policy_that_cannot_be_read_says_what_to_write(settings, words):
    with pytest.raises(GraderError) as error:
        _policy(settings)
    assert words in str(error.value)


def test_refusals_count_attempts_in_all_and_per_day_and_wait_for_the_opening():
    policy = _policy({"ps1": {"attempts": 3, "per_day": 2, "opens": "2026-11-20 09:00 Europe/Berlin"}})
    before = dt.datetime(2026, 11, 20, 7, 59)  # 08:59 in Berlin
    assert "open at 2026-11-20 08:00 UTC" in str(policy.refusal("ps1", "ann", [], before))
    now = dt.datetime(2026, 11, 22, 12, 0)
    today = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.timezone.utc).timestamp()
    yesterday = today - 86400
    assert policy.refusal("ps1", "ann", [yesterday, today], now) is None
    assert policy.attempts_left("ps1", [yesterday, today], now) == 1
    assert "today's 2 attempts" in str(policy.refusal("ps1", "ann", [today, today], now))
    assert "all 3 attempts" in str(policy.refusal("ps1", "ann", [yesterday, yesterday, today], now))
    assert policy.attempts_left("ps1", [yesterday, yesterday, today], now) == 0


def test_details_before_the_deadline_follow_the_policy_and_the_students_extension():
    from traitlets.config import Config

    from grader.server.policy import CoursePolicy

    config = Config()
    config.Submissions.assignments = {"ps1": {"details_before_deadline": False}}
    config.Deadlines.due = {"ps1": "2026-12-01 12:00 UTC"}
    config.Deadlines.extensions = {"ps1": {"ben": "1 day"}}
    policy = CoursePolicy(config, ["ps1"])
    after = dt.datetime(2026, 12, 1, 13, 0)
    assert policy.details_shown("ps1", "ann", after) and not policy.details_shown("ps1", "ben", after)
    assert policy.due("ps1", "ben") == dt.datetime(2026, 12, 2, 12, 0)
    assert policy.details_shown("ps1", "ben", after + dt.timedelta(days=1))


def test_the_counting_attempt_is_the_best_or_the_last_with_a_score():
    from grader.server.grading import counting
    from grader.server.store import Submission

    def done(number, score, penalty=0.0):
        return Submission(number, "ann", "ps1", "ps1", "ps1.ipynb", "f", 1, 0.0, "done", score=score,
                          verdict=json.dumps({"penalty": penalty}))

    attempts = [done(1, 4.0), done(2, 5.0, penalty=2.0), done(3, 3.0), done(4, None)]
    assert counting(attempts, "best").id == 1  # 5 with a penalty of 2 is 3
    assert counting(attempts, "last").id == 3  # an attempt that could not be graded never counts
    assert counting([done(1, None)], "best") is None


# -- tokens and the store ---------------------------------------------------------------------------

def test_tokens_are_written_once_stored_hashed_and_revocable(course_dir, tmp_path, capsys):
    from grader.cli import main
    from grader.course import open_course
    from grader.server.store import Store
    from grader.server.tokens import digest

    out = tmp_path / "tokens.csv"
    assert main(["tokens", "issue", "--course", str(course_dir), "--student", "ann", "--student", "=cmd()",
                 "-o", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(out.open()))
    assert [r["student"] for r in rows] == ["ann", "'=cmd()"]  # no formula in the instructor's spreadsheet
    token = rows[0]["token"]
    store = Store(open_course(course_dir))
    assert store.student_of(digest(token)) == "ann"
    database = b"".join(p.read_bytes() for p in (course_dir / ".grader" / "server").glob("server.db*"))  # and WAL
    assert token.encode() not in database and digest(token).encode() in database
    assert (course_dir / ".grader" / "server" / "server.db").stat().st_mode & 0o777 == 0o600

    assert main(["tokens", "issue", "--course", str(course_dir), "--student", "ann", "-o", str(out)]) == 0
    assert "kept it" in capsys.readouterr().err
    assert store.student_of(digest(token)) == "ann"  # issuing again does not replace a valid token
    assert main(["tokens", "revoke", "--course", str(course_dir), "--student", "ann"]) == 0
    assert store.student_of(digest(token)) is None
    assert main(["tokens", "issue", "--course", str(course_dir)]) == 1  # whom? (no roster configured)


def test_the_queue_survives_a_restart_and_gives_back_what_was_being_graded(course_dir):
    from grader.course import open_course
    from grader.server.store import Busy, Store

    course = open_course(course_dir)
    store = Store(course)

    def add(student: str, data: bytes):
        return store.add(student=student, assignment="ps1", notebook="ps1", filename="a.ipynb", data=data,
                         received=time.time())

    def finish(submission):
        store.finish(submission, status="graded", score=1.0, max_score=5.0, verdict={}, seconds=1.0)

    first, second = add("ann", b"1"), add("ben", b"2")
    with pytest.raises(Busy):  # checked as the row is inserted: two uploads at once cannot both be queued
        add("ann", b"refused")
    assert sorted(p.read_bytes() for p in store.files.iterdir()) == [b"1", b"2"]  # the refused one is not kept
    assert [s.id for s in store.claim(limit=10)] == [first.id, second.id]
    again = Store(course)  # as after kill -9
    assert again.requeue() == 2
    assert [s.id for s in again.claim(limit=10)] == [first.id, second.id]
    assert again.data(again.get(second.id)) == b"2"
    finish(first)
    finish(second)
    third = add("ann", b"3")
    finish(again.claim(limit=10)[0])
    assert again.regrade("ps1") == 3 and again.waiting() == 3  # after a fixed test: every graded one again
    assert [s.id for s in again.claim(limit=10)] == [first.id, second.id]  # one per student and assignment
    assert again.claim(limit=10) == []  # ann's third waits while her first is being graded
    finish(again.get(first.id))
    assert [s.id for s in again.claim(limit=10)] == [third.id]
    assert again.regrade("ps2") == 0


# -- refusals, in this process (no grading needed) ---------------------------------------------------

@pytest.fixture
def app_client(course_dir):
    from starlette.testclient import TestClient

    from grader.course import open_course
    from grader.server.app import Server, build_app
    from grader.server.tokens import digest

    _config(course_dir, 'c.Submissions.assignments = {"ps1": {"attempts": 2}}\nc.Submissions.per_minute = 3')
    server = Server(open_course(course_dir), workers=1, grade=False, log=lambda text: None)
    for student in ("ann", "ben", "cy"):
        server.store.set_token(student, digest(f"token-{student}"))
    with TestClient(build_app(server)) as client:
        yield client, server


def _bearer(student: str) -> dict:
    return {"Authorization": f"Bearer token-{student}"}


def test_malformed_foreign_and_oversized_uploads_get_a_clear_4xx_and_nothing_is_kept(app_client, course_dir):
    client, server = app_client
    post = lambda body, **kw: client.post("/api/submissions", content=body, **kw)  # noqa: E731
    assert post(b"{}").status_code == 401
    assert post(b"{}", headers={"Authorization": "Bearer wrong"}).json()["error"].startswith("no valid token")
    reply = post(b"not json", headers=_bearer("ann"))
    assert reply.status_code == 400 and "is not valid JSON" in reply.json()["error"]
    deep = b"[" * 100_000 + b"]" * 100_000
    assert post(deep, headers=_bearer("ann")).status_code == 400
    plain = nbformat.writes(nbformat.v4.new_notebook(cells=[new_code_cell("1")])).encode()
    reply = post(plain, headers=_bearer("ann"))
    assert reply.status_code == 422 and "grading marks" in reply.json()["error"]
    reply = post(b"x" * (51 * 2**20), headers=_bearer("ann"))
    assert reply.status_code == 413 and "larger than 50 MiB" in reply.json()["error"]
    reply = client.post("/api/submissions?assignment=ps9", content=b"{}", headers=_bearer("ann"))
    assert reply.status_code == 422 and "no assignment 'ps9'" in reply.json()["error"]
    assert server.store.history("ann") == []
    assert list((course_dir / ".grader" / "server" / "submissions").iterdir()) == []


def test_one_in_flight_per_student_attempts_and_the_rate_limit(app_client, course_dir):
    client, server = app_client
    notebook = _student_notebook(course_dir, "correct")
    reply = client.post("/api/submissions?filename=Copy%20of%20ps1.ipynb", content=notebook, headers=_bearer("ann"))
    assert reply.status_code == 202 and reply.json()["state"] == "queued" and reply.json()["notebook"] == "ps1"
    reply = client.post("/api/submissions", content=notebook, headers=_bearer("ann"))
    assert reply.status_code == 409 and "still being graded" in reply.json()["error"]
    first = server.store.claim(10)[0]
    server.store.finish(first, status="graded", score=5.0, max_score=5.0, verdict={"penalty": 0.0}, seconds=1.0)
    assert client.post("/api/submissions", content=notebook, headers=_bearer("ann")).status_code == 202
    server.store.finish(server.store.claim(10)[0], status="graded", score=1.0, max_score=5.0,
                        verdict={"penalty": 0.0}, seconds=1.0)
    reply = client.post("/api/submissions", content=notebook, headers=_bearer("ann"))
    assert reply.status_code == 403 and "all 2 attempts" in reply.json()["error"]
    assert client.get(f"/api/submissions/{first.id}", headers=_bearer("ann")).json()["counting"] is True
    assert client.get(f"/api/submissions/{first.id}", headers=_bearer("ben")).status_code == 404  # not ben's
    # ben: 3 uploads a minute; each refused one (here: a foreign notebook) is not counted
    for _ in range(3):
        reply = client.post("/api/submissions", content=notebook, headers=_bearer("ben"))
        assert reply.status_code == 202
        server.store.finish(server.store.claim(10)[0], status="error", score=None, max_score=5.0,
                            verdict={}, seconds=0.0)  # the grader's failures are not attempts
    reply = client.post("/api/submissions", content=notebook, headers=_bearer("ben"))
    assert reply.status_code == 429 and int(reply.headers["retry-after"]) > 0


def test_before_the_due_date_a_verdict_shows_pass_or_fail_only_where_the_policy_says_so(app_client, course_dir):
    client, server = app_client
    server.policy.policies["ps1"] = dataclasses.replace(server.policy["ps1"], details_before_deadline=False)
    server.policy.deadlines.due["ps1"] = dt.datetime(2100, 1, 1)
    number = client.post("/api/submissions", content=_student_notebook(course_dir, "wrong"),
                         headers=_bearer("ann")).json()["id"]
    server.store.finish(server.store.claim(10)[0], status="graded", score=0.0, max_score=5.0, seconds=1.0, verdict={
        "status": "graded", "detail": "", "score": 0.0, "max_score": 5.0, "penalty": 0.0, "score_text": "0 / 5",
        "exercises": [{"exercise": "test-square-grad", "passed": False, "points": 0.0, "max_points": 2.0,
                       "messages": ["expected: 6.0"]}]})
    view = client.get(f"/api/submissions/{number}", headers=_bearer("ann")).json()
    assert view["details"] is False and view["deadline"] == "2100-01-01T00:00:00Z"
    assert view["verdict"]["exercises"] == [{"exercise": "test-square-grad", "passed": False, "points": 0.0,
                                             "max_points": 2.0}]
    server.policy.deadlines.due["ps1"] = dt.datetime(2000, 1, 1)  # after the due date: the messages too
    view = client.get(f"/api/submissions/{number}", headers=_bearer("ann")).json()
    assert view["details"] is True and view["verdict"]["exercises"][0]["messages"] == ["expected: 6.0"]


def test_the_server_speaks_the_language_the_browser_or_the_student_chooses(app_client, course_dir):
    from grader.server.app import preferred_language

    assert preferred_language("ja,en-US;q=0.8") == "ja" and preferred_language("en-GB,ja;q=0.9") == "en"
    assert preferred_language("de, fr;q=0.9") == "en" and preferred_language("de,ja;q=0.5,en;q=bad") == "ja"
    client, server = app_client
    japanese = {"Accept-Language": "ja,en;q=0.5"}
    page = client.get("/", headers=japanese)
    assert '<html lang="ja">' in page.text and "ログイン" in page.text and "Log in" not in page.text
    reply = client.post("/api/submissions", content=b"{}", headers={"Authorization": "Bearer wrong", **japanese})
    assert reply.status_code == 401 and reply.json()["error"].startswith("有効なトークンではありません")
    client.post("/login", data={"token": "token-ann"})
    uploaded = client.post("/upload", data={"assignment": "ps1"}, headers=japanese,
                           files={"notebook": ("ps1.ipynb", _student_notebook(course_dir, "correct"))})
    assert "提出 #1 を受け付けました" in uploaded.text and "採点待ち" in uploaded.text
    submission = server.store.claim(10)[0]
    server.store.finish(submission, status="graded", score=3.0, max_score=5.0, seconds=1.0, verdict={
        "status": "graded", "summary": "Graded.", "detail": "", "score": 3.0, "max_score": 5.0, "penalty": 1.0,
        "score_text": "2 / 5 (late penalty 1)", "exercises": [{"exercise": "test-square-grad", "passed": False,
                                                               "points": 0.0, "max_points": 2.0, "messages": []}]})
    page = client.get("/", headers=japanese).text
    assert "採点済みです。" in page and "2 / 5 （提出遅れの減点 1）" in page
    assert "不合格" in page and "Graded." not in page and "late penalty" not in page
    english = client.get("/?lang=en", headers=japanese).text  # chosen on the page: kept for the session
    assert '<html lang="en">' in english and "Graded." in english and "2 / 5 (late penalty 1)" in english
    assert '<html lang="en">' in client.get("/", headers=japanese).text


def test_guessing_tokens_is_rate_limited_per_address(app_client):
    client, _ = app_client
    codes = [client.post("/login", data={"token": f"guess-{n}"}).status_code for n in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


def test_the_page_is_inert_against_what_students_write(app_client, course_dir):
    client, server = app_client
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    server.policy.policies["ps1"] = dataclasses.replace(server.policy["ps1"], leaderboard=True)
    reply = client.post("/login", data={"token": "token-ann"}, follow_redirects=False)
    assert reply.status_code == 303 and "token-ann" not in reply.headers.get("set-cookie", "")
    client.post("/name", data={"name": hostile})
    notebook = _student_notebook(course_dir, "correct")
    client.post("/upload", data={"assignment": "ps1"}, files={"notebook": (hostile + ".ipynb", notebook)})
    submission = server.store.claim(10)[0]
    server.store.finish(submission, status="graded", score=5.0, max_score=5.0, seconds=1.0, verdict={
        "status": "graded", "summary": "Graded.", "detail": "", "score": 5.0, "max_score": 5.0, "penalty": 0.0,
        "score_text": "5 / 5", "exercises": [{"exercise": "test-square-grad", "passed": False, "points": 0.0,
                                              "max_points": 2.0, "messages": [hostile]}]})
    page = client.get("/")
    assert page.status_code == 200 and "Leaderboard" in page.text
    assert "<script>" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # shown as text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert "token-ann" not in page.text
    server.store.revoke("ann")  # a revoked token ends the session at once
    assert 'name="token"' in client.get("/").text


# -- the real server, over HTTP ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """``python -m grader serve`` on a free port, its log in a file."""

    def __init__(self, course: Path, log: Path) -> None:
        self.course, self.log = course, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader", "serve", "--course", str(self.course), "--port", str(self.port),
             "--workers", "1"], stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("the server did not start:\n" + self.log.read_text())

    def submit(self, token: str, data: bytes, **query) -> httpx.Response:
        return httpx.post(self.url + "/api/submissions", params=query, content=data,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def verdict(self, token: str, number: int, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = httpx.get(f"{self.url}/api/submissions/{number}", headers={"Authorization": f"Bearer {token}"},
                             timeout=10).json()
            if view["state"] == "done":
                return view
            time.sleep(0.3)
        raise AssertionError(f"no verdict for #{number}:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _issue(course: Path, students: list[str]) -> dict[str, str]:
    from grader.course import open_course
    from grader.server.store import Store
    from grader.server.tokens import Student, issue

    text, _ = issue(Store(open_course(course)), [Student(s) for s in students])
    return {row["student"]: row["token"] for row in csv.DictReader(io.StringIO(text))}


def _gradebook_score(course: Path, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission("ps1", student).score


@pytest.fixture(scope="module")
def served(tmp_path_factory, course_template):
    from fixture_course import copy_course

    folder = tmp_path_factory.mktemp("served")
    course = copy_course(course_template, folder / "course")
    _config(course, 'c.Submissions.assignments = {"ps1": {"counts": "best", "leaderboard": True}}\n'
                    'c.Submissions.per_minute = 20')
    tokens = _issue(course, ["ann", "ben", "cy", "dee", "eve"])
    server = Served(course, folder / "server.log")
    yield server, tokens
    server.stop()


@pytest.mark.slow
def test_a_submission_is_graded_by_autograde_and_the_best_attempt_is_the_grade(served):
    server, tokens = served
    correct, wrong = _student_notebook(server.course, "correct"), _student_notebook(server.course, "wrong")
    first = server.submit(tokens["ann"], correct, filename="ps1.ipynb")
    assert first.status_code == 202, first.text
    view = server.verdict(tokens["ann"], first.json()["id"])
    verdict = view["verdict"]
    assert (verdict["status"], verdict["score"], verdict["max_score"]) == ("graded", 5.0, 5.0)
    assert [e["exercise"] for e in verdict["exercises"]] == ["test-square-grad", "test-make-leaf", "test-norm-grad"]
    assert all(e["passed"] and e["messages"] for e in verdict["exercises"])
    assert view["counting"] and view["attempts_left"] is None
    second = server.submit(tokens["ann"], wrong)
    view = server.verdict(tokens["ann"], second.json()["id"])
    failed = view["verdict"]["exercises"][0]
    assert view["verdict"]["score"] == 0.0 and not failed["passed"] and "expected: 6.0" in failed["messages"][0]
    assert not view["counting"]
    text = json.dumps(view)
    assert "HIDDEN" not in text and "_rng" not in text and "checks.function" not in text  # no test code
    assert _gradebook_score(server.course, "ann") == 5.0  # the best attempt is the gradebook's grade
    record = json.loads((server.course / ".grader" / "results" / "ps1" / "ann.json").read_text())
    assert record["notebooks"]["ps1"]["score"] == 5.0  # and so feedback's and export's
    log = server.log.read_text()
    assert all(token not in log for token in tokens.values())


@pytest.mark.slow
def test_the_web_page_logs_in_uploads_and_shows_results_and_the_leaderboard(served):
    server, tokens = served
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as browser:
        assert browser.post("/login", data={"token": tokens["ben"]}).status_code == 200
        assert "Logged in as" in browser.get("/").text
        browser.post("/name", data={"name": "Ben <b>the</b> best"})
        reply = browser.post("/upload", data={"assignment": "ps1"},
                             files={"notebook": ("ps1.ipynb", _student_notebook(server.course, "correct"))})
        assert "received" in reply.text
        number = max(v["id"] for v in httpx.get(
            server.url + "/api/submissions",
            headers={"Authorization": f"Bearer {tokens['ben']}"}).json()["submissions"])
        server.verdict(tokens["ben"], number)
        page = browser.get("/").text
        assert "5 / 5" in page and "this attempt counts" in page and "passed" in page
        assert "Ben &lt;b&gt;the&lt;/b&gt; best" in page and "<b>the</b>" not in page
        assert tokens["ben"] not in page and tokens["ben"] not in str(browser.cookies)


@pytest.mark.slow
def test_autograde_feedback_and_the_server_share_one_sqlite_gradebook_at_the_same_time(served):
    server, tokens = served
    course = server.course
    folder = course / "submitted" / "zed" / "ps1"
    folder.mkdir(parents=True)
    (folder / "ps1.ipynb").write_bytes(_student_notebook(course, "correct"))
    numbers = [server.submit(tokens[s], _student_notebook(course, "correct")).json()["id"] for s in ("cy", "dee")]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    commands = [["autograde", "ps1", "--student", "zed", "--workers", "1", "--no-progress"],
                ["feedback", "ps1", "--workers", "1", "--no-progress"]]  # the pages of those graded so far
    runs = [subprocess.Popen([sys.executable, "-m", "grader", *command, "--course", str(course)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for command in commands]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output
        assert "locked" not in output
    for student, number in zip(("cy", "dee"), numbers):
        assert server.verdict(tokens[student], number)["verdict"]["score"] == 5.0
    assert _gradebook_score(course, "zed") == 5.0
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_a_student_another_autograde_run_holds_is_left_alone_and_graded_later(served):
    from grader.locks import Locks

    server, tokens = served
    locks = Locks(server.course)  # as `autograde` holds a student while it grades them
    assert locks.take("ps1", "fay") is None
    try:
        token = _issue(server.course, ["fay"])["fay"]
        number = server.submit(token, _student_notebook(server.course, "correct")).json()["id"]
        time.sleep(3)
        view = httpx.get(f"{server.url}/api/submissions/{number}", headers={"Authorization": f"Bearer {token}"}).json()
        assert view["state"] == "queued"
        assert not (server.course / "submitted" / "fay").exists()  # its files untouched while another run grades
    finally:
        locks.release_all()
    assert server.verdict(token, number)["verdict"]["score"] == 5.0
    assert "another autograde run is grading fay/ps1" in server.log.read_text()


@pytest.mark.slow
def test_submit_from_a_notebook_run_by_nbclient(served, tmp_path, monkeypatch):
    from fixture_course import CORRECT, _answered
    from nbclient import NotebookClient

    server, tokens = served
    nb = _answered(server.course, CORRECT)
    nb.cells.append(new_code_cell("from autograd_lab.submit import submit\nsubmit()"))
    nb.cells.append(new_code_cell("submit(force=True)"))
    path = tmp_path / "ps1.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("AUTOGRAD_LAB_SERVER", server.url)
    monkeypatch.setenv("AUTOGRAD_LAB_TOKEN", tokens["eve"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # as JupyterLab tells its kernels
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    stale = "".join(o.get("text", "") for o in nb.cells[-2].outputs)
    assert "Not sent" in stale and "Save the notebook" in stale  # the file on disk was never run
    output = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert f"Sent {path} (saved " in output
    assert "ps1: 5 / 5" in output and "✓ test-norm-grad: 2 / 2" in output and "Attempts left: no limit" in output
    assert tokens["eve"] not in json.dumps(nb)
    (tmp_path / "submit.ipynb").write_text(nbformat.writes(nb))  # kept for the closing note


@pytest.mark.slow
def test_kill_9_with_submissions_waiting_then_every_one_is_graded_once(course_dir, tmp_path):
    students = [f"s{n}" for n in range(4)]
    tokens = _issue(course_dir, students)
    log = tmp_path / "server.log"
    server = Served(course_dir, log)
    try:
        notebook = _student_notebook(course_dir, "correct")
        numbers = {s: server.submit(tokens[s], notebook).json()["id"] for s in students}
        server.verdict(tokens[students[0]], numbers[students[0]])  # one graded; the others wait
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        with sqlite3.connect(course_dir / ".grader" / "server" / "server.db") as db:
            states = dict(db.execute("SELECT id, state FROM submissions").fetchall())
        assert list(states.values()).count("done") < len(students)  # some were waiting when it was killed
        server.start()
        views = {s: server.verdict(tokens[s], numbers[s]) for s in students}
    finally:
        server.stop()
    assert all(v["verdict"]["score"] == 5.0 for v in views.values())
    for student, number in numbers.items():
        graded = [line for line in log.read_text().splitlines() if line.startswith(f"#{number} {student}/ps1: graded")]
        assert len(graded) == 1, log.read_text()  # recorded once: before the kill or after it
        assert _gradebook_score(course_dir, student) == 5.0


@pytest.mark.slow
def _submit_and_wait(browser, button):
    """Click a form's button and wait until the page it posts to has replaced this one: an element
    found before that may belong to the page being unloaded (a StaleElementReferenceException)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, button).click()
    WebDriverWait(browser, 60).until(expected_conditions.staleness_of(page))
    WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.readyState") == "complete")


def test_the_web_page_in_headless_chromium(served, tmp_path):
    from test_browser import CHROMEDRIVER, CHROMIUM, _browser

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Chromium and ChromeDriver (python3 manage.py test installs them as root on Debian)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, tokens = served
    notebook = tmp_path / "Copy of ps1.ipynb"
    notebook.write_bytes(_student_notebook(server.course, "correct"))
    browser = _browser()
    try:
        browser.get(server.url + "/")
        browser.find_element(By.NAME, "token").send_keys(tokens["dee"])
        browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        WebDriverWait(browser, 30).until(lambda b: "Logged in as" in b.page_source)
        browser.find_element(By.NAME, "name").clear()
        browser.find_element(By.NAME, "name").send_keys("Dee")
        _submit_and_wait(browser, "form[action='/name'] button")
        Select(browser.find_element(By.NAME, "assignment")).select_by_value("ps1")
        browser.find_element(By.NAME, "notebook").send_keys(str(notebook))
        _submit_and_wait(browser, "form[action='/upload'] button")
        WebDriverWait(browser, 180, poll_frequency=1).until(  # the page refreshes itself until graded
            lambda b: "refreshes until it is graded" not in b.page_source and "this attempt counts" in b.page_source)
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "Copy of ps1.ipynb" in text and "5 / 5" in text and "Dee" in text
        folder = ROOT / "build" / "browser"
        folder.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(folder / "server.png"))
        browser.find_element(By.LINK_TEXT, "日本語").click()  # the page in Japanese, kept for the session
        WebDriverWait(browser, 30).until(lambda b: "あなたの提出" in b.page_source)
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "採点済みです。" in text and "この提出が成績に使われます" in text and "Log out" not in text
        browser.save_screenshot(str(folder / "server-ja.png"))
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []  # no CSP violation, nothing failed to load
    finally:
        browser.quit()


@pytest.mark.slow
def test_the_server_grades_into_a_postgresql_gradebook(course_dir, tmp_path):
    from nbgrader.api import Gradebook
    from postgres import server_programs, throwaway_server

    from grader.course import open_course
    from grader.authoring.release import generate

    if server_programs() is None:
        pytest.skip("PostgreSQL is not installed (on Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the psycopg driver (pyproject.toml's postgres extra) is not installed")
    with throwaway_server() as make_database:
        url = make_database("served")
        (course_dir / "gradebook.db").unlink()
        _config(course_dir, f"c.CourseDirectory.db_url = {url!r}")
        generate(open_course(course_dir), "ps1")
        tokens = _issue(course_dir, ["ann"])
        server = Served(course_dir, tmp_path / "server.log")
        try:
            number = server.submit(tokens["ann"], _student_notebook(course_dir, "correct")).json()["id"]
            assert server.verdict(tokens["ann"], number)["verdict"]["score"] == 5.0
        finally:
            server.stop()
        with Gradebook(url, course_id="autograd-lab") as gradebook:  # what formgrader and export read
            assert gradebook.find_submission("ps1", "ann").score == 5.0
    assert not (course_dir / "gradebook.db").exists()


def test_submit_on_colab_sends_the_notebook_the_runtime_holds(monkeypatch):
    import types

    from autograd_lab import submit as module

    held = {"cells": [], "metadata": {"colab": {"name": "ps1.ipynb"}}, "nbformat": 4, "nbformat_minor": 5}
    asked = []

    def blocking_request(kind, request="", timeout_sec=None):
        asked.append(kind)
        return {"ipynb": held}

    colab = types.ModuleType("google.colab")
    colab._message = types.SimpleNamespace(blocking_request=blocking_request)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    data, sent = module._notebook(None, force=False)
    assert json.loads(data) == held and asked == ["get_ipynb"]
    assert "as this Colab runtime holds it" in module._describe(sent)


def test_submit_says_what_to_do_without_a_server_or_a_notebook(monkeypatch, capsys, tmp_path):
    from autograd_lab.submit import submit

    monkeypatch.delenv("AUTOGRAD_LAB_SERVER", raising=False)
    submit()
    assert "Which course server?" in capsys.readouterr().err
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    submit(server="http://127.0.0.1:9")
    assert "Which notebook?" in capsys.readouterr().err
    (tmp_path / "ps1.ipynb").write_text("{}")
    monkeypatch.setenv("AUTOGRAD_LAB_TOKEN", "t")
    submit(server="http://127.0.0.1:9", path=tmp_path / "ps1.ipynb")  # nothing listens on port 9
    assert "Cannot reach the course server at http://127.0.0.1:9" in capsys.readouterr().err
