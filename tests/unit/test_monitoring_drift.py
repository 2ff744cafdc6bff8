"""Drift monitor: contract on synthetic data, and the default rule on real candles
(SOL/USDT 1m 2021, ``../shared/data``): quiet in stable periods, raised after a crash."""

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tinhieu.data import load_candles
from tinhieu.features import MODEL_FEATURES, compute_features
from tinhieu.monitoring.drift import DriftMonitor, feature_reference, psi
from tinhieu.settings import load_settings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-spot-1m-2021"
WINDOW = 1440


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def monitor(ref: dict, **kw: float) -> DriftMonitor:
    s = load_settings(_env_file=None)
    args = {"window": s.drift_window, "psi_threshold": s.drift_psi_threshold,
            "ks_pvalue": s.drift_ks_pvalue,
            "prediction_psi_threshold": s.drift_prediction_psi_threshold,
            "adwin_delta": s.drift_adwin_delta, "check_every": s.drift_check_every,
            "min_features": s.drift_min_features, **kw}
    return DriftMonitor(ref, **args)


# --- contract ---------------------------------------------------------------------------------
def test_reference_is_json_deterministic_and_psi_is_zero_on_itself() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 4))
    X[10, 2] = np.nan  # a non-finite row is left out
    actions = rng.choice(["BUY", "NEUTRAL", "SELL"], p=[0.1, 0.8, 0.1], size=6000)
    ref = feature_reference(X, ["a", "b", "c", "d"], actions, window=1000)
    again = feature_reference(X, ["a", "b", "c", "d"], actions, window=1000)
    assert json.dumps(ref) == json.dumps(again)
    assert ref["n"] == 5999 and len(ref["sample"][0]) == 500
    assert len(ref["edges"][0]) == 9 and sum(ref["expected"][0]) == pytest.approx(1.0, abs=1e-4)
    assert ref["actions"]["NEUTRAL"] == pytest.approx(0.8, abs=0.02)
    assert ref["null_blocks"] == 5 and len(ref["psi_null"]) == 4
    assert float(psi(np.array(ref["expected"][0]), np.array(ref["expected"][0]))) == 0.0
    with pytest.raises(ValueError, match="columns"):
        feature_reference(X, ["a"])


def test_synthetic_shift_prediction_and_error_drift() -> None:
    rng = np.random.default_rng(1)
    cols = [f"f{i}" for i in range(12)]
    ref = feature_reference(rng.normal(size=(20_000, 12)), cols,
                            rng.choice([1, 0, -1], p=[0.1, 0.8, 0.1], size=20_000),
                            window=500)
    m = DriftMonitor(ref, window=500, psi_threshold=0.25, ks_pvalue=0.001,
                     prediction_psi_threshold=0.25, adwin_delta=0.002, check_every=50,
                     min_features=6, error_block=1)  # independent errors: one by one
    for _ in range(1000):
        m.update_features(rng.normal(size=12))
        m.update_prediction(str(rng.choice(["BUY", "NEUTRAL", "SELL"], p=[0.1, 0.8, 0.1])))
        m.update_error(bool(rng.random() < 0.3))
    st = m.status()
    assert st["ready"] and st["drifting"] == {"feature_drift": False, "prediction_drift": False,
                                              "error_drift": False}
    json.dumps(m.status(full=True))
    assert all(f["ks_pvalue"] is not None for f in m.status(full=True)["features"].values())
    for _ in range(500):  # half the features move by two standard deviations
        m.update_features(np.r_[rng.normal(size=6) + 2.0, rng.normal(size=6)])
        m.update_prediction("BUY")
        m.update_error(bool(rng.random() < 0.8))
    st = m.status()
    assert st["drifting"] == {"feature_drift": True, "prediction_drift": True,
                              "error_drift": True}
    assert st["features_drifting"] == 6
    assert set(st["drifting_feature_names"]) == set(cols[:6])
    assert st["action_shares"]["BUY"] == 1.0 and st["error_increases"] >= 1
    m.update_features(np.full(12, np.nan))
    assert m.status()["rows_skipped"] == 1


def test_error_blocks_catch_a_rise_and_not_a_steady_rate() -> None:
    ref = feature_reference(np.zeros((10, 1)) + np.arange(10)[:, None], ["x"], window=2)
    rng = np.random.default_rng(2)
    m = DriftMonitor(ref, window=1440, psi_threshold=0.25, ks_pvalue=0.001,
                     prediction_psi_threshold=0.25, adwin_delta=0.002, check_every=60)
    assert m.error_block == 10
    for _ in range(3000):
        m.update_error(bool(rng.random() < 0.3))
    assert not m.status()["drifting"]["error_drift"]
    for _ in range(1500):
        m.update_error(bool(rng.random() < 0.7))
    st = m.status()
    assert st["drifting"]["error_drift"] and st["error_rate"] > 0.5


# --- real candles -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sol() -> tuple[np.ndarray, np.ndarray, dict]:
    path = DATA / "SOLUSDT_1m.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} missing: the shared data is needed")
    df = load_candles(path, end_ms=ms("2021-06-12 00:00"))
    X = compute_features(df)[list(MODEL_FEATURES)].to_numpy(np.float64)
    ts = df["timestamp"].to_numpy(np.int64)
    ok = np.isfinite(X).all(axis=1)
    X, ts = X[ok], ts[ok]
    train = ts < ms("2021-05-02 05:00")  # the first 30 days
    ref = feature_reference(X[train], list(MODEL_FEATURES), window=WINDOW)
    return X, ts, ref


def rows(X: np.ndarray, ts: np.ndarray, start: str, n: int) -> np.ndarray:
    i = int(np.searchsorted(ts, ms(start)))
    assert ts[i + n - 1] - ts[i] == (n - 1) * 60_000, "a gap inside the test period"
    return X[i: i + n]


@pytest.mark.parametrize("start", ["2021-05-04 05:00", "2021-05-25 00:00", "2021-06-02 00:00",
                                   "2021-06-08 00:00"])
def test_a_stable_period_raises_no_drift(sol: tuple, start: str) -> None:
    X, ts, ref = sol
    m = monitor(ref)
    for r in rows(X, ts, start, 2 * WINDOW):  # two days of SOL in the training's regime
        m.update_features(r)
        assert not m.feature_drift, m.status()["drifting_feature_names"]
    assert m.status()["ready"]


def test_a_crash_raises_feature_drift_within_bounded_candles(sol: tuple) -> None:
    X, ts, ref = sol
    calm = rows(X, ts, "2021-06-02 00:00", WINDOW)
    crash = rows(X, ts, "2021-05-18 12:00", 3 * WINDOW)  # 12 h before the 19 May crash
    m = monitor(ref)
    for r in calm:
        m.update_features(r)
    assert not m.feature_drift
    delay = None
    for i, r in enumerate(crash, start=1):
        m.update_features(r)
        if m.feature_drift:
            delay = i
            break
    assert delay is not None and delay <= 1.5 * WINDOW  # measured: 1,560 candles
    st = m.status()
    assert st["features_drifting"] >= 10
    assert "bb_width" in st["drifting_feature_names"]  # the bands widen in a crash
