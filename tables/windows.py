"""``symbol_to_window``: the last N closed candles per symbol (see tinhieu.candles).

Table keys are the symbol as raw UTF-8 bytes (``b"BTC/USDT"``): the partition a key is
routed to must be computed from the same bytes as the ``market_data`` message keys.
"""

from __future__ import annotations

from streams.app import app, settings

symbol_to_window = app.Table(
    "symbol_to_window",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,  # raw UTF-8 symbol: the same bytes as the message keys (routing)
    help="Last N closed candles per symbol, with recorded gaps.",
)
