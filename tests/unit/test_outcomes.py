"""Live outcomes equal the training labels, candle for candle, on real candles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.records import SignalOutcome
from tinhieu.candles import Bar
from tinhieu.data import load_candles
from tinhieu.labels import barrier_levels, make_labels, triple_barrier_outcomes
from tinhieu.outcomes import OUTBOX_MAX, OutcomeTracker, outbox

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-spot-1m-2021"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    df = load_candles(DATA / "BTCUSDT_1m.csv.gz")
    return df.iloc[20_000:26_000].reset_index(drop=True)  # 4 days incl. sharp moves


def _bars(df: pd.DataFrame) -> list[Bar]:
    return [Bar(int(r.timestamp), r.open, r.high, r.low, r.close, r.volume)
            for r in df.itertuples(index=False)]


def _live(df: pd.DataFrame, params: dict, *, restart_every: int = 0,
          actions=("BUY", "NEUTRAL", "SELL")) -> dict[int, dict]:
    """Every candle gets a verdict; the tracker's state goes through JSON (the table) and,
    with ``restart_every``, is rebuilt from it as after a worker restart."""
    tracker = OutcomeTracker(None, params, "BTC/USDT")
    found: dict[int, dict] = {}
    for i, bar in enumerate(_bars(df)):
        signal = {"action": actions[i % len(actions)], "confidence": 0.5, "reason": "",
                  "model_version": f"v{i // 1000}"}
        for out in tracker.on_candle(bar, signal):
            assert out["candle_time"] not in found, "an outcome was resolved twice"
            found[out["candle_time"]] = out
        if restart_every and i % restart_every == 0:
            tracker = OutcomeTracker(json.loads(json.dumps(tracker.to_dict())), params,
                                     "BTC/USDT")
    return found


FIXED = {"scheme": "triple_barrier", "fee_pct": 0.1, "max_holding": 240,
         "barrier_mode": "fixed", "stop_loss_pct": 2.0, "take_profit_pct": 5.0}


@pytest.mark.parametrize("hold,sl,tp", [(240, 2.0, 5.0), (30, 0.3, 0.6), (5, 0.2, 0.2)])
def test_live_outcomes_equal_training_labels(candles, hold, sl, tp) -> None:
    params = {**FIXED, "max_holding": hold, "stop_loss_pct": sl, "take_profit_pct": tp}
    want = triple_barrier_outcomes(candles, stop_loss_pct=sl, take_profit_pct=tp,
                                   max_holding=hold, fee_pct=0.1)
    got = _live(candles, params, restart_every=97)
    ts = candles["timestamp"].to_numpy()
    labelled = np.flatnonzero(~np.isnan(want.label))
    assert labelled.size > 1000
    for row in labelled:
        out = got[int(ts[row])]
        assert out["label"] == {1: "BUY", 0: "NEUTRAL", -1: "SELL"}[int(want.label[row])], row
        assert out["net_return"] == pytest.approx(want.net_return[row], rel=1e-9, abs=1e-12)
        assert out["exit_time"] == int(ts[want.exit_row[row]])
    # the labels are not all one class (the check above would be weak otherwise)
    assert len({got[int(ts[r])]["label"] for r in labelled}) >= (3 if hold > 5 else 2)


def test_volatility_barriers_equal_training(candles) -> None:
    params = {**FIXED, "max_holding": 60, "barrier_mode": "volatility", "vol_window": 30,
              "stop_vol_mult": 1.0, "take_vol_mult": 2.0}
    close = candles["close"].to_numpy()
    sl, tp = barrier_levels(close, mode="volatility", stop_loss_pct=2, take_profit_pct=5,
                            max_holding=60, vol_window=30, stop_vol_mult=1.0, take_vol_mult=2.0)
    want = triple_barrier_outcomes(candles, stop_loss_pct=sl, take_profit_pct=tp,
                                   max_holding=60, fee_pct=0.1)
    got = _live(candles, params, restart_every=131)
    ts = candles["timestamp"].to_numpy()
    labelled = np.flatnonzero(~np.isnan(want.label))
    assert labelled.size > 1000
    assert all(got[int(ts[r])]["label"] == {1: "BUY", 0: "NEUTRAL", -1: "SELL"}[
        int(want.label[r])] for r in labelled)


def test_fixed_horizon_equals_training(candles) -> None:
    params = {"scheme": "fixed_horizon", "fee_pct": 0.1, "horizon": 5, "threshold_pct": 0.25,
              "requested_threshold_pct": 0.25, "timeframe": "1m"}
    want = make_labels(candles["close"].to_numpy(), 5, 0.25, 0.1)
    got = _live(candles, params)
    ts = candles["timestamp"].to_numpy()
    for row in np.flatnonzero(~np.isnan(want)):
        assert got[int(ts[row])]["label"] == {1: "BUY", 0: "NEUTRAL", -1: "SELL"}[
            int(want[row])]


def test_outcome_fields_and_scoring(candles) -> None:
    got = _live(candles.iloc[:600], {**FIXED, "max_holding": 20})
    out = next(iter(got.values()))
    assert set(out) == {"symbol", "candle_time", "action", "confidence", "model_version",
                        "label", "correct", "exit_reason", "exit_time", "net_return", "model"}
    assert SignalOutcome.from_data(json.loads(json.dumps(out))).asdict() == out
    assert all(o["correct"] == (o["action"] == o["label"]) for o in got.values())
    assert {o["exit_reason"] for o in got.values()} <= {"take_profit", "stop_loss", "time"}


def test_no_verdict_no_outcome(candles) -> None:
    tracker = OutcomeTracker(None, FIXED, "BTC/USDT")
    bars = _bars(candles.iloc[:400])
    outs = []
    for bar in bars:
        outs += tracker.on_candle(bar, {"action": "NEUTRAL", "confidence": 0.0,
                                        "reason": "no_model", "model_version": ""})
    assert outs == [] and tracker.to_dict()["pending"] == []


def test_state_stays_small(candles) -> None:
    tracker = OutcomeTracker(None, FIXED, "BTC/USDT")
    for bar in _bars(candles.iloc[:2000]):
        tracker.on_candle(bar, {"action": "BUY", "confidence": 0.61234, "reason": "",
                                "model_version": "rf:20260101T000000Z-abcdef12"})
    size = len(json.dumps(tracker.to_dict()))
    assert len(tracker.pending) <= 241
    assert size < 30_000, size


def test_the_state_given_is_never_changed(candles) -> None:
    """A tracker per batch reads the record's state and writes a new one: the old record
    (what a re-delivery or the shadow still reads) keeps its values, and the result is the
    same as one tracker over all candles."""
    params = {**FIXED, "max_holding": 30, "stop_loss_pct": 0.3, "take_profit_pct": 0.6}
    bars = _bars(candles.iloc[:600])
    one = OutcomeTracker(None, params, "BTC/USDT")
    state, seen, want = None, [], []
    for i, bar in enumerate(bars):
        signal = {"action": "BUY", "confidence": 0.5, "reason": "",
                  "model_version": f"v{i // 200}"}
        want.extend(one.on_candle(bar, signal))
        tracker = OutcomeTracker(state, params, "BTC/USDT")
        before = json.dumps(state)
        seen.extend(tracker.on_candle(bar, signal))
        assert json.dumps(state) == before, i
        state = tracker.to_dict()
    assert seen == want and len(want) > 400


@pytest.mark.parametrize("flush_candles", [1, 5, 60])
def test_outbox_sends_every_outcome_once_in_order(candles, flush_candles) -> None:
    """Outcomes gathered in the record and sent together: concatenated, the messages and
    what still waits are exactly the outcomes, in order; none waits longer than asked; far
    fewer messages than outcomes."""
    params = {**FIXED, "max_holding": 30, "stop_loss_pct": 0.3, "take_profit_pct": 0.6}
    tracker = OutcomeTracker(None, params, "BTC/USDT")
    wait_ms = (flush_candles - 1) * 60_000
    state, sent, resolved, messages = None, [], [], 0
    for bar in _bars(candles.iloc[:3000]):
        new = tracker.on_candle(bar, {"action": "BUY", "confidence": 0.5, "reason": "",
                                      "model_version": "v1"})
        resolved.extend(new)
        state, out = outbox(json.loads(json.dumps(state)) if state else None, new, bar.ts,
                            wait_ms)  # through JSON, as the record is
        for message in out:
            assert message and len(message) <= OUTBOX_MAX
            assert bar.ts - message[0]["exit_time"] >= wait_ms or len(message) >= OUTBOX_MAX
            sent.extend(message)
            messages += 1
        if state:
            assert bar.ts - state["since"] < wait_ms
    assert sent + (state["items"] if state else []) == resolved and len(resolved) > 2000
    assert messages <= len(resolved) / max(1, flush_candles - 1) + 1


def test_outbox_splits_a_large_batch_and_never_changes_its_input() -> None:
    items = [{"candle_time": i, "exit_time": 1_000 + i} for i in range(1200)]
    state = {"since": 0, "items": items[:3]}
    frozen = json.dumps(state)
    new_state, out = outbox(state, items[3:], 5_000, 60_000)
    assert json.dumps(state) == frozen and new_state is None
    assert [len(m) for m in out] == [OUTBOX_MAX, OUTBOX_MAX, 200]
    assert [o for m in out for o in m] == items
    waiting, out = outbox(None, items[:2], 1_001, 60_000)
    assert out == [] and waiting == {"since": 1_000, "items": items[:2]}
    assert outbox(None, [], 5_000, 0) == (None, [])
