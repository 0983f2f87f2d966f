"""Text that came from a submission or a download, made safe to print or to write into a report.

A student chooses their file names, the messages their code raises and, by
writing to the grader's channel, some of what the grader reports. Terminal
escape codes in any of those would reach the instructor's terminal and the
Markdown reports; :func:`printable` removes them. Use it on everything the
grader prints or writes that a submission could have chosen.
"""
from __future__ import annotations

import ast
import functools
import re
import unicodedata

#: Control characters (C0, DEL, C1) except tab and newline; ANSI escape sequences start with one.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: A whole ANSI escape sequence (CSI ... final byte, OSC ... BEL/ST), so no printable tail is left behind.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]")
#: Unicode format characters that reorder or hide text (bidirectional overrides, zero-width joiners),
#: and lone surrogates, which cannot be written as UTF-8 at all.
_FORMAT = {"Cf", "Cs"}


def printable(text: object, *, newlines: bool = True) -> str:
    """``text`` without escape sequences, control characters or invisible reordering characters.

    Tabs are kept; newlines are kept unless ``newlines=False`` (then they become spaces,
    for one-line fields such as a file name in a list).
    """
    text = _ESCAPE.sub("", str(text))
    text = _CONTROL.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _FORMAT)
    if not newlines:
        text = text.replace("\n", " ").replace("\r", " ")
    return text


#: Markdown's special characters, and the colon of a bare web address (which renderers make a link).
_MARKDOWN = re.compile(r"([\\`*_\[\]()<>!&~|$]|:(?=//))")


def markdown_text(value: object) -> str:
    """``value`` as one line of literal text in Markdown: printable, and every character that would
    make emphasis, code, a link or image, HTML, an entity, a table cell or math escaped."""
    return _MARKDOWN.sub(r"\\\1", printable(value, newlines=False))


@functools.lru_cache(maxsize=8192)
def python_source(cell_source: str) -> str:
    """The Python a notebook cell runs as (IPython's ``%magics`` and ``!commands`` made calls).

    Cached: every submission brings the same released cells, and IPython's transformer
    takes milliseconds a cell. Callers parse the result themselves (and may change that tree).
    """
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell_source)


def parse_cell(cell_source: str) -> ast.Module:
    """A notebook cell's code as Python's syntax tree (a fresh tree: callers may change it).

    Raises SyntaxError when the cell is not Python (each caller says what that means for it).
    """
    return ast.parse(python_source(cell_source))
