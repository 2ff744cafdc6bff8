"""Features: incremental == batch on real candles, no lookahead, pandas-ta seed values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest

from tinhieu.candles import Bar
from tinhieu.data import load_candles, parse_time
from tinhieu.features import (
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    FIRST_COMPLETE,
    MODEL_FEATURES,
    SEED_FEATURES,
    WARMUP,
    FeatureError,
    FeatureState,
    compute_features,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-spot-1m-2021"
# 3,000 XRP candles around the 151-minute exchange outage of 2021-04-20 01:59 UTC.
START = parse_time("2021-04-19T00:00")


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    df = load_candles(DATA / "XRPUSDT_1m.csv.gz", START, None).iloc[:3000]
    return df.reset_index(drop=True)


@pytest.fixture(scope="module")
def batch(candles: pd.DataFrame) -> pd.DataFrame:
    return compute_features(candles)


def _bars(df: pd.DataFrame) -> list[Bar]:
    return [Bar(int(r[0]), *map(float, r[1:])) for r in df.itertuples(index=False)]


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    # 1e-9 relative; 1e-12 absolute only for values that are themselves ~0 (a return of
    # exactly 0.0 in one computation may be 1e-17 in the other).
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, equal_nan=False)


def test_the_slice_spans_a_real_gap(candles: pd.DataFrame) -> None:
    steps = np.diff(candles["timestamp"].to_numpy())
    assert steps.max() > 60_000, "the test slice should include the 2021-04-20 outage"


def test_names_schema_and_warmup() -> None:
    assert len(SEED_FEATURES) == 14 and set(SEED_FEATURES) <= set(FEATURE_NAMES)
    assert set(MODEL_FEATURES) <= set(FEATURE_NAMES)
    assert not {"open", "high", "low", "close", "volume", "SMA_50", "BB_upper"} & set(
        MODEL_FEATURES
    ), "raw price levels must not reach the models"
    assert FEATURE_SCHEMA_VERSION.startswith("f2-")
    # Every indicator has a value long before the first row is given out: the first row is
    # the one where the recursive indicators have settled (the same in training and live).
    assert FIRST_COMPLETE <= 52 < WARMUP == 300


def test_settled_rows_do_not_depend_on_where_the_history_starts(candles: pd.DataFrame) -> None:
    """After WARMUP candles, a series started 700 candles later gives the same features."""
    late = compute_features(candles.iloc[700:1500].reset_index(drop=True))
    early = compute_features(candles.iloc[:1500])
    row = 700 + WARMUP - 1
    np.testing.assert_allclose(
        late[list(MODEL_FEATURES)].iloc[WARMUP - 1].to_numpy(),
        early[list(MODEL_FEATURES)].iloc[row].to_numpy(),
        rtol=1e-6,
        atol=1e-9,
    )


def test_warmup_rows_are_nan_then_complete(batch: pd.DataFrame) -> None:
    assert batch.iloc[: WARMUP - 1].isna().all(axis=1).all()
    assert batch.iloc[WARMUP - 1 :].notna().all().all()


def test_incremental_equals_batch_over_real_history(
    candles: pd.DataFrame, batch: pd.DataFrame
) -> None:
    state = FeatureState()
    rows = []
    for i, bar in enumerate(_bars(candles)):
        if i in (WARMUP - 1, 1234):  # survive a round trip through JSON (the Faust table)
            state = FeatureState.from_dict(json.loads(json.dumps(state.to_dict())))
        vec = state.update(bar)
        assert (vec is None) == (i < WARMUP - 1), i
        if vec is not None:
            assert vec.dtype == np.float64 and vec.shape == (len(FEATURE_NAMES),)
            rows.append(vec)
    _close(np.array(rows), batch.to_numpy()[WARMUP - 1 :])


def test_no_lookahead(candles: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Row t is the same whether later candles exist, are absent, or are altered."""
    for t in (WARMUP - 1, 400, 1500, 2998):
        truncated = compute_features(candles.iloc[: t + 1])
        _close(truncated.iloc[t].to_numpy(), batch.iloc[t].to_numpy())
        altered = candles.copy()
        later = altered.index > t
        for col in ("open", "high", "low", "close"):
            altered.loc[later, col] = altered.loc[later, col] * 3.0
        altered.loc[later, "volume"] = 0.0
        _close(compute_features(altered).iloc[t].to_numpy(), batch.iloc[t].to_numpy())


