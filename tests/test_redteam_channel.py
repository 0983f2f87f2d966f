"""Red team, fast part: what comes out of the sandbox, what a submitted file holds, what the course keeps secret.

The whole-run attacks are in test_redteam.py (slow, one autograde run); these
test the mechanisms they rely on, one case at a time, without a sandbox.
"""
from __future__ import annotations

import json
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from autograd_lab.checks import judge_cell
from autograd_lab.checks.observed import from_json, observe, to_json
from grader.sandbox.kernel_probes import run_planned
from grader.sandbox import channel
from grader.text import printable
from grader.autograde.run import course_secret
from grader.course import open_course
from grader.errors import GraderError
from grader.notebooks import read_notebook
from grader.autograde.plan import plan_notebook


# --- the channel's schema -------------------------------------------------------------------

@pytest.mark.parametrize("line, why", [
    (b"garbage", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"event": "runner-exit", "code": 0}', "unknown event"),
    (b'{"event": "finished"}', "unknown event"),
    (b'{"event": "start", "cell": "3"}', "cell is not a cell index"),
    (b'{"event": "start", "cell": true}', "cell is not a cell index"),
    (b'{"event": "done", "cell": 3, "outputs": [], "tampering": [5]}', "tampering"),
    (b'{"event": "sandbox-error", "message": {"a": 1}}', "message is not a string"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_reports_that_fit_no_event_are_rejected(line, why):
    with pytest.raises(channel.Rejected, match=why):
        channel.parse(line)


def test_a_valid_report_keeps_only_its_fields_and_printable_text():
    report = channel.parse(json.dumps({"event": "done", "cell": 2, "outputs": [], "extra": "x",
                                       "tampering": ["\x1b[2Jnumpy.allclose was replaced"]}).encode())
    assert not hasattr(report, "extra") and report.tampering == ["numpy.allclose was replaced"]


@pytest.mark.parametrize("outputs", [
    "text",
    [{"output_type": "stream", "name": "stdout", "text": 5}],
    [{"output_type": "stream", "name": "stdin", "text": "x"}],
    [{"output_type": "display_data", "data": {"text/plain": {"a": 1}}}],
    [{"output_type": "display_data", "data": {"application/javascript": "alert(1)"}}],
    [{"output_type": "error", "ename": "E", "evalue": "v", "traceback": "not a list"}],
    [{"output_type": "update_display_data", "data": {}}],
])
def test_outputs_of_the_wrong_shape_are_rejected(outputs):
    with pytest.raises(channel.Rejected):
        channel.clean_outputs(outputs)


def test_outputs_are_rebuilt_from_known_fields():
    cleaned = channel.clean_outputs([
        {"output_type": "stream", "name": "stdout", "text": "hi\n", "transient": {"x": 1}},
        {"output_type": "execute_result", "data": {"text/plain": "3"}, "metadata": {"big": "x" * 10}, "execution_count": 9},
    ])
    assert cleaned == [{"output_type": "stream", "name": "stdout", "text": "hi\n"},
                       {"output_type": "execute_result", "data": {"text/plain": "3"}, "metadata": {}, "execution_count": None}]


def test_text_that_no_file_can_hold_is_replaced_not_fatal():
    """``print(chr(0xD800))`` reaches the channel as a lone surrogate, which UTF-8 cannot encode."""
    import nbformat

    line = json.dumps({"event": "done", "cell": 0, "tampering": ["x\ud800"], "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "a\ud800b\n"}]}).encode()
    report = channel.parse(line)
    outputs = channel.clean_outputs(report.outputs)
    assert outputs[0]["text"] == "a?b\n" and report.tampering == ["x?"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(chr(0xD800))", outputs=nbformat.from_dict(outputs))])
    nbformat.writes(notebook).encode("utf-8")
    assert printable("ok\udc00") == "ok"


@pytest.mark.parametrize("forged", [
    {"kind": "tensor"}, {"kind": "str"}, {"kind": "number", "data": to_json(observe(np.ones(2)))["data"]},
    {"kind": "sequence"}, {"kind": "mapping", "keys": ["a"], "items": []}, {"kind": "rootkit"}, "text", 5,
])
def test_half_observations_fail_their_check_instead_of_crashing_the_judge(forged):
    with pytest.raises(ValueError):
        from_json(forged)
    cleaned, problems = channel.clean_observations([forged], expected=1)
    assert problems and cleaned[0].type == "InvalidObservation"
    plan = plan_notebook([("t", "from autograd_lab import checks\nchecks.close(f(3.0), 6.0)")], salt="s")
    lines, failure = judge_cell(plan.checks["t"], cleaned)
    assert failure is not None and "unreadable" in failure.message


def test_every_honest_observation_passes_the_schema():
    import torch

    for value in [None, True, 3, 2.5, "x", np.ones((2, 2)), torch.ones(2, requires_grad=True), (1, [2, {"a": 3}]),
                  ValueError("m"), object(), np.float32(1.5)]:
        from_json(to_json(observe(value)))


def test_a_number_whose_array_is_not_a_scalar_is_judged_not_crashed():
    """An answer registered as a number whose __array__ gives two elements once crashed the whole run."""
    import numbers

    class Odd:
        def __array__(self, dtype=None, copy=None):
            return np.array([1.0, 2.0])

    numbers.Number.register(Odd)
    plan = plan_notebook([("t", "from autograd_lab import checks\nchecks.close(f(3.0), 6.0)")], salt="s")
    observations = run_planned([check.spec for check in plan.checks["t"]], {"f": lambda x: Odd()})
    lines, failure = judge_cell(plan.checks["t"], channel.clean_observations(observations, 1)[0])
    assert failure is not None and "Odd" in failure.message


# --- PyTorch from other threads, where the exercise forbids it ------------------------------

FORBID = "from autograd_lab import checks\nimport numpy as np\nchecks.gradient(g, lambda x: (x ** 2).sum(), [(np.array([1.0, 2.0]),)], forbid_torch=True)"


def _judge_forbidden(fn) -> str | None:
    plan = plan_notebook([("t", FORBID)], salt="s")
    observations = run_planned([c.spec for c in plan.checks["t"]], {"g": fn})
    _, failure = judge_cell(plan.checks["t"], channel.clean_observations(observations, len(observations))[0])
    return None if failure is None else failure.message


def _torch_gradient(x):
    import torch

    t = torch.tensor(np.asarray(x, dtype=float), requires_grad=True)
    (t ** 2).sum().backward()
    return t.grad.numpy()


def _in_thread(x):
    out = []
    worker = threading.Thread(target=lambda: out.append(_torch_gradient(x)))
    worker.start()
    worker.join()
    return out[0]


def _in_raw_thread(x):
    import _thread
    import time

    out = []
    _thread.start_new_thread(lambda: out.append(_torch_gradient(x)), ())
    while not out:
        time.sleep(0.001)
    return out[0]


def _unhooked(x):
    import sys

    sys.setprofile(None)
    return _torch_gradient(x)


def _unhooked_as_the_watch(x):
    """Code compiled under the watch's own file name, once trusted by name."""
    from autograd_lab.checks import probes

    hook = sys.getprofile()
    exec(compile("import sys\nsys.setprofile(None)", probes.__file__, "exec"))
    try:
        return _torch_gradient(x)
    finally:
        exec(compile("import sys\nsys.setprofile(hook)", probes.__file__, "exec"), {"hook": hook})


def _thread_hook_taken_away(x):
    """The hook threading installs in new threads, removed and put back."""
    hook, threading._profile_hook = threading._profile_hook, None
    try:
        return _in_thread(x)
    finally:
        threading._profile_hook = hook


def _thread_hook_unset_as_the_watch(x):
    from autograd_lab.checks import probes

    exec(compile("import threading\nthreading.setprofile(None)", probes.__file__, "exec"))
    return _in_thread(x)


def _a_second_watch(x):
    """A watch of its own, entered inside the real one: PyTorch calls would go to it."""
    from autograd_lab.checks.probes import TorchWatch

    with TorchWatch().watching():
        return _torch_gradient(x)


def _forged_thread(x):
    """Thread.start on an object whose bootstrap is the submission's own function."""
    out = []

    class Fake:
        _initialized = True

        def __init__(self):
            self._started = threading.Event()

        def _bootstrap(self):
            self._started.set()
            out.append(_torch_gradient(x))

    threading.Thread.start(Fake())
    for _ in range(5000):
        if out:
            return out[0]
        time.sleep(0.001)
    raise RuntimeError("the forged thread did not run")


def _through_map(x):
    """PyTorch called only from C (map): no profile event, but every operator reaches the dispatcher."""
    import torch

    tensor = next(map(torch.from_numpy, [np.asarray(x, dtype=float)]))
    return next(map(torch.Tensor.numpy, map(torch.mul, [tensor], [2.0])))


def _through_partial(x):
    import functools

    import torch

    double = functools.partial(torch.mul, other=2.0)
    return next(map(torch.Tensor.numpy, map(double, map(torch.from_numpy, [np.asarray(x, dtype=float)]))))


def _through_the_engine(x):
    """The autograd engine run from C: the gradient of sum(x²) without a Python call into torch."""
    import functools

    import torch

    leaf = functools.partial(torch.tensor, dtype=torch.float64, requires_grad=True)(np.asarray(x, dtype=float))
    total = next(map(torch.sum, map(torch.mul, [leaf], [leaf])))
    engine = torch.autograd.Variable._execution_engine
    seed = next(map(torch.ones_like, [total]))
    next(map(engine.run_backward, [(total,)], [(seed,)], [False], [False], [()], [True], [True]))
    return next(map(torch.Tensor.numpy, [leaf.grad]))


def _dispatch_watch_popped(x):
    """PyTorch's mode stacks emptied (from C), then PyTorch called from C."""
    import torch

    import itertools

    list(itertools.starmap(torch._C._pop_torch_dispatch_stack, [(None,)]))
    list(itertools.starmap(torch._C._pop_torch_function_stack, [()]))
    return _through_map(x)


THREAD_ATTACKS = {  # each runs in order, in a fresh interpreter (a graded kernel); None: it passes
    "honest": (lambda x: 2 * np.asarray(x), None),
    "pytorch": (_torch_gradient, "uses PyTorch"),
    "pytorch in a threading.Thread": (_in_thread, "uses PyTorch"),
    "pytorch in a _thread thread": (_in_raw_thread, "could not be checked for PyTorch (_thread.start_new_thread"),
    "sys.setprofile(None)": (_unhooked, "uses PyTorch (torch.tensor)"),
    "sys.setprofile compiled as the watch's file": (_unhooked_as_the_watch, "uses PyTorch (torch.tensor)"),
    "threading's hook taken away and put back": (_thread_hook_taken_away, "ran without the watch"),
    "threading.setprofile compiled as the watch's file": (_thread_hook_unset_as_the_watch, "threading.setprofile was called"),
    "a second watch inside": (_a_second_watch, "uses PyTorch (torch.tensor)"),
    "a forged thread": (_forged_thread, "could not be checked for PyTorch"),
    "pytorch through map": (_through_map, "uses PyTorch (the operator aten."),
    "pytorch through functools.partial": (_through_partial, "uses PyTorch (the operator aten."),
    "the autograd engine run from C": (_through_the_engine, "uses PyTorch (torch.tensor)"),
    "the dispatch watch popped": (_dispatch_watch_popped, "could not be checked for PyTorch (PyTorch's dispatch watch was removed"),
    "honest after the attacks": (lambda x: 2 * np.asarray(x), None),
}


def judge_thread_attacks() -> dict[str, str | None]:
    """Every attack of THREAD_ATTACKS judged, then one served by a thread started before the check."""
    import queue

    results = {name: _judge_forbidden(fn) for name, (fn, _) in THREAD_ATTACKS.items()}
    jobs, answers = queue.Queue(), queue.Queue()

    def serve() -> None:
        while True:
            answers.put(_torch_gradient(jobs.get()))

    threading.Thread(target=serve, name="server", daemon=True).start()
    results["a thread started before the check"] = _judge_forbidden(lambda x: (jobs.put(x), answers.get())[1])
    return results


def test_pytorch_is_caught_in_every_thread_or_the_check_says_it_could_not_watch():
    """In a fresh interpreter, as in a graded kernel: this test process has threads of its own."""
    import subprocess

    script = ("import json, tests.test_redteam_channel as t\n"
              "print(json.dumps(t.judge_thread_attacks()))")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (_, expected) in THREAD_ATTACKS.items():
        if expected is None:
            assert results[name] is None, (name, results[name])
        else:
            assert results[name] is not None and expected in results[name], (name, results[name])
    assert "other thread(s) were running: 'server'" in results["a thread started before the check"]


# --- probes the kernel does not read ----------------------------------------------------------

def test_probes_a_notebook_does_not_read_never_stall_the_grader():
    """Forged turns can make the grader send probes nobody reads; the pipe fills, the grader goes on."""
    import os
    import selectors
    import time

    from grader.sandbox.execute import Job, _Run
    from grader.sandbox.linux import Limits

    big = [{"probe": "value", "args": ["x" * 1000]}] * 200  # ~200 kB, more than a pipe holds
    job = Job("k", [{"index": i, "kind": "test", "probes": big} for i in range(3)], Limits(cell_timeout=30))
    run = _Run(job, zygote=None)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    run.probe_pipe, run.selector = write_end, selectors.DefaultSelector()
    try:
        started = time.monotonic()
        for index in range(3):
            run._send_probes(index)
        assert time.monotonic() - started < 1.0  # not one cell time limit per test cell
        assert run.probes_unsent and write_end in run.selector.get_map()  # waits for the pipe, in the loop
        received = b""
        while run.probes_unsent:
            received += os.read(read_end, 1 << 20)
            run._write_probes()
        received += os.read(read_end, 1 << 20)
        assert [json.loads(line)["cell"] for line in received.splitlines()] == [0, 1, 2]
        assert write_end not in run.selector.get_map()
        os.close(read_end)
        read_end = None
        run._send_probes(0)  # the runner is gone: dropped, no error
        assert not run.probes_unsent
    finally:
        run.selector.close()
        os.close(write_end)
        if read_end is not None:
            os.close(read_end)


# --- files that are not notebooks -----------------------------------------------------------

def _notebook_text(**change) -> str:
    cell = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None, **change}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.mark.parametrize("text, why", [
    ('{"cells": [], "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}", "nested too deeply"),
    ('{"cells": [], "metadata": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}", "nested deeper than"),
    (_notebook_text(source=5), "its source is a int"),
    (_notebook_text(source={"a": 1}), "its source is a dict"),
    (_notebook_text(source=["ok", 3]), "its source is a list"),
    (_notebook_text(cell_type="evil"), "not a code, markdown or raw cell"),
    (_notebook_text(outputs="x"), "outputs are not a list"),
    ('{"cells": {"a": 1}}', "'cells' is not a list"),
])
def test_hostile_notebook_files_are_refused_with_a_reason(tmp_path, text, why):
    path = tmp_path / "ps1.ipynb"
    path.write_text(text)
    with pytest.raises(GraderError, match=why):
        read_notebook(path)


# --- what only the grader may read ----------------------------------------------------------

def test_the_course_secret_and_the_gradebook_are_private(course_dir):
    course = open_course(course_dir)
    secret = course_dir / ".grader" / "secret"
    secret.unlink(missing_ok=True)
    (course_dir / "gradebook.db").chmod(0o644)
    course_secret(course)
    with course.gradebook():
        pass
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((course_dir / "gradebook.db").stat().st_mode) == 0o600
    secret.chmod(0o644)  # made by an older version
    course_secret(course)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_new_course_creates_its_gradebook_private(tmp_path):
    root = tmp_path / "course"
    (root / "source").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    course = open_course(root)
    with course.gradebook():
        pass
    assert stat.S_IMODE((root / "gradebook.db").stat().st_mode) == 0o600


def test_an_observation_whose_value_nests_deep_fails_its_check_in_the_worker_not_the_judge():
    """A dict ``value`` nested ~950 deep passed validation and broke the judge later (the notebook became
    ``error``): a value is a flat record, or the observation is replaced by one that fails its check."""
    from autograd_lab.core import Variable

    honest = to_json(observe(Variable(np.ones(2))))
    forged = dict(honest)
    nested: dict = {}
    for _ in range(950):
        nested = {"a": nested}
    forged["value"] = nested
    cleaned, problems = channel.clean_observations([honest, forged], 2)
    assert to_json(cleaned[0]) == honest
    assert len(problems) == 1 and "flat record" in problems[0]
    assert cleaned[1].type == "InvalidObservation"


def test_a_grader_failure_is_recorded_as_error_without_flagging_the_student():
    from grader.sandbox.executors import failed

    result = failed("ps1/alice/ps1", "the grader failed on this notebook: KeyError: 'x'",
                    "Traceback (most recent call last):\n  File \"grader/sandbox/execute.py\", line 1\nKeyError: 'x'")
    assert result.status == "error" and result.flags == []
    assert "KeyError" in result.detail and "Traceback" in result.detail


_HOOKS_AWAY = "uses {}, which takes PyTorch's dispatch hooks away"


@pytest.mark.parametrize("source, found", [
    # What honest code does: nothing to flag.
    ("import torch\nx = torch.ones(2).sum()", []),
    ("import numpy as np\nx = np.ones(3)", []),
    ("x = 1\nx: int = 2\nmine.attr = 1", []),
    ("setattr(obj, 'close', f)", []),  # setattr on the student's own object
    ("%timeit np.ones(3)", []),  # IPython syntax is read as the kernel reads it
    ("def (:", []),  # a syntax error fails in the kernel, not here
    # Replacing what the checks rely on.
    ("np.allclose = f", [(1, "replaces np.allclose")]),
    ("torch.Tensor.__eq__ = f", [(1, "replaces torch.Tensor.__eq__")]),
    ("builtins.print = f", [(1, "replaces builtins.print")]),
    ("torch.x += 1", [(1, "replaces torch.x")]),
    ("checks.close: object = None", [(1, "replaces checks.close")]),
    ("del np.allclose", [(1, "replaces np.allclose")]),
    ("sys.modules['x'] = m", [(1, "replaces sys.modules")]),
    ("__builtins__ = {}", [(1, "replaces __builtins__")]),
    ("np.a = 1; np.a = 2", [(1, "replaces np.a")]),  # once a line
    ("setattr(checks, 'close', f)", [(1, "setattr() changes an attribute by name")]),
    ("delattr(np, 'allclose')", [(1, "delattr() deletes an attribute by name")]),
    # The kernel's hooks.
    ("get_ipython().run_cell = f", [(1, "replaces get_ipython().run_cell"), (1, "uses get_ipython().run_cell")]),
    ("get_ipython().events.register('pre_run_cell', f)",
     [(1, "get_ipython().events.register() changes the kernel"), (1, "uses get_ipython().events")]),
    ("get_ipython().showtraceback", [(1, "uses get_ipython().showtraceback")]),
    ("sys.settrace(f)", [(1, "sys.settrace() installs a trace hook")]),
    ("signal.signal(2, h)", [(1, "signal.signal() changes a signal handler")]),
    # Processes, memory and raw file descriptors.
    ("os.kill(1, 9)", [(1, "os.kill() sends a signal to a process")]),
    ("gc.get_objects()", [(1, "gc.get_objects() searches the interpreter's objects")]),
    ("import ctypes", [(1, "imports ctypes")]),
    ("from grader.x import y", [(1, "imports grader.x")]),
    # PyTorch's dispatch hooks (the watch of exercises built without PyTorch), on the line that takes them:
    # popping the watch and putting it back between two checks leaves nothing to see at the end, the code says it.
    ("import itertools, torch\nlist(itertools.starmap(torch._C._pop_torch_dispatch_stack, [(None,)]))\n"
     "with torch.utils._python_dispatch._disable_current_modes():\n    pass",
     [(2, _HOOKS_AWAY.format("_pop_torch_dispatch_stack")), (3, _HOOKS_AWAY.format("_disable_current_modes"))]),
    ("torch._C._DisableTorchDispatch()", [(1, _HOOKS_AWAY.format("_DisableTorchDispatch"))]),
], ids=["torch", "numpy", "own-names", "setattr-own", "magic", "syntax-error", "replace-np", "replace-dunder",
        "replace-builtins", "augmented", "annotated", "delete", "sys-modules", "dunder-builtins", "once-a-line",
        "setattr-protected", "delattr-protected", "run-cell", "events", "showtraceback", "settrace", "signal",
        "kill", "gc", "ctypes", "grader", "torch-hooks-lines", "torch-hooks-class"])
def test_the_code_reading_flags(source, found):
    """The static reading of a cell (``tamper.scan``): each finding and its line; a flag never changes a score."""
    from grader.autograde.tamper import scan

    assert scan(source) == found


def test_the_code_reading_names_twenty_findings_at_most():
    from grader.autograde.tamper import scan

    assert len(scan("\n".join(f"np.a{i} = 1" for i in range(30)))) == 20
