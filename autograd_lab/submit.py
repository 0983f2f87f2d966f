"""``submit()``: send this notebook to the course server and print its verdict, from JupyterLab or Colab.

    from autograd_lab.submit import submit
    submit()                      # or submit("02-backward"), submit(server="https://grader.example.edu")

What is sent is what the server will grade, and it says so:

- on Colab, the notebook as this runtime holds it (Colab's own ``get_ipynb``), so unsaved edits count;
- in JupyterLab (and classic Jupyter, VS Code), the ``.ipynb`` file on disk. When the file
  was saved before the cells that ran last (its highest ``In [n]`` is below the
  kernel's), nothing is sent: save the notebook (Ctrl+S) and call ``submit()`` again,
  or ``submit(force=True)`` to send the file as it is.

The server is ``server=``, else ``AUTOGRAD_LAB_SERVER``. The token is asked for once
(``getpass``: never shown, never written to the notebook or to disk) and kept in this
Python session only; on JupyterHub an instructor may put it in ``AUTOGRAD_LAB_TOKEN``.
Only the standard library is used, so this runs on Colab as it is.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from autograd_lab import i18n
from autograd_lab.i18n import N_, _

#: Which attempt counts, by the server's rule ("best" or "last") and whether it is this one: a message per
#: rule, so that a translation says the rule in its own words.
_COUNTING = {
    ("best", True): N_("This attempt is the one that counts (best attempt)."),
    ("last", True): N_("This attempt is the one that counts (last attempt)."),
    ("best", False): N_("Your best attempt still counts."),
    ("last", False): N_("Your last attempt still counts."),
}
_COUNTS = N_("This attempt is the one that counts.")  # a rule this version does not know
_STILL_COUNTS = N_("An earlier attempt still counts.")

_token: str | None = None  # this session's token: in memory only
last: dict | None = None  # the last verdict, as the server sent it (for code that wants the data)


class SubmitError(Exception):
    """Why nothing was submitted, and what to do."""


def submit(assignment: str | None = None, *, server: str | None = None, path: str | os.PathLike | None = None,
           force: bool = False, timeout: float = 600.0) -> None:
    """Send this notebook to the course server, wait for its verdict and print it (see the module's docstring)."""
    global last
    try:
        base = _server(server)
        data, sent = _notebook(path, force)
        token = _ask_token()
        query = {"filename": sent.name if isinstance(sent, Path) else "colab.ipynb"}
        if assignment:
            query["assignment"] = assignment
        accepted = _request("POST", f"{base}/api/submissions?{urllib.parse.urlencode(query)}", token, data)
        print(_("Sent {what} to {server}: submission #{id}.").format(what=_describe(sent), server=base,
                                                                       id=accepted["id"]), flush=True)
        view = _wait(base, token, accepted["id"], timeout)
    except SubmitError as error:
        print(str(error), file=sys.stderr)
        return
    last = view
    _print_verdict(view)


def _server(server: str | None) -> str:
    base = (server or os.environ.get("AUTOGRAD_LAB_SERVER", "")).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SubmitError(_("Which course server? Call submit(server=\"https://…\") with the address your "
                            "instructor gave, or set AUTOGRAD_LAB_SERVER."))
    return base


def _ask_token() -> str:
    global _token
    if _token is None:
        _token = os.environ.get("AUTOGRAD_LAB_TOKEN", "").strip() or getpass.getpass(
            _("Your course token (asked once, kept in this session only): ")).strip()
    if not _token:
        _token = None
        raise SubmitError(_("No token given: call submit() again and paste the token your instructor sent you."))
    return _token


def _notebook(path, force: bool) -> tuple[bytes, object]:
    """The notebook's bytes, and what they are (a file with its save time, or Colab's copy)."""
    if path is None and "google.colab" in sys.modules:
        from google.colab import _message  # Colab's own request for the notebook the browser holds

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
        if not reply or "ipynb" not in reply:
            raise SubmitError(_("Colab did not hand over the notebook: run submit() again in a moment."))
        return json.dumps(reply["ipynb"]).encode(), dt.datetime.now()
    found = Path(path) if path else _this_notebook()
    try:
        data = found.read_bytes()
    except OSError as error:
        raise SubmitError(_("Cannot read {path}: {error}").format(path=found, error=error)) from None
    if not force:
        _check_saved(found, data)
    return data, found


def _this_notebook() -> Path:
    """The file of the notebook this kernel runs (JupyterLab sets JPY_SESSION_NAME; VS Code its own name)."""
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            candidates.append(str(shell.user_ns.get("__vsc_ipynb_file__", "")))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    raise SubmitError(_("Which notebook? This Jupyter does not say: call submit(path=\"my-notebook.ipynb\")."))


def _check_saved(path: Path, data: bytes) -> None:
    """The file was saved after the cells that ran last; else nothing is sent, and the student is told why."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is None:
        return
    try:
        cells = json.loads(data.decode("utf-8-sig")).get("cells", [])
        saved = max((c.get("execution_count") or 0 for c in cells if isinstance(c, dict)), default=0)
    except (ValueError, AttributeError):
        return  # not JSON: the server says what is wrong with it
    running = shell.execution_count  # the number of the cell calling submit()
    if saved < running - 1:
        then = (_("the file's last is In [{saved}]").format(saved=saved) if saved else
                _("the file holds no cell that ran"))
        raise SubmitError(_("Not sent: {path} was saved before your latest cell runs ({then}, this kernel has run "
                            "up to In [{last}]). Save the notebook (Ctrl+S), then run submit() again; "
                            "submit(force=True) sends the file as it is.").format(path=path, then=then,
                                                                                  last=running - 1))


def _describe(sent) -> str:
    if isinstance(sent, Path):
        saved = dt.datetime.fromtimestamp(sent.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
        return _("{path} (saved {time})").format(path=sent, time=saved)
    return _("the notebook as this Colab runtime holds it ({time})").format(time=sent.strftime("%H:%M:%S"))


def _request(method: str, url: str, token: str, data: bytes | None = None) -> dict:
    global _token
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ipynb+json", "Accept": "application/json",
        "Accept-Language": i18n.language()})  # the server's refusals in the notebook's language
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", "")
        except ValueError:
            message = ""
        if error.code == 401:
            _token = None  # asked again next time
        raise SubmitError(_("The server refused it ({code}): {message}").format(
            code=error.code, message=message or error.reason)) from None
    except (urllib.error.URLError, OSError) as error:
        raise SubmitError(_("Cannot reach the course server at {url}: {error}. Check the address and your "
                            "connection, then run submit() again.").format(url=url.split("/api/")[0],
                                                                             error=error)) from None


def _wait(base: str, token: str, number: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    said = False
    while True:
        view = _request("GET", f"{base}/api/submissions/{number}", token)
        if view.get("state") == "done":
            return view
        if not said and view.get("position"):
            print(_("Waiting: {count} submission(s) ahead of yours.").format(count=view["position"]), flush=True)
            said = True
        if time.monotonic() > deadline:
            raise SubmitError(_("No verdict yet for submission #{id}: it is queued and will be graded; see it "
                                "later on the server's page.").format(id=number))
        time.sleep(0.5)


def _print_verdict(view: dict) -> None:
    verdict = view.get("verdict") or {}
    lines = [f"{view['assignment']}: {verdict.get('score_text', '')}. {verdict.get('summary', '')}"]
    if verdict.get("detail"):
        lines.append("  " + verdict["detail"])
    for exercise in verdict.get("exercises", []):
        mark = "✓" if exercise["passed"] else "✗"
        lines.append(f"{mark} {exercise['exercise']}: {exercise['points']:g} / {exercise['max_points']:g}")
        for message in exercise.get("messages", []):
            lines += ["    " + line for line in message.splitlines()]
    if not view.get("details", True):
        lines.append(_("(Until the due date only pass or fail is shown for each exercise.)"))
    left = view.get("attempts_left")
    lines.append(_("Attempts left: {left}.").format(left=_("no limit") if left is None else left)
                 + " " + (_("Due: {due} UTC.").format(due=view["deadline"].rstrip("Z").replace("T", " "))
                          if view.get("deadline") else _("No due date.")))
    lines.append(_(_COUNTING.get((view.get("counts"), bool(view.get("counting"))),
                                 _COUNTS if view.get("counting") else _STILL_COUNTS)))
    print("\n".join(lines))
