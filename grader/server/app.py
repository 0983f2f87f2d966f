"""The course server's HTTP side: a JSON API for ``submit()`` and a web page, on Starlette.

API (the token in ``Authorization: Bearer …``; never in a URL):

    POST /api/submissions?assignment=ID     the notebook file as the body → 202 {"id": …, "state": "queued", …}
    GET  /api/submissions/{id}              its state, and once graded its verdict
    GET  /api/submissions                   the student's history
    GET  /api/assignments                   per assignment: open or not, due date, attempts left

The web page (``/``) logs in with the token once (a signed session cookie then names
the student, never the token), uploads, and shows results, history and the
leaderboard. What students wrote (file names, display names, verdict messages) is
only ever text on it: escaped by Jinja, under a Content-Security-Policy that allows
no script and nothing from elsewhere (``grader.outputs.feedback``'s policy, with forms posting
to the page itself).

Refusals are 4xx with a JSON ``{"error": "…what to do…"}`` (the page shows the same
sentence): 400 not a notebook, 401 no or unknown token, 403 closed or out of attempts,
409 one already being graded, 413 too large, 422 not a notebook of this course, 429
too many uploads or logins (with Retry-After).
"""
from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from jinja2 import DictLoader, Environment
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from autograd_lab import i18n
from autograd_lab.i18n import N_, Later
from grader.intake.collect import MAX_FILE_BYTES
from grader.course import Course, write_atomically
from grader.errors import GraderError
from grader.notebooks import read_notebook
from grader.server.grading import GradingLoop, counting, score_text
from grader.server.policy import CoursePolicy, utc_now
from grader.server.store import Busy, Store, Submission, server_folder
from grader.server.tokens import digest
from grader.text import printable

#: The page's policy: feedback's (no script, nothing from elsewhere), with forms posting to the page itself.
PAGE_POLICY = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
MAX_NAME = 40
LOGINS_PER_MINUTE = 10


class Refused(Exception):
    """A request the server will not do, with why in the words of the student who reads it (:attr:`message`
    is translated when it is read, in the language of the request being answered)."""

    def __init__(self, status: int, message: str | Later, retry_after: int | None = None) -> None:
        super().__init__(str(message))
        self.status, self.said, self.retry_after = status, message, retry_after

    @property
    def message(self) -> str:
        return str(self.said)


#: The languages of the server's pages and messages (the course's editions): a student's browser says which
#: it prefers (Accept-Language), and ?lang= on any page chooses one for the session.
LANGUAGES = ("en", "ja")


class BodyLimit:
    """Requests larger than ``limit`` bytes get 413 before their body is read (or as soon as it passes the limit)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_large = JSONResponse({"error": f"the upload is larger than {self.limit // 2**20} MiB, the largest "
                                           "notebook the course accepts: clear large outputs and try again"}, 413)
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


class RateLimit:
    """At most ``count`` events per key in any ``seconds`` window."""

    def __init__(self, count: int, seconds: float = 60.0) -> None:
        self.count, self.seconds = count, seconds
        self.events: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def wait(self, key: str) -> int | None:
        """None when allowed now (and counted); else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            events = self.events[key]
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.count:
                return int(events[0] + self.seconds - now) + 1
            events.append(now)
            return None


