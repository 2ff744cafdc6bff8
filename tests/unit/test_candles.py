import json
import math

import pytest

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
