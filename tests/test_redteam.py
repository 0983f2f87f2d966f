"""Red team: submissions that attack the grader, all graded in one run by the real grader.

Each fixture is the fixture course's ps1 (5 points) with honest answers (right or
wrong) plus an attack. The class is graded once (the module's ``graded`` fixture);
then, one test id per attack, we assert the recorded score (what the honest answers
earn), the status and whether it is flagged for the instructor; what some attacks
printed or left on record; and that nothing outside the submissions' working copies
changed or leaked.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from fixture_course import CORRECT, WRONG, _answered, copy_course
from grader.autograde.run import Autograder
from grader.autograde.store import Store
from grader.course import Course, open_course
from grader.records import NotebookOutcome, SubmissionRecord, record_path
from grader.sandbox.linux import Limits, isolation_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(isolation_available().mode == "none", reason="needs Linux namespaces (root or user namespaces)"),
]

SENTINEL = "/tmp/autograd-redteam-sentinel"


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def build(root: Path, answers: dict, *, start: list[str] = (), end: list[str] = (), after: dict | None = None,
          edit_tests: bool = False, delete_tests: bool = False, duplicate_tests: bool = False):
    nb = _answered(root, answers)
    imports = next(i for i, c in enumerate(nb.cells) if _grade_id(c) == "imports")
    for offset, source in enumerate(start):
        nb.cells.insert(imports + 1 + offset, new_code_cell(source))
    for grade_id, source in (after or {}).items():
        index = next(i for i, c in enumerate(nb.cells) if _grade_id(c) == grade_id)
        nb.cells.insert(index + 1, new_code_cell(source))
    nb.cells.extend(new_code_cell(source) for source in end)
    tests = [c for c in nb.cells if _grade_id(c) and _grade_id(c).startswith("test-")]
    if edit_tests:
        for cell in tests:
            cell.source = "pass  # tests removed"
    if delete_tests:
        nb.cells = [c for c in nb.cells if c not in tests]
    if duplicate_tests:
        for cell in tests:
            nb.cells.insert(nb.cells.index(cell), nbformat.from_dict(dict(cell)))
    return nb


#: student → (its notebook, made from the course folder and the port of a server the sandbox must not reach;
#: the score the honest answers earn; the status; whether the instructor is shown a flag).
ATTACKS = {
    # Replacing or wrapping the checks, the comparisons, the assertion machinery.
    "replace-checks": (lambda root, port: build(root, WRONG, start=[
        "from autograd_lab import checks\n"
        "for _name in ['close', 'function', 'gradient', 'tensor', 'equal', 'backward', 'graph', 'raises']:\n"
        "    setattr(checks, _name, lambda *a, **k: print('✓ all good'))"]), 0.0, "graded", True),
    "fake-comparisons": (lambda root, port: build(root, WRONG, start=[
        "import numpy as np, torch\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda *a, **k: True\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.isclose = lambda a, b, **k: np.ones(np.shape(a), dtype=bool)\n"
        "np.testing.assert_allclose = lambda *a, **k: None"]), 0.0, "graded", True),
    "assertion-machinery": (lambda root, port: build(root, WRONG, start=[
        "import builtins\n"
        "class _Quiet(Exception):\n    pass\n"
        "builtins.AssertionError = _Quiet\n"
        "import autograd_lab.checks as _c\n_c.CheckFailed = _Quiet"]), 0.0, "graded", True),
    "forge-probes": (lambda root, port: build(root, WRONG, start=[
        "import autograd_lab.checks.probes as _p, grader.sandbox.kernel_probes as _k\n"
        "from autograd_lab.checks.observed import observe, to_json\n"
        "_k.run_planned = lambda specs, ns: [to_json(observe(6.0)) for _ in specs]\n"
        "_p.run_probe = _k.run_probe = lambda *a, **k: observe(6.0)"]), 0.0, "graded", True),
    # Hooking the kernel so later cells are skipped or their errors swallowed.
    "skip-later-cells": (lambda root, port: build(root, WRONG, start=[
        "get_ipython().input_transformers_post.append(lambda lines: [])\n"
        "get_ipython().run_cell = lambda *a, **k: None"]), 0.0, "graded", True),
    "swallow-errors": (lambda root, port: build(root, WRONG, start=[
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
        "import sys\nsys.excepthook = lambda *a: None"]), 0.0, "graded", True),
    # Editing, deleting or duplicating test cells.
    "edit-tests": (lambda root, port: build(root, WRONG, edit_tests=True), 0.0, "graded", True),
    "delete-tests": (lambda root, port: build(root, WRONG, delete_tests=True), 0.0, "graded", True),
    "duplicate-tests": (lambda root, port: build(root, WRONG, duplicate_tests=True), 0.0, "graded", True),
    # Breaking the runner's own machinery: graded as far as it ran, never "not graded".
    "break-the-runner": (lambda root, port: build(root, CORRECT, end=[
        "import json\njson.dumps = lambda *a, **k: 1 / 0"]), 5.0, "died", True),
    # Writing to the grader's channel.
    "forge-channel": (lambda root, port: build(root, WRONG, end=[
        "import json, os\n"
        "_line = (json.dumps({'event': 'done', 'cell': 3, 'outputs': [], 'observations': []}) + '\\n').encode()\n"
        "for _fd in range(3, 64):\n"
        "    try:\n        os.write(_fd, b'garbage\\n' + _line)\n    except OSError:\n        pass"]),
        0.0, "graded", True),
    # Reading or writing outside the working copy; the network; other processes.
    "read-secrets": (lambda root, port: build(root, CORRECT, end=[_snoop(str(root), port)]), 5.0, "graded", True),
    "kill-others": (lambda root, port: build(root, CORRECT, end=[
        "import os, signal\n"
        "for _pid in range(1, 5000):\n"
        "    if _pid != os.getpid():\n"
        "        try:\n            os.kill(_pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "print('still here')"]), 5.0, "graded", True),
    # Limits.
    "fork-bomb": (lambda root, port: build(root, CORRECT, end=[
        "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"]),
        5.0, "timeout", True),
    "memory-hog": (lambda root, port: build(root, CORRECT, end=["_hog = [bytearray(2 ** 28) for _ in range(100)]"]),
                   5.0, "memory-limit", False),
    "cpu-hog": (lambda root, port: build(root, CORRECT, end=["while True:\n    pass"]), 5.0, "cpu-limit", False),
    "ignore-interrupt": (lambda root, port: build(root, CORRECT, after={"test-make-leaf": (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)")}),
        3.0, "timeout", True),
    "output-flood": (lambda root, port: build(root, CORRECT, end=[
        "import os\n_junk = b'x' * (1 << 20)\nfor _round in range(20):\n    for _fd in range(3, 64):\n"
        "        try:\n            os.write(_fd, _junk)\n        except OSError:\n            pass"]),
        5.0, "output-limit", True),
    "disk-fill": (lambda root, port: build(root, CORRECT, end=["open('big.bin', 'wb').write(b'x' * (300 * 2 ** 20))"]),
                  5.0, "graded", False),
    # Answers the judge must read without crashing: one notebook must never stop the run.
    "judge-crash": (lambda root, port: build(root, dict(CORRECT, **{"square-grad": (
        "import numbers\n    class _Odd:\n        def __array__(self, dtype=None, copy=None):\n"
        "            return np.array([1.0, 2.0])\n    numbers.Number.register(_Odd)\n    return _Odd()")})),
        3.0, "graded", False),
    # Forged reports on the grader's channel: rejected by its schema, flagged, never trusted.
    "forge-half-observation": (lambda root, port: build(root, dict(CORRECT, **{"square-grad": (
        _forge("{'event': 'done', 'cell': _cell, 'seconds': 0.1, 'observations': [{'kind': 'tensor'}] * 3}",
               indent="    ") + "\n    return 2.0 * x")})), 3.0, "graded", True),
    "forge-output-types": (lambda root, port: build(root, CORRECT, end=[_forge(
        "{'event': 'done', 'cell': _cell, 'seconds': 0.1, 'outputs': [{'output_type': 'stream', 'name': 'stdout', "
        "'text': 5}, {'output_type': 'display_data', 'data': {'text/plain': {'a': 1}}}]}")]), 5.0, "graded", True),
    "forge-exit-then-sleep": (lambda root, port: build(root, CORRECT, end=[_forge(
        "{'event': 'runner-exit', 'code': 0, 'cpu': 0.0}", once=True) + "\nimport time\ntime.sleep(1000)"]),
        5.0, "timeout", True),
    "close-channel-then-sleep": (lambda root, port: build(root, CORRECT, end=[
        "import os, time\nos.closerange(3, 1024)\ntime.sleep(1000)"]), 5.0, "died", True),
    "forge-repeated-start": (lambda root, port: build(root, CORRECT, end=[
        "import time\nfor _round in range(30):\n    " + _forge("{'event': 'start', 'cell': _cell}", indent="    ")
        + "\n    time.sleep(2)"]), 5.0, "timeout", True),
    "forge-sandbox-error": (lambda root, port: build(root, WRONG, end=[_forge(
        "{'event': 'sandbox-error', 'message': '\\x1b[2J\\x1b[31mthe grader is broken, give full marks'}",
        once=True)]), 0.0, "graded", True),
    # What the kernel could find in its own memory or /proc: no probes before their test, no secrets.
    "find-probes": (lambda root, port: build(root, CORRECT, start=[
        "import gc\n_found = [o for o in gc.get_objects() if isinstance(o, dict) and (isinstance(o.get('probes'), list)\n"
        "          or 'probe' in o and 'args' in o)]  # the job's test cells, or probe specs\n"
        "print('PROBES-FOUND', len(_found))"]), 5.0, "graded", True),
    "read-environ": (lambda root, port: build(root, CORRECT, end=[
        "import ctypes\nctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE\n"
        "_environ = open('/proc/self/environ', 'rb').read()\n"
        "print('ENVIRON-LEAKED' if b'do not leak' in _environ else 'ENVIRON-CLEAN', len(_environ))"]),
        5.0, "graded", True),
    # PyTorch where the exercise forbids it, from threads the watch must not miss.
    "torch-in-thread": (lambda root, port: _norm_grad(root, "import threading", "_out = []", *_TORCH_WORK, *_JOINED, "return _out[0]"),
                        3.0, "graded", False),
    "torch-in-raw-thread": (lambda root, port: _norm_grad(root, "import _thread, time", "_out = []", *_TORCH_WORK,
                                       "_thread.start_new_thread(_work, ())", "while not _out:",
                                       "    time.sleep(0.001)", "return _out[0]"), 3.0, "graded", False),
    "torch-unhooked-as-the-watch": (lambda root, port: _norm_grad(
        root, "import sys", "from autograd_lab.checks import probes as _p",
        "exec(compile('import sys; sys.setprofile(None)', _p.__file__, 'exec'))", *_TORCH_GRAD,
        "return t.grad.numpy()"), 3.0, "graded", False),
    "torch-in-thread-unhooked": (lambda root, port: _norm_grad(
        root, "import threading", "_out, _hook = [], threading._profile_hook", "threading._profile_hook = None",
        *_TORCH_WORK, *_JOINED, "threading._profile_hook = _hook", "return _out[0]"), 3.0, "graded", False),
    # ... and from processes: a forked child (fork found by name, so the code reading does not see it),
    # and a program spawned from C code (no profile event, no fork hook: the sandbox's pid counter moves).
    "torch-in-forked-child": (lambda root, port: _norm_grad(
        root, "import os, json", "_r, _w = os.pipe()", "_pid = getattr(os, 'fo' + 'rk')()", "if _pid == 0:",
        *("    " + line for line in _TORCH_GRAD), "    os.write(_w, json.dumps(t.grad.tolist()).encode())",
        "    os._exit(0)", "os.close(_w)", "os.waitpid(_pid, 0)", "return np.array(json.loads(os.read(_r, 1 << 16)))"),
        3.0, "graded", True),  # flagged too: the code reading sees the child's raw os.write
    "torch-in-spawned-program": (lambda root, port: _norm_grad(
        root, "import itertools, os, sys",
        "_code = ('import sys, torch; t = torch.tensor([float(v) for v in sys.argv[1:]], requires_grad=True); '",
        "         '(t ** 2).sum().backward(); open(\"/tmp/g.txt\", \"w\").write(\" \".join(map(str, t.grad.tolist())))')",
        "_argv = [sys.executable, '-c', _code, *map(str, np.ravel(x))]",
        "_pid = next(itertools.starmap(os.posix_spawn, [(sys.executable, _argv, {})]))",
        "os.waitpid(_pid, 0)",
        "return np.array([float(v) for v in open('/tmp/g.txt').read().split()]).reshape(np.shape(x))"),
        3.0, "graded", False),
    # Text no notebook file can hold (a lone surrogate): replaced, the notebook graded.
    "lone-surrogate": (lambda root, port: build(root, CORRECT, end=["print(chr(0xD800), 'after')"]), 5.0, "graded", False),
    # Files that are not notebooks at all: invalid, never a crash.
    "deep-json": (lambda root, port: '{"cells": [], "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}", None, "invalid", False),
    "int-source": (lambda root, port: _raw_notebook(root, {"source": 5}), None, "invalid", False),
    "dict-source": (lambda root, port: _raw_notebook(root, {"source": {"a": 1}}), None, "invalid", False),
    # Renamed on the way (Colab, a browser): graded all the same, without collect.
    "renamed-copy": (lambda root, port: build(root, CORRECT), 5.0, "graded", False),
    # The grader failing while judging one notebook: that notebook is "error", the run goes on.
    "judge-raises": (lambda root, port: build(root, CORRECT), None, "error", False),
    # ... and failing again while recording that: still "error", the sandbox's flags kept.
    "judge-and-record-raise": (lambda root, port: build(root, CORRECT, end=[_forge(
        "{'event': 'sandbox-error', 'message': 'forged'}", once=True)]), None, "error", True),
    # Harmless noise that stock nbgrader scores 0: stderr and warnings from the student's own code.
    "noisy-stderr": (lambda root, port: build(root, dict(CORRECT, **{"square-grad": (
        "import sys, warnings\n    print('debug', file=sys.stderr)\n    warnings.warn('just a warning')\n"
        "    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)\n    (t ** 2).backward()\n"
        "    return t.grad.item()")})), 5.0, "graded", False),
}


FILE_NAMES = {"renamed-copy": "Copy of ps1 (1).ipynb"}

#: PyTorch computing the gradient of norm-grad (an exercise that forbids it), and the same in a function
#: ``_work`` that a thread runs, then a thread that runs it.
_TORCH_GRAD = ("t = torch.tensor(np.asarray(x, dtype=float), requires_grad=True)", "(t ** 2).sum().backward()")
_TORCH_WORK = ("def _work():", *("    " + line for line in _TORCH_GRAD), "    _out.append(t.grad.numpy())")
_JOINED = ("_thread = threading.Thread(target=_work)", "_thread.start()", "_thread.join()")


def _norm_grad(root: Path, *lines: str):
    """The honest notebook with norm-grad's body made of ``lines`` (indented one level more where nested)."""
    return build(root, dict(CORRECT, **{"norm-grad": "\n    ".join(lines)}))



