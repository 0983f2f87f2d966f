"""Probes: the part of a check that runs the student's code and records what it did.

A check has three parts: a *probe* that calls the student's code and observes
the result, an *expected* value computed with PyTorch, and a *comparison*.
In a notebook on your machine or on Colab all three run in your kernel. When the
course is graded, only the probe runs in the (sandboxed) kernel that ran the
submission; the grader computes the expected value and compares in a process the
submission cannot reach. That is why probes only record: they never decide.

Probes receive their arguments as plain data (see :mod:`autograd_lab.checks.wire`),
so the kernel gets fresh copies it cannot share with the grader. The grader's side
of running them in the sandboxed kernel is :mod:`grader.sandbox.kernel_probes`.
"""
from __future__ import annotations

import _thread
import contextlib
import io
import json
import os
import sys
import traceback
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from autograd_lab.checks.observed import Observed, exception_record, observe, to_json
from autograd_lab.checks.wire import AuthoringError, decode, encode


# --- watching for PyTorch ------------------------------------------------------------------

_TORCH_DIR = None


def _torch_dir() -> str | None:
    global _TORCH_DIR
    if _TORCH_DIR is None:
        module = sys.modules.get("torch")
        _TORCH_DIR = (os.path.dirname(module.__file__) if module is not None and getattr(module, "__file__", None)
                      else "")
    return _TORCH_DIR or None


def _threading_hooks() -> set:
    import threading

    return {function.__code__ for function in (threading.setprofile, threading.settrace)}


_THREADING_HOOKS = _threading_hooks()
_THREAD_START = sys.modules["threading"].Thread.start.__code__
_THREAD_BOOTSTRAP = sys.modules["threading"].Thread._bootstrap_inner.__code__


_WATCH_REMOVED = "the watch was removed while the check ran"


def _recursion_error(record: Observed, depth: int = 0) -> Observed | None:
    """The first RecursionError the student's code raised in this record, if any."""
    if record.kind == "exception":
        return record if record.type == "RecursionError" else None
    if depth < 3:
        for item in record.items or []:
            found = _recursion_error(item, depth + 1)
            if found is not None:
                return found
    return None


