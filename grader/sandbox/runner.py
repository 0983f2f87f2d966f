"""What runs inside the sandbox: the student's cells, in order, and each test cell's probes.

The runner is an IPython shell (the engine of a Jupyter kernel, without the
messaging), prepared in the pre-warmed parent with torch, numpy and the course's
libraries already imported; each submission gets a fresh fork of it.

It executes code cells like a kernel does (outputs, rich results, tracebacks),
but a test cell's code never runs here: the grader sends only the probes it
planned, and the runner sends back what they observed. Everything goes to the
grader as JSON lines on one pipe; the grader decides what they are worth.

It also watches for tampering: after each cell it compares the functions of the
checks, of PyTorch, NumPy and Python's builtins, and the shell's hooks, with how
they were before the first cell, and reports what changed. (A submission that
tampers earns nothing by it, because nothing here decides a score; the report
is so the instructor can see it.)
"""
from __future__ import annotations

import io
import json
import operator
import os
import signal
import sys
import time
import types
import warnings
from typing import Any, Callable

MAX_CELL_TEXT = 100_000  # characters of stdout/stderr kept per cell
MAX_DISPLAYS = 20  # rich outputs kept per cell
WATCHED_MODULES = (
    "builtins", "autograd_lab.checks", "autograd_lab.checks.compare", "autograd_lab.checks.probes",
    "autograd_lab.checks.observed", "autograd_lab.checks.lazy", "autograd_lab.checks.wire",
    "grader.sandbox.kernel_probes",
    "torch", "torch.testing", "numpy", "numpy.testing", "json", "math", "sys",
)


class BoundedText(io.TextIOBase):
    """A stdout/stderr that keeps the first MAX_CELL_TEXT characters of a cell's output."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = MAX_CELL_TEXT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output not kept]\n"
        return text


def prepare_shell() -> Any:
    """An IPython shell whose outputs are recorded, not printed (done once, before forking)."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell.instance(config=config)

    class RecordingPublisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            if len(shell._records) < MAX_DISPLAYS:
                shell._records.append({"output_type": "display_data", "data": _text_data(data),
                                       "metadata": {}})

        def clear_output(self, wait=False):
            shell._records.clear()

    class RecordingDisplayHook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            shell._records.append({"output_type": "execute_result", "data": _text_data(format_dict),
                                   "metadata": {}, "execution_count": None})

        def finish_displayhook(self):
            pass

    shell._records = []
    shell.display_pub = RecordingPublisher(shell=shell)
    shell.displayhook = RecordingDisplayHook(shell=shell, cache_size=0)
    sys.displayhook = shell.displayhook

    def record_traceback(etype, evalue, stb):
        shell._records.append({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                               "evalue": str(evalue)[:MAX_CELL_TEXT], "traceback": [line[:5000] for line in stb[-40:]]})

    shell._showtraceback = record_traceback
    # Plots are drawn (the code runs) but not rendered to images: Agg, and %matplotlib does nothing.
    shell.enable_matplotlib = lambda gui=None: (None, None)
    shell.enable_gui = lambda gui=None: None
    shell.run_cell("pass", store_history=False)
    shell._records.clear()
    return shell


def _text_data(data: dict) -> dict:
    """Keep the text forms of a rich output (images are not sent back: they are not graded)."""
    kept = {key: value for key, value in data.items() if key in ("text/plain", "text/html", "text/markdown")}
    if not kept:
        kept = {"text/plain": f"<{', '.join(sorted(data))} output>"}
    return {key: str(value)[:MAX_CELL_TEXT] for key, value in kept.items()}


def _watched() -> list[tuple[str, Any]]:
    """The namespaces a submission could change to fake a result, with their names."""
    found = [(name, vars(module)) for name in WATCHED_MODULES if (module := sys.modules.get(name)) is not None]
    torch = sys.modules.get("torch")
    if torch is not None:
        found.append(("torch.Tensor", vars(torch.Tensor)))
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        found.append(("numpy.ndarray", vars(numpy.ndarray)))
    return found


