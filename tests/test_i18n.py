"""Messages go through gettext catalogs: a language is a catalog, English needs none."""
from __future__ import annotations

from pathlib import Path

import pytest

from autograd_lab import checks, i18n
from autograd_lab.checks import CheckFailed


def _catalog(root: Path, language: str, translations: dict[str, str]) -> Path:
    """A compiled catalog for ``language`` under ``root`` (what a translator's .po file becomes)."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    catalog = Catalog(locale=language, domain=i18n.DOMAIN)
    for english, translated in translations.items():
        catalog.add(english, translated)
    folder = root / language / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with open(folder / f"{i18n.DOMAIN}.mo", "wb") as handle:
        write_mo(handle, catalog)
    return root


@pytest.fixture
def language():
    yield i18n.set_language
    i18n.set_language(None)


def test_a_catalog_translates_the_messages_and_what_it_lacks_stays_english(tmp_path, language):
    root = _catalog(tmp_path, "ja", {
        "does not match the expected value": "期待される値と一致しません",
        "note: {note}": "注: {note}",
        "expected": "期待値",
    })
    language("ja", root)
    with pytest.raises(CheckFailed) as failure:
        checks.close(2.0, 1.0)
    message = str(failure.value)
    assert "期待される値と一致しません" in message and "期待値:" in message
    assert "注: your answer is exactly 2× the expected one" in message  # not in this catalog: English
    language(None)
    with pytest.raises(CheckFailed) as failure:
        checks.close(2.0, 1.0)
    assert "does not match the expected value" in str(failure.value)


def test_every_message_of_the_checks_can_be_extracted_for_a_catalog():
    from babel.messages.extract import extract_from_dir

    package = Path(i18n.__file__).parent
    messages = {message for _, _, message, _, _ in extract_from_dir(str(package), keywords={"_": None, "N_": None,
                                                                                           "ngettext": (1, 2)})}
    assert "does not match the expected value" in messages
    assert ("matches {against} on {total} input", "matches {against} on {total} inputs") in messages
    assert len(messages) > 80