class TorchWatch:
    """Notices when code calls into PyTorch, for exercises that must be built without it.

    It watches function calls with a profile function (``sys.setprofile``) on the
    thread that runs the check, and on every thread started through ``threading``
    while it runs. It catches ``torch.exp(...)``, ``t.sum()`` and any Python function
    in the torch package; results whose data is a tensor are caught by the checks
    themselves. What it cannot watch it reports instead of trusting (``unwatched``):
    code that removes or replaces the watch (``sys.setprofile``, ``sys.settrace``,
    ``threading.setprofile``, or the watch found gone when the check ends), a thread
    started with ``_thread`` directly, a thread started while it ran that never ran
    under the watch, and, when grading (``strict``), any other thread running Python
    code when the check starts or ends: a graded kernel starts with one thread, so
    such a thread is the notebook's own, and it could call PyTorch unseen. (Native
    threads of libraries run no Python code.) The watch's own calls are told apart
    by their code objects, never by file names, which ``compile`` lets anyone choose.
    """

    #: Calls that would take the watch away, or start a thread or a process it would not follow.
    ESCAPES = {("sys", "setprofile"), ("sys", "settrace"), ("_thread", "start_new_thread"), ("_thread", "start_new"),
               ("_thread", "start_joinable_thread"), ("posix", "fork"), ("posix", "forkpty"), ("posix", "system"),
               ("posix", "posix_spawn"), ("posix", "posix_spawnp"), ("posix", "execv"), ("posix", "execve"),
               ("_posixsubprocess", "fork_exec")}

    def __init__(self, strict: bool = False, forbidden: dict | None = None) -> None:
        self.used: list[str] = []  # what the profile saw called
        self.forbidden = forbidden or {}  # code objects of autograd_lab's answers to this exercise -> their names
        self.package: list[str] = []  # which of those the profile saw called
        self.dispatched: list[str] = []  # what PyTorch's own hooks saw run (named as the student wrote it)
        self.unwatched: list[str] = []
        self.strict = strict
        self._started: list[Any] = []  # threads started while watching
        self._watched: list[Any] = []  # threads that ran under the watch
        self._frame: Any = None  # the frame of watching(), whose calls to the hooks are the watch's own
        self._hook = self._profile  # one bound method, so that the watch can tell it is still installed

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if self.used or self.package:
            return
        if event == "call" and (frame.f_code in self.forbidden or frame.f_code.co_filename in self.forbidden):
            code = frame.f_code
            self.package.append(self.forbidden.get(code) or f"{self.forbidden[code.co_filename]}.{code.co_qualname}")
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            owner = type(getattr(arg, "__self__", None))
            name = getattr(arg, "__name__", "?")
            if module.startswith("torch") or owner.__module__.startswith("torch"):
                self.used.append(f"Tensor.{name}" if owner.__module__.startswith("torch") and module == ""
                                 else f"torch.{name}")
            elif (module, name) in self.ESCAPES and not self._own(frame) and not self.unwatched:
                self.unwatched.append(f"{module}.{name} was called")
        elif event == "call":
            code = frame.f_code
            torch_dir = _torch_dir()
            if torch_dir and code.co_filename.startswith(torch_dir):
                self.used.append(f"torch ({code.co_name})")
            elif code is _THREAD_START:
                self._started.append(frame.f_locals.get("self"))
            elif frame.f_back is not None and frame.f_back.f_code is _THREAD_BOOTSTRAP:
                self._watched.append(frame.f_back.f_locals.get("self"))
            elif code in _THREADING_HOOKS and frame.f_back is not self._frame:
                self.unwatched.append(f"threading.{code.co_name} was called")

    def _own(self, frame: Any) -> bool:
        """Whether a call to a hook is the watch's own: installing or removing itself, or threading
        starting a thread (which the watch then follows, or reports that it could not)."""
        return frame is self._frame or frame.f_code is _THREAD_START

    @contextlib.contextmanager
    def watching(self) -> Iterator["TorchWatch"]:
        import threading

        previous, previous_threads = sys.getprofile(), getattr(threading, "_profile_hook", None)
        self._frame = sys._getframe()
        self._other_threads()
        modes = _dispatch_watch(self).__enter__()  # before the profile: its own torch code is not the student's
        processes = _process_count() if self.strict else None
        _WATCHES.append(self)
        sys.setprofile(self._hook)
        threading.setprofile(self._hook)  # threads started while the check runs are watched too
        try:
            yield self
        finally:
            removed = sys.getprofile() is not self._hook or getattr(threading, "_profile_hook", None) is not self._hook
            sys.setprofile(previous)
            threading.setprofile(previous_threads)
            if removed and not self.unwatched:
                self.unwatched.append(_WATCH_REMOVED)
            if not modes.intact() and not self.unwatched:
                self.unwatched.append("PyTorch's dispatch watch was removed while the check ran")
            modes.__exit__(None, None, None)
            if self in _WATCHES:
                _WATCHES.remove(self)
            if processes is not None and _process_count() - processes > len(self._started) and not self.unwatched:
                self.unwatched.append("a process was started while the check ran")
            self._unwatched_threads()
            self._other_threads()

    def _unwatched_threads(self) -> None:
        """Note a thread started while watching that never ran under the watch (its hook was taken away)."""
        for thread in self._started:
            if not any(thread is watched for watched in self._watched) and not self.unwatched:
                self.unwatched.append(f"thread {_thread_name(thread)} ran without the watch")

    def _other_threads(self) -> None:
        """In strict mode, note other threads that run Python code (``_thread``'s included)."""
        if not self.strict or self.unwatched:
            return
        me = _thread.get_ident()
        others = [ident for ident in sys._current_frames() if ident != me]
        if others:
            import threading

            names = {getattr(thread, "ident", None): _thread_name(thread) for thread in threading.enumerate()}
            listed = ", ".join(names.get(ident, "(started with _thread)") for ident in others[:3])
            self.unwatched.append(f"{len(others)} other thread(s) were running: {listed}")


#: The watches running now: a process forked while one runs (whoever calls fork, C code included) is reported.
_WATCHES: list[TorchWatch] = []


def _forking() -> None:
    for watch in _WATCHES:
        if not watch.unwatched:
            watch.unwatched.append("a process was started while the check ran")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_forking)


def _process_count() -> int | None:
    """The last pid handed out in this PID namespace, when grading in the sandbox's own (the runner is
    its PID 2): processes and threads started since, however (subprocess, posix_spawn, C code), move it."""
    if os.getpid() != 2:
        return None
    try:
        with open("/proc/sys/kernel/ns_last_pid") as counter:
            return int(counter.read())
    except (OSError, ValueError):
        return None