class Snapshot:
    """Identity of everything a submission could replace to fake a result, and of the shell's hooks."""

    def __init__(self, shell: Any) -> None:
        self.objects: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        self._lookups: list[tuple[str, Callable[[Any], tuple]]] = []  # per namespace: its watched names' objects
        for name, namespace in _watched():
            attributes = self._take(name, namespace)
            if attributes:
                self._lookups.append((name, operator.itemgetter(*attributes, attributes[0])))  # (always a tuple)
        self.verified = self._objects()  # what the watched names held when last compared with this snapshot
        self.hooks = {event: [id(f) for f in callbacks] for event, callbacks in shell.events.callbacks.items()}
        self.transformers = [id(t) for t in shell.input_transformers_post + shell.ast_transformers]
        self.methods = {name: id(value) for name, value in vars(shell).items() if callable(value)}
        self.custom_exceptions = shell.custom_exceptions

    def own(self, name: str) -> bool:
        """Was ``name`` replaced by its own library (torch wraps some functions on first use)?"""
        value = self.values.get(name)
        module = getattr(value, "__module__", None) or ""
        return bool(module) and module.split(".")[0] == name.split(".")[0] and module.split(".")[0] != "builtins"

    def _take(self, prefix: str, namespace: dict) -> list[str]:
        """Functions, classes and modules: what a submission would replace (not data such as caches)."""
        taken = []
        for attribute, value in list(namespace.items()):
            if attribute.startswith("__") and attribute not in ("__import__", "__build_class__"):
                continue
            if callable(value) or isinstance(value, types.ModuleType):
                self.objects[f"{prefix}.{attribute}"] = id(value)
                self.values[f"{prefix}.{attribute}"] = value
                taken.append(attribute)
        return taken

    def _objects(self) -> list[tuple] | None:
        """The objects the watched names hold now (held, so that no id is reused), or None if one is gone."""
        namespaces = dict(_watched())
        try:
            return [lookup(namespaces[name]) for name, lookup in self._lookups]
        except (KeyError, TypeError):
            return None

    def changes(self, shell: Any) -> list[str]:
        """What changed since this snapshot (a new snapshot is taken by the caller to report each once).

        The watched names are compared one by one only when one of them does not hold the very object it
        held at the last comparison: a check of identities, done in C (a fraction of a millisecond for the
        thousands of names of torch and numpy, where the name-by-name comparison takes milliseconds).
        """
        changed = []
        objects = self._objects()
        if objects is None or self.verified is None or not all(
                len(now) == len(then) and all(map(operator.is_, now, then))
                for now, then in zip(objects, self.verified, strict=True)):
            now = Snapshot(shell)
            changed += [f"{name} was replaced" for name, ident in self.objects.items()
                        if name in now.objects and now.objects[name] != ident and not now.own(name)]
            changed += [f"{name} was deleted" for name in self.objects if name not in now.objects]
            if not changed:  # (replaced by their own library, which torch does on first use)
                self.verified = objects
        changed += self._shell_changes(shell)
        return changed[:20]

    def _shell_changes(self, shell: Any) -> list[str]:
        """The interpreter's and the shell's hooks (a few dozen objects: compared every time)."""
        changed = []
        if sys.gettrace() is not None:
            changed.append("sys.settrace was used")
        if sys.getprofile() is not None:
            changed.append("sys.setprofile was used")
        if sys.excepthook is not sys.__excepthook__:
            changed.append("sys.excepthook was replaced")
        hooks = {event: [id(f) for f in callbacks] for event, callbacks in shell.events.callbacks.items()}
        for event, callbacks in hooks.items():
            if callbacks != self.hooks.get(event, []):
                changed.append(f"the kernel's '{event}' hooks were changed")
        if [id(t) for t in shell.input_transformers_post + shell.ast_transformers] != self.transformers:
            changed.append("input or AST transformers were registered in the kernel")
        if shell.custom_exceptions != self.custom_exceptions:
            changed.append("a custom exception handler was set in the kernel")
        if {name: id(value) for name, value in vars(shell).items() if callable(value)} != self.methods:
            changed.append("the kernel's methods were replaced")
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            changed.append("the interrupt (SIGINT) handler was changed")
        return changed


