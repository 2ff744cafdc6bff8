"""Labels: fee-aware threshold, horizon, unlabelled tail, gap detection."""

from __future__ import annotations

import numpy as np
import pytest

from tinhieu.labels import (
    effective_threshold_pct,
    make_labels,
    previous_move_labels,
    spans_gap,
)


def test_threshold_is_never_below_the_round_trip_fee() -> None:
    assert effective_threshold_pct(0.05, 0.1) == pytest.approx(0.2)
    assert effective_threshold_pct(0.5, 0.1) == pytest.approx(0.5)
    # a 0.15% move is below 2 x 0.1% fee: NEUTRAL although threshold_pct asks for 0.05%
    close = np.array([100.0, 100.15, 100.0, 99.85, 100.0])
    assert list(make_labels(close, 1, 0.05, 0.1)[:-1]) == [0, 0, 0, 0]
    assert list(make_labels(close, 1, 0.05, 0.0)[:-1]) == [1, -1, -1, 1]


def test_horizon_and_unlabelled_tail() -> None:
    close = np.array([100.0, 100.0, 101.0, 100.0, 98.0, 98.0, 98.0])
    labels = make_labels(close, 2, 0.5, 0.1)
    # t=0: 101/100 -> UP; t=1: 100/100 -> NEUTRAL; t=2: 98/101 -> DOWN; t=3: 98/100 -> DOWN
    assert list(labels[:5]) == [1, 0, -1, -1, 0]
    assert np.isnan(labels[-2:]).all()
    assert labels.dtype == np.float64


def test_exact_threshold_is_neutral() -> None:
    close = np.array([100.0, 100.5, 100.0])
    assert make_labels(close, 1, 0.6, 0.0)[0] == 0
    assert make_labels(close, 1, 0.4, 0.0)[0] == 1


