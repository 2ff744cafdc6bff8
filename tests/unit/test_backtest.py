"""Offline backtest: real candles, a real registry model, the live path's warm-up and orders,
and the Backtrader engine beside the fast one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tinhieu.backtest import (
    BacktestError,
    read_orders_jsonl,
    run_backtest,
    run_backtest_command,
    simulate,
    warmup_candles,
)
from tinhieu.broker import RiskConfig, SignalIn, new_state, signal_from_record, step
from tinhieu.candles import Bar
from tinhieu.data import load_candles
from tinhieu.ensemble import Ensemble
from tinhieu.features import MODEL_COLUMNS, WARMUP, FeatureState, compute_features
from tinhieu.labels import make_labels
from tinhieu.performance import buy_and_hold, compute_metrics, max_drawdown, sharpe_sortino
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-spot-1m-2021"
TRAIN_ROWS = 3000
TEST_ROWS = 1500
SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    if not DATA.exists():
        pytest.skip(f"real candles not found at {DATA}")
    out = {}
    for sym in SYMBOLS:
        df = load_candles(DATA / f"{sym.replace('/', '')}_1m.csv.gz")
        out[sym] = df.iloc[: TRAIN_ROWS + TEST_ROWS].reset_index(drop=True)
    return out


@pytest.fixture(scope="module")
def settings():
    # a lower threshold than production so that a small model trades in 1,500 candles
    return load_settings(
        min_confidence=0.45, label_horizon=5, label_threshold_pct=0.05, fee_pct=0.0
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory, frames, settings) -> ModelRegistry:
    """A real (small) logistic regression per symbol, trained on the candles before the test."""
    reg = ModelRegistry(tmp_path_factory.mktemp("models"), clock=lambda: 1_700_000_000.0)
    for sym, df in frames.items():
        train = df.iloc[:TRAIN_ROWS]
        X = compute_features(train).to_numpy()[:, MODEL_COLUMNS]
        y = make_labels(
            train["close"], settings.label_horizon, settings.label_threshold_pct, settings.fee_pct
        )
        ok = np.isfinite(X).all(axis=1) & ~np.isnan(y)
        model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=300, class_weight="balanced")
        )
        model.fit(X[ok], y[ok].astype(int))
        version = reg.save(
            sym,
            "lr",
            model,
            {
                "train_start_ms": int(train["timestamp"].iloc[0]),
                "train_end_ms": int(train["timestamp"].iloc[-1]) + 60_000,
                "metrics": {},
            },
        )
        reg.promote(sym, "lr", version)
    return reg


def range_start(frames) -> int:
    return int(frames["BTC/USDT"]["timestamp"].iloc[TRAIN_ROWS])


@pytest.fixture(scope="module")
def result(frames, settings, registry, tmp_path_factory):
    start = range_start(frames)
    return run_backtest(
        frames,
        settings,
        registry,
        start_ms=start,
        end_ms=None,
        out_dir=tmp_path_factory.mktemp("report"),
        progress=False,
    )


def test_report_files_and_figures_beside_buy_and_hold(result):
    out = result.out_dir
    for name in ("report.md", "equity.png", "trades.csv", "orders.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "equity.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| Sharpe (annualized) |" in report and "buy and hold" in report
    assert "always NEUTRAL" in report and "persistence" in report and "precision" in report
    assert result.candles == TEST_ROWS * len(SYMBOLS)
    assert len(result.fills) > 0, "the test model should trade; lower min_confidence"
    trades = pd.read_csv(out / "trades.csv")
    assert list(trades["id"]) == [f.id for f in result.fills]


def test_orders_jsonl_are_the_fills_as_order_records(result):
    orders = read_orders_jsonl(result.out_dir / "orders.jsonl")
    assert orders == [f.to_dict() for f in result.fills]
    assert len({o["id"] for o in orders}) == len(orders)


def test_history_before_the_range_gives_signals_from_its_first_candle(result, frames):
    assert WARMUP < TRAIN_ROWS  # the frames hold WARMUP candles before the range
    for sym, r in result.symbols.items():
        assert (r.history_candles, r.first_signal_index) == (WARMUP, 0)
        assert r.timestamps[0] == frames[sym]["timestamp"].iloc[TRAIN_ROWS]
        assert not np.isnan(r.actions[0]) and not np.isnan(r.actions).any()
    report = (result.out_dir / "report.md").read_text()
    assert f"warmed up on the {WARMUP} candles before the range" in report
    assert "signals from the first candle of the range" in report


def test_without_history_the_warmup_is_inside_the_range_and_said_so(
    frames, settings, registry, tmp_path
):
    start = range_start(frames)
    cold = {s: df[df["timestamp"] >= start].reset_index(drop=True) for s, df in frames.items()}
    res = run_backtest(
        cold, settings, registry, start_ms=start, end_ms=None, out_dir=tmp_path, progress=False
    )
    for r in res.symbols.values():
        assert (r.history_candles, r.first_signal_index) == (0, WARMUP - 1)
        assert np.isnan(r.actions[: WARMUP - 1]).all()
        assert not np.isnan(r.actions[WARMUP - 1])
        first_fill = min(f.fill_time for f in r.fills) if r.fills else math.inf
        assert first_fill >= r.timestamps[WARMUP]
        assert r.buy_hold[WARMUP - 1] == r.buy_hold[0] != r.buy_hold[WARMUP]  # bought at row WARMUP
    report = (tmp_path / "report.md").read_text()
    assert "no history before the range start" in report
    assert f"no signal before candle {WARMUP} of the range" in report


def test_a_range_equals_the_slice_of_an_earlier_longer_backtest(
    result, frames, settings, registry, tmp_path
):
    """Warmed up on history, [start, end) has the signals of a backtest that began 500
    candles earlier (itself warmed up on the WARMUP candles before that), candle for candle."""
    earlier = 500
    longer = run_backtest(
        frames,
        settings,
        registry,
        start_ms=int(frames["BTC/USDT"]["timestamp"].iloc[TRAIN_ROWS - earlier]),
        end_ms=None,
        allow_overlap=True,  # the test model was trained on those 500 candles; signals only
        out_dir=tmp_path,
        progress=False,
    )
    for sym in SYMBOLS:
        short, long = result.symbols[sym], longer.symbols[sym]
        assert (long.first_signal_index, len(long.actions)) == (0, len(short.actions) + earlier)
        assert list(long.timestamps[earlier:]) == list(short.timestamps)
        np.testing.assert_array_equal(long.actions[earlier:], short.actions)
        np.testing.assert_allclose(long.confidences[earlier:], short.confidences, rtol=1e-6)
        assert np.isfinite(short.confidences).all()


def test_backtest_orders_equal_the_live_path(result, frames, settings, registry):
    """The live path: FeatureState candle by candle, Ensemble.predict, step on each Signal."""
    cfg = RiskConfig.from_settings(settings)
    compared = 0
    for sym in SYMBOLS:
        ens = Ensemble.from_registry(registry, sym, min_confidence=settings.min_confidence)
        # a live worker that started 2 x WARMUP candles before the range; its book opens
        # with the range (the backtest warmed up on only the WARMUP candles before it)
        features = FeatureState()
        for row in frames[sym].iloc[TRAIN_ROWS - 2 * WARMUP : TRAIN_ROWS].itertuples(index=False):
            features.update(Bar(int(row.timestamp), *row[1:]))
        df = frames[sym].iloc[TRAIN_ROWS:]
        state = new_state(sym, cfg)
        live = []
        for row in df.itertuples(index=False):
            bar = Bar(int(row.timestamp), row.open, row.high, row.low, row.close, row.volume)
            vector = features.update(bar)
            assert vector is not None  # warm from the first candle of the range
            if not np.isfinite(vector[MODEL_COLUMNS]).all():
                state, fills = step(state, bar, None, cfg)
            else:
                p = ens.predict(vector)
                record = {
                    "symbol": sym,
                    "candle_time": bar.ts,
                    **bar._asdict(),
                    "action": p.action,
                    "confidence": p.confidence,
                    "model_version": p.model_version,
                }
                state, fills = step(state, *signal_from_record(record), cfg)
            live.extend(f.to_dict() for f in fills)
        offline = [f.to_dict() for f in result.symbols[sym].fills]
        assert [o["id"] for o in live] == [o["id"] for o in offline]
        compared += len(live)
        for a, b in zip(live, offline, strict=True):
            assert a.keys() == b.keys()
            for key in a:  # confidence may differ in the last digits (FeatureState vs batch)
                if isinstance(a[key], float):
                    assert a[key] == pytest.approx(b[key], rel=1e-9), key
                else:
                    assert a[key] == b[key], key
    assert compared > 0


def test_models_trained_on_the_range_are_refused(frames, settings, registry, tmp_path):
    inside = int(frames["BTC/USDT"]["timestamp"].iloc[TRAIN_ROWS - 100])
    with pytest.raises(BacktestError, match="look-ahead.*allow_overlap"):
        run_backtest(
            frames,
            settings,
            registry,
            start_ms=inside,
            end_ms=None,
            out_dir=tmp_path,
            progress=False,
        )
    res = run_backtest(
        {"BTC/USDT": frames["BTC/USDT"]},
        settings,
        registry,
        start_ms=inside,
        end_ms=inside + 200 * 60_000,
        allow_overlap=True,
        out_dir=tmp_path,
        progress=False,
    )
    assert "allow_overlap was set" in (tmp_path / "report.md").read_text()
    assert res.candles == 200


def test_empty_range_names_the_symbol(frames, settings, registry, tmp_path):
    with pytest.raises(BacktestError, match="BTC/USDT: no candles"):
        run_backtest(
            frames, settings, registry, start_ms=0, end_ms=1, out_dir=tmp_path, progress=False
        )


def test_command_loads_files_by_symbol_and_dates(settings, registry, frames, tmp_path):
    start = range_start(frames)
    res = run_backtest_command(
        settings,
        ["btc"],
        DATA,
        str(start),
        str(start + 300 * 60_000),
        tmp_path,
        registry=registry,
        progress=False,
    )
    assert list(res.symbols) == ["BTC/USDT"] and res.candles == 300
    assert res.symbols["BTC/USDT"].history_candles == WARMUP  # read before --start in the file
    assert not np.isnan(res.symbols["BTC/USDT"].actions).any()


def test_simulate_with_stored_signals_is_deterministic():
    ts = np.arange(10) * 60_000
    df = pd.DataFrame(
        {"timestamp": ts, "open": 100.0, "high": 101.0, "low": 99.5, "close": 100.0, "volume": 1.0}
    )
    preds = [None] * 10
    preds[2] = SignalIn("X/USDT", 0, "BUY", 0.9, "s")  # only the fields simulate reads
    state, fills, equity, held = simulate("X/USDT", df, preds, RiskConfig())
    assert [f.fill_time for f in fills] == [180_000]
    assert held.tolist() == [False] * 3 + [True] * 7
    assert equity[0] == 10_000 and equity[-1] == pytest.approx(10_000 - fills[0].fee)
    with pytest.raises(BacktestError, match="one per candle"):
        simulate("X/USDT", df, preds[:5], RiskConfig())


# --- performance ----------------------------------------------------------------------------
def test_max_drawdown_and_ratios_by_hand():
    assert max_drawdown(np.array([100, 120, 90, 130, 65])) == pytest.approx(0.5)
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert sharpe_sortino(np.zeros(10), 525_600) == (0.0, 0.0)
    r = np.array([0.01, -0.01, 0.02, 0.0])
    sharpe, sortino = sharpe_sortino(r, 4.0)
    assert sharpe == pytest.approx(0.005 / np.std(r, ddof=1) * 2)
    assert sortino == pytest.approx(0.005 / math.sqrt(0.0001 / 4) * 2)


def test_compute_metrics_counts_round_trips_wins_fees_and_exposure():
    fills = [
        {"side": "BUY", "pnl": 0.0, "fee": 1.0},
        {"side": "SELL", "pnl": 5.0, "fee": 1.0},
        {"side": "BUY", "pnl": 0.0, "fee": 1.0},
        {"side": "SELL", "pnl": -2.0, "fee": 1.0},
    ]
    eq = np.array([100.0, 110.0, 99.0, 121.0])
    m = compute_metrics(
        eq,
        timeframe_ms=60_000,
        timestamps=np.arange(4) * 60_000,
        fills=fills,
        in_position=np.array([0, 1, 1, 0], bool),
    )
    assert m["total_return_pct"] == pytest.approx(21.0)
    assert (m["trades"], m["win_rate_pct"], m["fees_paid"]) == (2.0, 50.0, 4.0)
    assert m["exposure_pct"] == 50.0 and m["max_drawdown_pct"] == pytest.approx(10.0)
    assert m["annualized_return_pct"] > 1e6  # 21 % in 4 minutes, compounded over a year


def test_buy_and_hold_uses_the_brokers_sizing_and_fee():
    eq, fee = buy_and_hold(
        np.array([10.0, 20.0, 22.0]),
        np.array([10.0, 21.0, 25.0]),
        entry_index=1,
        cash=1000.0,
        position_size_pct=95.0,
        commission_pct=0.1,
    )
    assert fee == pytest.approx(950 * 0.001)
    assert eq[0] == 1000.0
    assert eq[2] == pytest.approx(1000 - 950 - 0.95 + 950 / 20 * 25)


def test_report_json_round_trip_of_orders(result):
    line = (result.out_dir / "orders.jsonl").read_text().splitlines()[0]
    assert set(json.loads(line)) >= {"id", "side", "price", "amount", "fee", "fill_time"}
    assert warmup_candles() == WARMUP - 1


# --- the Backtrader engine beside the fast one ------------------------------------------------
def test_backtrader_engine_beside_the_fast_one(frames, registry, tmp_path):
    """Same candles and signals through BackBroker: the figures side by side in report.md,
    every fill identical or explained by the documented difference."""
    tight = load_settings(
        min_confidence=0.45,
        label_horizon=5,
        label_threshold_pct=0.05,
        fee_pct=0.1,
        stop_loss_pct=0.3,
        take_profit_pct=0.4,
    )
    res = run_backtest(
        frames,
        tight,
        registry,
        start_ms=range_start(frames),
        end_ms=None,
        out_dir=tmp_path,
        progress=False,
        engine="backtrader",
    )
    assert res.engine == "backtrader" and res.backtrader_seconds > 0
    for r in res.symbols.values():
        cmp, run = r.fill_comparison, r.backtrader
        assert cmp is not None and run is not None
        assert cmp.other == [], cmp.other
        assert len(r.fills) >= 10 and len(run.fills) == len(r.fills)
        assert cmp.same + cmp.documented + cmp.amount_only == len(r.fills)
        if cmp.differ == 0:  # identical fills: identical books
            assert run.final_value == pytest.approx(r.equity[-1], rel=1e-9)
            assert run.figures["trades"] == r.metrics["trades"]
            assert run.figures["max_drawdown_pct"] == pytest.approx(
                r.metrics["max_drawdown_pct"], rel=1e-9
            )
    report = (tmp_path / "report.md").read_text()
    assert "## Engines side by side" in report
    assert "| metric | fast engine (step) | Backtrader (BackBroker) |" in report
    assert "differ**" in report and "The documented difference" in report
    assert "opens above the take profit" in report


def test_unknown_engine_is_refused(frames, settings, registry, tmp_path):
    with pytest.raises(BacktestError, match="unknown engine 'zipline'.*fast, backtrader"):
        run_backtest(
            frames,
            settings,
            registry,
            start_ms=range_start(frames),
            end_ms=None,
            out_dir=tmp_path,
            progress=False,
            engine="zipline",
        )


def test_the_backtest_gates_buys_like_the_live_ensemble(frames, registry) -> None:
    """With a break-even BUY threshold (models trained on trade-outcome labels), the
    backtest's fast path gives exactly the actions and confidences of predict_many, which
    the live worker calls."""
    from tinhieu.backtest.engine import _predict_rows

    base = Ensemble.from_registry(registry, "BTC/USDT", min_confidence=0.34)
    X = compute_features(frames["BTC/USDT"].iloc[:3000]).to_numpy()[WARMUP:]
    for threshold in (None, 0.3, 0.5):
        ens = Ensemble("BTC/USDT", base.members, min_confidence=0.34, buy_threshold=threshold)
        live = ens.predict_many(X)
        fast = _predict_rows(ens, X)
        assert [p.action for p in fast] == [p.action for p in live]
        assert [p.confidence for p in fast] == pytest.approx([p.confidence for p in live])
    gated = _predict_rows(Ensemble("BTC/USDT", base.members, 0.34, buy_threshold=0.5), X)
    assert sum(p.action == "BUY" for p in gated) < sum(
        p.action == "BUY" for p in _predict_rows(base, X)
    ) or not any(p.action == "BUY" for p in _predict_rows(base, X))
