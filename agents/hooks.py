"""Hooks between agents that share one stream (no Faust, no imports: any import order works).

``on_new_candle``: coroutines called with ``(symbol, bar, window)`` by ``update_windows``
after a new closed candle entered its window; the predict step registers itself here so it
runs in the same partition-ordered stream, without an extra Kafka hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

on_new_candle: list[Callable[[str, Any, dict[str, Any]], Awaitable[None]]] = []
