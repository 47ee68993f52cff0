"""Text checks shared by the domain's validations (pure)."""

from __future__ import annotations


def is_valid_unicode(text: str) -> bool:
    """False for strings with lone surrogates, which UTF-8 (and PostgreSQL) cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
