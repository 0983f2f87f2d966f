"""The schema of what a sandboxed runner reports to the grader: the events, how they are written and validated.

The events are the dataclasses below: the runner (and the zygote, for a sandbox
that could not be set up) writes them with :meth:`Event.line`; the worker reads
them back with :func:`parse`, which validates every field once.

The runner shares its process with the student's code, so every line that comes
out of the sandbox may be forged: a submission can write to the pipe, replace the
runner's functions, or print lines of its choosing. Nothing here is trusted:

* each line must be one JSON object of a known event with fields of the right types
  (:func:`parse`); anything else is rejected and reported as tampering;
* outputs are rebuilt from the fields a notebook output may have, as strings
  (:func:`clean_outputs`); observations are checked field by field, as the judge
  will read them (:func:`clean_observations`);
* which events are *accepted* (a cell's start only when it is that cell's turn,
  its report only while it runs) is decided by the worker (``grader/sandbox/execute.py``),
  which also keeps every time limit itself. The runner's exit code and CPU time
  come from the zygote, outside the sandbox, never from this channel.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from autograd_lab.checks.observed import MAX_TEXT, Observed, from_json
from grader.text import printable

MAX_OUTPUTS = 200  # outputs kept per cell (the runner keeps far fewer)
MAX_OUTPUT_TEXT = 100_000  # characters per text field (the runner's own cut)
MAX_TAMPERING = 20
OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}
MIME_TYPES = {"text/plain", "text/html", "text/markdown"}


class Rejected(ValueError):
    """A line from the sandbox that is not a valid report; the message says what was wrong."""


class Event:
    """One line of the channel: ``{"event": <name>, <fields>}``."""

    name: ClassVar[str]

    def line(self) -> str:
        return json.dumps({"event": self.name, **asdict(self)}) + "\n"


@dataclass
class Ready(Event):
    """The kernel is set up; the student's code runs from now on (so a later ``Ready`` is forged)."""

    name: ClassVar[str] = "ready"


@dataclass
class Start(Event):
    """A cell starts (its time limit starts too)."""

    cell: int
    name: ClassVar[str] = "start"


@dataclass
class SandboxError(Event):
    """The sandbox could not be set up (written before any student code runs)."""

    message: str
    name: ClassVar[str] = "sandbox-error"


@dataclass
class Done(Event):
    """A cell finished: a code cell's outputs, or a test cell's observations (None: its probes did not run).

    As written, ``observations`` are JSON observations (:func:`~autograd_lab.checks.observed.to_json`); as
    parsed, still unchecked: :func:`clean_observations` reads them, once the worker knows how many to expect.
    """

    cell: int
    outputs: Any = field(default_factory=list)
    observations: Any = None
    tampering: list[str] = field(default_factory=list)
    name: ClassVar[str] = "done"


EVENTS = {event.name: event for event in (Ready, Start, SandboxError, Done)}


def parse(line: bytes) -> Event:
    """One report, as its event with every field checked, or :class:`Rejected`.

    Whatever goes wrong while reading a line (JSON nested deep enough for the
    validation's own recursion to fail, say) rejects that line, never the grader.
    """
    try:
        return _parse(line)
    except Rejected:
        raise
    except (Exception, RecursionError) as error:
        raise Rejected(f"unreadable ({type(error).__name__})") from error


def _parse(line: bytes) -> Event:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise Rejected("not JSON") from error
    if not isinstance(message, dict):
        raise Rejected("not a JSON object")
    message = _valid_unicode(message)
    event = message.get("event")
    if event == Ready.name:
        return Ready()
    if event == Start.name:
        return Start(_index(message))
    if event == SandboxError.name:
        return SandboxError(_text(message.get("message"), "message", 2000))
    if event == Done.name:
        tampering = message.get("tampering", [])
        if not isinstance(tampering, list) or not all(isinstance(t, str) for t in tampering):
            raise Rejected("tampering is not a list of strings")
        return Done(_index(message), message.get("outputs"), message.get("observations"),
                    [printable(t, newlines=False)[:300] for t in tampering[:MAX_TAMPERING]])
    raise Rejected(f"unknown event {printable(str(event), newlines=False)[:40]!r}")


def _valid_unicode(message: dict) -> dict:
    """``message`` with every string encodable as UTF-8: JSON may carry lone surrogates
    (``"\\ud800"``, from ``print(chr(0xD800))``), which no notebook file can hold."""
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
        return message
    except UnicodeEncodeError:
        return json.loads(json.dumps(message, ensure_ascii=False).encode("utf-8", "replace"))


def _index(message: dict) -> int:
    cell = message.get("cell")
    if not isinstance(cell, int) or isinstance(cell, bool) or cell < 0:
        raise Rejected("cell is not a cell index")
    return cell


def _text(value: Any, name: str, limit: int = MAX_OUTPUT_TEXT) -> str:
    if not isinstance(value, str):
        raise Rejected(f"{name} is not a string")
    return value[:limit]


def clean_outputs(outputs: Any) -> list[dict]:
    """A code cell's outputs rebuilt field by field, or :class:`Rejected` if any is not a valid output."""
    if not isinstance(outputs, list):
        raise Rejected("outputs is not a list")
    return [_clean_output(output) for output in outputs[:MAX_OUTPUTS]]


def _clean_output(output: Any) -> dict:
    if not isinstance(output, dict) or output.get("output_type") not in OUTPUT_TYPES:
        raise Rejected("an output of no known type")
    kind = output["output_type"]
    if kind == "stream":
        if output.get("name") not in ("stdout", "stderr"):
            raise Rejected("a stream that is neither stdout nor stderr")
        return {"output_type": kind, "name": output["name"], "text": _text(output.get("text"), "text")}
    if kind == "error":
        traceback = output.get("traceback", [])
        if not isinstance(traceback, list):
            raise Rejected("traceback is not a list")
        return {"output_type": kind, "ename": _text(output.get("ename"), "ename", 200),
                "evalue": _text(output.get("evalue"), "evalue"),
                "traceback": [_text(line, "traceback", 5000) for line in traceback[:40]]}
    data = output.get("data")
    if not isinstance(data, dict) or not data or not set(data) <= MIME_TYPES:
        raise Rejected("rich output data of unknown types")
    cleaned = {"output_type": kind, "data": {key: _text(value, key) for key, value in data.items()}, "metadata": {}}
    if kind == "execute_result":
        cleaned["execution_count"] = None
    return cleaned


def clean_observations(observations: Any, expected: int) -> tuple[list[Observed] | None, list[str]]:
    """A test cell's observations, read once (None: its probes did not run), and what was wrong with them.

    Each must be an observation the judge can read (:func:`autograd_lab.checks.observed.from_json`);
    one that is not is replaced by an ``InvalidObservation`` record, which fails its check.
    """
    if observations is None:
        return None, []
    if not isinstance(observations, list) or len(observations) > expected:
        return None, ["the observations are not a list of one per check"]
    problems: list[str] = []
    cleaned: list[Observed] = []
    for position, observation in enumerate(observations):
        try:
            cleaned.append(from_json(observation))
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            problems.append(f"check {position + 1}: {printable(error, newlines=False)[:200]}")
            cleaned.append(Observed("exception", type="InvalidObservation",
                                    message=f"the kernel sent an unreadable result ({error})"[:MAX_TEXT]))
    return cleaned, problems