def test_previous_move_is_known_at_t() -> None:
    close = np.array([100.0, 102.0, 101.0, 99.0, 99.0])
    prev = previous_move_labels(close, 1, 0.5, 0.1)
    assert np.isnan(prev[0])
    assert list(prev[1:]) == list(make_labels(close, 1, 0.5, 0.1)[:-1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="horizon"):
        make_labels(np.ones(5), 0, 0.1, 0.1)
    with pytest.raises(ValueError, match="negative"):
        make_labels(np.ones(5), 1, -0.1, 0.1)


def test_spans_gap() -> None:
    ts = np.array([0, 60, 120, 300, 360, 420, 480]) * 1000  # gap between rows 2 and 3
    flags = spans_gap(ts, before=2, after=1, timeframe_ms=60_000)
    # row t covers rows t-2..t+1, so rows 2, 3 and 4 contain the step from row 2 to row 3
    assert list(flags) == [False, False, True, True, True, False, False]
    assert not spans_gap(ts[:3], before=5, after=5, timeframe_ms=60_000).any()


# --- triple barrier: hand-worked candles ----------------------------------------------------------
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from tinhieu.labels import (  # noqa: E402
    EXIT_STOP,
    EXIT_TAKE,
    EXIT_TIME,
    barrier_levels,
    break_even_probability,
    label_settings,
    make_scheme_labels,
    resolved_label_before,
    rolling_volatility,
    triple_barrier_outcomes,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-spot-1m-2021"


def frame(rows: list[tuple[float, float, float, float]], step_min: int = 1) -> pd.DataFrame:
    """Candles from (open, high, low, close), one minute apart."""
    return pd.DataFrame(
        [(i * step_min * 60_000, o, h, lo, c, 1.0) for i, (o, h, lo, c) in enumerate(rows)],
        columns=["timestamp", "open", "high", "low", "close", "volume"],
    )


def outcome(rows, hold: int = 3):
    out = triple_barrier_outcomes(frame(rows), stop_loss_pct=2.0, take_profit_pct=5.0,
                                  max_holding=hold, fee_pct=0.1)
    return out.label[0], out.net_return[0], out.exit_row[0], out.reason[0]


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_take_profit_first_is_buy() -> None:
    # signal on candle 0, entry at candle 1's open 100: stop 98, take 105; candle 2 reaches 105.5
    label, net, row, reason = outcome([FLAT, (100.0, 101.0, 99.5, 100.5),
                                       (100.5, 105.5, 100.0, 105.0), FLAT, FLAT])
    assert (label, row, reason) == (1, 2, EXIT_TAKE)
    # +5 % minus 0.1 % fee on 100 and on 105, per 100 of entry notional
    assert net == pytest.approx(0.05 - 0.001 - 0.00105)


def test_gap_through_the_stop_fills_at_the_open() -> None:
    # candle 2 opens at 97, below the stop at 98: the fill is 97, not 98 (a gap is not a gift)
    label, net, row, reason = outcome([FLAT, (100.0, 100.5, 99.0, 99.5),
                                       (97.0, 97.5, 96.0, 97.2), FLAT, FLAT])
    assert (label, row, reason) == (-1, 2, EXIT_STOP)
    assert net == pytest.approx(-0.03 - 0.001 - 0.00097)


def test_gap_through_the_take_profit_fills_at_the_open() -> None:
    label, net, _, reason = outcome([FLAT, (100.0, 100.5, 99.0, 100.0),
                                     (106.0, 107.0, 105.5, 106.5), FLAT, FLAT])
    assert (label, reason) == (1, EXIT_TAKE)
    assert net == pytest.approx(0.06 - 0.001 - 0.00106)


def test_both_levels_in_one_candle_is_the_stop() -> None:
    # candle 2 spans 97.5 .. 106: both levels inside, the order is unknown: stop loss first
    label, net, row, reason = outcome([FLAT, (100.0, 100.5, 99.0, 100.0),
                                       (100.0, 106.0, 97.5, 104.0), FLAT, FLAT])
    assert (label, row, reason) == (-1, 2, EXIT_STOP)
    assert net == pytest.approx(-0.02 - 0.001 - 0.00098)


def test_entry_candle_itself_can_exit() -> None:
    # the entry candle (1) falls to 97.9 after opening at 100: stopped out on the entry candle
    label, _, row, reason = outcome([FLAT, (100.0, 100.2, 97.9, 98.5), FLAT, FLAT, FLAT])
    assert (label, row, reason) == (-1, 1, EXIT_STOP)


def test_time_exit_at_the_next_open_net_of_fees() -> None:
    # hold 2: candles 1 and 2 touch nothing; SELL on candle 2 fills at candle 3's open
    rows = [FLAT, (100.0, 101.0, 99.5, 100.5), (100.5, 101.5, 100.0, 101.0),
            (101.0, 101.2, 100.8, 101.0), FLAT]
    label, net, row, reason = outcome(rows, hold=2)
    assert (label, row, reason) == (0, 3, EXIT_TIME)
    assert net == pytest.approx(0.01 - 0.001 - 0.00101)
    # the same exit at 100.1: +0.1 % does not pay 0.2 % of fees: a held long should go: SELL
    rows[3] = (100.1, 100.2, 100.0, 100.1)
    label, net, _, reason = outcome(rows, hold=2)
    assert (label, reason) == (-1, EXIT_TIME)
    assert net < 0


def test_unknown_future_is_nan() -> None:
    out = triple_barrier_outcomes(frame([FLAT] * 8), stop_loss_pct=2.0, take_profit_pct=5.0,
                                  max_holding=3, fee_pct=0.1)
    # a trade from candle t needs candles up to t + 4 (exit at the open after the 3rd)
    assert not np.isnan(out.label[:4]).any()
    assert np.isnan(out.label[4:]).all()
    assert (out.exit_row[4:] == -1).all()


def test_break_even_probability() -> None:
    # W = 5 % - 0.1 % x (2 + 5 %), L = 2 % + 0.1 % x (2 - 2 %): p = L / (W + L)
    assert break_even_probability(2.0, 5.0, 0.1) == pytest.approx(0.02198 / 0.06993)
    assert break_even_probability(2.0, 5.0, 0.0) == pytest.approx(2 / 7)
    assert break_even_probability(1.0, 0.1, 0.1) == 1.0  # the take profit never pays


def test_resolved_label_is_known_only_after_the_exit() -> None:
    labels = np.array([1.0, -1.0, 0.0, np.nan])
    exit_row = np.array([3, 2, 3, -1])
    prev = resolved_label_before(labels, exit_row)
    # row 2: only trade 1 has exited (on 2); row 3: trades 0 and 2, the latest entry is 2
    assert np.isnan(prev[:2]).all()
    assert list(prev[2:]) == [-1.0, 0.0]


def test_volatility_barriers_use_the_past_only() -> None:
    close = np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.002, 300))) * 100
    sl, tp = barrier_levels(close, mode="volatility", stop_loss_pct=2, take_profit_pct=5,
                            max_holding=100, vol_window=30, stop_vol_mult=1.0, take_vol_mult=2.5)
    assert np.isnan(sl[:30]).all() and np.isfinite(sl[30:]).all()
    assert tp[100] == pytest.approx(2.5 * sl[100])
    sigma = np.std(np.diff(np.log(close[70:101])), ddof=1)  # returns 71..100
    assert sl[100] == pytest.approx(sigma * 10 * 100)
    changed = close.copy()
    changed[101:] *= 3
    again = barrier_levels(changed, mode="volatility", stop_loss_pct=2, take_profit_pct=5,
                           max_holding=100, vol_window=30)[0]
    assert np.array_equal(again[:101], sl[:101], equal_nan=True)
    assert rolling_volatility(close, 30)[29] != rolling_volatility(close, 30)[29]  # NaN


