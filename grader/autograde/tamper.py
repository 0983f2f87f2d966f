"""Reading a submission's code for signs of tampering, before it runs.

Nothing a submission does can earn points it would not earn honestly: verdicts
are decided outside its process, from the grader's own copy of the tests. These
flags exist so the instructor sees who tried. They come from two places: this
static reading of the student's cells (AST, in the trusted process), and the
runner's check after every cell of what was replaced at run time
(``grader/sandbox/runner.py``). A flag never changes a score.
"""
from __future__ import annotations

import ast
import functools

from grader.text import parse_cell

#: Names whose attributes a submission has no business replacing.
PROTECTED = {"torch", "np", "numpy", "checks", "autograd_lab", "builtins", "sys", "math", "json", "compare",
             "probes", "IPython", "nbgrader", "os", "operator", "functools"}
SUSPICIOUS_CALLS = {
    "setattr": "changes an attribute by name",
    "delattr": "deletes an attribute by name",
    "sys.settrace": "installs a trace hook",
    "sys.setprofile": "installs a profile hook",
    "signal.signal": "changes a signal handler",
    "os.kill": "sends a signal to a process",
    "os.killpg": "sends a signal to processes",
    "gc.get_objects": "searches the interpreter's objects",
    "gc.get_referrers": "searches the interpreter's objects",
    "sys._getframe": "inspects the call stack",
    "inspect.currentframe": "inspects the call stack",
    "inspect.stack": "inspects the call stack",
    "os.fdopen": "opens a raw file descriptor",
    "os.write": "writes to a raw file descriptor",
    "os.dup2": "redirects a raw file descriptor",
    "ctypes.CDLL": "loads a C library",
    "set_custom_exc": "changes how the kernel handles errors",
    "os.fork": "starts a process",
    "os.forkpty": "starts a process",
    "os.system": "runs a shell command",
}
KERNEL_HOOKS = {"events", "input_transformers_post", "input_transformers_cleanup", "ast_transformers",
                "set_custom_exc", "run_cell", "run_code", "showtraceback", "_showtraceback", "displayhook"}
SUSPICIOUS_IMPORTS = {"ctypes", "gc", "builtins", "signal", "socket", "inspect", "nbgrader", "grader"}
#: PyTorch internals that take its dispatch hooks (the watch of exercises built without PyTorch) away.
TORCH_HOOK_INTERNALS = {"_pop_torch_dispatch_stack", "_push_on_torch_dispatch_stack", "_pop_torch_function_stack",
                        "_push_on_torch_function_stack", "_disable_current_modes", "_pop_mode", "_push_mode",
                        "_pop_mode_temporarily", "DisableTorchFunction", "DisableTorchFunctionSubclass",
                        "_DisableTorchDispatch", "_set_torch_function_mode", "_set_torch_dispatch_mode"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython":
        parts.append("get_ipython()")
        return ".".join(reversed(parts))
    return None


def scan(source: str) -> list[tuple[int, str]]:
    """(line, finding) for each suspicious construct in a cell's code."""
    return list(_scan(source))


@functools.lru_cache(maxsize=4096)
def _scan(source: str) -> tuple[tuple[int, str], ...]:
    """:func:`scan`, once per distinct cell (the course's own unlocked cells are in every submission)."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return ()
    findings: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                name = _dotted(target.value) if isinstance(target, ast.Subscript) else _dotted(target)
                if not name or "." not in name:
                    if name in ("__builtins__",):
                        findings.append((line, "replaces __builtins__"))
                    continue
                root = name.split(".")[0]
                if root in PROTECTED or root == "get_ipython()" or name.startswith("sys.modules"):
                    findings.append((line, f"replaces {name}"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            short = name.split(".")[-1]
            for pattern, what in SUSPICIOUS_CALLS.items():
                if name == pattern or name.endswith("." + pattern) or (short == pattern and "." not in pattern):
                    if pattern in ("setattr", "delattr") and node.args:
                        owner = _dotted(node.args[0]) or ""
                        if owner.split(".")[0] not in PROTECTED:
                            break
                    findings.append((line, f"{name}() {what}"))
                    break
            if name.startswith("get_ipython().") and name.split(".")[1] in KERNEL_HOOKS:
                findings.append((line, f"{name}() changes the kernel"))
        elif isinstance(node, ast.Attribute) and node.attr in KERNEL_HOOKS and _dotted(node.value) == "get_ipython()":
            findings.append((line, f"uses get_ipython().{node.attr}"))
        elif isinstance(node, ast.Attribute) and node.attr in TORCH_HOOK_INTERNALS:
            findings.append((line, f"uses {node.attr}, which takes PyTorch's dispatch hooks away"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in SUSPICIOUS_IMPORTS:
                    findings.append((line, f"imports {name}"))
    unique = sorted(set(findings))
    return tuple(unique[:20])
