"""The language of the checks' messages: gettext catalogs, so a new language is a new catalog.

Every message a check shows a student is written in English in the code, wrapped in
:func:`_` (or :func:`ngettext` where a number decides the form), with named
placeholders (``_("expected {count} values").format(count=3)``), so a translator sees
whole sentences. A language is a catalog,
``autograd_lab/locale/<language>/LC_MESSAGES/autograd_lab.mo`` (compiled from a ``.po``
file; ``pybabel extract -o autograd_lab.pot autograd_lab`` collects the messages).
English needs none.

The language is ``AUTOGRAD_LAB_LANGUAGE`` (for example ``ja``) when set, otherwise the
usual ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG``; :func:`set_language` changes it in a
running notebook. A message with no translation in the catalog stays in English.
"""
from __future__ import annotations

import contextlib
import contextvars
import gettext
import os
from pathlib import Path

DOMAIN = "autograd_lab"
LOCALE_DIR = Path(__file__).parent / "locale"

_translations: gettext.NullTranslations | None = None
_language: str | None = None  # what set_language chose (None: the environment's)
#: The language of :func:`speaking`, for this thread or task alone (a server renders pages in several at once).
_spoken: contextvars.ContextVar[tuple[str, gettext.NullTranslations] | None] = contextvars.ContextVar(
    "autograd_lab_spoken", default=None)


def set_language(language: str | None, locale_dir: str | Path | None = None) -> None:
    """Show messages in ``language`` (``"ja"``); None goes back to the environment's choice.

    In Japanese, figures get a font with Japanese glyphs too (see :func:`japanese_figures`).
    """
    _choose(language, locale_dir)
    if language == "ja":
        japanese_figures()


def _choose(language: str | None, locale_dir: str | Path | None = None) -> None:
    global _translations, _language
    _language, _translations = language, _catalog_for(language, locale_dir)


def _catalog_for(language: str | None, locale_dir: str | Path | None = None) -> gettext.NullTranslations:
    languages = [language] if language else _environment_languages()
    return gettext.translation(DOMAIN, localedir=str(locale_dir or LOCALE_DIR), languages=languages, fallback=True)


def japanese_figures() -> bool:
    """Make matplotlib draw Japanese labels: the font the ``matplotlib-fontja`` package ships (IPAexGothic),
    the same on every machine and on Colab. Says what to install when it is missing."""
    try:
        import matplotlib_fontja  # noqa: F401 (importing it registers the font and makes it the default)
    except ImportError:
        print(_("Figures cannot show Japanese labels without a Japanese font: pip install matplotlib-fontja"))
        return False
    return True


@contextlib.contextmanager
def speaking(language: str | None):
    """Messages in ``language`` inside the block (None: as before), then back to the language before it.

    Only in this thread (or asyncio task): a server answering two students at once speaks to each in theirs.
    """
    if not language:
        yield
        return
    token = _spoken.set((language, _catalog_for(language)))
    try:
        yield
    finally:
        _spoken.reset(token)


def language() -> str:
    """The language messages are shown in now (``"en"`` when no catalog is chosen)."""
    spoken = _spoken.get()
    if spoken is not None:
        return spoken[0]
    if _language:
        return _language
    languages = _environment_languages() or [os.environ.get(name, "") for name in
                                             ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")]
    found = next((code for code in languages if code), "")
    code = found.split(":")[0].split(".")[0].split("_")[0]
    return "en" if code in ("", "C", "POSIX") else code


def _environment_languages() -> list[str] | None:
    chosen = os.environ.get("AUTOGRAD_LAB_LANGUAGE")
    return [chosen] if chosen else None  # None: gettext reads LANGUAGE, LC_ALL, LC_MESSAGES and LANG


def _catalog() -> gettext.NullTranslations:
    spoken = _spoken.get()
    if spoken is not None:
        return spoken[1]
    if _translations is None:
        set_language(None)
    return _translations


def _(message: str) -> str:
    """``message`` in the chosen language."""
    return _catalog().gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for ``count``, in the chosen language."""
    return _catalog().ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Marks ``message`` for a catalog where it is defined; it is translated (with :func:`_`) where it is shown."""
    return message


class Later:
    """A message made now and translated where it is shown, in that reader's language: its English
    template (marked with :func:`N_`) and the values of its placeholders."""

    def __init__(self, template: str, **values: object) -> None:
        self.template, self.values = template, values

    def __str__(self) -> str:
        return _(self.template).format(**self.values)
