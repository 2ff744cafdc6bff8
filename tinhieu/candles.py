"""Candle validation and the per-symbol window (plain Python, no Faust).

A window is a JSON-able dict so it can live in a Faust table and be shown over HTTP::

    {"symbol": "BTC/USDT", "timeframe_ms": 60000,
     "candles": [[ts, open, high, low, close, volume], ...],   # ascending open time
     "gaps": [{"after": ts, "before": ts, "missing": n}, ...]} # recorded, never filled

Candle rows are ``Bar`` tuples everywhere in the core: training, backtest and live.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from tinhieu.symbols import UnknownSymbolError, normalize

REQUIRED_FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
MAX_GAPS_KEPT = 50


class Bar(NamedTuple):
    """One candle: open time (ms UTC) and OHLCV."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleError(ValueError):
    """A candle that must not enter a window. ``code`` is machine-readable."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ValidCandle:
    symbol: str
    bar: Bar


def decode_candle(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Bytes or text of a JSON object -> dict; raises ``CandleError('decode_error')``."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise CandleError("decode_error", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CandleError("decode_error", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _number(d: Mapping[str, Any], name: str) -> float:
    value = d[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CandleError("invalid_type", f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise CandleError("invalid_type", f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise CandleError("non_finite", f"{name} is not finite: {value!r}")
    return number


def validate_candle(
    d: Mapping[str, Any], supported: Iterable[str], timeframe_ms: int
) -> ValidCandle:
    """Check every field of a decoded candle; raise ``CandleError`` with the first problem."""
    missing = [f for f in REQUIRED_FIELDS if f not in d or d[f] is None]
    if missing:
        raise CandleError("missing_field", f"missing field(s): {', '.join(missing)}")
    try:
        symbol = normalize(str(d["symbol"]), supported)
    except UnknownSymbolError as exc:
        raise CandleError("unknown_symbol", str(exc)) from None
    ts_value = d["timestamp"]
    if isinstance(ts_value, bool) or not isinstance(ts_value, (int, float)):
        raise CandleError("invalid_type", f"timestamp must be integer ms, got {ts_value!r}")
    if not math.isfinite(float(ts_value)) or float(ts_value) != int(ts_value):
        raise CandleError("invalid_type", f"timestamp must be integer ms, got {ts_value!r}")
    ts = int(ts_value)
    if ts <= 0:
        raise CandleError("invalid_time", f"timestamp must be positive, got {ts}")
    if ts % timeframe_ms:
        raise CandleError(
            "misaligned_time",
            f"timestamp {ts} is not aligned to the {timeframe_ms // 1000}s timeframe",
        )
    o, h, low, c, v = (_number(d, f) for f in ("open", "high", "low", "close", "volume"))
    for name, price in (("open", o), ("high", h), ("low", low), ("close", c)):
        if price <= 0:
            raise CandleError("invalid_price", f"{name} must be positive, got {price}")
    if v < 0:
        raise CandleError("invalid_volume", f"volume must not be negative, got {v}")
    if h < max(o, c):
        raise CandleError("invalid_range", f"high {h} is below max(open, close) {max(o, c)}")
    if low > min(o, c):
        raise CandleError("invalid_range", f"low {low} is above min(open, close) {min(o, c)}")
    return ValidCandle(symbol, Bar(ts, o, h, low, c, v))


class Outcome(StrEnum):
    APPENDED = "appended"
    GAP = "appended_after_gap"
    DUPLICATE = "duplicate"  # a new message with a candle already held, same values
    REDELIVERED = "redelivered"  # a message at or before the last applied source offset


def empty_window(symbol: str, timeframe_ms: int) -> dict[str, Any]:
    return {"symbol": symbol, "timeframe_ms": timeframe_ms, "candles": [], "gaps": []}


def apply_candle(
    window: Mapping[str, Any] | None,
    candle: ValidCandle,
    size: int,
    timeframe_ms: int,
    offset: int | None = None,
) -> tuple[dict[str, Any], Outcome]:
    """Return the window with ``candle`` applied, and what happened.

    * ``offset`` (the message's offset in its partition; one symbol always lives in one
      partition) at or before the last applied one: ``REDELIVERED``, the stream is
      replaying what was not committed before a crash (no-op, never a dead letter);
    * same open time as one already held, same values: ``DUPLICATE`` (idempotent no-op);
    * same open time, other values: ``CandleError('conflicting_duplicate')``;
    * older than the newest held: ``CandleError('out_of_order')``;
    * newer than the next expected time: appended, the gap recorded (``GAP``).
    The input window is never modified.
    """
    win = dict(window) if window else empty_window(candle.symbol, timeframe_ms)
    last_offset = win.get("offset")
    if offset is not None and last_offset is not None and offset <= int(last_offset):
        return win, Outcome.REDELIVERED
    candles: list[list[float]] = list(win.get("candles", []))
    bar = candle.bar
    row = [bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume]
    outcome = Outcome.APPENDED
    if candles:
        last_ts = int(candles[-1][0])
        if bar.ts <= last_ts:
            held = next((c for c in reversed(candles) if int(c[0]) == bar.ts), None)
            if held is not None:
                if [float(x) for x in held[1:]] == row[1:]:
                    return win, Outcome.DUPLICATE
                raise CandleError(
                    "conflicting_duplicate",
                    f"candle {bar.ts} already held with other values {held[1:]}",
                )
            if bar.ts < last_ts:
                raise CandleError(
                    "out_of_order", f"candle {bar.ts} is older than the newest held {last_ts}"
                )
        expected = last_ts + timeframe_ms
        if bar.ts > expected:
            gaps = list(win.get("gaps", []))
            gaps.append(
                {"after": last_ts, "before": bar.ts, "missing": (bar.ts - expected) // timeframe_ms}
            )
            win["gaps"] = gaps[-MAX_GAPS_KEPT:]
            outcome = Outcome.GAP
    candles.append(row)
    win["candles"] = candles[-size:]
    if offset is not None:
        win["offset"] = offset
    return win, outcome


def window_bars(window: Mapping[str, Any]) -> list[Bar]:
    return [Bar(int(c[0]), *map(float, c[1:6])) for c in window.get("candles", [])]


def candle_from_message(
    key: bytes | str | None,
    value: bytes | str | Mapping[str, Any],
    supported: Iterable[str],
    timeframe_ms: int,
) -> ValidCandle:
    """Decode and validate one ``market_data`` message; the key must be its symbol.

    Raises ``CandleError`` with a machine-readable code and a reason for people.
    """
    candle = validate_candle(decode_candle(value), supported, timeframe_ms)
    key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if key_text != candle.symbol:
        raise CandleError(
            "key_mismatch",
            f"message key {key_text!r} is not the candle's normalized symbol {candle.symbol!r}"
            " (producers must key market_data by the normalized symbol)",
        )
    return candle


def bar_to_dict(symbol: str, bar: Bar, timeframe: str, source: str) -> dict[str, Any]:
    """The JSON shape of a Candle record (models.records.Candle)."""
    return {
        "symbol": symbol,
        "timestamp": bar.ts,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "timeframe": timeframe,
        "source": source,
    }


def window_json(window: Mapping[str, Any]) -> dict[str, Any]:
    """The window as shown by the web view ``GET /windows/{symbol}``."""
    names = ("timestamp", "open", "high", "low", "close", "volume")
    candles = [dict(zip(names, row, strict=True)) for row in window.get("candles", [])]
    return {
        "symbol": window.get("symbol"),
        "timeframe_ms": window.get("timeframe_ms"),
        "size": len(candles),
        "first": candles[0]["timestamp"] if candles else None,
        "last": candles[-1]["timestamp"] if candles else None,
        "candles": candles,
        "gaps": list(window.get("gaps", [])),
    }