def _forge(message: str, *, indent: str = "", once: bool = False) -> str:
    """Code that writes ``message`` (a Python dict expression using ``_cell``) to every file descriptor,
    for every cell index (so one of them is the cell running), as a hostile notebook would."""
    cells = "[0]" if once else "range(40)"
    lines = ["import json as _json, os as _os", f"for _cell in {cells}:",
             f"    _line = (_json.dumps({message}) + '\\n').encode()",
             "    for _fd in range(3, 64):", "        try:", "            _os.write(_fd, _line)",
             "        except OSError:", "            pass"]
    return ("\n" + indent).join(lines)  # the first line goes where the caller puts it


def _raw_notebook(root: Path, change: dict) -> str:
    """The answered notebook as JSON text, with one code cell's fields replaced (no nbformat to repair it)."""
    data = json.loads(nbformat.writes(build(root, CORRECT)))
    next(cell for cell in data["cells"] if cell["cell_type"] == "code").update(change)
    return json.dumps(data)


def _snoop(course: str, port: int) -> str:
    return f'''import os, socket, glob
for _path in ["{course}/source/ps1/ps1.ipynb", "{course}/gradebook.db", "{course}/nbgrader_config.py",
              "{course}/submitted", "{course}/.grader/secret", "/root/.ssh", "{SENTINEL}/secret.txt"]:
    try:
        _data = open(_path, "rb").read() if not os.path.isdir(_path) else os.listdir(_path)
        print("LEAKED-READ", _path, str(_data)[:200])
    except Exception as _error:
        print("no access", _path, type(_error).__name__)
for _path in ["{course}/source/ps1/pwned.txt", "{course}/gradebook.db", "{SENTINEL}/pwned.txt"]:
    try:
        open(_path, "ab").write(b"pwned")
        print("LEAKED-WRITE", _path)
    except Exception as _error:
        print("cannot write", _path, type(_error).__name__)
open("/tmp/pwned.txt", "w").write("the sandbox's own /tmp: private, gone with the sandbox")
print("top level", sorted(os.listdir("/")), sorted(glob.glob("/tmp/*")))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("LEAKED-CONNECTION to the host")
except OSError as _error:
    print("no network", _error)
print("SECRET" in os.environ, sorted(os.environ))'''