class _NoModes(contextlib.nullcontext):
    """Where PyTorch is not imported, nothing can reach its dispatcher (importing it is a call the profile sees)."""

    def intact(self) -> bool:
        return True


def _dispatch_watch(watch: TorchWatch) -> Any:
    """PyTorch's own hooks, beside the profile: every torch function call and every operator it runs.

    A ``TorchFunctionMode`` sees the calls of torch's API and a ``TorchDispatchMode``
    each operator that reaches the dispatcher, whoever calls it: Python, C code such
    as ``map`` or ``functools.partial`` (which raise no profile event), or the
    autograd engine running a backward pass. ``intact()`` says whether both modes
    are still where they were put when the check ends (code that pops them has
    taken the watch away).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return _NoModes()
    from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack
    from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack

    class FunctionWatch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if not watch.dispatched:
                watch.dispatched.append(f"torch.{getattr(func, '__name__', func)}")
            return func(*args, **(kwargs or {}))

    class DispatchWatch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not watch.dispatched:
                watch.dispatched.append(f"the operator {func}")
            return func(*args, **(kwargs or {}))

    class Modes(contextlib.ExitStack):
        def __enter__(self) -> "Modes":
            super().__enter__()
            self.before = len(_get_current_function_mode_stack()), len(_get_current_dispatch_mode_stack())
            self.function, self.dispatch = self.enter_context(FunctionWatch()), self.enter_context(DispatchWatch())
            return self

        def __exit__(self, *exc: Any) -> bool:
            if not self.intact():  # popped, or another mode left on top: put the stacks back as they were
                self.pop_all()
                _restore_mode_stacks(*self.before)
                return False
            return super().__exit__(*exc)

        def intact(self) -> bool:
            functions, dispatch = _get_current_function_mode_stack(), _get_current_dispatch_mode_stack()
            return (bool(functions) and functions[-1] is self.function and bool(dispatch)
                    and dispatch[-1] is self.dispatch)

    return Modes()


def _restore_mode_stacks(functions: int, dispatch: int) -> None:
    """Pop modes above the given depths (what a submission left there); never raise."""
    import torch

    try:
        from torch.overrides import _get_current_function_mode_stack
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        while len(_get_current_function_mode_stack()) > functions:
            torch._C._pop_torch_function_stack()
        while len(_get_current_dispatch_mode_stack()) > dispatch:
            torch._C._pop_torch_dispatch_stack()
    except Exception:
        pass


def _thread_name(thread: Any) -> str:
    return repr(str(getattr(thread, "name", "?"))[:40])


# --- the probes ---------------------------------------------------------------------------

#: How much of what the student's code prints is kept (the rest is summarised by a count).
MAX_PRINTED = 2_000


class CallTimeout(BaseException):
    """A student's function ran past the per-call time limit (a BaseException: ``except Exception`` keeps it)."""


#: Seconds one call of the student's code may take in a notebook (None: no limit of the checks' own;
#: when grading, the grader's cell time limit applies). Set by :func:`run_probe`.
_call_seconds: float | None = None


