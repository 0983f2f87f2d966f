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
import gettext
import os
from pathlib import Path

DOMAIN = "autograd_lab"
LOCALE_DIR = Path(__file__).parent / "locale"

_translations: gettext.NullTranslations | None = None


def set_language(language: str | None, locale_dir: str | Path | None = None) -> None:
    """Show messages in ``language`` (``"ja"``); None goes back to the environment's choice.

    In Japanese, figures get a font with Japanese glyphs too (see :func:`japanese_figures`).
    """
    _choose(language, locale_dir)
    if language == "ja":
        japanese_figures()


def _choose(language: str | None, locale_dir: str | Path | None = None) -> None:
    global _translations
    languages = [language] if language else _environment_languages()
    _translations = gettext.translation(DOMAIN, localedir=str(locale_dir or LOCALE_DIR), languages=languages,
                                        fallback=True)


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
    """Messages in ``language`` inside the block (None: as before), then back to the language before it."""
    global _translations
    if not language:
        yield
        return
    before = _translations
    _choose(language)
    try:
        yield
    finally:
        _translations = before


def _environment_languages() -> list[str] | None:
    chosen = os.environ.get("AUTOGRAD_LAB_LANGUAGE")
    return [chosen] if chosen else None  # None: gettext reads LANGUAGE, LC_ALL, LC_MESSAGES and LANG


def _catalog() -> gettext.NullTranslations:
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
