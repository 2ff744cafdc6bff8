"""``symbol_to_book``: the broker's state per symbol (cash, position, levels, last signal).

The table is the record for recovery: a worker that takes over a partition continues the
same book. Co-partitioned with ``signals`` (same keys, same partition count).
"""

from __future__ import annotations

from streams.app import app, settings

symbol_to_book = app.Table(
    "symbol_to_book",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="Broker state per symbol (tinhieu.broker.new_state / step).",
)