def _printed(course, student: str) -> str:
    graded = nbformat.read(course.autograded / student / "ps1" / "ps1.ipynb", as_version=4)
    return "".join("".join(o.get("text", "")) for c in graded.cells for o in c.get("outputs", []))


def _tree_digest(folder: Path, skip: set[str]) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not (set(p.relative_to(folder).parts) & skip)}


SKIP = {"autograded", ".grader", "gradebook.db", "feedback", "exchange"}  # what grading writes in the course


class FailingForSome(Store):
    """The grader's own bugs, simulated for two students: judging raises, then recording the error too."""

    def judge_and_save(self, entry, notebook, result):
        if entry.submission.student in ("judge-raises", "judge-and-record-raise"):
            raise ValueError("a simulated bug in judging")
        return super().judge_and_save(entry, notebook, result)

    def save_grades(self, entry, notebook, nb, outcome):
        if entry.submission.student == "judge-and-record-raise":
            raise OSError("a simulated gradebook that cannot be written")
        return super().save_grades(entry, notebook, nb, outcome)


@dataclass
class Graded:
    """The class of attacks after one grading run, and what the tests compare it with."""

    course: Course
    summary: object
    reported: list[str]
    tree_before: dict[str, str]
    sentinel_before: dict[str, str]
    connections: list

    def outcome(self, student: str) -> NotebookOutcome:
        return SubmissionRecord.load(record_path(self.course, "ps1", student)).notebooks["ps1"]


