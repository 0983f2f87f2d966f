"""What the instructor opens runs nothing: one policy for feedback pages and graded notebooks.

A submission chooses its Markdown cells and its outputs (HTML, Markdown, JavaScript,
SVG). Wherever the grader writes them for an instructor to open, they go through
:func:`clean_html` (nh3, the Rust ammonia sanitizer): text, layout, tables and
embedded images are kept; scripts, styles, event handlers, forms, frames and every
link to or image from elsewhere are dropped. Feedback pages (``grader/outputs/feedback.py``)
add a Content-Security-Policy; graded notebooks in ``autograded/``, which formgrader
renders in the instructor's own Jupyter origin, go through :func:`inert_notebook`.
"""
from __future__ import annotations

import re

import nh3
import nbformat

#: MathML Core's presentation elements, which browsers render without any script: feedback pages' mathematics,
#: converted from TeX when the page is built (grader.outputs.feedback.MathAsMathML). Not semantics, annotation(-xml)
#: or maction, which can carry other markup, and no href on any of them.
_MATHML = {"math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot", "msub", "msup",
           "msubsup", "munder", "mover", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom",
           "menclose", "mmultiscripts", "mprescripts", "none"}
_MATHML_ATTRIBUTES = {"display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "accent",
                      "accentunder", "columnalign", "rowalign", "columnspacing", "rowspacing", "width", "height",
                      "depth", "linethickness", "displaystyle", "scriptlevel", "movablelimits", "largeop",
                      "symmetric", "minsize", "maxsize", "notation", "form", "columnlines", "rowlines", "frame"}
#: What a page's body may hold: nh3's (ammonia's) tags and attributes, plus the classes, ids and
#: named anchors nbconvert's and nbgrader's templates lay the page out with, and MathML.
_TAGS = nh3.ALLOWED_TAGS | _MATHML
_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "*": {"class", "id"}, "a": {"href", "hreflang", "name"},
               **{tag: _MATHML_ATTRIBUTES for tag in _MATHML}}


def _attribute(tag: str, attribute: str, value: str) -> str | None:
    """Images only from inside the page (data:image/...), and no link to a data: URL."""
    if attribute == "src":
        return value if value.startswith("data:image/") else None
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def clean_html(html: str) -> str:
    """HTML (or Markdown, which may hold HTML) with only what cannot run or fetch: text, layout, tables,
    embedded images; no script, style, event handler, form, frame, or link or image from elsewhere."""
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=nh3.ALLOWED_URL_SCHEMES | {"data"},
                     attribute_filter=_attribute)


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")  # what nbgrader accepts as a grade id

#: Outputs kept in a graded notebook: text, and pictures that cannot hold a script.
_KEPT_DATA = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg", "image/gif"}


def inert_notebook(nb: nbformat.NotebookNode, trusted: frozenset[str] = frozenset()) -> nbformat.NotebookNode:
    """A graded notebook that runs nothing wherever it is rendered (formgrader, JupyterLab, nbconvert).

    formgrader shows ``autograded/`` in the instructor's own Jupyter origin, where a
    script could act as the instructor; so what the submission wrote is cleaned with
    the policy of the feedback pages: Markdown and raw cells and HTML or Markdown
    outputs through :func:`clean_html`, outputs of other kinds (JavaScript, SVG,
    widgets) dropped, and output metadata (file names, "isolated") left out. Markdown cells whose
    source is in ``trusted`` (the course's own, as released) are kept as they are.
    """
    for cell in nb.cells:
        cell.pop("attachments", None)  # the course's notebooks have none
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if not _SAFE_ID.match(str(grading.get("grade_id", "id"))):  # templates put it in attributes unescaped
            cell["metadata"].pop("nbgrader")
        if "tags" in cell.get("metadata", {}):  # in a class attribute too: only tags that are plain words
            cell.metadata.tags = [tag for tag in cell.metadata.tags if _SAFE_ID.match(str(tag))]
        if cell.cell_type == "markdown" and not grading.get("locked") and cell.source not in trusted:
            # (Locked cells were put back from the source.) Rendered again as Markdown by whoever shows it:
            # image syntax left in the text must stay text.
            cell.source = clean_html(_markdown_html(cell.source)).replace("![", "&#33;[")
        elif cell.cell_type == "raw":
            cell.source = clean_html(cell.source)
        for output in cell.get("outputs", []):
            if "data" in output:
                data = {kind: value for kind, value in output["data"].items() if kind in _KEPT_DATA}
                if "text/markdown" in data:  # shown as the HTML it renders to, cleaned
                    data["text/html"] = clean_html(_markdown_html(data.pop("text/markdown")))
                if "text/html" in data:
                    data["text/html"] = clean_html(data["text/html"])
                output["data"] = data
                output["metadata"] = {}
    return nb


def _markdown_html(markdown: str) -> str:
    """Markdown rendered as nbconvert renders it (math kept for MathJax), so that cleaning it keeps its
    layout: cleaned as Markdown text, a quote's ``>`` or a ``<`` in code would come out as entities."""
    from nbconvert.filters import markdown2html_mistune

    return markdown2html_mistune(markdown)
