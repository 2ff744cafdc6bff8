"""Risk rules of tinhieu.broker on hand-made candles."""

from __future__ import annotations

import copy
import json

import pytest

from models.records import Order
from tinhieu.broker import (
    BrokerError,
    Fill,
    RiskConfig,
    SignalIn,
    new_state,
    order_id,
    signal_from_record,
    step,
)
from tinhieu.candles import Bar
from tinhieu.settings import load_settings

SYM = "BTC/USDT"
MIN = 60_000
CFG = RiskConfig()


def bar(i: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar(i * MIN, o, h, lo, c, 1.0)


def sig(i: int, action: str = "NEUTRAL", conf: float = 0.9, version: str = "v1") -> SignalIn:
    return SignalIn(SYM, i * MIN, action, conf, version)


def run(pairs, cfg=CFG, state=None):
    state = state or new_state(SYM, cfg)
    fills: list[Fill] = []
    for b, s in pairs:
        state, f = step(state, b, s, cfg)
        fills.extend(f)
    return state, fills


def enter(cfg=CFG, entry_open: float = 100.0):
    """BUY signal on candle 0, filled at candle 1's open (flat candle)."""
    return run(
        [
            (bar(0, 99, 99.5, 98.5, 99), sig(0, "BUY")),
            (bar(1, entry_open, entry_open, entry_open, entry_open), sig(1)),
        ],
        cfg,
    )


def test_buy_fills_next_open_with_levels_and_commission():
    state, fills = enter()
    assert len(fills) == 1
    f = fills[0]
    assert (f.side, f.reason, f.price) == ("BUY", "signal", 100.0)
    assert (f.fill_time, f.candle_time) == (MIN, 0)
    assert f.amount == pytest.approx(10_000 * 0.95 / 100.0)
    assert f.fee == pytest.approx(9_500 * 0.001)  # 0.1 % of the notional
    assert f.cash_after == pytest.approx(10_000 - 9_500 - 9.5)
    assert f.stop_loss == pytest.approx(98.0) and f.take_profit == pytest.approx(105.0)
    assert state["qty"] == f.amount and state["fees_paid"] == pytest.approx(9.5)


def test_take_profit_inside_candle_fills_at_level_and_pnl_is_net_of_fees():
    state, _ = enter()
    state, fills = step(state, bar(2, 101, 106, 100.5, 104), sig(2), CFG)
    (f,) = fills
    assert (f.side, f.reason, f.price) == ("SELL", "take_profit", pytest.approx(105.0))
    qty = 95.0
    sell_fee = qty * 105.0 * 0.001
    assert f.fee == pytest.approx(sell_fee)
    assert f.pnl == pytest.approx((105 - 100) * qty - 9.5 - sell_fee)
    assert f.cash_after == pytest.approx(500 - 9.5 + qty * 105 - sell_fee)
    assert state["qty"] == 0 and state["realized_pnl"] == pytest.approx(f.pnl)
    assert state["n_wins"] == 1 and state["n_round_trips"] == 1


def test_gap_through_stop_fills_at_open_not_at_stop():
    state, _ = enter()
    _, fills = step(state, bar(2, 95, 96, 94, 95.5), sig(2), CFG)
    (f,) = fills
    assert (f.reason, f.price) == ("stop_loss", 95.0)
    assert f.pnl < (98 - 100) * 95.0  # worse than the stop level: the gap costs


def test_gap_over_take_profit_fills_at_open():
    state, _ = enter()
    _, fills = step(state, bar(2, 107, 108, 106, 107), sig(2), CFG)
    assert [(f.reason, f.price) for f in fills] == [("take_profit", 107.0)]


def test_both_levels_inside_one_candle_take_the_stop():
    state, _ = enter()
    _, fills = step(state, bar(2, 100, 106, 97, 101), sig(2), CFG)
    assert [(f.reason, f.price) for f in fills] == [("stop_loss", pytest.approx(98.0))]


def test_stop_can_hit_on_the_entry_candle():
    state, fills = run(
        [(bar(0, 99, 99, 99, 99), sig(0, "BUY")), (bar(1, 100, 100.5, 97.0, 97.5), sig(1))]
    )
    assert [(f.side, f.reason) for f in fills] == [("BUY", "signal"), ("SELL", "stop_loss")]
    assert fills[1].price == pytest.approx(98.0) and state["qty"] == 0


@pytest.mark.parametrize(("conf", "orders"), [(0.6 - 1e-9, 0), (0.6, 1), (0.61, 1)])
def test_confidence_threshold(conf, orders):
    _, fills = run(
        [(bar(0, 99, 99, 99, 99), sig(0, "BUY", conf)), (bar(1, 100, 100, 100, 100), sig(1))]
    )
    assert len(fills) == orders


def test_sell_signal_exits_at_next_open_and_sell_without_position_does_nothing():
    _, fills = run([(bar(0, 99, 99, 99, 99), sig(0, "SELL")), (bar(1, 100, 100, 100, 100), None)])
    assert fills == []
    state, _ = enter()
    state, fills = step(state, bar(2, 101, 102, 100, 101), sig(2, "SELL", 0.7, "v2"), CFG)
    assert fills == [] and state["pending"]["side"] == "SELL"
    state, fills = step(state, bar(3, 103, 103, 99, 100), sig(3), CFG)
    (f,) = fills
    assert (f.side, f.reason, f.price, f.candle_time, f.model_version) == (
        "SELL",
        "signal",
        103.0,
        2 * MIN,
        "v2",
    )
    assert state["qty"] == 0


def test_buy_while_in_position_or_pending_is_ignored():
    state, fills = run(
        [
            (bar(0, 99, 99, 99, 99), sig(0, "BUY")),
            (bar(1, 100, 100, 100, 100), sig(1, "BUY")),
            (bar(2, 100, 100, 100, 100), sig(2, "BUY")),
        ]
    )
    assert len(fills) == 1 and state["pending"] is None


def test_duplicate_signal_places_no_second_order():
    s0 = new_state(SYM, CFG)
    s1, f1 = step(s0, bar(0, 99, 99, 99, 99), sig(0, "BUY"), CFG)
    again, f_again = step(s1, bar(0, 99, 99, 99, 99), sig(0, "BUY"), CFG)
    assert f1 == [] and f_again == [] and again is s1
    s2, f2 = step(s1, bar(1, 100, 100, 100, 100), sig(1), CFG)
    assert len(f2) == 1
    # the fill candle re-delivered (crash after the fill, before the commit): no second BUY
    s3, f3 = step(s2, bar(1, 100, 100, 100, 100), sig(1), CFG)
    assert f3 == [] and s3 == s2
    # an older candle re-delivered does not touch the book either
    s4, f4 = step(s2, bar(0, 99, 99, 99, 99), sig(0, "BUY"), CFG)
    assert f4 == [] and s4 is s2


def test_step_never_mutates_its_input():
    state, _ = enter()
    state = {**state, "pending": None}
    frozen = copy.deepcopy(state)
    step(state, bar(2, 95, 96, 94, 95), sig(2, "BUY"), CFG)
    assert state == frozen


def test_state_json_round_trip_mid_position_keeps_stop_and_take_profit():
    state, (entry,) = enter()
    restored = json.loads(json.dumps(state))
    assert restored == state
    _, fills = step(restored, bar(2, 99, 99.5, 97.5, 98), sig(2), CFG)
    (f,) = fills
    assert (f.reason, f.price) == ("stop_loss", pytest.approx(entry.stop_loss))
    # the exit's id derives from the entry's signal: same id whatever path computed it
    assert f.id == order_id(SYM, 0, "v1", "SELL", "stop_loss")


def test_order_ids_are_deterministic_and_distinct():
    _, a = enter()
    _, b = enter()
    assert a[0].id == b[0].id == order_id(SYM, 0, "v1", "BUY", "signal")
    ids = {
        order_id(SYM, 0, "v1", "BUY", "signal"),
        order_id(SYM, 0, "v2", "BUY", "signal"),
        order_id(SYM, MIN, "v1", "BUY", "signal"),
        order_id(SYM, 0, "v1", "SELL", "stop_loss"),
        order_id("ETH/USDT", 0, "v1", "BUY", "signal"),
    }
    assert len(ids) == 5


def test_full_size_never_makes_cash_negative():
    cfg = RiskConfig(position_size_pct=100.0, commission_pct=0.1)
    state, (f,) = enter(cfg)
    assert f.cash_after >= 0.0
    assert f.amount * f.price + f.fee == pytest.approx(10_000.0)


def test_fill_to_dict_matches_order_record_fields():
    _, (f,) = enter()
    d = f.to_dict()
    assert list(d) == list(Order._options.fields)
    assert Order(**d).id == f.id


def test_wrong_inputs_are_refused_with_a_clear_message():
    state = new_state(SYM, CFG)
    with pytest.raises(BrokerError, match="candle 60000"):
        step(state, bar(0, 1, 1, 1, 1), sig(1, "BUY"), CFG)
    with pytest.raises(BrokerError, match="HOLD"):
        step(state, bar(0, 1, 1, 1, 1), sig(0, "HOLD"), CFG)
    with pytest.raises(BrokerError, match="position_size_pct"):
        RiskConfig(position_size_pct=0)
    with pytest.raises(BrokerError, match="short"):
        RiskConfig(long_only=False)


def test_from_settings_and_signal_record():
    cfg = RiskConfig.from_settings(load_settings(stop_loss_pct=3.0, min_confidence=0.7))
    assert (cfg.stop_loss_pct, cfg.min_confidence, cfg.commission_pct) == (3.0, 0.7, 0.1)
    b, s = signal_from_record(
        {
            "symbol": SYM,
            "candle_time": MIN,
            "open": 1,
            "high": 2,
            "low": 0.5,
            "close": 1.5,
            "volume": 3,
            "action": "BUY",
            "confidence": 0.8,
            "model_version": "m",
        }
    )
    assert b == Bar(MIN, 1.0, 2.0, 0.5, 1.5, 3.0) and s == SignalIn(SYM, MIN, "BUY", 0.8, "m")
