"""A small walk-forward training run on real candles: folds, baselines, report, registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinhieu.data import load_candles, parse_time
from tinhieu.ensemble import ALGORITHMS, Ensemble
from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.labels import make_labels
from tinhieu.registry import ModelRegistry, open_registry
from tinhieu.settings import load_settings
from tinhieu.training import (
    QUICK,
    STRATEGIES,
    TrainingError,
    calibration_split,
    evaluate_out_of_sample,
    fit_model,
    majority_baseline,
    persistence_baseline,
    prepare_dataset,
    promotion_decision,
    run_train_command,
    train,
    train_quick,
    train_symbol,
)

CALIBRATED = replace(QUICK, calibrate=True)
HOLD = 120  # a short holding time keeps the test data small

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-spot-1m-2021"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    # ~4,000 BNB candles around the 285-minute outage of 2021-04-25 04:00 UTC
    return load_candles(DATA / "BNBUSDT_1m.csv.gz", parse_time("2021-04-23T12:00"),
                        parse_time("2021-04-26T06:00"))


@pytest.fixture(scope="module")
def run(candles: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train")
    registry = ModelRegistry(root / "models")
    results = train({"BNB/USDT": candles}, load_settings(max_holding_candles=HOLD), registry,
                    report_path=root / "report.md", n_splits=3, progress=False,
                    config=CALIBRATED)
    return results["BNB/USDT"], registry, root


def test_gap_rows_are_dropped_not_filled(candles: pd.DataFrame) -> None:
    settings = load_settings(label_scheme="fixed_horizon")
    data = prepare_dataset(candles, settings)
    assert np.diff(candles["timestamp"].to_numpy()).max() >= 285 * 60_000
    assert data.dropped_gap_rows > 0
    # no usable row has a label horizon or feature window across the outage
    gap_end = int(candles["timestamp"].to_numpy()[np.argmax(np.diff(candles["timestamp"]))
                                                  + 1])
    near = (data.ts >= gap_end - 6 * 60_000) & (data.ts < gap_end + 50 * 60_000)
    assert not near.any()


def test_walk_forward_is_time_ordered_with_purge(run) -> None:
    res, _, _ = run
    span = HOLD + 1  # a trade label looks at up to max_holding + 1 candles after t
    assert len(res.folds) == 3
    for fold in res.folds:
        assert fold["train_end_ms"] + span * 60_000 < fold["test_start_ms"]
        for name in (*ALGORITHMS, "ensemble", "majority", "persistence"):
            m = fold["metrics"][name]
            assert m["n"] == fold["test_rows"]
            assert 0 <= m["accuracy"] <= 1 and 0 <= m["balanced_accuracy"] <= 1
            assert m["log_loss"] > 0
    starts = [f["test_start_ms"] for f in res.folds]
    assert starts == sorted(starts)


def test_baselines_are_what_they_claim() -> None:
    y_train = np.array([0, 0, 1, -1, 0])
    pred, proba = majority_baseline(y_train, 3)
    assert list(pred) == [0, 0, 0] and proba.shape == (3, 3)
    assert np.argmax(proba[0]) == 1
    prev_train = np.array([1, 1, -1, -1, 0])
    pred, proba = persistence_baseline(prev_train, y_train, np.array([1, -1, 0]))
    assert list(pred) == [1, -1, 0]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_persistence_baseline_on_real_fold(run, candles: pd.DataFrame) -> None:
    res, _, _ = run
    settings = load_settings(label_scheme="fixed_horizon")
    close = candles["close"].to_numpy()
    y = make_labels(close, settings.label_horizon, settings.label_threshold_pct, settings.fee_pct)
    data = prepare_dataset(candles, settings)
    rows = np.nonzero(np.isin(candles["timestamp"].to_numpy(), data.ts[-500:]))[0]
    h = settings.label_horizon
    # fixed horizon: the previous move continues
    assert np.array_equal(data.prev[-500:], y[rows - h])
    # trade labels: the latest trade that has exited by t repeats; on the last fold
    fold = res.folds[-1]
    tb = prepare_dataset(candles, load_settings(max_holding_candles=HOLD))
    test = (tb.ts >= fold["test_start_ms"]) & (tb.ts <= fold["test_end_ms"])
    expected_acc = float((tb.prev[test] == tb.y[test]).mean())
    assert fold["metrics"]["persistence"]["accuracy"] == pytest.approx(expected_acc)
    out = tb.labels.outcomes
    for r in tb.rows[test][::97]:  # the label it repeats is known at r
        src = np.nonzero(out.exit_row[: r + 1] <= r)[0]
        src = src[out.exit_row[src] >= 0]
        assert out.label[src.max()] == tb.labels.previous[r]


def test_models_saved_with_evidence_and_gated(run) -> None:
    res, registry, _ = run
    assert set(res.versions) == set(ALGORITHMS)
    assert res.promotion["reason"]
    assert res.promoted == res.promotion["promoted"]
    for algo, version in res.versions.items():
        expected = version if res.promoted else None
        assert registry.production("BNB/USDT", algo) == expected
        meta = registry.show("BNB/USDT", algo, version)
        assert meta["feature_schema"] == FEATURE_SCHEMA_VERSION
        assert meta["train_start_ms"] == res.train_start_ms
        assert meta["train_end_ms"] == res.train_end_ms
        assert "majority" in meta["metrics"]["baselines"]
        assert set(meta["metrics"]["trading"]) == set(STRATEGIES)
        assert meta["promotion"]["reason"] == res.promotion["reason"]
        assert meta["label"]["scheme"] == "triple_barrier"
        assert meta["label"]["break_even"] == pytest.approx(0.02198 / 0.06993)
        assert meta["calibration"]["rows"] > 0
        assert meta["ensemble_weight"] >= 0
    for algo, version in res.versions.items():
        registry.promote("BNB/USDT", algo, version)
    ens = Ensemble.from_registry(registry, "BNB/USDT")
    assert ens.feature_schema == FEATURE_SCHEMA_VERSION
    assert ens.buy_threshold == pytest.approx(0.02198 / 0.06993)


def test_trading_figures_per_fold_and_pooled(run) -> None:
    res, _, _ = run
    for fold in res.folds:
        assert set(fold["trading"]) == set(STRATEGIES)
        assert fold["trading"]["buy_and_hold"]["exposure_pct"] > 99
    pooled = 1.0
    for fold in res.folds:
        pooled *= 1 + fold["trading"]["buy_and_hold"]["total_return_pct"] / 100
    assert res.trading["buy_and_hold"]["total_return_pct"] == pytest.approx((pooled - 1) * 100)
    assert res.trading["ensemble"]["trades"] == sum(f["trading"]["ensemble"]["trades"]
                                                    for f in res.folds)
    assert set(res.confidence_grid) >= {"0.4", "0.6"}
    for name in (*ALGORITHMS, "ensemble"):
        cal = res.calibration[name]
        assert 0 <= cal["brier_buy"] <= 1
        assert sum(b["n"] for b in cal["reliability"]) == res.overall[name]["n"]


def test_calibration_never_sees_the_test_fold(run) -> None:
    res, _, _ = run
    for fold in res.folds:
        cal = fold["calibration_window"]
        # fitted rows, purge, calibration rows, purge, test rows: in this order
        assert cal["fit_end_ms"] + (HOLD + 1) * 60_000 <= cal["start_ms"]
        assert cal["end_ms"] == fold["train_end_ms"]
        assert cal["end_ms"] + (HOLD + 1) * 60_000 < fold["test_start_ms"]


def test_calibrated_model_depends_on_training_rows_only(candles: pd.DataFrame) -> None:
    data = prepare_dataset(candles, load_settings(max_holding_candles=HOLD))
    from sklearn.model_selection import TimeSeriesSplit

    tr, te = list(TimeSeriesSplit(n_splits=3, gap=data.span).split(data.X))[-1]
    from tinhieu.training import build_models

    def fit(X: np.ndarray, y: np.ndarray):
        return fit_model("rf", build_models(CALIBRATED)["rf"], X[tr], y[tr], CALIBRATED,
                         data.span)

    first = fit(data.X, data.y)
    X2, y2 = data.X.copy(), data.y.copy()
    rng = np.random.default_rng(0)
    X2[te] = rng.normal(size=X2[te].shape)  # the test fold: anything at all
    y2[te] = rng.choice([-1, 0, 1], size=te.shape[0])
    second = fit(X2, y2)
    np.testing.assert_array_equal(first.predict_proba(data.X[te]), second.predict_proba(data.X[te]))
    fit_rows, cal_rows = calibration_split(tr.shape[0], data.span, CALIBRATED.calibration_share)
    assert first.n_calibration == cal_rows.size
    assert fit_rows[-1] + data.span < cal_rows[0]
    # the numpy path equals scikit-learn's on the same rows
    np.testing.assert_allclose(first.predict_proba(data.X[te]),
                               first.reference_predict_proba(data.X[te]), atol=1e-9)


def test_out_of_sample_runs_the_trained_versions_on_later_candles(run) -> None:
    res, registry, _ = run
    later = load_candles(DATA / "BNBUSDT_1m.csv.gz", parse_time("2021-04-23T12:00"),
                         parse_time("2021-04-27T00:00"))
    start = parse_time("2021-04-26T06:00")
    out = evaluate_out_of_sample(later, "BNB/USDT", load_settings(max_holding_candles=HOLD),
                                 registry, res.versions, start_ms=start)
    assert out["start"] == "2021-04-26 06:00" and out["candles"] == 18 * 60
    assert set(out["trading"]) == set(STRATEGIES)
    assert out["trading"]["buy_and_hold"]["exposure_pct"] > 99
    assert 0 < out["classification"]["n"] < out["candles"]  # the last trades are unknown


def test_promotion_gate_needs_an_edge_over_every_baseline() -> None:
    def figures(ens: float, bh: float, ma: float, trades: float = 20):
        return {"ensemble": {"total_return_pct": ens, "trades": trades},
                "buy_and_hold": {"total_return_pct": bh}, "ma_crossover": {"total_return_pct": ma}}

    assert promotion_decision(figures(3.0, 1.0, -2.0), 10, True)["promoted"]
    d = promotion_decision(figures(3.0, 5.0, -2.0), 10, True)
    assert not d["promoted"] and "buy_and_hold +5.00%" in d["reason"]
    d = promotion_decision(figures(-1.0, -30.0, -5.0), 10, True)
    assert not d["promoted"] and "cash" in d["reason"]  # losing less than the market: no edge
    d = promotion_decision(figures(3.0, 1.0, -2.0, trades=4), 10, True)
    assert not d["promoted"] and "round trips" in d["reason"]
    d = promotion_decision(figures(3.0, 1.0, -2.0), 10, False)
    assert d["edge"] and not d["promoted"]


def test_train_quick_is_a_promoted_fixture(candles: pd.DataFrame, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    res = train_quick(candles.iloc[:3000], "BNB/USDT", load_settings(), registry)
    assert res.promoted and res.label["scheme"] == "fixed_horizon"
    assert registry.production("BNB/USDT", "rf") == res.versions["rf"]


def test_report_has_tables_baselines_and_chart(run) -> None:
    _, _, root = run
    text = (root / "report.md").read_text(encoding="utf-8")
    assert "BNB/USDT" in text and "## Classification summary" in text
    for section in ("## Trading after fees", "## Promotion gate", "## Calibration",
                    "Reliability of the ensemble", "| buy and hold |", "| MA 50/200 crossover |",
                    "Labels: triple barrier"):
        assert section in text, section
    for name in ("| rf |", "| svm |", "| lr |", "| ensemble |", "| majority |",
                 "| persistence |"):
        assert text.count(name) >= 4, name  # overall + 3 folds
    chart = root / "report_importance.png"
    assert chart.exists() and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_little_data_is_a_clear_error(candles: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="usable rows.*longer history"):
        train_symbol(candles.iloc[:120], "BNB/USDT", load_settings(), ModelRegistry(tmp_path),
                     progress=False, config=QUICK)


def test_run_train_command_from_csv(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, symbols="ETH/USDT")
    results = run_train_command(
        settings, ["eth"], DATA, "2021-05-02", "2021-05-04", tmp_path / "r.md", n_splits=2,
        progress=False, config=QUICK,
    )
    assert list(results) == ["ETH/USDT"]
    assert (tmp_path / "r.md").exists()
    res = results["ETH/USDT"]
    production = open_registry(settings).production("ETH/USDT", "rf")  # MLflow by default
    assert production == (res.versions["rf"] if res.promoted else None)


def test_wrong_timeframe_is_named(tmp_path: Path) -> None:
    df = load_candles(DATA.parent / "binance-spot-5m-2021" / "BTCUSDT_5m.csv.gz").iloc[:1500]
    with pytest.raises(TrainingError, match=r"timeframe setting \(1m\) match the data"):
        train_symbol(df, "BTC/USDT", load_settings(timeframe="1m"), ModelRegistry(tmp_path),
                     progress=False, config=QUICK)
