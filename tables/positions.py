"""``symbol_to_book``: the broker's state per symbol (cash, position, levels, last candle).

The table is the record for recovery: a worker that takes over a partition continues the
same book. Co-partitioned with ``signals`` (same keys, same partition count).
"""

from __future__ import annotations

from tables import symbol_table

symbol_to_book = symbol_table(
    "symbol_to_book", "Broker state per symbol (tinhieu.broker.new_state / step)."
)
