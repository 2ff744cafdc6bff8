"""Ensemble: the vote arithmetic, NEUTRAL below min confidence, fast path == scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinhieu.data import load_candles, parse_time
from tinhieu.ensemble import (
    ALGORITHMS,
    Ensemble,
    Member,
    combine,
    compile_model,
    parse_weights,
)
from tinhieu.features import (
    FEATURE_SCHEMA_VERSION,
    MODEL_COLUMNS,
    MODEL_FEATURES,
    WARMUP,
    compute_features,
)
from tinhieu.registry import ModelRegistry, ModelRegistryError
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-spot-1m-2021"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    df = load_candles(DATA / "SOLUSDT_1m.csv.gz", parse_time("2021-05-01"), None)
    return df.iloc[:4500].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(candles: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    train_quick(candles.iloc[:3500], "SOL/USDT", load_settings(), registry)
    return registry


@pytest.fixture(scope="module")
def unseen(candles: pd.DataFrame) -> np.ndarray:
    """Full feature rows of candles the models never saw (after the training slice)."""
    feats = compute_features(candles).to_numpy()
    return feats[3500:][np.isfinite(feats[3500:]).all(axis=1)]


# --- the rule -----------------------------------------------------------------------------
def test_weighted_soft_vote_arithmetic() -> None:
    probas = np.array([
        [[0.1, 0.2, 0.7]],   # rf
        [[0.6, 0.3, 0.1]],   # svm
        [[0.2, 0.2, 0.6]],   # lr
    ])
    cols, conf, weighted = combine(probas, np.array([2.0, 1.0, 1.0]), 0.0)
    expected = (2 * probas[0, 0] + probas[1, 0] + probas[2, 0]) / 4
    np.testing.assert_allclose(weighted[0], expected)
    assert cols[0] == 2 and conf[0] == pytest.approx(expected[2])  # BUY at 0.525
    cols, conf, _ = combine(probas, np.array([2.0, 1.0, 1.0]), 0.6)
    assert cols[0] == 1 and conf[0] == pytest.approx(expected[1])  # below 0.6: NEUTRAL


def test_tie_goes_to_neutral() -> None:
    probas = np.array([[[0.4, 0.4, 0.2]], [[0.4, 0.4, 0.2]]])
    cols, _, _ = combine(probas, np.array([1.0, 1.0]), 0.0)
    assert cols[0] == 1


@dataclass
class Fixed:
    p: tuple[float, float, float]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(np.array(self.p), (X.shape[0], 1))


def _ensemble(min_confidence: float) -> Ensemble:
    members = [
        Member("rf", "v1", 1.0, Fixed((0.05, 0.15, 0.8)), None),
        Member("svm", "v2", 1.0, Fixed((0.1, 0.3, 0.6)), None),
        Member("lr", "v3", 2.0, Fixed((0.7, 0.2, 0.1)), None),
    ]
    return Ensemble("BTC/USDT", members, min_confidence=min_confidence)


def test_prediction_votes_and_neutral_below_min_confidence() -> None:
    row = np.zeros(len(MODEL_FEATURES))
    pred = _ensemble(0.0).predict(row)
    # BUY = (0.8 + 0.6 + 2 * 0.1) / 4 = 0.4; SELL = (0.05 + 0.1 + 1.4) / 4 = 0.3875
    assert pred.action == "BUY" and pred.confidence == pytest.approx(0.4)
    assert [(v.model, v.action, v.weight) for v in pred.votes] == [
        ("rf", "BUY", 0.25), ("svm", "BUY", 0.25), ("lr", "SELL", 0.5)
    ]
    assert pred.votes[2].confidence == pytest.approx(0.7)
    assert pred.model_version == "rf:v1,svm:v2,lr:v3"
    low = _ensemble(0.6).predict(row)
    assert low.action == "NEUTRAL" and low.confidence == pytest.approx((0.15 + 0.3 + 0.4) / 4)


def test_predict_refuses_nan_and_wrong_length() -> None:
    row = np.zeros(len(MODEL_FEATURES))
    row[3] = np.nan
    with pytest.raises(ValueError, match=f"{MODEL_FEATURES[3]} are not finite"):
        _ensemble(0.6).predict(row)
    with pytest.raises(ValueError, match="expected"):
        _ensemble(0.6).predict(np.zeros(5))


def test_parse_weights() -> None:
    assert parse_weights(None) is None and parse_weights(" ") is None
    assert parse_weights("rf=1, svm=0.5,LR=2") == {"rf": 1.0, "svm": 0.5, "lr": 2.0}
    for bad, msg in (("xgb=1", "bad item"), ("rf=abc", "not a number"), ("rf=-1", ">= 0"),
                     ("rf=0,lr=0", "at least one")):
        with pytest.raises(ValueError, match=msg):
            parse_weights(bad)


# --- real models ----------------------------------------------------------------------------
def test_from_registry_without_models(tmp_path: Path) -> None:
    with pytest.raises(ModelRegistryError, match="no production models for BTC/USDT"):
        Ensemble.from_registry(ModelRegistry(tmp_path), "BTC/USDT")


def test_fast_path_equals_sklearn(trained: ModelRegistry, unseen: np.ndarray) -> None:
    ens = Ensemble.from_registry(trained, "SOL/USDT")
    assert [m.algorithm for m in ens.members] == list(ALGORITHMS)
    X = unseen[:, MODEL_COLUMNS]
    for m in ens.members:
        assert type(m.fast).__name__ != "SklearnFallback", m.algorithm
        expected = np.zeros((X.shape[0], 3))
        cols = [[-1, 0, 1].index(int(c)) for c in m.model.classes_]
        expected[:, cols] = m.model.predict_proba(X)
        np.testing.assert_allclose(m.fast.predict_proba(X), expected, rtol=1e-9, atol=1e-12)
        row = X[7:8]
        np.testing.assert_allclose(m.fast.predict_proba(row), expected[7:8], rtol=1e-9,
                                   atol=1e-12)


def test_predict_many_equals_predict(trained: ModelRegistry, unseen: np.ndarray) -> None:
    ens = Ensemble.from_registry(trained, "SOL/USDT", min_confidence=0.5)
    batch = ens.predict_many(unseen[:300])
    for i in range(0, 300, 7):
        assert ens.predict(unseen[i]) == batch[i]
    assert {p.action for p in batch} <= {"BUY", "SELL", "NEUTRAL"}
    assert all(0.0 <= p.confidence <= 1.0 for p in batch)


def test_weights_override_and_metadata_defaults(trained: ModelRegistry,
                                                unseen: np.ndarray) -> None:
    default = Ensemble.from_registry(trained, "SOL/USDT")
    stored = [trained.load("SOL/USDT", a).metadata["ensemble_weight"] for a in ALGORITHMS]
    if sum(stored) > 0:
        np.testing.assert_allclose(default.weights, np.array(stored) / sum(stored))
    only_lr = Ensemble.from_registry(trained, "SOL/USDT", weights={"lr": 1.0}, min_confidence=0)
    lr = next(m for m in only_lr.members if m.algorithm == "lr")
    p = only_lr.predict_proba(unseen[:20])
    np.testing.assert_allclose(p, lr.fast.predict_proba(unseen[:20, MODEL_COLUMNS]))
    with pytest.raises(ValueError, match="weight 0 to every production model"):
        Ensemble.from_registry(trained, "SOL/USDT", weights={"rf": 0.0})


def test_fast_path_two_class_models(candles: pd.DataFrame) -> None:
    """Binary models (a symbol whose history lacks one class) still map to 3 columns."""
    from tinhieu.training import QUICK, build_models

    feats = compute_features(candles.iloc[:2000]).iloc[WARMUP:]
    X = feats[list(MODEL_FEATURES)].to_numpy()
    y = np.where(feats["ret_1"].to_numpy() > 0, 1, 0)  # BUY/NEUTRAL only
    for algo, model in build_models(QUICK).items():
        model.fit(X[:1500], y[:1500])
        fast = compile_model(model).predict_proba(X[1500:])
        np.testing.assert_allclose(fast[:, 1:], model.predict_proba(X[1500:]), rtol=1e-9,
                                   atol=1e-12, err_msg=algo)
        assert (fast[:, 0] == 0).all()


# --- trade-outcome labels: the break-even BUY gate and calibrated models ------------------------
def test_buy_gate_is_max_of_min_confidence_and_break_even() -> None:
    probas = np.array([
        [[0.50, 0.15, 0.35]],   # P(BUY) 0.35 > break-even 0.314, although SELL is likelier
        [[0.62, 0.08, 0.30]],   # P(BUY) below break-even; SELL the argmax above 0.6: SELL
        [[0.40, 0.55, 0.05]],   # nothing clears: NEUTRAL
        [[0.45, 0.10, 0.45]],   # a BUY tie: the gate decides, not the argmax
    ])[:, 0][:, None, :]
    w = np.array([1.0])
    be = 0.3143
    cols = [combine(p[None], w, 0.3, be)[0][0] for p in probas[:, 0]]
    assert cols == [2, 0, 1, 2]
    # min_confidence above the break-even: the BUY gate moves up with it
    cols = [combine(p[None], w, 0.4, be)[0][0] for p in probas[:, 0]]
    assert cols == [1, 0, 1, 2]
    col, conf, _ = combine(probas[0][None], w, 0.3, be)
    assert conf[0] == pytest.approx(0.35)  # the confidence of a BUY is P(BUY)
    # SELL is never sent while P(BUY) clears the break-even, even below min_confidence
    col, _, _ = combine(np.array([[[0.66, 0.0, 0.34]]]), w, 0.5, be)
    assert col[0] == 1
    # without a break-even (fixed-horizon models): the argmax rule, as before
    assert combine(probas[0][None], w, 0.3)[0][0] == 0


def test_calibrated_model_compiles_pickles_and_matches_sklearn(candles: pd.DataFrame,
                                                              tmp_path) -> None:
    from tinhieu.ensemble import CalibratedModel
    from tinhieu.training import QUICK, build_models

    feats = compute_features(candles.iloc[:3000]).iloc[WARMUP:]
    X = feats[list(MODEL_FEATURES)].to_numpy()
    r = feats["ret_5"].to_numpy()
    y = np.where(r > 0.001, 1, np.where(r < -0.001, -1, 0))
    reg = ModelRegistry(tmp_path)
    for algo, model in build_models(QUICK).items():
        if algo == "svm":
            model.steps[-1] = ("clf", model.steps[-1][1].estimator)  # the bare LinearSVC
        model.fit(X[:1500], y[:1500])
        cal = CalibratedModel(model, method="sigmoid" if algo == "svm" else "isotonic",
                              score="decision" if algo == "svm" else "proba")
        cal.fit_calibration(X[1500:2200], y[1500:2200])
        fast = compile_model(cal).predict_proba(X[2200:])
        np.testing.assert_allclose(fast, cal.reference_predict_proba(X[2200:]), atol=1e-9,
                                   err_msg=algo)
        np.testing.assert_allclose(fast.sum(axis=1), 1.0)
        version = reg.save("SOL/USDT", algo, cal, {"feature_schema": FEATURE_SCHEMA_VERSION})
        loaded = reg.load("SOL/USDT", algo, version).model
        np.testing.assert_array_equal(compile_model(loaded).predict_proba(X[2200:]), fast)
