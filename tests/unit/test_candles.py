import json
import math

import pytest

from tests.fakes.bad_messages import MAX_BYTES, NOW_MS, TEMPLATE, Y2100_MS, BadMessage, bad_messages
from tinhieu.candles import (
    Bar,
    CandleError,
    Outcome,
    ValidCandle,
    apply_candle,
    candle_from_message,
    validate_candle,
)

SYMS = ("BTC/USDT", "ETH/USDT")
TF = 60_000
T0 = 1_617_321_600_000


def raw(**over: object) -> dict:
    base = {
        "symbol": "BTC/USDT",
        "timestamp": T0,
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": 100.5,
        "volume": 3.0,
    }
    base.update(over)
    return base


def vc(i: int, close: float = 100.0, symbol: str = "BTC/USDT") -> ValidCandle:
    return ValidCandle(symbol, Bar(T0 + i * TF, close, close + 1, close - 1, close, 1.0))


def test_valid_candle_is_normalized() -> None:
    c = validate_candle(raw(symbol="btcusdt"), SYMS, TF)
    assert c.symbol == "BTC/USDT"
    assert c.bar == Bar(T0, 100.0, 101.0, 99.0, 100.5, 3.0)


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"close": math.nan}, "non_finite"),
        ({"open": math.inf}, "non_finite"),
        ({"close": -1.0}, "invalid_price"),
        ({"low": 0.0}, "invalid_price"),
        ({"high": 100.2}, "invalid_range"),
        ({"low": 100.4}, "invalid_range"),
        ({"volume": -0.1}, "invalid_volume"),
        ({"symbol": "DOGE"}, "unknown_symbol"),
        ({"timestamp": T0 + 1}, "misaligned_time"),
        ({"timestamp": "soon"}, "invalid_type"),
        ({"timestamp": True}, "invalid_type"),
        ({"close": "abc"}, "invalid_type"),
        ({"volume": None}, "missing_field"),
    ],
)
def test_invalid_candles_name_their_problem(over: dict, code: str) -> None:
    with pytest.raises(CandleError) as err:
        validate_candle(raw(**over), SYMS, TF)
    assert err.value.code == code
    assert err.value.reason


def test_missing_fields_are_listed() -> None:
    d = raw()
    del d["high"], d["close"]
    with pytest.raises(CandleError) as err:
        validate_candle(d, SYMS, TF)
    assert "high" in err.value.reason and "close" in err.value.reason


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"not json", b"[1,2,3]", b""])
def test_undecodable_bytes(payload: bytes) -> None:
    with pytest.raises(CandleError) as err:
        candle_from_message(b"BTC/USDT", payload, SYMS, TF)
    assert err.value.code == "decode_error"


def test_key_must_be_the_normalized_symbol() -> None:
    with pytest.raises(CandleError) as err:
        candle_from_message(b"ETH/USDT", json.dumps(raw()).encode(), SYMS, TF)
    assert err.value.code == "key_mismatch"


def test_window_keeps_the_last_n() -> None:
    window = None
    for i in range(70):
        window, outcome = apply_candle(window, vc(i, 100 + i), 60, TF)
        assert outcome is Outcome.APPENDED
    assert window is not None
    assert len(window["candles"]) == 60
    assert window["candles"][0][0] == T0 + 10 * TF
    assert window["candles"][-1][0] == T0 + 69 * TF


def test_resent_candle_is_idempotent_and_input_untouched() -> None:
    window, _ = apply_candle(None, vc(0), 60, TF)
    snapshot = json.dumps(window)
    again, outcome = apply_candle(window, vc(0), 60, TF)
    assert outcome is Outcome.DUPLICATE
    assert again == window
    assert json.dumps(window) == snapshot


def test_conflicting_duplicate_and_out_of_order_are_refused() -> None:
    window = None
    for i in range(3):
        window, _ = apply_candle(window, vc(i), 60, TF)
    with pytest.raises(CandleError) as err:
        apply_candle(window, vc(1, close=555.0), 60, TF)
    assert err.value.code == "conflicting_duplicate"
    window_older = window
    with pytest.raises(CandleError) as err:
        apply_candle(window_older, ValidCandle("BTC/USDT", Bar(T0 - TF, 1, 2, 0.5, 1, 1)), 60, TF)
    assert err.value.code == "out_of_order"


