"""Symbol normalization: every form a trader types becomes ``BASE/QUOTE``.

``btc``, ``BTC``, ``BTCUSDT``, ``btc/usdt``, ``BTC-USDT``, ``btc_usdt`` all become
``BTC/USDT``. Only the configured (supported) symbols are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_QUOTE = "USDT"
KNOWN_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
DEFAULT_SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")

_SEPARATORS = re.compile(r"[\s/\-_:]+")


class UnknownSymbolError(ValueError):
    """A symbol that is not among the supported ones."""

    def __init__(self, raw: str, supported: Iterable[str]) -> None:
        self.raw = raw
        self.supported = tuple(supported)
        super().__init__(f"unknown symbol {raw!r}; supported symbols: {', '.join(self.supported)}")


def canonical(raw: str) -> str:
    """Normalize the form of ``raw`` without checking that it is supported.

    Raises ``ValueError`` for text that cannot be a symbol at all.
    """
    if not isinstance(raw, str):
        raise ValueError(f"symbol must be text, not {type(raw).__name__}")
    text = raw.strip().upper()
    if not text or not re.fullmatch(r"[A-Z0-9/\-_: ]+", text):
        raise ValueError(f"not a symbol: {raw!r}")
    parts = [p for p in _SEPARATORS.split(text) if p]
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    if len(parts) != 1:
        raise ValueError(f"not a symbol: {raw!r}")
    joined = parts[0]
    for quote in KNOWN_QUOTES:
        if joined.endswith(quote) and len(joined) > len(quote):
            return f"{joined[: -len(quote)]}/{quote}"
    return f"{joined}/{DEFAULT_QUOTE}"


def normalize(raw: str, supported: Iterable[str] = DEFAULT_SYMBOLS) -> str:
    """Normalize ``raw`` and check it is supported; raises ``UnknownSymbolError``."""
    supported = tuple(supported)
    try:
        symbol = canonical(raw)
    except ValueError:
        raise UnknownSymbolError(str(raw), supported) from None
    if symbol not in supported:
        raise UnknownSymbolError(str(raw), supported)
    return symbol


def url_form(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC-USDT`` (safe in a URL path segment)."""
    return symbol.replace("/", "-")


def file_form(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT`` (the form used in data file names)."""
    return symbol.replace("/", "")