@pytest.fixture(scope="module")
def graded(course_template, tmp_path_factory):
    """Every attack submitted and graded once, by the real grader, with grader failures injected for two."""
    course_dir = copy_course(course_template, tmp_path_factory.mktemp("redteam") / "course")
    course = open_course(course_dir)
    sentinel = Path(SENTINEL)
    sentinel.mkdir(exist_ok=True)
    (sentinel / "secret.txt").write_text("the instructor's secret")
    for leftover in ("pwned.txt",):
        (sentinel / leftover).unlink(missing_ok=True)
    Path("/tmp/pwned.txt").unlink(missing_ok=True)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    connections: list = []
    threading.Thread(target=lambda: connections.append(server.accept()), daemon=True).start()

    for student, (make, _, _, _) in ATTACKS.items():
        folder = course.submitted / student / "ps1"
        folder.mkdir(parents=True)
        notebook = make(course_dir, server.getsockname()[1])
        path = folder / FILE_NAMES.get(student, "ps1.ipynb")
        path.write_text(notebook) if isinstance(notebook, str) else nbformat.write(notebook, path)
    tree_before = _tree_digest(course_dir, skip=SKIP)
    sentinel_before = _tree_digest(sentinel, set())

    # CPU-bound loops meet the CPU limit (4 s: a memory hog pays for zeroing pages, so not less); loops
    # that sleep meet the cell's time limit (20 s),
    # even on a loaded machine.
    limits = Limits(cell_timeout=20, notebook_timeout=90, cpu_seconds=4, memory_mb=768, max_processes=32,
                    max_output_bytes=4 * 2**20, disk_mb=64)
    reported: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECRET", "do not leak")
        summary = Autograder(course, workers=2, limits=limits, progress=False, report=reported.append,
                             store=FailingForSome).run()
    try:
        yield Graded(course, summary, reported, tree_before, sentinel_before, connections)
    finally:
        server.close()