def test_gap_is_recorded_never_filled() -> None:
    window, _ = apply_candle(None, vc(0), 60, TF)
    window, outcome = apply_candle(window, vc(151), 60, TF)
    assert outcome is Outcome.GAP
    assert [c[0] for c in window["candles"]] == [T0, T0 + 151 * TF]
    assert window["gaps"] == [{"after": T0, "before": T0 + 151 * TF, "missing": 150}]


def test_redelivered_offsets_are_recognised_even_beyond_the_window() -> None:
    window = None
    for i in range(100):
        window, _ = apply_candle(window, vc(i, 100 + i), 60, TF, offset=1000 + i)
    # After a crash the stream re-delivers offsets already applied, older than the window.
    again, outcome = apply_candle(window, vc(5, 105), 60, TF, offset=1005)
    assert outcome is Outcome.REDELIVERED and again == window
    # A new message with an old candle is a real out-of-order candle.
    with pytest.raises(CandleError) as err:
        apply_candle(window, vc(5, 105), 60, TF, offset=2000)
    assert err.value.code == "out_of_order"


# --- the bad-message corpus (tests/fakes/bad_messages.py) -------------------------------

CORPUS = bad_messages()


def held_window(template: dict) -> dict:
    """A window of 100 real-looking candles ending with ``template``."""
    last = candle_from_message(b"BTC/USDT", json.dumps(template).encode(), SYMS, TF)
    window = None
    for i in range(99, 0, -1):
        bar = last.bar._replace(ts=last.bar.ts - i * TF)
        window, _ = apply_candle(window, ValidCandle(last.symbol, bar), 100, TF)
    window, _ = apply_candle(window, last, 100, TF)
    return window


def test_corpus_is_broad_and_named_once() -> None:
    names = [m.name for m in CORPUS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert len({m.code for m in CORPUS}) >= 15


def test_the_template_itself_is_valid() -> None:
    candle = candle_from_message(
        b"BTC/USDT",
        json.dumps(TEMPLATE).encode(),
        SYMS,
        TF,
        now_ms=NOW_MS,
        future_tolerance_ms=2 * TF,
        max_bytes=MAX_BYTES,
    )
    assert candle.bar.ts == TEMPLATE["timestamp"] and candle.bar.close == TEMPLATE["close"]


@pytest.mark.parametrize("msg", CORPUS, ids=[m.name for m in CORPUS])
def test_every_bad_message_gets_its_code(msg: BadMessage) -> None:
    kwargs = {"now_ms": NOW_MS, "future_tolerance_ms": 2 * TF, "max_bytes": MAX_BYTES}
    if msg.window:
        candle = candle_from_message(msg.key, msg.value, SYMS, TF, **kwargs)
        with pytest.raises(CandleError) as err:
            apply_candle(held_window(TEMPLATE), candle, 100, TF, offset=10_000)
    else:
        with pytest.raises(CandleError) as err:
            candle_from_message(msg.key, msg.value, SYMS, TF, **kwargs)
    assert err.value.code == msg.code, err.value.reason
    assert err.value.reason and len(err.value.reason) < 600


def test_a_refused_future_candle_does_not_block_the_symbol() -> None:
    window = held_window(TEMPLATE)
    future = next(m for m in CORPUS if m.name == "far_future_2100")
    with pytest.raises(CandleError):
        candle_from_message(future.key, future.value, SYMS, TF, now_ms=NOW_MS)
    nxt = json.dumps({**TEMPLATE, "timestamp": TEMPLATE["timestamp"] + TF}).encode()
    candle = candle_from_message(b"BTC/USDT", nxt, SYMS, TF, now_ms=NOW_MS)
    _, outcome = apply_candle(window, candle, 100, TF)
    assert outcome is Outcome.APPENDED


def test_future_tolerance_is_inclusive_and_off_without_a_clock() -> None:
    now = TEMPLATE["timestamp"]
    ahead = json.dumps({**TEMPLATE, "timestamp": now + 2 * TF}).encode()
    candle_from_message(b"BTC/USDT", ahead, SYMS, TF, now_ms=now, future_tolerance_ms=2 * TF)
    with pytest.raises(CandleError) as err:
        candle_from_message(b"BTC/USDT", ahead, SYMS, TF, now_ms=now, future_tolerance_ms=TF)
    assert err.value.code == "future_time" and "2100" not in err.value.reason
    with pytest.raises(CandleError):
        candle_from_message(b"BTC/USDT", ahead, SYMS, TF, now_ms=now)  # tolerance 0
    far = json.dumps({**TEMPLATE, "timestamp": Y2100_MS}).encode()
    assert candle_from_message(b"BTC/USDT", far, SYMS, TF).bar.ts == Y2100_MS


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 100_000,
    ],
    ids=["object_100000_deep", "list_100000_deep", "unclosed_100000_deep"],
)
def test_deep_nesting_without_a_size_limit_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(CandleError) as err:
        candle_from_message(b"BTC/USDT", payload, SYMS, TF)
    assert err.value.code == "decode_error"


