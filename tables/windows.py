"""``symbol_to_window``: the candle path's one record per symbol (see tinhieu.pipeline).

The value holds the last N closed candles (the window, with recorded gaps and the last
applied source offset), the incremental feature state and the newest candle's signal,
written once per batch of candles, so that they can never disagree after a crash.
"""

from __future__ import annotations

from tables import symbol_table

symbol_to_window = symbol_table(
    "symbol_to_window",
    "Per symbol: window of closed candles, feature state, newest signal (tinhieu.pipeline).",
)