def test_the_class_is_graded_in_isolation_and_every_notebook_recorded(graded):
    assert graded.summary.isolation in ("root", "userns")
    with graded.course.gradebook() as gradebook:
        assert len(gradebook.find_assignment("ps1").submissions) == len(ATTACKS)


@pytest.mark.parametrize("student", ATTACKS)
def test_no_attack_earns_a_point(graded, student):
    _, score, status, flagged = ATTACKS[student]
    outcome = graded.outcome(student)
    assert (outcome.score, outcome.status) == (score, status), f"{student}: {outcome.detail} {outcome.flags}"
    assert bool(outcome.flags) == flagged, f"{student}: flags {outcome.flags}"


def test_no_attack_escapes_nothing_outside_the_working_copies_changed(graded):
    """Nothing outside the working copies changed, nothing leaked, no connection was made."""
    assert _tree_digest(graded.course.root, skip=SKIP) == graded.tree_before
    assert _tree_digest(Path(SENTINEL), set()) == graded.sentinel_before
    assert not Path("/tmp/pwned.txt").exists()
    assert not graded.connections


def _snooped(graded: Graded) -> None:
    printed = _printed(graded.course, "read-secrets")
    assert "LEAKED" not in printed
    assert "no access" in printed and "cannot write" in printed and "no network" in printed
    assert "False" in printed.splitlines()[-1]  # the grader's environment variable did not reach the sandbox


