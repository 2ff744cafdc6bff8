"""A corpus of bad ``market_data`` messages, each with the dead-letter code it must get.

Every entry is built from a real, valid candle (``TEMPLATE`` is BTC/USDT 2021-04-05 00:00
from ``../shared/data``; the integration test passes the candle it has just produced) by
changing one thing, so that the code an entry gets is caused by that one thing.

``window=True`` entries are valid candles that the window refuses (``apply_candle``): they
only get their code once ``template`` is the newest candle held for its symbol.
``future_time`` entries need the consumer's clock (``now_ms``) to be given.

The byte sizes assume ``max_message_bytes`` at its default (65 536): the huge entries are
larger, every other entry is far smaller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TF = 60_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")
MAX_BYTES = 65_536
NOW_MS = 1_735_689_600_000  # 2025-01-01T00:00Z: a fixed clock for unit tests

TEMPLATE: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "timestamp": 1_617_580_800_000,  # 2021-04-05T00:00Z
    "open": 58202.01,
    "high": 58263.26,
    "low": 58196.46,
    "close": 58249.79,
    "volume": 41.659033,
    "timeframe": "1m",
    "source": "test",
}

Y2100_MS = 4_102_444_800_000  # 2100-01-01T00:00Z, aligned to every timeframe
Y2015_MS = 1_420_070_400_000  # 2015-01-01T00:00Z
Y3000_MS = 32_503_680_000_000  # 3000-01-01T00:00Z, the first refused open time
BEFORE_2009_MS = 1_230_767_940_000  # 2008-12-31T23:59Z


@dataclass(frozen=True)
class BadMessage:
    """One bad message: raw key and value as a producer would write them."""

    name: str
    key: bytes | None
    value: bytes | None
    code: str
    window: bool = False  # refused by apply_candle, not by candle_from_message


def _dumps(d: Mapping[str, Any]) -> bytes:
    return json.dumps(d).encode()


def bad_messages(template: Mapping[str, Any] = TEMPLATE, now_ms: int = NOW_MS) -> list[BadMessage]:
    """Every kind of bad message, built from the valid candle ``template``.

    ``now_ms`` is the clock the consumer will use: the near-future entry lies one hour
    after it.
    """
    t = dict(template)
    sym = str(t["symbol"])
    key = sym.encode()
    ts = int(t["timestamp"])
    other = next(s for s in SYMBOLS if s != sym)
    text = _dumps(t).decode()

    def with_(**changes: Any) -> bytes:
        return _dumps({**t, **changes})

    def without(*names: str) -> bytes:
        return _dumps({k: v for k, v in t.items() if k not in names})

    def raw_field(name: str, literal: str) -> bytes:
        """The template with one field's value replaced by a literal JSON text."""
        marker = "__RAW__"
        return with_(**{name: marker}).replace(f'"{marker}"'.encode(), literal.encode())

    deep_levels = 100_000
    near_future = (now_ms // TF + 60) * TF
    m = BadMessage
    return [
        # --- not a JSON object -------------------------------------------------------
        m("tombstone", key, None, "decode_error"),
        m("empty", key, b"", "decode_error"),
        m("whitespace_only", key, b" \r\n\t ", "decode_error"),
        m("not_json", key, b"candle BTC/USDT 58202.01", "decode_error"),
        m("truncated_json", key, _dumps(t)[:-7], "decode_error"),
        m("invalid_utf8", key, _dumps(t).replace(b"test", b"t\xffst"), "decode_error"),
        m("binary_garbage", key, b"\x00\xff\xfe\x80not json", "decode_error"),
        m("utf8_bom", key, b"\xef\xbb\xbf" + _dumps(t), "decode_error"),
        m("utf16", key, text.encode("utf-16"), "decode_error"),
        m("json_list", key, json.dumps(list(t.values())).encode(), "decode_error"),
        m("json_number", key, b"58202.01", "decode_error"),
        m("json_string", key, json.dumps(text).encode(), "decode_error"),
        m("json_null", key, b"null", "decode_error"),
        m("json_single_quotes", key, text.replace('"', "'").encode(), "decode_error"),
        m("deep_nesting_in_limit", key, b"[" * 30_000 + b"]" * 30_000, "decode_error"),
        m("int_of_5000_digits", key, raw_field("close", "9" * 5000), "decode_error"),
        # --- size ----------------------------------------------------------------------
        m(
            "deep_nesting_100000",
            key,
            b'{"a":' * deep_levels + b"1" + b"}" * deep_levels,
            "too_large",
        ),
        m("huge_payload", key, with_(padding="x" * (MAX_BYTES + 1)), "too_large"),
        # --- fields ----------------------------------------------------------------------
        m(
            "duplicate_field_conflicting",
            key,
            raw_field("close", '1.0, "close": 2.0'),
            "duplicate_field",
        ),
        m("missing_close", key, without("close"), "missing_field"),
        m("null_volume", key, with_(volume=None), "missing_field"),
        m("symbol_not_text", key, with_(symbol=["BTC", "USDT"]), "invalid_type"),
        m("unknown_symbol", b"DOGE/USDT", with_(symbol="DOGE/USDT"), "unknown_symbol"),
        m("wrong_timeframe", key, with_(timeframe="5m"), "wrong_timeframe"),
        m("timeframe_not_text", key, with_(timeframe=1), "invalid_type"),
        # --- numbers ---------------------------------------------------------------------
        m("nan_literal", key, raw_field("close", "NaN"), "non_finite"),
        m("infinity_literal", key, raw_field("high", "Infinity"), "non_finite"),
        m("overflow_1e309", key, raw_field("high", "1e309"), "non_finite"),
        m("overflow_int_10_pow_400", key, raw_field("volume", "1" + "0" * 400), "non_finite"),
        m("nan_string", key, with_(close="NaN"), "invalid_type"),
        m("bool_price", key, with_(open=True), "invalid_type"),
        m("non_decimal_string_price", key, with_(close="58_249.79"), "invalid_type"),
        m("list_price", key, with_(close=[58249.79]), "invalid_type"),
        m("negative_price", key, with_(low=-1.0), "invalid_price"),
        m("zero_price", key, with_(open=0), "invalid_price"),
        m("absurd_price", key, with_(high=1e300), "invalid_price"),
        m("high_below_low", key, with_(high=t["low"], low=t["high"]), "invalid_range"),
        m("close_above_high", key, with_(close=float(t["high"]) * 1.01), "invalid_range"),
        m("negative_volume", key, with_(volume=-0.5), "invalid_volume"),
        # --- time ------------------------------------------------------------------------
        m("bool_timestamp", key, with_(timestamp=False), "invalid_type"),
        m("string_timestamp", key, with_(timestamp=str(ts)), "invalid_type"),
        m("fractional_timestamp", key, with_(timestamp=ts + 0.5), "invalid_type"),
        m("negative_timestamp", key, with_(timestamp=-ts), "invalid_time"),
        m("timestamp_in_seconds", key, with_(timestamp=ts // 1000), "invalid_time"),
        m("timestamp_in_microseconds", key, with_(timestamp=ts * 1000), "invalid_time"),
        m("before_2009", key, with_(timestamp=BEFORE_2009_MS), "invalid_time"),
        m("year_3000", key, with_(timestamp=Y3000_MS), "invalid_time"),
        m("beyond_int64", key, with_(timestamp=2**63 + TF), "invalid_time"),
        m("misaligned", key, with_(timestamp=ts + 7), "misaligned_time"),
        m("far_future_2100", key, with_(timestamp=Y2100_MS), "future_time"),
        m("next_hour", key, with_(timestamp=near_future), "future_time"),
        # --- key -------------------------------------------------------------------------
        m("null_key", None, _dumps(t), "missing_key"),
        m("empty_key", b"", _dumps(t), "missing_key"),
        m("other_symbol_key", other.encode(), _dumps(t), "key_mismatch"),
        m("unnormalized_key", sym.replace("/", "").lower().encode(), _dumps(t), "key_mismatch"),
        m("unknown_symbol_key", b"DOGE/USDT", _dumps(t), "key_mismatch"),
        m("non_utf8_key", b"BTC/\xff\xfe", _dumps(t), "key_mismatch"),
        # --- the window (template must be the newest candle held) ---------------------
        m(
            "conflicting_duplicate",
            key,
            with_(volume=float(t["volume"]) * 2 + 1),
            "conflicting_duplicate",
            window=True,
        ),
        m("out_of_order", key, with_(timestamp=ts - 10_000 * TF), "out_of_order", window=True),
        m("far_past_2015", key, with_(timestamp=Y2015_MS), "out_of_order", window=True),
    ]