def run_job(job: dict, channel: int, probes: int, go: int | None = None) -> None:
    """Execute the job's cells in order, reporting each on ``channel`` (a pipe's write end).

    A test cell's probes are not part of the job: the grader sends them on ``probes``
    when the cell's turn comes, so no earlier cell can find them in memory. After each
    cell's report, the sandbox ends every process the cell started and then writes a
    line on ``go``; the next cell waits for it (for at most GO_SECONDS).
    """
    out = os.fdopen(channel, "w", buffering=1, encoding="utf-8", errors="replace")
    incoming = os.fdopen(probes, "r", encoding="utf-8")
    shell = sys.modules["__main__"].__dict__.get("_grader_shell") or prepare_shell()
    from autograd_lab import checks  # noqa: F401 (imports every module a probe uses, before the snapshot)
    from grader.sandbox.channel import Done, Event, Ready, Start
    from grader.sandbox.kernel_probes import run_planned

    warnings.filterwarnings("ignore", message=".*non-interactive.*")
    os.environ["MPLBACKEND"] = "Agg"

    def send(event: Event) -> None:
        out.write(event.line())
        out.flush()

    before = sys.modules["__main__"].__dict__.get("_grader_snapshot")  # taken in the zygote, before the fork
    if before is None or before.changes(shell):
        before = Snapshot(shell)
    send(Ready())
    for cell in job["cells"]:
        index = cell["index"]
        send(Start(index))
        report = Done(index)
        if cell["kind"] == "test":
            report.observations = _quietly(lambda: run_planned(_receive_probes(incoming, index), shell.user_ns))
        else:
            report.outputs = _execute(shell, cell["source"])
        checking = time.perf_counter()
        try:
            report.tampering = before.changes(shell)
        except Exception as error:  # the notebook broke what the check looks at: that is a change too
            report.tampering = [f"the kernel was changed so that it cannot be inspected ({type(error).__name__})"]
        if report.tampering:
            try:
                before = Snapshot(shell)  # report each change once
            except Exception:
                pass
        report.check_seconds = time.perf_counter() - checking
        send(report)
        _close_figures()
        if go is not None and cell is not job["cells"][-1]:
            _wait_for(go)
    out.close()


GO_SECONDS = 2.0  # how long the next cell waits for the sandbox to end the last one's processes


def _wait_for(go: int) -> None:
    """Wait for the sandbox to end the cell's processes, then reap them (they count towards the limits)."""
    import select

    try:
        if select.select([go], [], [], GO_SECONDS)[0]:
            os.read(go, 4096)
    except (OSError, ValueError):
        pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _receive_probes(incoming: io.TextIOBase, index: int) -> list[dict]:
    """The probes of test cell ``index``, sent by the grader after this cell's start was reported."""
    line = incoming.readline()
    message = json.loads(line) if line else {}
    if message.get("cell") != index:  # the notebook read or broke the pipe: its checks cannot run
        raise RuntimeError(f"no probes arrived for cell {index}")
    return message["probes"]


def _quietly(action):
    """Run the probes with output captured (they print nothing of their own; the student's code might)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = BoundedText(), BoundedText()
    try:
        return action()
    except BaseException:  # interrupted, or the notebook broke the probes: its checks did not run
        return None
    finally:
        sys.stdout, sys.stderr = saved


def _execute(shell: Any, source: str) -> list[dict]:
    """Run one cell as a kernel would; whatever the cell did to the shell, report and go on."""
    stdout, stderr = BoundedText(), BoundedText()
    saved = sys.stdout, sys.stderr
    shell._records = []
    sys.stdout, sys.stderr = stdout, stderr
    try:
        # IPython's own run_cell, even if an earlier cell replaced the shell's.
        result = _RUN_CELL(shell, source, store_history=False)
        error = getattr(result, "error_in_exec", None)
        if isinstance(error, KeyboardInterrupt):  # stopped by the grader's time limit
            from grader.sandbox.kernel_probes import remember_stopped

            remember_stopped(error.__traceback__, shell.user_ns)
    except KeyboardInterrupt:  # arrived between the cell's statements and IPython's handling
        shell._records.append({"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
    except Exception as error:  # the cell broke the shell itself
        shell._records.append({"output_type": "error", "ename": type(error).__name__, "evalue": str(error)[:2000],
                               "traceback": []})
    finally:
        sys.stdout, sys.stderr = saved
    outputs: list[dict] = []
    for name, stream in (("stdout", stdout), ("stderr", stderr)):
        text = stream.value()
        if text:
            outputs.append({"output_type": "stream", "name": name, "text": text})
    return outputs + list(shell._records)


from IPython.core.interactiveshell import InteractiveShell as _Shell  # noqa: E402

_RUN_CELL = _Shell.run_cell


def _close_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        try:
            pyplot.close("all")
        except Exception:
            pass