@contextlib.contextmanager
def _time_limit() -> Iterator[None]:
    """Raise :class:`CallTimeout` in the student's code after ``_call_seconds`` (main thread, Unix only;
    and never over an alarm someone else set)."""
    import signal
    import threading

    seconds = _call_seconds
    usable = (seconds and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise CallTimeout(seconds)

    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _call_observed(fn: Callable, args: tuple, kwargs: dict) -> Observed:
    """``fn(*args, **kwargs)`` observed, with what it printed (shown once by the check, not once per call)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), _time_limit():
            result = fn(*args, **kwargs)
    except CallTimeout as stopped:
        record = Observed("exception", type="CallTimeout", message=f"{stopped.args[0]:g}")  # the seconds
        record.value = _short_traceback(stopped)
    except Exception as error:  # the student's code raising is an observation, not a crash
        record = exception_record(error, _short_traceback(error))
    else:
        record = observe(result)
    text = printed.getvalue()
    if text:
        record.printed = text if len(text) <= MAX_PRINTED else text[:MAX_PRINTED] + f"... ({len(text)} characters)"
    return record


def _short_traceback(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    own = os.path.dirname(os.path.dirname(__file__))  # autograd_lab's frames: the engine's and the checks'
    kept = [frame for frame in frames if not frame.filename.startswith(own)]
    # Frames inside installed libraries (numpy's np.broadcast_to raising) come after the student's line that
    # called them: keep the student's frames, so that "where:" names their line, unless there is none.
    students = [frame for frame in kept if not _is_library(frame.filename)]
    return "".join(traceback.format_list((students or kept)[-3:]))


def _is_library(filename: str) -> bool:
    """A file of an installed package or of Python's standard library (not the student's cell or module)."""
    return any(part in filename for part in ("site-packages", "dist-packages")) or filename.startswith(_STDLIB)


_STDLIB = os.path.dirname(os.__file__)


class Backwards:
    """Counts ``backward()`` calls (PyTorch's and autograd_lab's) while installed, and, with
    ``reset=True``, clears the gradients of a graph's leaves before each one.

    Re-running a student's function with ``reset=True`` is how a check tells a forgotten
    ``zero_grad()`` / ``cleargrads()`` by what it does: if the answer is then right, the
    gradients were adding up. It is evidence for a diagnosis only, never for a pass.
    """

    def __init__(self, reset: bool = False) -> None:
        self.reset = reset
        self.count = 0
        self.kinds: set[str] = set()

    def _wrapped(self, original: Callable, kind: str, clear: Callable[[Any], None]) -> Callable:
        def backward(target: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            self.kinds.add(kind)
            if self.reset:
                clear(target)
            return original(target, *args, **kwargs)
        return backward

    @contextlib.contextmanager
    def installed(self) -> Iterator["Backwards"]:
        patches = []
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "autograd"):
            original = torch.autograd.backward
            patches.append((torch.autograd, "backward", original,
                            self._wrapped(original, "torch", _clear_torch_leaves)))
        core = sys.modules.get("autograd_lab.core")
        if core is not None:
            original = core.Variable.backward
            patches.append((core.Variable, "backward", original,
                            self._wrapped(original, "autograd_lab", _clear_engine_leaves)))
        for owner, name, _, replacement in patches:
            setattr(owner, name, replacement)
        try:
            yield self
        finally:
            for owner, name, original, _ in patches:
                setattr(owner, name, original)


def _clear_torch_leaves(tensors: Any) -> None:
    """Set ``.grad = None`` on every leaf the backward of ``tensors`` would write to."""
    todo = [t.grad_fn for t in (tensors if isinstance(tensors, (list, tuple)) else [tensors])
            if getattr(t, "grad_fn", None) is not None]
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)  # an AccumulateGrad node holds its leaf
        if variable is not None:
            variable.grad = None
        todo.extend(next_node for next_node, _ in node.next_functions)


def _clear_engine_leaves(output: Any) -> None:
    """``cleargrad()`` every leaf Variable an autograd_lab graph was computed from."""
    todo = [] if output.creator is None else [output.creator]
    seen: set[int] = set()
    while todo:
        function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        for variable in function.inputs:
            if variable.creator is None:
                variable.cleargrad()
            else:
                todo.append(variable.creator)


def probe_value(value: Any) -> Observed:
    """The value itself (already computed by the student's expression)."""
    return observe(value)


def probe_call(fn: Callable, inputs: list, *, repeat: int = 1) -> Observed:
    """Call ``fn(*args)`` for each argument tuple in ``inputs``; observe each result.

    With ``repeat=2`` the first input is used twice (with fresh copies): a function
    whose answer changes between the two calls (typically gradients that accumulate
    because ``x.grad`` is never reset) is then caught. Once is enough to catch it,
    and the other inputs are not paid for twice.

    The first input's result also carries evidence for the diagnosis of a wrong
    answer (:func:`_evidence`).
    """
    results = []
    for position, args in enumerate(inputs):
        args = args if isinstance(args, tuple) else (args,)
        if position == 0:
            results.append(_evidence(fn, args, repeat))
        else:
            results.append(_call_observed(fn, _fresh(args), {}))
    return Observed("sequence", type="calls", items=results)


def _evidence(fn: Callable, args: tuple, repeat: int) -> Observed:
    """The first call, and what tells its likely mistake, as a mapping of observations.

    * ``first`` (and ``second``, with ``repeat=2``): the answer, twice from fresh copies;
    * ``reset``: the answer again with every leaf's gradient cleared before each
      ``backward()``, when the function calls ``backward()`` at all (a forgotten reset);
    * ``seeded`` and ``seeded_again``: when the two calls differ, two more with the
      random generators seeded alike (is the difference randomness?).
    """
    with Backwards().installed() as counted:
        first = _call_observed(fn, _fresh(args), {})
        if repeat < 2 or first.kind == "exception":
            return first
        second = _call_observed(fn, _fresh(args), {})
    keys, items = ["first", "second"], [first, second]
    if counted.count:
        with Backwards(reset=True).installed() as reset:
            keys.append("reset")
            items.append(_call_observed(fn, _fresh(args), {}))
        keys.append("reset_kind")
        items.append(observe(",".join(sorted(reset.kinds))))
    if to_json_text(first) != to_json_text(second):
        for key in ("seeded", "seeded_again"):
            with _seeded():
                keys.append(key)
                items.append(_call_observed(fn, _fresh(args), {}))
    return Observed("mapping", type="evidence", keys=keys, items=items)


def to_json_text(record: Observed) -> str:
    """A record as canonical JSON text: two observations are the same when their texts are."""
    return json.dumps(to_json(record), sort_keys=True)


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Python's, numpy's and (if imported) PyTorch's random generators seeded alike, then restored."""
    import random

    # Under the PyTorch watch (an exercise without PyTorch), PyTorch's generator is not the student's.
    watched = isinstance(getattr(sys.getprofile(), "__self__", None), TorchWatch)
    torch = None if watched else sys.modules.get("torch")
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state() if torch is not None else None
    random.seed(0)
    np.random.seed(0)
    if torch is not None:
        torch.manual_seed(0)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        if torch is not None:
            torch.random.set_rng_state(states[2])


def probe_steps(fn: Callable, inputs: list, *, steps: int) -> Observed:
    """For each argument tuple: call ``fn(*args)`` ``steps`` times on the *same* arguments.

    A step function (one training step of a model) keeps its state in its arguments,
    so each call continues from the last one: a step that forgets to clear the
    gradients is right on the first call and drifts on the next. A copy of the
    arguments taken before is run again with gradients cleared before every
    ``backward()``, as evidence for that diagnosis.
    """
    import copy

    results = []
    for args in inputs:
        args = args if isinstance(args, tuple) else (args,)
        try:
            spare = copy.deepcopy(args)
        except Exception:  # an object of the student's that cannot be copied: no evidence, still a check
            spare = None
        run = Observed("sequence", type="list", items=[])
        for _ in range(steps):
            result = _call_observed(fn, args, {})
            run.items.append(result)
            if result.kind == "exception":
                break
        keys, items = ["run"], [run]
        if spare is not None and run.items[-1].kind != "exception":
            with Backwards(reset=True).installed() as reset:
                again = [_call_observed(fn, spare, {}) for _ in range(steps)]
            keys += ["reset", "reset_kind"]
            items += [Observed("sequence", type="list", items=again), observe(",".join(sorted(reset.kinds)))]
        results.append(Observed("mapping", type="evidence", keys=keys, items=items))
    return Observed("sequence", type="calls", items=results)


def probe_unchanged(fn: Callable, inputs: list) -> Observed:
    """For each argument tuple: call ``fn`` on fresh copies, then observe those copies (did it change them?)."""
    results = []
    for args in inputs:
        args = _fresh(args if isinstance(args, tuple) else (args,))
        result = _call_observed(fn, args, {})
        results.append(result if result.kind == "exception" else observe(args))
    return Observed("sequence", type="calls", items=results)


def probe_backward(fn: Callable, cases: list, *, leaf: Any = "torch", seed: str = "leaf") -> Observed:
    """For each ``(inputs, upstream)`` case: run ``fn`` on fresh leaves, back-propagate, observe.

    ``leaf="torch"`` makes float64 tensors that require grad (for PyTorch code);
    any other value is a Variable class (``autograd_lab.Variable`` or the student's
    own) called on a float64 array. ``upstream`` is the gradient fed into the
    output: random in the checks, so a backward that forgets to multiply by its
    incoming gradient is caught; None means a scalar output seeded with 1. For a
    Variable class, ``upstream`` is set as ``output.grad`` before ``backward()``
    (DeZero's engines start from an existing grad), as a Variable (``seed="leaf"``)
    or, for early engines whose gradients are plain arrays, as an array (``seed="array"``).
    """
    items = [_backward_once(fn, inputs, upstream, leaf, seed) for inputs, upstream in cases]
    return Observed("sequence", type="cases", items=items)


def _backward_once(fn: Callable, inputs: Any, upstream: Any, leaf: Any, seed: str) -> Observed:
    leaves: list = []

    def run() -> Any:
        leaves.extend(_make_leaf(value, leaf) for value in inputs)
        output = fn(*leaves)
        _run_backward(output, upstream, leaf, seed)
        return output

    return _observed_backward(run, leaves)


def _observed_backward(run: Callable[[], Any], leaves: list) -> Observed:
    """``run()`` builds a graph on ``leaves`` and back-propagates: its output and the leaves' gradients."""
    output = _call_observed(run, (), {})
    if output.kind == "exception":
        return output
    record = Observed("sequence", type="backward", items=[output, observe([getattr(x, "grad", None) for x in leaves])])
    record.printed, output.printed = output.printed, None
    return record


def _make_leaf(value: Any, leaf: Any) -> Any:
    array = np.array(value, dtype=np.float64)
    if leaf == "torch":
        import torch

        return torch.tensor(array, dtype=torch.float64, requires_grad=True)
    return leaf(array)


def _run_backward(output: Any, upstream: Any, leaf: Any, seed: str) -> None:
    if leaf == "torch":
        import torch

        gradient = None if upstream is None else torch.as_tensor(np.asarray(upstream, dtype=np.float64))
        output.backward(gradient=gradient)
        return
    if upstream is not None:
        array = np.asarray(upstream, dtype=np.float64)
        output.grad = leaf(array) if seed == "leaf" else array
    output.backward()


def _fresh(args: tuple) -> tuple:
    """Deep copies of data arguments, so a function that mutates its input cannot affect later calls."""
    return tuple(decode(encode(arg)) if _is_data(arg) else arg for arg in args)


def _is_data(obj: Any) -> bool:
    try:
        encode(obj)
    except AuthoringError:
        return False
    return True


# --- computational graphs given as data --------------------------------------------------

#: Operations a graph spec may use, and how PyTorch computes each (the reference).
#: Python operators are applied with Python syntax, so operator overloading is tested too.
GRAPH_OPERATORS: dict[str, Callable[..., Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "neg": lambda a: -a,
    "**": lambda a, b: a ** b,
}
TORCH_OPS: dict[str, str] = {
    "square": "square", "exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tanh": "tanh",
    "sigmoid": "sigmoid", "relu": "relu", "add": "add", "mul": "mul", "sub": "sub", "div": "div", "neg": "neg",
    "sum": "sum", "matmul": "matmul",
}


def probe_graph(ops: dict, specs: list, *, leaf: Any, seed: str = "array", retain_grad: bool = False) -> Observed:
    """Build each graph of ``specs`` with the engine's ``ops``, run backward, observe.

    A spec is ``{"inputs": [values], "nodes": [[op, [refs]], ...], "upstream": value or None}``.
    A ref is an int (inputs first, then earlier nodes' outputs, in order) or
    ``{"const": number}``. ``ops`` maps an op name to a Function class (applied as
    ``Op()(*args)``), a function, or ``"torch"`` for PyTorch itself (the reference).
    The last node is the output; the gradients of every input are observed.
    """
    return Observed("sequence", type="cases", items=[_graph_once(ops, spec, leaf, seed) for spec in specs])


def _graph_once(ops: dict, spec: dict, leaf: Any, seed: str) -> Observed:
    leaves: list = []

    def run() -> Any:
        output = build_graph(ops, spec, leaf, leaves)
        _run_backward(output, spec.get("upstream"), leaf, seed)
        return output

    return _observed_backward(run, leaves)


def build_graph(ops: dict, spec: dict, leaf: Any, leaves: list | None = None) -> Any:
    """The output of the graph ``spec`` built with ``ops`` on leaves of ``leaf`` (added to ``leaves``)."""
    made = [_make_leaf(value, leaf) for value in spec["inputs"]]
    if leaves is not None:
        leaves.extend(made)
    values = list(made)
    for op, refs in spec["nodes"]:
        args = [ref["const"] if isinstance(ref, dict) else values[ref] for ref in refs]
        values.append(_apply(op, ops, args))
    return values[-1]


def probe_on_graph(fn: Callable, ops: dict, specs: list, *, leaf: Any) -> Observed:
    """For each graph of ``specs``, built with ``ops`` (no backward): ``fn(output)`` observed.

    For a function that reads a graph (``to_dot(output)``): the graph comes from ``ops``,
    which may be a reference engine's, so only ``fn`` is the student's code under test.
    """
    return Observed("sequence", type="calls",
                    items=[_call_observed(lambda spec=spec: fn(build_graph(ops, spec, leaf)), (), {})
                           for spec in specs])


def _apply(op: str, ops: dict, args: list) -> Any:
    if op in GRAPH_OPERATORS and op not in ops:
        return GRAPH_OPERATORS[op](*args)
    impl = ops.get(op)
    if impl is None:
        raise KeyError(f"the graph uses {op!r}, which the check did not map to one of your functions")
    if impl == "torch":
        import torch

        args = [torch.as_tensor(a, dtype=torch.float64) if not isinstance(a, torch.Tensor) else a for a in args]
        return getattr(torch, TORCH_OPS[op])(*args)
    if isinstance(impl, type):
        return impl()(*args)
    return impl(*args)


PROBES: dict[str, Callable[..., Observed]] = {
    "graph": probe_graph,
    "on_graph": probe_on_graph,
    "steps": probe_steps,
    "unchanged": probe_unchanged,
    "value": probe_value,
    "call": probe_call,
    "backward": probe_backward,
}


def run_probe(name: str, arguments: Callable[[], tuple[list, dict]], *, forbid_torch: bool = False,
              strict: bool = False, call_seconds: float | None = None, forbid: Any = (),
              plug: Callable[[], Any] | None = None) -> Observed:
    """Run one probe quietly: warnings and anything printed to stderr are kept, not shown.

    ``arguments()`` produces the probe's arguments; it runs inside the watch too,
    because evaluating them may call the student's code (``f(3.0)``). nbgrader
    scores a test cell 0 when anything reaches stderr, a harmless PyTorch warning
    included, so nothing may escape there.

    ``forbid`` names functions of autograd_lab (``"autograd_lab.numerical:numerical_grad"``)
    that are this exercise's answer: the student's code must not call them. ``plug()``
    gives a context manager the probe runs in: the student's code plugged into a
    reference engine (:mod:`autograd_lab.reference05`), so that an earlier exercise
    left undone does not fail this one.
    """
    global _call_seconds
    probe = PROBES[name]
    watch = TorchWatch(strict=strict, forbidden=forbidden_codes(forbid))
    _call_seconds = call_seconds
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        with watch.watching() if forbid_torch or forbid else contextlib.nullcontext():
            try:
                with plug() if plug is not None else contextlib.nullcontext():
                    args, kwargs = arguments()
                    record = probe(*args, **kwargs)
            except Exception as error:  # the student's code raised while we evaluated it
                record = exception_record(error, _short_traceback(error))
            finally:
                _call_seconds = None
    recursion = _recursion_error(record)
    if watch.package:
        record = Observed("sequence", type="used_package", items=[record], message=watch.package[0])
    elif forbid_torch and (watch.used or watch.dispatched):
        record = Observed("sequence", type="used_torch", items=[record], message=(watch.dispatched + watch.used)[0])
    elif watch.unwatched == [_WATCH_REMOVED] and recursion is not None:
        # Python removes a profile function that a RecursionError passes through: the student's
        # recursion, not a thread or a hook, took the watch away. Its failure is the verdict.
        record = recursion
    elif watch.unwatched:
        record = Observed("sequence", type="unwatched", items=[record], message=watch.unwatched[0])
    return record


def forbidden_codes(names: Any) -> dict:
    """What a watch must not see called, mapped to a readable name: the code object of each function
    named ``"module:qualified.name"``, and the file of each module named ``"module"`` (all its functions)."""
    import importlib

    found: dict = {}
    for name in names or ():
        module, _colon, path = name.partition(":")
        obj = importlib.import_module(module)
        if not path:
            found[obj.__file__] = module
            continue
        for part in path.split("."):
            obj = getattr(obj, part)
        found[obj.__code__] = f"{module}.{path}"
    return found