def test_per_candle_levels_reach_the_broker() -> None:
    # the same path with a 1 % stop on candle 0: stopped at 99 on candle 2
    rows = [FLAT, (100.0, 100.5, 99.5, 100.0), (100.0, 100.2, 98.9, 99.0), FLAT, FLAT, FLAT]
    out = triple_barrier_outcomes(frame(rows), stop_loss_pct=np.array([1.0] + [2.0] * 5),
                                  take_profit_pct=5.0, max_holding=3, fee_pct=0.1)
    assert out.reason[0] == EXIT_STOP and out.net_return[0] == pytest.approx(-0.01 - 0.001
                                                                             - 0.00099)
    assert out.reason[1] != EXIT_STOP  # 2 % stop from candle 2's open 100: not touched


def test_labels_equal_the_broker_candle_by_candle_on_real_data() -> None:
    """The skip-ahead search never changes an outcome: step on every candle agrees."""
    from tinhieu.broker import RiskConfig, SignalIn, new_state, step
    from tinhieu.candles import Bar
    from tinhieu.data import load_candles, parse_time

    # 2021-05-19: the crash day, with many stops, take profits and gaps
    df = load_candles(DATA / "ETHUSDT_1m.csv.gz", parse_time("2021-05-19T00:00"),
                      parse_time("2021-05-19T10:00"))
    hold = 60
    out = triple_barrier_outcomes(df, stop_loss_pct=2.0, take_profit_pct=5.0, max_holding=hold,
                                  fee_pct=0.1)
    cfg = RiskConfig(stop_loss_pct=2.0, take_profit_pct=5.0, commission_pct=0.1,
                     min_confidence=0.0)
    a = df.to_numpy()
    bars = [Bar(int(r[0]), *map(float, r[1:])) for r in a]
    checked = set()
    for t in range(0, len(df) - hold - 1, 7):
        st = new_state("ETH/USDT", cfg)
        st, _ = step(st, bars[t], SignalIn("ETH/USDT", bars[t].ts, "BUY", 1.0, "m"), cfg)
        notional = 0.0
        for k in range(t + 1, t + hold + 2):
            sig = SignalIn("ETH/USDT", bars[k].ts, "SELL", 1.0, "m") if k == t + hold else None
            st, fills = step(st, bars[k], sig, cfg)
            notional += sum(f.amount * f.price for f in fills if f.side == "BUY")
            exits = [f for f in fills if f.side == "SELL"]
            if exits:
                break
        assert out.exit_row[t] == k
        assert out.net_return[t] == pytest.approx(exits[0].pnl / notional, rel=1e-12)
        checked.add(int(out.reason[t]))
    assert {EXIT_STOP, EXIT_TAKE, EXIT_TIME} <= checked


def test_scheme_labels_from_settings() -> None:
    from tinhieu.settings import load_settings

    settings = load_settings()
    df = frame([FLAT] * 20)
    lab = make_scheme_labels(df, label_settings(settings.model_copy(
        update={"label_scheme": "triple_barrier", "max_holding_candles": 5})))
    assert lab.span == 6 and lab.outcomes is not None
    assert (lab.y[:14] == -1).all()  # flat prices: every time exit loses the fees
    fixed = make_scheme_labels(df, label_settings(settings.model_copy(
        update={"label_scheme": "fixed_horizon"})))
    assert fixed.span == settings.label_horizon and fixed.outcomes is None
