"""Faust tables (RocksDB stores through rocksdict, each backed by a changelog topic).

Every table is keyed by the symbol as raw UTF-8 bytes (``b"BTC/USDT"``) and has the
partition count of the topics: the partition a key lives in must be computed from the same
bytes as the message keys of ``market_data``, ``signals`` and ``orders`` (Kafka's default
partitioner), so that a symbol's candles, state and book sit on the same worker and the web
views can route a request to the owner. :func:`symbol_table` is the one place that rule is
written down.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event
from faust.types import EventT

from streams.app import app, settings


def symbol_table(name: str, help: str) -> Any:
    """A changelogged RocksDB table keyed by the raw UTF-8 symbol, co-partitioned with the
    topics (``None`` for a symbol not seen yet)."""
    return app.Table(
        name,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw UTF-8 symbol: the same bytes as the message keys (routing)
        help=help,
    )


def read_for_event(table: Any, key: bytes, event: EventT) -> Any:
    """``table.get(key)`` from the partition of ``event``'s message.

    Faust's RocksDB store reads a key only from the partition of the *current* event (the
    one being iterated); in a batch that may be another symbol's event in another partition,
    and the read would answer ``None``. Agents that take events in batches name the event
    (any of that symbol's, all in one partition) explicitly here.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        return table.get(key)
    finally:
        _current_event.reset(token)


def write_for_event(table: Any, key: bytes, value: Any, event: EventT) -> None:
    """``table[key] = value`` into the changelog partition of ``event``'s message.

    Faust takes a table write's changelog partition from the event being iterated. Agents
    that take events in batches write each symbol's value once, after the batch: they name
    the event (any of that symbol's, all in one partition) explicitly here.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)
