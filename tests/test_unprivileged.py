"""The whole grading path run by an ordinary user, as an instructor on a laptop or a JupyterHub runs it.

Without root the sandbox is built in a user namespace, where the grader is uid 0
with that namespace's capabilities. The submissions here try every way we know to
use that: the chroot climb, a user namespace of their own, a read-write remount
of the grader's code, memory no limit counts, the init's view of the host. The
test runs ``python -m grader autograde`` as uid 65534 (``setpriv``), then checks,
as root, that nothing outside the working copies changed and nothing leaked.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from fixture_course import CORRECT, WRONG, _answered, make_course
from grader.records import SubmissionRecord, record_path
from grader.course import open_course

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("setpriv"),
                       reason="needs root (to run the grader as another user) and setpriv, on Linux"),
]


def _as_nobody(*command: str, cwd: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": cwd or "/", "LANG": "C.UTF-8"}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def nobody_folder():
    """A folder the unprivileged user owns, and a check that it can run this checkout's Python at all."""
    probe = _as_nobody(sys.executable, "-c", "import grader, autograd_lab, torch")
    if probe.returncode != 0:
        message = (f"uid {NOBODY} cannot run {sys.executable} with this checkout ({probe.stderr.strip()[-300:]}); "
                   "make the checkout's folders searchable by others (chmod o+x) to run this test")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="autograd-unprivileged-", dir="/tmp"))
    os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _attack(course: Path) -> str:
    """One cell that tries every escape, and prints what each gave (ESCAPED or LEAKED on success)."""
    victim = course / "submitted" / "victim" / "ps1" / "ps1.ipynb"
    return f'''
import ctypes, os, sqlite3
_libc = ctypes.CDLL(None, use_errno=True)
_COURSE = {str(course)!r}

def _loot(where):
    """What an escape would do with the grader's rights: read, write, change a grade."""
    for _name in ("/.grader/secret", "/source/ps1/ps1.ipynb"):
        try:
            print("LEAKED", where, _name, open(_COURSE + _name).read()[:40])
        except OSError as _error:
            print("no access", where, _name, type(_error).__name__)
    try:
        print("LEAKED", where, "submissions", os.listdir(_COURSE + "/submitted"))
    except OSError:
        pass
    for _name in ("/source/ps1/pwned.txt", {str(victim)!r}.replace(_COURSE, "")):
        try:
            open(_COURSE + _name, "ab").write(b"pwned")
            print("LEAKED-WRITE", where, _name)
        except OSError:
            pass
    try:
        _db = sqlite3.connect(_COURSE + "/gradebook.db")
        _db.execute("update grade set manual_score = 0")
        _db.commit()
        print("LEAKED-WRITE", where, "gradebook")
    except Exception:
        pass

def _climb(where):
    try:
        os.makedirs("jail", exist_ok=True)
        _outside = os.open("/", os.O_RDONLY)
        os.chroot("jail")
        os.fchdir(_outside)
        for _ in range(100):
            os.chdir("..")
        os.chroot(".")
        print("ESCAPED", where, sorted(os.listdir("/")))
        _loot(where)
    except OSError as _error:
        print("no climb", where, _error)

_climb("chroot")
_pid = os.fork()
if _pid == 0:  # a user and mount namespace of its own, where it would hold every capability
    os._exit(1 if _libc.unshare(0x10000000 | 0x00020000) == 0 else 0)
print("ESCAPED unshare" if os.waitstatus_to_exitcode(os.waitpid(_pid, 0)[1]) else "no unshare")
if _libc.unshare(0x10000000 | 0x00020000) == 0:
    print("ESCAPED unshare")
    _climb("userns")
import grader
_package = os.path.dirname(grader.__file__)
if _libc.mount(None, _package.encode(), None, ctypes.c_ulong(4096 | 32), None) == 0:
    print("ESCAPED remount")
try:
    open(os.path.join(_package, "pwned.py"), "w").write("x = 1")
    print("LEAKED-WRITE", "grader package")
except OSError:
    print("read-only grader package")
try:
    os.memfd_create("hog")
    print("ESCAPED memfd")
except OSError:
    print("no memfd")
for _link in ("/proc/1/root", "/proc/1/cwd"):
    try:
        print("ESCAPED", _link, os.listdir(_link + _COURSE))
    except OSError as _error:
        print("no", _link, type(_error).__name__)
import time
_forked = 0
for _ in range(300):  # the process limit counts the sandbox's processes, not the grader's user's
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        _forked += 1
    except OSError:
        break
print("FORKED", _forked)
_status = open("/proc/self/status").read()
print("IDENTITY", os.getuid(), [line.split()[1] for line in _status.splitlines() if line.startswith("Cap")])
'''


def _digest(folder: Path, skip: set[str]) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not set(p.relative_to(folder).parts) & skip}


def test_grading_as_an_ordinary_user_cannot_be_escaped(nobody_folder):
    course_dir = make_course(nobody_folder / "course")
    submissions = {"honest": _answered(course_dir, CORRECT), "victim": _answered(course_dir, CORRECT),
                   "attacker": _answered(course_dir, WRONG)}
    submissions["attacker"].cells.append(new_code_cell(_attack(course_dir)))
    for student, notebook in submissions.items():
        folder = course_dir / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / "ps1.ipynb")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(nobody_folder)], check=True)

    # The victim is graded first, on its own: its grade is in the gradebook before the attacker runs.
    grade = [sys.executable, "-m", "grader", "autograde", "ps1", "--course", str(course_dir), "--no-progress"]
    first = _as_nobody(*grade, "--student", "victim", cwd=str(nobody_folder))
    assert first.returncode == 0, first.stdout + first.stderr
    skip = {"autograded", ".grader", "gradebook.db", "feedback"}
    before = _digest(course_dir, skip)
    package_before = _digest(ROOT / "grader", {"__pycache__"})
    secret = (course_dir / ".grader" / "secret").read_bytes()

    run = _as_nobody(*grade, "--workers", "2", cwd=str(nobody_folder))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "without isolation" not in run.stdout + run.stderr  # graded in the user namespace sandbox

    course = open_course(course_dir)
    scores = {student: SubmissionRecord.load(record_path(course, "ps1", student)).notebooks["ps1"]
              for student in submissions}
    assert {s: (o.score, o.status) for s, o in scores.items()} == {
        "honest": (5.0, "graded"), "victim": (5.0, "graded"), "attacker": (0.0, "graded")}
    with course.gradebook() as gradebook:
        assert gradebook.find_submission("ps1", "victim").score == 5.0

    graded = nbformat.read(course.autograded / "attacker" / "ps1" / "ps1.ipynb", as_version=4)
    printed = "".join("".join(o.get("text", "")) for c in graded.cells for o in c.get("outputs", []))
    assert "IDENTITY" in printed, printed
    assert "ESCAPED" not in printed and "LEAKED" not in printed, printed
    assert "no climb chroot" in printed and "no unshare" in printed and "no memfd" in printed
    identity = next(line for line in printed.splitlines() if line.startswith("IDENTITY"))
    assert not identity.startswith("IDENTITY 0 ") and identity.count("0000000000000000") == 5, identity
    assert secret.decode(errors="replace")[:16] not in printed
    forked = int(printed.split("FORKED ")[1].split()[0])
    assert 0 < forked < 64, printed  # c.Sandbox.max_processes, counted in the student's own user namespace

    # Nothing outside the working copies changed: sources, submissions, the grader's own code.
    assert _digest(course_dir, skip) == before
    assert _digest(ROOT / "grader", {"__pycache__"}) == package_before
    assert not (ROOT / "grader" / "pwned.py").exists()
