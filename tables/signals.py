"""Tables of the predict step: incremental feature state and the latest signal, per symbol.

Keys are raw UTF-8 symbols (see tables.windows), co-partitioned with ``market_data``.
"""

from __future__ import annotations

from streams.app import app, settings

symbol_to_features = app.Table(
    "symbol_to_features",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="Per symbol: {'state': FeatureState.to_dict(), 'signal': that candle's Signal}.",
)

symbol_to_signal = app.Table(
    "symbol_to_signal",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="The latest Signal per symbol.",
)

# Recent signals by candle (key b"BTC/USDT|<candle open ms>"), kept for SIGNAL_MEMORY
# candles, so that candles re-delivered after a crash can send their signals again.
# Written in the symbol's event partition like every table here; never routed by key.
SIGNAL_MEMORY = 1000
candle_to_signal = app.Table(
    "candle_to_signal",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="Recent signals per (symbol, candle time), for re-sending after a crash.",
)


def candle_key(symbol: str, ts: int) -> bytes:
    return f"{symbol}|{ts}".encode()