class Server:
    """The course, its store, policy and grading loop, and what every request needs from them."""

    def __init__(self, course: Course, *, workers: int, scheduler: str | None = None, log=print,
                 grade: bool = True) -> None:
        self.course = course
        self.store = Store(course)
        self.assignments = [a for a in course.assignments() if (course.release / a).is_dir()]
        self.policy = CoursePolicy(course.config, course.assignments())
        self.log = log
        self.uploads = RateLimit(self.policy.per_minute)
        self.logins = RateLimit(LOGINS_PER_MINUTE)
        self.grade_ids = self._released_grade_ids()
        self.loop = GradingLoop(course, self.store, self.policy, workers=workers, scheduler=scheduler,
                                log=log) if grade else None

    def _released_grade_ids(self) -> dict[tuple[str, str], set[str]]:
        """The grading ids of every released notebook: an upload is the notebook whose ids it carries."""
        found = {}
        for assignment in self.assignments:
            for notebook in self.course.notebooks(assignment):
                path = self.course.release / assignment / f"{notebook}.ipynb"
                if path.exists():
                    found[(assignment, notebook)] = {
                        c.metadata.nbgrader.grade_id for c in read_notebook(path).cells
                        if "grade_id" in c.get("metadata", {}).get("nbgrader", {})}
        return found

    # -- who ------------------------------------------------------------------------------------

    def student_from_token(self, request: Request, token: str | None) -> str:
        if token:
            student = self.store.student_of(digest(token))
            if student is not None:
                return student
        wait = self.logins.wait(_client(request))
        if wait is not None:
            raise Refused(429, Later(N_("too many attempts with an unknown token: try again in {wait} s"),
                                     wait=wait), wait)
        raise Refused(401, Later(N_("no valid token: use the token your instructor sent you (ask them for a new one "
                                    "if it was revoked or lost)")))

    def api_student(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return self.student_from_token(request, token.strip() if scheme.lower() == "bearer" else None)

    def session_student(self, request: Request) -> str | None:
        student, token_digest = request.session.get("student"), request.session.get("digest")
        if student and token_digest and self.store.student_of(token_digest) == student:
            return student
        request.session.clear()  # revoked, or a new token was issued
        return None

    # -- submitting -----------------------------------------------------------------------------

    def accept(self, student: str, assignment: str | None, filename: str, data: bytes) -> Submission:
        """Check an upload and queue it; :class:`Refused` says why not (nothing is kept then)."""
        filename = printable(Path(filename or "notebook.ipynb").name, newlines=False)[:200] or "notebook.ipynb"
        if len(data) > MAX_FILE_BYTES:
            raise Refused(413, Later(N_("the notebook is larger than {size} MiB: clear large outputs and try "
                                        "again"), size=MAX_FILE_BYTES // 2**20))
        if assignment is not None and assignment not in self.assignments:
            raise Refused(422, Later(N_("there is no assignment {assignment} to submit to (the course has: "
                                        "{assignments})"), assignment=repr(assignment),
                                     assignments=", ".join(self.assignments)))
        nb = _parse(data, filename)
        assignment, notebook = self._identify(nb, assignment, filename)
        busy = self.store.in_flight(student)
        if busy is not None:
            raise Refused(409, _still_grading(busy))
        now = utc_now()
        earlier = [s.received for s in self.store.history(student, assignment) if s.status != "error"]
        why = self.policy.refusal(assignment, student, earlier, now)
        if why:
            raise Refused(403, why)
        wait = self.uploads.wait(student)
        if wait is not None:
            raise Refused(429, Later(N_("at most {count} uploads a minute: try again in {wait} s"),
                                     count=self.policy.per_minute, wait=wait), wait)
        try:
            submission = self.store.add(student=student, assignment=assignment, notebook=notebook,
                                        filename=filename, data=data, received=time.time())
        except Busy as error:  # a second upload that arrived at the same moment
            raise Refused(409, _still_grading(error.submission)) from None
        self.log(f"#{submission.id} queued: {printable(student, newlines=False)}/{assignment} ({len(data)} bytes)")
        if self.loop is not None:
            self.loop.wake()
        return submission

    def _identify(self, nb, assignment: str | None, filename: str) -> tuple[str, str]:
        carried = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
        scores = [(len(carried & ids), key) for key, ids in self.grade_ids.items()
                  if assignment is None or key[0] == assignment]
        best = max(scores, default=(0, None))
        if best[0] == 0:
            raise Refused(422, Later(
                N_("{filename} is not a notebook of {assignment}: it has none of its exercises' grading marks. Submit "
                   "your copy of the released notebook (opened and saved in Jupyter or Colab)") if assignment else
                N_("{filename} is not a notebook of this course: it has none of its exercises' grading marks. Submit "
                   "your copy of the released notebook (opened and saved in Jupyter or Colab)"),
                filename=filename, assignment=assignment))
        return best[1]

    # -- what a student sees ----------------------------------------------------------------------

    def view(self, submission: Submission, now: dt.datetime | None = None) -> dict:
        """A submission as its student may see it: state, place in the queue, verdict (details as the policy allows)."""
        now = now or utc_now()
        policy = self.policy[submission.assignment]
        history = self.store.history(submission.student, submission.assignment)
        earlier = [s.received for s in history if s.status != "error"]
        due = self.policy.due(submission.assignment, submission.student)
        shown = {
            "id": submission.id, "assignment": submission.assignment, "notebook": submission.notebook,
            "filename": submission.filename, "received": _iso(submission.received), "state": submission.state,
            "attempts_left": self.policy.attempts_left(submission.assignment, earlier, now),
            "deadline": due.isoformat() + "Z" if due else None, "counts": policy.counts,
        }
        if submission.state != "done":
            shown["position"] = self.store.position(submission)
            return shown
        verdict = submission.verdict_data() or {}
        details = self.policy.details_shown(submission.assignment, submission.student, now)
        if not details:
            verdict = {**verdict, "detail": "", "exercises": [{k: v for k, v in e.items() if k != "messages"}
                                                             for e in verdict.get("exercises", [])]}
        best = counting(history, policy.counts)
        shown.update(verdict=verdict, details=details, counting=best is not None and best.id == submission.id,
                     graded=_iso(submission.finished))
        return shown

    def leaderboard(self, assignment: str) -> list[dict]:
        """The counting score of each student who chose a display name (the others are not listed)."""
        names = self.store.display_names()
        per_student: dict[str, list[Submission]] = {}
        for submission in self.store.done(assignment):
            per_student.setdefault(submission.student, []).append(submission)
        rows = []
        for student, submissions in per_student.items():
            best = counting(submissions, self.policy[assignment].counts)
            if best is not None and student in names:
                penalty = (best.verdict_data() or {}).get("penalty", 0.0)
                rows.append({"name": names[student], "score": best.score - penalty, "max_score": best.max_score})
        return sorted(rows, key=lambda r: (-r["score"], r["name"]))


def _still_grading(busy: Submission) -> Later:
    return Later(N_("your submission #{number} ({assignment}) is still being graded: wait for its verdict, then "
                    "submit again"), number=busy.id, assignment=busy.assignment)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _iso(seconds: float | None) -> str | None:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None


def _parse(data: bytes, filename: str):
    """The upload as a notebook (read as autograde reads it), or a 400 that says what is wrong with it."""
    with tempfile.TemporaryDirectory(prefix="upload-") as folder:
        path = Path(folder) / "upload.ipynb"
        path.write_bytes(data)
        try:
            return read_notebook(path)
        except GraderError as error:
            raise Refused(400, Later(N_("{problem}: upload the .ipynb file itself, as Jupyter or Colab saved it"),
                                     problem=printable(str(error).replace(str(path), filename),
                                                       newlines=False)[:500])) from None


# -- the HTTP side ----------------------------------------------------------------------------------

def build_app(server: Server, *, secure_cookies: bool = False) -> Starlette:
    pages = Environment(loader=DictLoader(_TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"])
    pages.install_gettext_callables(i18n._, i18n.ngettext, newstyle=False)
    pages.filters["score_text"] = score_text
    pages.globals["states"] = STATES

    def refused(error: Refused) -> JSONResponse:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return JSONResponse({"error": error.message}, error.status, headers=headers)

    async def api_submit(request: Request) -> Response:
        try:
            student = server.api_student(request)
            data = await request.body()
            # Reading a notebook of up to 50 MiB and writing it to disk: off the event loop, which serves the others.
            submission = await run_in_threadpool(server.accept, student, request.query_params.get("assignment"),
                                                 request.query_params.get("filename", ""), data)
        except Refused as error:
            return refused(error)
        return JSONResponse(server.view(submission), 202)

    async def api_submission(request: Request) -> Response:
        try:
            student = server.api_student(request)
        except Refused as error:
            return refused(error)
        submission = _own(server, student, request.path_params["id"])
        if submission is None:
            return JSONResponse({"error": "you have no submission with that number"}, 404)
        return JSONResponse(server.view(submission))

    async def api_history(request: Request) -> Response:
        try:
            student = server.api_student(request)
        except Refused as error:
            return refused(error)
        return JSONResponse({"student": student,
                             "submissions": [server.view(s) for s in server.store.history(student)]})

    async def api_assignments(request: Request) -> Response:
        try:
            student = server.api_student(request)
        except Refused as error:
            return refused(error)
        return JSONResponse({"student": student, "assignments": _assignments(server, student)})

    def page(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(pages.get_template(template).render(lang=i18n.language(), **values), status)

    async def home(request: Request) -> Response:
        student = server.session_student(request)
        message = request.session.pop("message", "")  # what the last form did (kept in the session, not the URL)
        if student is None:
            return page(request, "login.html", message=message)
        history = [server.view(s) for s in reversed(server.store.history(student))]
        boards = {a: server.leaderboard(a) for a in server.assignments if server.policy[a].leaderboard}
        pending = any(v["state"] != "done" for v in history)
        return page(request, "home.html", student=student, history=history, boards=boards, pending=pending,
                    assignments=_assignments(server, student), message=message,
                    name=server.store.display_names().get(student, ""))

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=2, max_part_size=1024)
        try:
            token = str(form.get("token", "")).strip()
            student = server.student_from_token(request, token)
        except Refused as error:
            return page(request, "login.html", error.status, message=error.message)
        request.session.clear()
        request.session.update(student=student, digest=digest(token))
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/", 303)

    async def upload(request: Request) -> Response:
        student = server.session_student(request)
        if student is None:
            return RedirectResponse("/", 303)
        form = await request.form(max_files=1, max_fields=2, max_part_size=MAX_FILE_BYTES)
        notebook = form.get("notebook")
        assignment = str(form.get("assignment", "")) or None
        try:
            if notebook is None or isinstance(notebook, str):
                raise Refused(400, Later(N_("choose the notebook file to upload")))
            submission = await run_in_threadpool(server.accept, student, assignment, notebook.filename or "",
                                                 await notebook.read())
        except Refused as error:
            return _back(request, error.message)
        return _back(request, i18n._("submission #{number} received: it is being graded").format(number=submission.id))

    async def set_name(request: Request) -> Response:
        student = server.session_student(request)
        if student is None:
            return RedirectResponse("/", 303)
        form = await request.form(max_files=0, max_fields=1, max_part_size=1024)
        name = " ".join(printable(str(form.get("name", "")), newlines=False).split())[:MAX_NAME]
        server.store.set_display_name(student, name)
        return _back(request, i18n._("display name saved") if name else i18n._("display name removed"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if server.loop is not None:
            server.loop.start()
        yield
        if server.loop is not None:
            server.loop.stop()

    def speaking(handler):
        """The handler answering in the request's language (see :func:`_language`)."""
        async def answer(request: Request) -> Response:
            with i18n.speaking(_language(request)):
                return await handler(request)
        return answer

    routes = [
        Route("/", speaking(home)), Route("/login", speaking(login), methods=["POST"]),
        Route("/logout", speaking(logout), methods=["POST"]), Route("/upload", speaking(upload), methods=["POST"]),
        Route("/name", speaking(set_name), methods=["POST"]),
        Route("/api/submissions", speaking(api_submit), methods=["POST"]),
        Route("/api/submissions", speaking(api_history)), Route("/api/submissions/{id:int}", speaking(api_submission)),
        Route("/api/assignments", speaking(api_assignments)),
    ]
    middleware = [Middleware(BodyLimit, limit=MAX_FILE_BYTES + 64 * 1024), Middleware(_SecurityHeaders),
                  Middleware(SessionMiddleware, secret_key=_session_key(server.course), session_cookie="session",
                             max_age=14 * 24 * 3600, same_site="strict", https_only=secure_cookies)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


class _SecurityHeaders:
    """Every response: the page policy, no sniffing, no referrer, not cached (it holds grades)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"content-security-policy", PAGE_POLICY.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY")]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _own(server: Server, student: str, submission_id: int) -> Submission | None:
    submission = server.store.get(submission_id)
    return submission if submission is not None and submission.student == student else None


def _assignments(server: Server, student: str) -> list[dict]:
    now = utc_now()
    listed = []
    for assignment in server.assignments:
        history = server.store.history(student, assignment)
        earlier = [s.received for s in history if s.status != "error"]
        due = server.policy.due(assignment, student)
        best = counting(history, server.policy[assignment].counts)
        listed.append({"assignment": assignment, "open": server.policy.refusal(assignment, student, [], now) is None,
                       "refusal": _text(server.policy.refusal(assignment, student, earlier, now)),
                       "deadline": due.isoformat() + "Z" if due else None,
                       "attempts_left": server.policy.attempts_left(assignment, earlier, now),
                       "counts": server.policy[assignment].counts,
                       "grade": _grade_text(best)})
    return listed


def _grade_text(best: Submission | None) -> str | None:
    verdict = None if best is None else best.verdict_data()
    return None if not verdict or "score_text" not in verdict else score_text(verdict)


def _text(said: Later | None) -> str | None:
    return None if said is None else str(said)


def _language(request: Request) -> str:
    """The language to answer in: chosen with ?lang= (kept in the session), else the browser's preference."""
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES:
        request.session["lang"] = chosen
    if request.session.get("lang") in LANGUAGES:
        return request.session["lang"]
    return preferred_language(request.headers.get("accept-language", ""))


def preferred_language(header: str) -> str:
    """The first of :data:`LANGUAGES` an Accept-Language header prefers (``ja,en-US;q=0.8`` → ``ja``); English
    when it names none of them."""
    best, best_weight = "en", 0.0
    for part in header.split(","):
        tag, _, parameters = part.strip().partition(";")
        weight = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        code = tag.strip().lower().split("-")[0]
        if code in LANGUAGES and weight > best_weight:
            best, best_weight = code, weight
    return best


def _back(request: Request, message: str) -> RedirectResponse:
    """Back to the page, which shows ``message`` once."""
    request.session["message"] = message
    return RedirectResponse("/", 303)


def _session_key(course: Course) -> str:
    """The key that signs session cookies, made once per course (readable by the grader's user only)."""
    path = server_folder(course) / "session-key"
    if not path.exists():
        write_atomically(path, secrets.token_hex(32).encode(), private=True)
    os.chmod(path, 0o600)
    return path.read_text().strip()


#: What the pages say about a submission on its way (a submission's state).
STATES = {"queued": N_("queued"), "grading": N_("grading")}

_BASE = """<!DOCTYPE html><html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{% if pending %}
<meta http-equiv="refresh" content="2">{% endif %}<title>{{ _("Course submissions") }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}\
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
.pass{color:#1a7f37}.fail{color:#b3261e}.note{background:#fff6d5;padding:.5rem;border-radius:4px}
nav{float:right}pre{white-space:pre-wrap;margin:0;font-size:.9em}section{margin:1.5rem 0}</style></head><body>
<nav>{% if lang == "ja" %}<a href="/?lang=en">English</a>{% else %}<a href="/?lang=ja">日本語</a>{% endif %}</nav>
{% block body %}{% endblock %}</body></html>"""

_TEMPLATES = {
    "base.html": _BASE,
    "login.html": """{% extends "base.html" %}{% block body %}<h1>{{ _("Course submissions") }}</h1>
{% if message %}<p class="note">{{ message }}</p>{% endif %}
<form method="post" action="/login"><label>{{ _("Your token") }} <input type="password" name="token"
 autocomplete="off" size="50" required></label> <button>{{ _("Log in") }}</button></form>
<p>{{ _("The token is the one your instructor sent you. It is not stored in your browser: a session cookie is.") }}</p>
{% endblock %}""",
    "home.html": """{% extends "base.html" %}{% block body %}<h1>{{ _("Course submissions") }}</h1>
<form method="post" action="/logout">{{ _("Logged in as") }} <b>{{ student }}</b>. \
<button>{{ _("Log out") }}</button></form>
{% if message %}<p class="note">{{ message }}</p>{% endif %}
<section><h2>{{ _("Submit a notebook") }}</h2><form method="post" action="/upload" enctype="multipart/form-data">
<select name="assignment">{% for a in assignments %}\
<option value="{{ a.assignment }}"{% if not a.open %} disabled{% endif %}>{{ a.assignment }}</option>\
{% endfor %}</select>
<input type="file" name="notebook" accept=".ipynb" required> <button>{{ _("Submit") }}</button></form>
<table><tr><th>{{ _("assignment") }}</th><th>{{ _("due") }}</th><th>{{ _("attempts left") }}</th>\
<th>{{ _("counts") }}</th><th>{{ _("grade") }}</th></tr>
{% for a in assignments %}<tr><td>{{ a.assignment }}</td><td>{{ a.deadline or _("no due date") }}</td>
<td>{{ _("no limit") if a.attempts_left is none else a.attempts_left }}</td>\
<td>{{ _("the best attempt") if a.counts == "best" else _("the last attempt") }}</td>\
<td>{{ a.grade or "" }}</td></tr>{% endfor %}</table></section>
<section><h2>{{ _("Your submissions") }}</h2>{% if not history %}<p>{{ _("None yet.") }}</p>{% endif %}
{% for s in history %}<h3 id="s{{ s.id }}">#{{ s.id }} {{ s.assignment }}: {{ s.filename }}, {{ s.received }}</h3>
{% if s.state != "done" %}<p>{{ _(states.get(s.state, s.state)) }}\
{% if s.position %} ({{ _("{count} ahead of it").format(count=s.position) }}){% endif %}: \
{{ _("this page refreshes until it is graded.") }}</p>
{% else %}<p><b>{{ s.verdict|score_text }}</b> {{ _(s.verdict.summary) }}\
{% if s.counting %} ({{ _("this attempt counts") }}){% endif %}</p>
{% if s.verdict.detail %}<p>{{ s.verdict.detail }}</p>{% endif %}
{% if not s.details %}<p class="note">{{ _("Until the due date only pass or fail is shown for each exercise.") }}</p>\
{% endif %}
<table>{% for e in s.verdict.exercises %}<tr><td class="{{ 'pass' if e.passed else 'fail' }}">\
{{ _("passed") if e.passed else _("failed") }}</td>
<td>{{ e.exercise }}</td><td>{{ "%g"|format(e.points) }} / {{ "%g"|format(e.max_points) }}</td>
<td>{% if e.messages %}<pre>{{ e.messages|join("\n") }}</pre>{% endif %}</td></tr>{% endfor %}</table>{% endif %}
{% endfor %}</section>
{% if boards %}<section><h2>{{ _("Leaderboard") }}</h2><form method="post" action="/name">\
<label>{{ _("Your display name") }}
<input name="name" value="{{ name }}" maxlength="40"></label> \
<button>{{ _("Save") }}</button> ({{ _("leave empty not to be listed") }})</form>
{% for assignment, rows in boards.items() %}<h3>{{ assignment }}</h3>\
<table><tr><th>#</th><th>{{ _("name") }}</th><th>{{ _("score") }}</th></tr>
{% for r in rows %}<tr><td>{{ loop.index }}</td><td>{{ r.name }}</td>\
<td>{{ "%g"|format(r.score) }} / {{ "%g"|format(r.max_score) }}</td></tr>{% endfor %}
</table>{% endfor %}</section>{% endif %}
{% endblock %}""",
}

__all__ = ["PAGE_POLICY", "Refused", "Server", "build_app"]
