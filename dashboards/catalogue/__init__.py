"""The one message catalogue of the dashboard: every text a person reads, Dutch first, English second.

Sections live in their own modules (one per page family) so that each stays short; they are merged
here into `MESSAGES`, and a key defined twice is an error at import.
"""

from __future__ import annotations

from collections.abc import Mapping

from dashboards.catalogue import accounts, common, feed, it, lessons, reports

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"


def _merge(*sections: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    merged: dict[str, tuple[str, str]] = {}
    for section in sections:
        for key, texts in section.items():
            if key in merged:
                raise ValueError(f"message {key!r} is defined twice in the catalogue")
            merged[key] = texts
    return merged


MESSAGES = _merge(common.MESSAGES, feed.MESSAGES, lessons.MESSAGES, reports.MESSAGES, it.MESSAGES,
                  accounts.MESSAGES)


def translate(key: str, language: str, **values: object) -> str:
    """The text for `key` in `language` (Dutch when unknown), with `{name}` fields filled in.

    A key missing from the catalogue shows as the key itself, so a gap is visible and never a crash.
    """
    texts = MESSAGES.get(key)
    if texts is None:
        return key
    text = texts[LANGUAGES.index(language)] if language in LANGUAGES else texts[0]
    return text.format(**values) if values else text
