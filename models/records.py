"""The records that travel on the topics. JSON on the wire, keyed by symbol.

``Candle`` comes from outside (exchange, replay files) and is validated field by field in
:mod:`tinhieu.candles` before it reaches a window; bytes that do not decode into a Candle go
to ``dead_letters`` with the reason.
"""

from __future__ import annotations

import faust


class Candle(faust.Record, serializer="json", validation=True, include_metadata=False):
    """One closed candle. ``timestamp`` is the candle OPEN time, integer ms UTC."""

    symbol: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    timeframe: str = "1m"
    source: str = "exchange"


class ModelVote(faust.Record, serializer="json", include_metadata=False):
    """One model's vote inside a Signal."""

    model: str  # rf | svm | lr
    action: str  # BUY | SELL | NEUTRAL
    confidence: float
    version: str
    weight: float = 1.0


class Signal(faust.Record, serializer="json", include_metadata=False):
    """The ensemble's verdict for one closed candle; one per closed candle of every symbol.

    A candle without a verdict (no model, indicators warming up, a feature not finite, a
    model that failed) still gets a Signal: NEUTRAL, confidence 0, no votes, and ``reason``
    saying why, so the broker checks stops and fills pending orders on every candle.
    """

    symbol: str
    candle_time: int  # open time of the candle the signal describes, ms UTC
    action: str  # BUY | SELL | NEUTRAL
    confidence: float  # 0..1
    open: float  # the candle the signal describes: the broker checks its levels against it
    high: float
    low: float
    close: float
    volume: float
    votes: list[ModelVote]
    model_version: str  # joined versions of the ensemble members
    feature_schema: str
    reason: str = ""  # "" for a model verdict; no_model | warming_up | features_not_finite ...
    latency_ms: float = 0.0
    emitted_at: float = 0.0  # unix seconds


class Order(faust.Record, serializer="json", include_metadata=False):
    """An order or fill from the broker agent. ``id`` is deterministic (see tinhieu.broker)."""

    id: str
    symbol: str
    side: str  # BUY | SELL
    status: str  # FILLED | REJECTED
    price: float
    amount: float
    fee: float
    entry_price: float
    stop_loss: float
    take_profit: float
    confidence: float
    reason: str  # signal | stop_loss | take_profit
    candle_time: int  # the signal's candle open time, ms UTC
    fill_time: int  # open time of the candle it filled on, ms UTC
    model_version: str
    cash_after: float = 0.0
    pnl: float = 0.0


class DeadLetter(faust.Record, serializer="json", include_metadata=False):
    """A message that could not be processed, with why and where it came from."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    payload: str  # the raw bytes as UTF-8 (with replacement) or the record as JSON
    reason: str
    code: str  # machine-readable: decode_error, invalid_price, out_of_order, ...
    agent: str
    at: float  # unix seconds when it was dead-lettered
