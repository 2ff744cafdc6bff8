"""A small walk-forward training run on real candles: folds, baselines, report, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinhieu.data import load_candles, parse_time
from tinhieu.ensemble import ALGORITHMS, Ensemble
from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.labels import make_labels
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.training import (
    QUICK,
    TrainingError,
    majority_baseline,
    persistence_baseline,
    prepare_dataset,
    run_train_command,
    train,
    train_symbol,
)

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
    results = train({"BNB/USDT": candles}, load_settings(), registry,
                    report_path=root / "report.md", n_splits=3, progress=False, config=QUICK)
    return results["BNB/USDT"], registry, root


def test_gap_rows_are_dropped_not_filled(candles: pd.DataFrame) -> None:
    settings = load_settings()
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
    horizon = load_settings().label_horizon
    assert len(res.folds) == 3
    for fold in res.folds:
        assert fold["train_end_ms"] + horizon * 60_000 < fold["test_start_ms"]
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
    settings = load_settings()
    close = candles["close"].to_numpy()
    y = make_labels(close, settings.label_horizon, settings.label_threshold_pct, settings.fee_pct)
    ts = candles["timestamp"].to_numpy()
    fold = res.folds[-1]
    rows = np.nonzero((ts >= fold["test_start_ms"]) & (ts <= fold["test_end_ms"]))[0]
    data = prepare_dataset(candles, settings)
    usable = set(data.ts.tolist())
    rows = np.array([r for r in rows if ts[r] in usable])
    h = settings.label_horizon
    expected_acc = float((y[rows - h] == y[rows]).mean())  # the previous move continues
    assert fold["metrics"]["persistence"]["accuracy"] == pytest.approx(expected_acc)


def test_models_saved_promoted_and_usable(run) -> None:
    res, registry, _ = run
    assert set(res.versions) == set(ALGORITHMS) and res.promoted
    for algo, version in res.versions.items():
        assert registry.production("BNB/USDT", algo) == version
        meta = registry.show("BNB/USDT", algo, version)
        assert meta["feature_schema"] == FEATURE_SCHEMA_VERSION
        assert meta["train_start_ms"] == res.train_start_ms
        assert meta["train_end_ms"] == res.train_end_ms
        assert "majority" in meta["metrics"]["baselines"]
        assert meta["ensemble_weight"] >= 0
    ens = Ensemble.from_registry(registry, "BNB/USDT")
    assert ens.feature_schema == FEATURE_SCHEMA_VERSION


def test_report_has_tables_baselines_and_chart(run) -> None:
    _, _, root = run
    text = (root / "report.md").read_text(encoding="utf-8")
    assert "BNB/USDT" in text and "## Summary" in text
    for name in ("| rf |", "| svm |", "| lr |", "| ensemble |", "| majority |",
                 "| persistence |"):
        assert text.count(name) == 4, name  # overall + 3 folds
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
    assert ModelRegistry(settings.models_path).production("ETH/USDT", "rf") is not None


def test_wrong_timeframe_is_named(tmp_path: Path) -> None:
    df = load_candles(DATA.parent / "binance-spot-5m-2021" / "BTCUSDT_5m.csv.gz").iloc[:1500]
    with pytest.raises(TrainingError, match=r"timeframe setting \(1m\) match the data"):
        train_symbol(df, "BTC/USDT", load_settings(timeframe="1m"), ModelRegistry(tmp_path),
                     progress=False, config=QUICK)