def test_seed_features_are_pandas_ta_values(candles: pd.DataFrame, batch: pd.DataFrame) -> None:
    close = candles["close"]
    macd = ta.macd(close, fast=12, slow=26, signal=9)
    bb = ta.bbands(close, length=20, lower_std=2.0, upper_std=2.0)
    expected = {
        "SMA_10": ta.sma(close, length=10),
        "SMA_20": ta.sma(close, length=20),
        "SMA_50": ta.sma(close, length=50),
        "RSI_14": ta.rsi(close, length=14),
        "MACD": macd["MACD_12_26_9"],
        "MACD_signal": macd["MACDs_12_26_9"],
        "BB_upper": bb["BBU_20_2.0_2.0"],
        "BB_lower": bb["BBL_20_2.0_2.0"],
        "volume_sma_ratio": candles["volume"] / ta.sma(candles["volume"], length=20),
    }
    rows = slice(WARMUP - 1, None)
    for name, series in expected.items():
        _close(batch[name].to_numpy()[rows], series.to_numpy()[rows])
    for name in ("open", "high", "low", "close", "volume"):
        assert (batch[name].iloc[rows] == candles[name].iloc[rows]).all()


def test_scale_free_features_do_not_depend_on_price_level(candles: pd.DataFrame) -> None:
    scaled = candles.copy()
    for col in ("open", "high", "low", "close"):
        scaled[col] = scaled[col] * 1000.0
    scaled["volume"] = scaled["volume"] * 7.0
    a = compute_features(candles.iloc[:600])[list(MODEL_FEATURES)].iloc[WARMUP:]
    b = compute_features(scaled.iloc[:600])[list(MODEL_FEATURES)].iloc[WARMUP:]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-7, atol=1e-10)


