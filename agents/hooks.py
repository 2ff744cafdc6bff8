"""Hooks between agents that share one stream (no Faust, no imports: any import order works).

``on_new_candle``: coroutines called with ``(symbol, bar, window, redelivered)`` by
``update_windows`` after a closed candle entered its window (``redelivered=False``) or when
a candle the window already holds arrives again (``redelivered=True``: after a crash the
stream re-delivers what was not committed, and a hook must re-emit its effects for that
candle, idempotently, because they may not have reached Kafka). The predict step registers
itself here so it runs in the same partition-ordered stream, without an extra Kafka hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

on_new_candle: list[Callable[[str, Any, dict[str, Any], bool], Awaitable[None]]] = []