@pytest.mark.parametrize("as_text", [False, True], ids=["bytes", "str"])
def test_a_50_mb_payload_is_refused_before_decoding(as_text: bool) -> None:
    payload = b'{"symbol": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    value = payload.decode() if as_text else payload
    with pytest.raises(CandleError) as err:
        candle_from_message(b"BTC/USDT", value, SYMS, TF, max_bytes=MAX_BYTES)
    assert err.value.code == "too_large"
    assert str(len(payload)) in err.value.reason and "TINHIEU_MAX_MESSAGE_BYTES" in err.value.reason


def test_size_limit_counts_utf8_bytes_of_text() -> None:
    text = json.dumps({**TEMPLATE, "source": "é" * 600}, ensure_ascii=False)  # é: 2 bytes
    assert len(text) < 1024 < len(text.encode())
    with pytest.raises(CandleError) as err:
        candle_from_message(b"BTC/USDT", text, SYMS, TF, max_bytes=1024)
    assert err.value.code == "too_large"


@pytest.mark.parametrize(
    ("over", "ok"),
    [
        ({"open": "58202.01"}, True),
        ({"volume": "0"}, True),
        ({"close": "5.824979e4"}, True),
        ({"timestamp": float(TEMPLATE["timestamp"])}, True),
        ({"extra": {"nested": [1, 2]}, "source": None}, True),
        ({"open": " 58202.01"}, False),
        ({"open": "+58202.01"}, False),
        ({"open": "٥٨٢٠٢"}, False),  # Arabic-Indic digits: float() takes them, we do not
        ({"open": "Infinity"}, False),
        ({"open": "0x10"}, False),
        ({"timeframe": "1M"}, False),
    ],
)
def test_numbers_as_strings_and_extra_fields(over: dict, ok: bool) -> None:
    value = json.dumps({**TEMPLATE, **over}).encode()
    if ok:
        assert candle_from_message(b"BTC/USDT", value, SYMS, TF).symbol == "BTC/USDT"
    else:
        with pytest.raises(CandleError):
            candle_from_message(b"BTC/USDT", value, SYMS, TF)


def test_str_key_and_mapping_value_are_accepted() -> None:
    assert candle_from_message("BTC/USDT", dict(TEMPLATE), SYMS, TF).bar.ts == TEMPLATE["timestamp"]


def test_errors_name_the_input_and_the_fix() -> None:
    cases = {
        "timestamp_in_seconds": "looks like seconds",
        "far_future_2100": "2100-01-01",
        "null_key": "key",
        "utf8_bom": "byte order mark",
        "huge_payload": "max_message_bytes",
        "duplicate_field_conflicting": "'close'",
    }
    by_name = {m.name: m for m in CORPUS}
    for name, text in cases.items():
        msg = by_name[name]
        with pytest.raises(CandleError) as err:
            candle_from_message(msg.key, msg.value, SYMS, TF, now_ms=NOW_MS, max_bytes=MAX_BYTES)
        assert text in err.value.reason, (name, err.value.reason)