def test_hand_checked_values(candles: pd.DataFrame, batch: pd.DataFrame) -> None:
    t = 777
    c = candles["close"].to_numpy()
    assert batch["ret_5"].iloc[t] == pytest.approx(np.log(c[t] / c[t - 5]), rel=1e-12)
    assert batch["dist_sma_10"].iloc[t] == pytest.approx(c[t] / c[t - 9 : t + 1].mean() - 1)
    std = c[t - 19 : t + 1].std(ddof=1)
    assert batch["bb_width"].iloc[t] == pytest.approx(4 * std / c[t - 19 : t + 1].mean())
    ts = int(candles["timestamp"].iloc[t])
    minute = (ts // 60_000) % 1440
    assert batch["hour_sin"].iloc[t] == pytest.approx(np.sin(2 * np.pi * minute / 1440))


def test_update_refuses_old_or_repeated_candles(candles: pd.DataFrame) -> None:
    bars = _bars(candles.iloc[:3])
    state = FeatureState()
    state.update(bars[0])
    state.update(bars[1])
    with pytest.raises(FeatureError, match="not after the previous one"):
        state.update(bars[1])
    with pytest.raises(FeatureError, match="not after"):
        state.update(bars[0])
    assert state.count == 2


def test_from_dict_refuses_other_schema() -> None:
    d = FeatureState().to_dict()
    d["schema"] = "f0-old"
    with pytest.raises(FeatureError, match="replaying the history"):
        FeatureState.from_dict(d)
    bad = FeatureState().to_dict()
    del bad["closes"]
    with pytest.raises(FeatureError, match="malformed"):
        FeatureState.from_dict(bad)


def test_compute_features_rejects_bad_input(candles: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match="lack column"):
        compute_features(candles.drop(columns=["volume"]))
    with pytest.raises(FeatureError, match="strictly ascending"):
        compute_features(candles.iloc[[0, 2, 1]])
    short = compute_features(candles.iloc[:10])
    assert short["SMA_50"].isna().all() and short["MACD"].isna().all()


# --- multi-timeframe features: 5m / 15m / 1h candles from the closed 1m candles -------------------
MTF = [n for n in MODEL_FEATURES if n.startswith("mtf")]


def test_mtf_no_lookahead_changing_future_1m_candles(candles: pd.DataFrame,
                                                     batch: pd.DataFrame) -> None:
    """Changing any 1m candle after t changes no feature row <= t: a higher-timeframe
    candle still open at t (here 10, 25 or 40 minutes into its hour) is never read."""
    assert len(MTF) == 15
    for t in (WARMUP + 9, 1000, 1500 + 37):
        assert (candles["timestamp"].iloc[t] // 60_000) % 60 not in (59, 14, 29, 44)
        altered = candles.copy()
        later = altered.index > t
        for col in ("open", "high", "low", "close"):
            altered.loc[later, col] = altered.loc[later, col] * np.linspace(0.5, 2.0,
                                                                            later.sum())
        changed = compute_features(altered)
        np.testing.assert_array_equal(changed.iloc[: t + 1].to_numpy(),
                                      batch.iloc[: t + 1].to_numpy())
        assert not np.allclose(changed[MTF].iloc[t + 61].to_numpy(),
                               batch[MTF].iloc[t + 61].to_numpy())


def test_mtf_candle_is_used_from_the_minute_it_closes(candles: pd.DataFrame,
                                                      batch: pd.DataFrame) -> None:
    ts = candles["timestamp"].to_numpy()
    five = candles.set_index(pd.to_datetime(candles["timestamp"], unit="ms")).resample("5min")
    bars = pd.DataFrame({"open": five["open"].first(), "high": five["high"].max(),
                         "low": five["low"].min(), "close": five["close"].last()}).dropna()
    t = 600  # a settled row; find the last minute of its 5m bucket
    while (ts[t] // 60_000) % 5 != 4:
        t += 1
    end = pd.Timestamp(ts[t] - 4 * 60_000, unit="ms")  # open time of the bucket t closes
    i = bars.index.get_loc(end)
    expect_ret = np.log(bars["close"].iloc[i]) - np.log(bars["close"].iloc[i - 1])
    assert batch["mtf5_ret_1"].iloc[t] == pytest.approx(expect_ret, rel=1e-12)
    assert batch["mtf5_range"].iloc[t] == pytest.approx(
        (bars["high"].iloc[i] - bars["low"].iloc[i]) / bars["close"].iloc[i], rel=1e-12)
    # one minute earlier the bucket was still open: the row read the bucket before it
    prev_ret = np.log(bars["close"].iloc[i - 1]) - np.log(bars["close"].iloc[i - 2])
    assert batch["mtf5_ret_1"].iloc[t - 1] == pytest.approx(prev_ret, rel=1e-12)
    # and the 1h features change only on the hour's last minute
    hour = batch["mtf60_ret_1"].to_numpy()[WARMUP:]
    changes = np.nonzero(np.diff(hour))[0] + 1 + WARMUP
    assert ((ts[changes] // 60_000) % 60 == 59).mean() > 0.9  # the rest: after the gap


def test_mtf_incremental_equals_batch_from_inside_a_bucket(candles: pd.DataFrame) -> None:
    """Started 7 minutes into an hour and across the outage: the same rows both ways."""
    part = candles.iloc[7:2400].reset_index(drop=True)
    expected = compute_features(part)
    state = FeatureState()
    rows = []
    for i, bar in enumerate(_bars(part)):
        if i == 777:
            state = FeatureState.from_dict(json.loads(json.dumps(state.to_dict())))
        vec = state.update(bar)
        if vec is not None:
            rows.append(vec)
    _close(np.array(rows), expected.to_numpy()[WARMUP - 1:])
    # the incomplete first hour is never used: the first settled row reads 4 whole hours
    assert np.isfinite(expected[MTF].iloc[WARMUP - 1]).all()
