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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from tinhieu.settings import TIMEFRAME_MS
from tinhieu.symbols import UnknownSymbolError, normalize

REQUIRED_FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
MAX_GAPS_KEPT = 50

# Open times every candle must lie in, whatever the clock says. Nothing traded as a crypto
# asset before 2009-01-01 (Bitcoin's first block is 2009-01-03), and a time after 3000-01-01
# is a wrong unit or a corrupt value. Inside these bounds an old candle is harmless data (a
# fresh symbol may start with 2010 history); one older than a window's newest candle is
# refused by ``apply_candle`` as ``out_of_order``. The future is bounded by the clock
# (``now_ms``) where there is one: see ``validate_candle``.
MIN_OPEN_MS = 1_230_768_000_000  # 2009-01-01T00:00:00Z
MAX_OPEN_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
# No real price or per-candle volume comes near this; it keeps squares and sums in the
# feature maths finite (1e18 squared is 1e36, far from float overflow at 1.8e308).
MAX_VALUE = 1e18
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")  # JSON number, ASCII only
_BOM = b"\xef\xbb\xbf"


class Bar(NamedTuple):
    """One candle: open time (ms UTC) and OHLCV."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleError(ValueError):
    """A candle that must not enter a window. ``code`` is machine-readable.

    Codes of ``candle_from_message`` (each becomes a dead letter with that code):

    ``too_large``
        the raw value is longer than ``max_bytes`` (checked before any decoding).
    ``decode_error``
        no value (tombstone), empty or blank, not UTF-8, a UTF-8 byte order mark, not JSON
        (also NaN-free syntax errors, numbers of more than 4300 digits, nesting too deep for
        the parser), or JSON that is not an object.
    ``duplicate_field``
        the same field twice in one object: readers disagree on which one counts.
    ``missing_field``
        a required field is absent or null.
    ``invalid_type``
        symbol not text; timestamp not an integer number of ms (strings, booleans and
        fractions are refused); a price or volume that is a boolean, a list, an object or
        a string that is not a plain decimal number (``"123.4"`` is accepted: exchanges
        send prices as strings); ``timeframe`` not text.
    ``non_finite``
        NaN, Infinity, or a number too large for a float (``1e309``).
    ``unknown_symbol``
        the candle's symbol is not a supported one.
    ``wrong_timeframe``
        the optional ``timeframe`` field names another timeframe than the app's.
    ``invalid_time``
        open time before 2009-01-01 or from 3000-01-01 on (often seconds or microseconds
        instead of milliseconds).
    ``misaligned_time``
        open time not a multiple of the timeframe.
    ``future_time``
        open time more than the tolerance after ``now_ms``.
    ``invalid_price`` / ``invalid_volume`` / ``invalid_range``
        price not positive or above 1e18, volume negative or above 1e18, high/low not
        enclosing open and close.
    ``missing_key`` / ``key_mismatch``
        the message has no key, or its key is not the candle's normalized symbol as UTF-8.

    ``apply_candle`` adds ``conflicting_duplicate`` and ``out_of_order``. Fields other than
    the required ones and ``timeframe`` are ignored (``source``, or what a newer producer
    adds): they cannot change the window.
    """

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ValidCandle:
    symbol: str
    bar: Bar


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text)} chars)"


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return "out of calendar range"


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise CandleError(
                "duplicate_field",
                f"field {_short(name)} appears twice ({_short(obj[name])} and {_short(value)}); "
                "send each field once",
            )
        obj[name] = value
    return obj


def decode_candle(
    raw: bytes | str | Mapping[str, Any] | None, *, max_bytes: int | None = None
) -> dict[str, Any]:
    """Bytes or text of one JSON object -> dict; raises ``CandleError``.

    ``max_bytes`` bounds the size of ``raw`` before anything is decoded (``too_large``).
    Every failure of the JSON parser, ``RecursionError`` included, is ``decode_error``;
    nothing else escapes. A mapping is taken as already decoded.
    """
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None:
        raise CandleError(
            "decode_error",
            "the message has no value (null or tombstone); market_data messages carry one "
            "candle as a JSON object",
        )
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, (bytes, str)):
        raise CandleError("decode_error", f"expected bytes or text, got {type(raw).__name__}")
    if max_bytes is not None:
        # A str is at least one byte per character: only encode it when that could fit.
        size = len(raw) if isinstance(raw, bytes) or len(raw) > max_bytes else len(raw.encode())
        if size > max_bytes:
            raise CandleError(
                "too_large",
                f"message of {size} bytes is larger than max_message_bytes={max_bytes}; a "
                "candle is a few hundred bytes: fix the producer, or raise "
                "TINHIEU_MAX_MESSAGE_BYTES if such messages are meant",
            )
    if isinstance(raw, bytes):
        if raw.startswith(_BOM):
            raise CandleError(
                "decode_error",
                "value starts with a UTF-8 byte order mark; producers must write UTF-8 JSON "
                "without BOM (RFC 8259)",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CandleError(
                "decode_error",
                f"value is not UTF-8 text (byte {_short(raw[exc.start : exc.start + 1])} at "
                f"position {exc.start}); producers must write UTF-8 JSON",
            ) from None
    else:
        text = raw
    if not text.strip():
        raise CandleError(
            "decode_error", f"value is empty or blank ({_short(text, 40)}); expected a JSON object"
        )
    try:
        obj = json.loads(text, object_pairs_hook=_unique_fields)
    except CandleError:
        raise
    except RecursionError:
        raise CandleError(
            "decode_error", "JSON nested too deeply to parse; a candle is one flat object"
        ) from None
    except Exception as exc:  # the parser's own errors, and ValueError for 4300+ digits
        raise CandleError("decode_error", f"not JSON: {_clip(str(exc))}") from None
    if not isinstance(obj, dict):
        raise CandleError(
            "decode_error", f"expected a JSON object, got {type(obj).__name__} {_short(obj, 60)}"
        )
    return obj


def _number(d: Mapping[str, Any], name: str) -> float:
    value = d[name]
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)  # never raises for this syntax; 1e999 gives inf
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        raise CandleError(
            "invalid_type",
            f'{name} must be a number (or a decimal string like "123.4"), got {_short(value)}',
        )
    if not math.isfinite(number):
        raise CandleError("non_finite", f"{name} is not a finite number: {_short(value)}")
    return number


def _open_time(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1617321600000.0 is an integer; floats hold ms exactly to 2**53
    if isinstance(value, bool) or not isinstance(value, int):
        raise CandleError(
            "invalid_type", f"timestamp must be integer ms since 1970 UTC, got {_short(value)}"
        )
    if not MIN_OPEN_MS <= value < MAX_OPEN_MS:
        hint = ""
        if MIN_OPEN_MS // 1000 <= value < MAX_OPEN_MS // 1000:
            hint = "; it looks like seconds: send milliseconds"
        elif MIN_OPEN_MS * 1000 <= value < MAX_OPEN_MS * 1000:
            hint = "; it looks like microseconds: send milliseconds"
        raise CandleError(
            "invalid_time",
            f"timestamp {_short(value, 40)} ({_iso(value)}) is outside 2009-01-01..3000-01-01"
            f"{hint}",
        )
    return value


def validate_candle(
    d: Mapping[str, Any],
    supported: Iterable[str],
    timeframe_ms: int,
    *,
    now_ms: int | None = None,
    future_tolerance_ms: int | None = None,
) -> ValidCandle:
    """Check every field of a decoded candle; raise ``CandleError`` with the first problem.

    With ``now_ms`` (the caller's clock), an open time later than ``now_ms`` plus
    ``future_tolerance_ms`` (0 when not given) is ``future_time``: such a candle would make
    every real candle after it ``out_of_order`` until that time comes. Without ``now_ms``
    (backtests, offline files) only the fixed bounds of ``MIN_OPEN_MS``/``MAX_OPEN_MS`` hold.
    See ``CandleError`` for the codes.
    """
    missing = [f for f in REQUIRED_FIELDS if f not in d or d[f] is None]
    if missing:
        raise CandleError("missing_field", f"missing field(s): {', '.join(missing)}")
    if not isinstance(d["symbol"], str):
        raise CandleError("invalid_type", f"symbol must be text, got {_short(d['symbol'])}")
    try:
        symbol = normalize(d["symbol"], supported)
    except UnknownSymbolError as exc:
        raise CandleError(
            "unknown_symbol",
            f"unknown symbol {_short(d['symbol'], 40)}; supported symbols: "
            f"{_clip(', '.join(exc.supported), 200)} (TINHIEU_SYMBOLS)",
        ) from None
    timeframe = d.get("timeframe")
    if timeframe is not None:
        if not isinstance(timeframe, str):
            raise CandleError("invalid_type", f"timeframe must be text, got {_short(timeframe)}")
        if TIMEFRAME_MS.get(timeframe) != timeframe_ms:
            raise CandleError(
                "wrong_timeframe",
                f"a {_short(timeframe, 20)} candle in a {timeframe_ms // 1000}s app; each app "
                "reads one timeframe (TINHIEU_TIMEFRAME)",
            )
    ts = _open_time(d["timestamp"])
    if ts % timeframe_ms:
        raise CandleError(
            "misaligned_time",
            f"timestamp {ts} ({_iso(ts)}) is not aligned to the {timeframe_ms // 1000}s timeframe",
        )
    tolerance = future_tolerance_ms or 0
    if now_ms is not None and ts > now_ms + tolerance:
        raise CandleError(
            "future_time",
            f"open time {ts} ({_iso(ts)}) is {(ts - now_ms) / timeframe_ms:.1f} timeframes "
            f"after now ({_iso(now_ms)}), more than the {tolerance / timeframe_ms:g} allowed "
            "(TINHIEU_FUTURE_TOLERANCE_TIMEFRAMES); check the producer's clock and that "
            "timestamps are ms UTC",
        )
    o, h, low, c, v = (_number(d, f) for f in ("open", "high", "low", "close", "volume"))
    for name, price in (("open", o), ("high", h), ("low", low), ("close", c)):
        if not 0 < price <= MAX_VALUE:
            raise CandleError(
                "invalid_price", f"{name} must be positive and at most {MAX_VALUE:g}, got {price}"
            )
    if not 0 <= v <= MAX_VALUE:
        raise CandleError("invalid_volume", f"volume must be between 0 and {MAX_VALUE:g}, got {v}")
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


def _key_text(key: bytes | str | None) -> str:
    if key is None or key in (b"", ""):
        raise CandleError(
            "missing_key",
            "the message has no key; producers must key market_data by the normalized "
            "symbol (e.g. 'BTC/USDT') so that each symbol stays in one partition",
        )
    if isinstance(key, str):
        return key
    try:
        return bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise CandleError(
            "key_mismatch",
            f"message key {_short(key)} is not UTF-8 text; producers must key market_data "
            "by the normalized symbol (e.g. 'BTC/USDT') as UTF-8",
        ) from None


def candle_from_message(
    key: bytes | str | None,
    value: bytes | str | Mapping[str, Any] | None,
    supported: Iterable[str],
    timeframe_ms: int,
    *,
    now_ms: int | None = None,
    future_tolerance_ms: int | None = None,
    max_bytes: int | None = None,
) -> ValidCandle:
    """Decode and validate one ``market_data`` message; the key must be its symbol.

    Parameters
    ----------
    key, value
        The message's raw key and value (a mapping is taken as already decoded).
    supported, timeframe_ms
        The app's symbols and timeframe.
    now_ms, future_tolerance_ms
        The caller's clock and how far after it an open time may lie (``future_time``);
        no future check without ``now_ms``.
    max_bytes
        Largest value decoded at all (``too_large``, checked on the raw bytes first).

    Raises
    ------
    CandleError
        With a machine-readable ``code`` (listed on ``CandleError``) and a reason for
        people. Nothing else escapes, whatever the bytes.
    """
    decoded = decode_candle(value, max_bytes=max_bytes)
    candle = validate_candle(
        decoded, supported, timeframe_ms, now_ms=now_ms, future_tolerance_ms=future_tolerance_ms
    )
    key_text = _key_text(key)
    if key_text != candle.symbol:
        raise CandleError(
            "key_mismatch",
            f"message key {_short(key_text)} is not the candle's normalized symbol "
            f"{candle.symbol!r} (producers must key market_data by the normalized symbol)",
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