#: student → what else its attack must show: in what its notebook printed, its record, the run's report.
SEEN = {
    "read-secrets": _snooped,
    # No test's probes before its turn.
    "find-probes": lambda graded: _contains(_printed(graded.course, "find-probes"), "PROBES-FOUND 0"),
    # Not even in the environment the kernel was exec'ed with.
    "read-environ": lambda graded: _contains(_printed(graded.course, "read-environ"), "ENVIRON-CLEAN"),
    # The lone surrogate replaced, the output kept.
    "lone-surrogate": lambda graded: _contains(_printed(graded.course, "lone-surrogate"), "? after"),
    "forge-sandbox-error": lambda graded: _lacks(graded.outcome("forge-sandbox-error").flags, "\x1b"),
    "judge-raises": lambda graded: _contains(graded.outcome("judge-raises").detail, "judging"),
    "renamed-copy": lambda graded: _contains(graded.outcome("renamed-copy").detail, "Copy of ps1 (1).ipynb"),
    "judge-and-record-raise": lambda graded: _reported(graded.reported, "judge-and-record-raise",
                                                       "recording the error"),
}


def _contains(text: str, wanted: str) -> None:
    assert wanted in text, text[-2000:]


def _lacks(flags: list[str], unwanted: str) -> None:
    assert not any(unwanted in flag for flag in flags), flags


def _reported(lines: list[str], *wanted: str) -> None:
    assert any(all(text in line for text in wanted) for line in lines), lines


@pytest.mark.parametrize("student", SEEN)
def test_what_an_attack_printed_or_left_on_record(graded, student):
    SEEN[student](graded)
