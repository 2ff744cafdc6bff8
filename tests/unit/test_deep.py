"""The optional LSTM with attention (tinhieu.deep): windows, training, registry, serving.

Skipped when the ``deep`` extra (Keras, JAX) is not installed; tests/unit/test_deep_absent.py
covers that case.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tinhieu import deep

pytestmark = pytest.mark.skipif(
    not deep.available(),
    reason="the deep extra (Keras, JAX) is not installed: pip install -e .[deep]",
)

from tinhieu.backtest.engine import predict_signals  # noqa: E402
from tinhieu.broker import RiskConfig  # noqa: E402
from tinhieu.candles import Bar, ValidCandle  # noqa: E402
from tinhieu.data import load_candles, parse_time  # noqa: E402
from tinhieu.deep.forward import CLIP, LstmModel  # noqa: E402
from tinhieu.deep.sequences import (  # noqa: E402
    decode_rows,
    encode_rows,
    serving_windows,
    training_sequences,
)
from tinhieu.ensemble import Ensemble  # noqa: E402
from tinhieu.features import MODEL_COLUMNS, MODEL_FEATURES, WARMUP, compute_features  # noqa: E402
from tinhieu.pipeline import advance  # noqa: E402
from tinhieu.registry import ModelRegistry, ModelRegistryError  # noqa: E402
from tinhieu.settings import load_settings  # noqa: E402
from tinhieu.training import TrainingError, prepare_dataset, train_quick  # noqa: E402

L = deep.SEQUENCE_LENGTH


@pytest.fixture(scope="module")
def eth(data_1m: Path):
    # ~4 days of real candles; crosses the 2021-04-20 01:59 outage (151 minutes)
    return load_candles(data_1m / "ETHUSDT_1m.csv.gz", parse_time("2021-04-17T12:00"),
                        parse_time("2021-04-21T06:00"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, eth):
    """rf + lr + lstm (QUICK sizes) trained once into a registry; the seconds it took."""
    root = tmp_path_factory.mktemp("deep") / "models"
    registry = ModelRegistry(root)
    settings = load_settings(model_dir=root, algorithms="rf,lr,lstm")
    started = time.perf_counter()
    result = train_quick(eth, "ETH/USDT", settings, registry)
    return registry, result, time.perf_counter() - started


def _model_matrix(df) -> np.ndarray:
    return compute_features(df)[list(MODEL_FEATURES)].to_numpy(np.float64)


def test_a_later_row_never_changes_an_earlier_window(eth) -> None:
    X = _model_matrix(eth)
    rows = np.flatnonzero(np.isfinite(X).all(axis=1))
    seq = training_sequences(X, rows, L).materialize()
    for t in (rows[0] + 3, rows[len(rows) // 2], rows[-40]):
        changed = X.copy()
        changed[t + 1:] *= 3.0          # every later row different ...
        changed[t + 1::7] = np.nan      # ... and some of them not finite
        keep = rows[rows <= t]
        again = training_sequences(changed, keep, L).materialize()
        assert np.array_equal(again, seq[: keep.size])
        # the window of t ends with t's own row and holds nothing after it
        assert np.array_equal(again[-1, -1], X[t])
    # the first windows repeat the oldest finite row; later ones are the last L rows
    assert np.array_equal(seq[0], np.repeat(X[rows[0]][None], L, axis=0))
    i = len(rows) // 2
    assert np.array_equal(seq[i], X[rows[i - L + 1: i + 1]])


def test_live_windows_equal_training_windows_in_any_chunking(eth) -> None:
    X = _model_matrix(eth)
    rows = np.flatnonzero(np.isfinite(X).all(axis=1))
    want = training_sequences(X, rows, L).materialize()
    for size in (1, 5, 100):
        got = []
        history = None
        for lo in range(0, rows.size, size):
            part = X[rows[lo: lo + size]]
            got.append(serving_windows(history, part, L).materialize())
            history = decode_rows(encode_rows(np.vstack([h for h in (history, part)
                                                         if h is not None])[-(L - 1):]))
        assert np.array_equal(np.concatenate(got), want)


def test_training_windows_never_cross_a_gap(eth) -> None:
    data = prepare_dataset(eth, load_settings())
    ts = eth["timestamp"].to_numpy(np.int64)
    # every usable row's window is L consecutive minutes (the outage's rows are dropped)
    for r in data.rows[:: 50]:
        assert (np.diff(ts[r - L + 1: r + 1]) == 60_000).all()


def test_small_lstm_trains_on_real_candles_and_is_saved_through_the_registry(trained) -> None:
    registry, result, seconds = trained
    assert seconds < 60
    assert set(result.versions) == {"rf", "lr", "lstm"}
    for name in ("lstm", "ensemble", "majority", "persistence"):
        assert np.isfinite(result.overall[name]["log_loss"])
    assert set(result.weights) == {"rf", "lr", "lstm"}
    loaded = registry.load("ETH/USDT", "lstm")
    assert isinstance(loaded.model, LstmModel)  # QUICK: not calibrated
    meta = loaded.metadata
    assert meta["algorithm"] == "lstm" and len(meta["sha256"]) == 64
    assert meta["feature_names"] == list(MODEL_FEATURES)
    assert meta["params"]["sequence_length"] == L
    assert meta["params"]["history_epochs"] >= 1
    assert meta["params"]["history_backend"] == "jax"
    # the registry's sha256 check covers the LSTM artifact like any other
    version_dir = next((registry.root / "ETHUSDT" / "lstm").glob(result.versions["lstm"]))
    artifact = version_dir / "model.joblib"
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ModelRegistryError, match="sha256"):
            registry.load("ETH/USDT", "lstm")
    finally:
        artifact.write_bytes(original)


def test_numpy_serving_equals_keras(trained, eth) -> None:
    from tinhieu.deep.keras_model import keras_inputs, to_keras

    model = trained[0].load("ETH/USDT", "lstm").model
    X = _model_matrix(eth)
    rows = np.flatnonzero(np.isfinite(X).all(axis=1))
    seq = training_sequences(X, rows, L)[np.arange(0, rows.size, 3)]
    ours = model.predict_proba(seq)
    net = to_keras(model, X.shape[1])
    theirs = np.asarray(net.predict(keras_inputs(model, seq), verbose=0, batch_size=512))
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.allclose(ours.sum(axis=1), 1.0)
    # extreme inputs are clipped the same way in both paths
    wild = seq.materialize()[:8] * 1e6
    assert np.abs(model.predict_proba(wild) - np.asarray(
        net.predict(np.clip(model.standardize(wild), -CLIP, CLIP).astype(np.float32),
                    verbose=0))).max() < 1e-5


def test_ensemble_includes_the_lstm_and_backtest_equals_live(trained, eth) -> None:
    registry = trained[0]
    ens = Ensemble.from_registry(registry, "ETH/USDT", min_confidence=0.45)
    assert [m.algorithm for m in ens.members] == ["rf", "lr", "lstm"]
    assert ens.context_rows == L - 1
    day = eth.iloc[-(WARMUP + 150):].reset_index(drop=True)
    F = compute_features(day).to_numpy()[WARMUP - 1:]
    many = ens.predict_many(F)
    one_by_one = [ens.predict(F[i], history=F[:i]) for i in range(len(F))]
    assert many == one_by_one  # bit for bit, votes and probabilities included
    # the backtest, in chunks (the chunk boundary reads the rows before it)
    preds, _ = predict_signals(day, ens, WARMUP - 1, chunk=37)
    batch = [p for p in preds if p is not None]
    assert [(p.action, p.confidence) for p in batch] == [(m.action, m.confidence) for m in many]
    # live: advance() over batches, the record through JSON
    risk = RiskConfig(min_confidence=0.45)
    candles = [(ValidCandle("ETH/USDT", Bar(int(r[0]), *map(float, r[1:6]))), k)
               for k, r in enumerate(day.itertuples(index=False))]
    for size in (1, 7, 500):
        record, signals = None, []
        for lo in range(0, len(candles), size):
            step = advance(record, "ETH/USDT", candles[lo: lo + size], ens, risk,
                           window_size=60, timeframe_ms=60_000)
            record = json.loads(json.dumps(step.record))
            signals.extend(step.signals)
        live = signals[WARMUP - 1:]
        # incremental features equal the batch ones to 1e-9 (docs/ML.md), not bit for bit
        assert [s["action"] for s in live] == [m.action for m in many]
        assert [s["confidence"] for s in live] == pytest.approx(
            [m.confidence for m in many], rel=1e-9)
        assert {v["model"] for v in live[-1]["votes"]} == {"rf", "lr", "lstm"}
        history = decode_rows(record["history"])
        assert history is not None
        np.testing.assert_allclose(history, F[-(L - 1):, MODEL_COLUMNS], rtol=1e-9, atol=1e-12)


def test_without_the_extra_the_ensemble_leaves_the_lstm_out(trained, monkeypatch) -> None:
    monkeypatch.setattr(deep, "available", lambda: False)
    ens = Ensemble.from_registry(trained[0], "ETH/USDT", min_confidence=0.45)
    assert [m.algorithm for m in ens.members] == ["rf", "lr"]
    assert ens.context_rows == 0


def test_asking_for_the_lstm_without_the_extra_names_the_install(eth, tmp_path,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(deep, "available", lambda: False)
    settings = load_settings(model_dir=tmp_path, algorithms="rf,lstm")
    with pytest.raises(TrainingError, match=r"pip install -e \.\[deep\]"):
        train_quick(eth, "ETH/USDT", settings, ModelRegistry(tmp_path))
