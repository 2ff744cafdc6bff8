"""Log and user messages in Vietnamese (default) or English.

Every module registers its own catalog of ``key -> (tag, vietnamese, english)`` so that
messages live next to the code that emits them. Tags are bracketed, ASCII, without emojis
(``[KHOI TAO]``, ``[LOI]``, ``[BO QUA]`` ...) so logs stay greppable in both languages.
"""

from __future__ import annotations

import logging
from typing import Any

Catalog = dict[str, tuple[str, str, str]]

_CATALOG: Catalog = {}
_language = "vi"

TAGS = {
    "init": "[KHOI TAO]",
    "error": "[LOI]",
    "skip": "[BO QUA]",
    "warn": "[CANH BAO]",
    "data": "[DU LIEU]",
    "conn": "[KET NOI]",
    "signal": "[TIN HIEU]",
    "order": "[LENH]",
    "stop": "[DUNG]",
    "model": "[MO HINH]",
    "retry": "[THU LAI]",
}


def register(catalog: Catalog) -> None:
    """Add messages; a key registered twice with other text is a programming error."""
    for key, value in catalog.items():
        if key in _CATALOG and _CATALOG[key] != value:
            raise ValueError(f"message key {key!r} registered twice with different text")
        _CATALOG[key] = value


def set_language(language: str) -> None:
    global _language
    if language not in ("vi", "en"):
        raise ValueError(f"log_language must be 'vi' or 'en', not {language!r}")
    _language = language


def language() -> str:
    return _language


def t(key: str, **fields: Any) -> str:
    """The message for ``key`` in the current language, tag first."""
    tag, vi, en = _CATALOG[key]
    text = vi if _language == "vi" else en
    return f"{tag} {text.format(**fields)}"


def log(logger: logging.Logger, level: int, key: str, **fields: Any) -> None:
    logger.log(level, t(key, **fields))
