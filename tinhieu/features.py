"""Features of a closed candle, in batch (training, backtest) and incrementally (live).

Two ways to compute the same numbers:

* :func:`compute_features` takes a whole history (DataFrame with ``timestamp,open,high,low,
  close,volume``) and uses pandas-ta for the seed indicators;
* :class:`FeatureState` takes one :class:`~tinhieu.candles.Bar` at a time and keeps the
  running state (EMA/RMA values, short rolling buffers) as plain JSON types, so it can live in
  a changelogged Faust table.

``FeatureState.update`` after the candles ``0..t`` equals row ``t`` of ``compute_features``
over the same candles to 1e-9 relative. The EMA/RMA indicators (RSI, MACD) have infinite
memory and pandas-ta seeds them from the first candles of the series, so both must start from
the same first candle; the state replays pandas' own ``ewm`` recursion operation for operation.

Feature groups
--------------
``SEED_FEATURES`` (the 14 of the original prototype) include raw price and volume levels;
they are computed and published but **not** given to the models: a model trained on BTC at
58,000 USDT learns nothing usable about XRP at 1.5 USDT, or about BTC at 30,000.
``MODEL_FEATURES`` are scale-free (returns, distances relative to close, ratios, volatility,
time of day, and the 5m / 15m / 1h candles built from the closed 1-minute candles) and are
what the models see.

Higher timeframes (``MTF_MINUTES``): the 1-minute candles of each bucket ``[b, b + tf)`` make
one candle (first open, max high, min low, last close). It is read only once closed: from
the row of the candle that opens at ``b + tf - 1 minute`` (which closes at ``b + tf``), or,
when that minute is missing (a gap), from the first candle of a later bucket. A first bucket
the history starts inside of is dropped. Per timeframe, from the last ``MTF_LOOKBACK`` closed
candles: log return of the last one and of the last three, its range and body relative to its
close, and where the current 1-minute close sits in the range of the last three (-0.5..0.5).
Batch and incremental share these rules (tested equal, and tested blind to every later
1-minute candle). Rows are consecutive candles: a gap in the data is
not filled, so a return across an exchange outage spans the outage (training drops such rows,
see :mod:`tinhieu.training`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta

from tinhieu.candles import Bar

# --- parameters -------------------------------------------------------------------------------
SMA_LENGTHS = (10, 20, 50)
RSI_LENGTH = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_LENGTH, BB_STD = 20, 2.0
VOLUME_SMA = 20
VOLUME_SMA_SHORT = 5
RETURN_HORIZONS = (1, 3, 5, 15, 30)
VOLATILITY_LENGTHS = (10, 30)
MINUTES_PER_DAY = 1440
MTF_MINUTES = (5, 15, 60)
"""Higher timeframes built from the closed 1-minute candles: 5m, 15m, 1h."""
MTF_LOOKBACK = 4
"""Closed higher-timeframe candles the features read (1h: 4 hours fit inside WARMUP)."""
BASE_MS = 60_000
"""The stream's candle length assumed when closing a higher-timeframe candle early: a
bucket ``[b, b + tf)`` is closed by the candle that opens at ``b + tf - 1 minute`` (it closes
at ``b + tf``). With longer candles the bucket closes only when a later bucket starts,
which is later, never earlier: no lookahead either way."""

SEED_FEATURES: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "SMA_10",
    "SMA_20",
    "SMA_50",
    "RSI_14",
    "MACD",
    "MACD_signal",
    "BB_upper",
    "BB_lower",
    "volume_sma_ratio",
)
MODEL_FEATURES: tuple[str, ...] = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"dist_sma_{n}" for n in SMA_LENGTHS),
    "dist_bb_upper",
    "dist_bb_lower",
    "bb_width",
    "macd_rel",
    "macd_signal_rel",
    "macd_hist_rel",
    *(f"volatility_{n}" for n in VOLATILITY_LENGTHS),
    "range_rel",
    "body_rel",
    "upper_wick_rel",
    "lower_wick_rel",
    "volume_sma_ratio",
    "volume_trend",
    "rsi_scaled",
    "hour_sin",
    "hour_cos",
    *(f"mtf{m}_{name}" for m in MTF_MINUTES
      for name in ("ret_1", "ret_3", "range", "body", "pos")),
)
FEATURE_NAMES: tuple[str, ...] = SEED_FEATURES + tuple(
    n for n in MODEL_FEATURES if n not in SEED_FEATURES
)
MODEL_COLUMNS: np.ndarray = np.array([FEATURE_NAMES.index(n) for n in MODEL_FEATURES])
"""Positions of ``MODEL_FEATURES`` inside a full ``FEATURE_NAMES`` vector."""

_PARAMS = {
    "sma": SMA_LENGTHS,
    "rsi": RSI_LENGTH,
    "macd": (MACD_FAST, MACD_SLOW, MACD_SIGNAL),
    "bb": (BB_LENGTH, BB_STD),
    "vol_sma": (VOLUME_SMA, VOLUME_SMA_SHORT),
    "ret": RETURN_HORIZONS,
    "volatility": VOLATILITY_LENGTHS,
    "mtf": (MTF_MINUTES, MTF_LOOKBACK, BASE_MS),
}
FEATURE_SCHEMA_VERSION: str = "f2-" + hashlib.sha256(
    json.dumps({"names": FEATURE_NAMES, "model": MODEL_FEATURES, "params": _PARAMS}).encode()
).hexdigest()[:8]

FIRST_COMPLETE: int = max(max(SMA_LENGTHS), MACD_SLOW + MACD_SIGNAL - 1,
                          max(RETURN_HORIZONS) + 1, max(VOLATILITY_LENGTHS) + 1, BB_LENGTH,
                          VOLUME_SMA)
"""Candles needed before every indicator has a value (SMA_50: 50)."""

WARMUP: int = 300
"""Candles until the indicators have settled: the first feature row, hence the first signal,
is the one of candle ``WARMUP`` (row ``WARMUP - 1``), in training, backtest and live alike.

RSI and MACD are recursive (EMA/RMA) and seeded from the first candles of a series: 50
candles give every column a value, but the seed still moves them by up to a few percent.
After 300 candles the seed's weight is below 1e-9 ((13/14)^300 for the RSI's RMA, (25/27)^300
for MACD's slow EMA), so a live worker that started at any point of history and a backtest
that warmed up on the candles before its range compute the same features. The exchange
back-fill (``backfill_candles``, default 300) gives a fresh worker exactly this warm-up."""

_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class FeatureError(ValueError):
    """Candles that features cannot be computed from; the message says which and why."""


# --- batch ------------------------------------------------------------------------------------
def _rolling_std(values: np.ndarray, length: int) -> np.ndarray:
    """Sample std (ddof=1) over a trailing window, two-pass per window.

    pandas' rolling std accumulates rounding error over long series (2e-9 relative on 1-minute
    BTC prices), which an incremental computation cannot reproduce; this one is exact to a few
    ulps in both places.
    """
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] >= length:
        windows = np.lib.stride_tricks.sliding_window_view(values, length)
        out[length - 1 :] = windows.std(axis=1, ddof=1)
    return out


def _col(frame: pd.DataFrame | None, prefix: str, n: int) -> np.ndarray:
    if frame is None:
        return np.full(n, np.nan)
    return frame[[c for c in frame.columns if c.startswith(prefix)][0]].to_numpy(np.float64)


def _series(result: pd.Series | None, n: int) -> np.ndarray:
    return np.full(n, np.nan) if result is None else result.to_numpy(np.float64)


def compute_features(df: pd.DataFrame) -> pd.DataFrame:
    """Features of every candle of ``df``; NaN where the history is too short.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` (open time, ms UTC), ``open``, ``high``, ``low``, ``close``,
        ``volume``; one row per closed candle, ascending time. Gaps are not filled.

    Returns
    -------
    pandas.DataFrame
        Columns ``FEATURE_NAMES``, same index as ``df``. Row ``t`` depends only on rows
        ``0..t``; rows before ``WARMUP - 1`` (indicators not settled) are all NaN.

    Raises
    ------
    FeatureError
        A column is missing or timestamps are not strictly ascending.
    """
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise FeatureError(f"candles lack column(s) {', '.join(missing)}; need {_COLUMNS}")
    ts = df["timestamp"].to_numpy(np.int64)
    if ts.shape[0] > 1 and not (np.diff(ts) > 0).all():
        raise FeatureError("candle timestamps must be strictly ascending (sort, drop duplicates)")
    n = len(df)
    idx = df.index
    close_s = pd.Series(df["close"].to_numpy(np.float64))
    vol_s = pd.Series(df["volume"].to_numpy(np.float64))
    o = df["open"].to_numpy(np.float64)
    h = df["high"].to_numpy(np.float64)
    lo = df["low"].to_numpy(np.float64)
    c = close_s.to_numpy()
    v = vol_s.to_numpy()

    out: dict[str, np.ndarray] = {"open": o, "high": h, "low": lo, "close": c, "volume": v}
    for length in SMA_LENGTHS:
        out[f"SMA_{length}"] = _series(ta.sma(close_s, length=length), n)
    out["RSI_14"] = _series(ta.rsi(close_s, length=RSI_LENGTH), n)
    macd = ta.macd(close_s, fast=MACD_FAST, slow=MACD_SLOW, signal=MACD_SIGNAL)
    out["MACD"] = _col(macd, "MACD_", n)
    out["MACD_signal"] = _col(macd, "MACDs_", n)
    bb = ta.bbands(close_s, length=BB_LENGTH, lower_std=BB_STD, upper_std=BB_STD)
    out["BB_upper"] = _col(bb, "BBU_", n)
    out["BB_lower"] = _col(bb, "BBL_", n)
    vol_sma = _series(ta.sma(vol_s, length=VOLUME_SMA), n)
    vol_sma_short = _series(ta.sma(vol_s, length=VOLUME_SMA_SHORT), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["volume_sma_ratio"] = _safe_ratio(v, vol_sma)
        log_c = np.log(c)
        for hz in RETURN_HORIZONS:
            r = np.full(n, np.nan)
            r[hz:] = log_c[hz:] - log_c[:-hz]
            out[f"ret_{hz}"] = r
        for length in SMA_LENGTHS:
            out[f"dist_sma_{length}"] = c / out[f"SMA_{length}"] - 1.0
        std = _rolling_std(c, BB_LENGTH)
        mid = out["SMA_20"]
        out["dist_bb_upper"] = (c - (mid + BB_STD * std)) / c
        out["dist_bb_lower"] = (c - (mid - BB_STD * std)) / c
        out["bb_width"] = 2.0 * BB_STD * std / mid
        out["macd_rel"] = out["MACD"] / c
        out["macd_signal_rel"] = out["MACD_signal"] / c
        out["macd_hist_rel"] = (out["MACD"] - out["MACD_signal"]) / c
        for length in VOLATILITY_LENGTHS:
            vol = np.full(n, np.nan)
            if n > 1:
                vol[1:] = _rolling_std(out["ret_1"][1:], length)
            out[f"volatility_{length}"] = vol
        out["range_rel"] = (h - lo) / c
        out["body_rel"] = (c - o) / c
        out["upper_wick_rel"] = (h - np.maximum(o, c)) / c
        out["lower_wick_rel"] = (np.minimum(o, c) - lo) / c
        out["volume_trend"] = _safe_ratio(vol_sma_short, vol_sma)
        out["rsi_scaled"] = out["RSI_14"] / 100.0 - 0.5
        angle = _day_angle(ts)
        out["hour_sin"] = np.sin(angle)
        out["hour_cos"] = np.cos(angle)
        for minutes in MTF_MINUTES:
            out.update(_mtf_batch(ts, o, h, lo, c, minutes))
    frame = pd.DataFrame({name: out[name] for name in FEATURE_NAMES}, index=idx, copy=True)
    frame.iloc[: min(WARMUP - 1, n)] = np.nan  # the same rule as FeatureState.update
    return frame


def _mtf_values(prefix: str, closed: list[tuple[float, float, float, float]] | None,
                c: float) -> dict[str, float]:
    """Features of the last closed higher-timeframe candles ``(open, high, low, close)``,
    oldest first, and the current 1-minute close ``c``."""
    nan = math.nan
    if closed is None or len(closed) < MTF_LOOKBACK:
        return {f"{prefix}_{k}": nan for k in ("ret_1", "ret_3", "range", "body", "pos")}
    o1, h1, l1, c1 = closed[-1]
    hi = max(x[1] for x in closed[-3:])
    lo = min(x[2] for x in closed[-3:])
    return {
        f"{prefix}_ret_1": math.log(c1) - math.log(closed[-2][3]),
        f"{prefix}_ret_3": math.log(c1) - math.log(closed[-4][3]),
        f"{prefix}_range": (h1 - l1) / c1,
        f"{prefix}_body": (c1 - o1) / c1,
        f"{prefix}_pos": 0.0 if hi == lo else (c - lo) / (hi - lo) - 0.5,
    }


def _mtf_batch(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
               minutes: int) -> dict[str, np.ndarray]:
    """Higher-timeframe features of every row from the buckets closed by that row.

    Bucket ``k`` (open time ``b``) is closed at the first row whose candle opens at or after
    ``b + tf - 1 minute``; a first bucket the data starts inside of is left out (it is
    incomplete), so a series started anywhere gives the same rows after the warm-up.
    """
    n = ts.shape[0]
    prefix = f"mtf{minutes}"
    tf = minutes * 60_000
    if n == 0:
        return {f"{prefix}_{k}": np.full(0, np.nan)
                for k in ("ret_1", "ret_3", "range", "body", "pos")}
    bid = ts // tf
    starts = np.concatenate([[0], np.nonzero(np.diff(bid))[0] + 1])
    ends = np.concatenate([starts[1:], [n]])
    bo, bc = o[starts], c[ends - 1]
    bh = np.maximum.reduceat(h, starts)
    bl = np.minimum.reduceat(lo, starts)
    close_row = np.searchsorted(ts, (bid[starts] + 1) * tf - BASE_MS, side="left")
    if ts[0] != bid[0] * tf:  # the data starts inside the first bucket
        bo, bc, bh, bl, close_row = bo[1:], bc[1:], bh[1:], bl[1:], close_row[1:]
    k = np.searchsorted(close_row, np.arange(n), side="right")  # buckets closed by row t

    def last(arr: np.ndarray, j: int) -> np.ndarray:
        i = k - j
        out = np.full(n, np.nan)
        ok = i >= 0
        out[ok] = arr[i[ok]]
        return out

    c1, c2, c4 = last(bc, 1), last(bc, 2), last(bc, MTF_LOOKBACK)
    hi = np.fmax(np.fmax(last(bh, 1), last(bh, 2)), last(bh, 3))
    low = np.fmin(np.fmin(last(bl, 1), last(bl, 2)), last(bl, 3))
    enough = k >= MTF_LOOKBACK
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(hi == low, 0.0, (c - low) / (hi - low) - 0.5)
        cols = {
            f"{prefix}_ret_1": np.log(c1) - np.log(c2),
            f"{prefix}_ret_3": np.log(c1) - np.log(c4),
            f"{prefix}_range": (last(bh, 1) - last(bl, 1)) / c1,
            f"{prefix}_body": (c1 - last(bo, 1)) / c1,
            f"{prefix}_pos": pos,
        }
    return {name: np.where(enough, v, np.nan) for name, v in cols.items()}


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den; 1.0 where the denominator is 0 (no volume at all: nothing unusual)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0.0, 1.0, num / den)


def _day_angle(ts: np.ndarray) -> np.ndarray:
    minute = (np.asarray(ts, dtype=np.int64) // 60_000) % MINUTES_PER_DAY
    return 2.0 * np.pi * minute / MINUTES_PER_DAY


# --- incremental --------------------------------------------------------------------------------
def _com_alpha(*, span: float | None = None, alpha: float | None = None) -> float:
    """The smoothing factor exactly as pandas' ``ewm`` derives it (via centre of mass)."""
    com = (span - 1) / 2 if span is not None else (1 - alpha) / alpha  # type: ignore[operator]
    return 1.0 / (1.0 + float(com))


def _ewm_step(weighted: float | None, cur: float, alpha: float) -> float:
    """One step of pandas' ``ewm(adjust=False).mean()`` recursion, operation for operation."""
    if weighted is None:
        return cur
    if weighted != cur:
        old_wt = 1.0 - alpha
        weighted = old_wt * weighted + alpha * cur
        weighted /= old_wt + alpha
    return weighted


class _Ema:
    """pandas-ta ``ema(presma=True)``: seeded with the SMA of the first ``length`` values."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.alpha = _com_alpha(span=length)
        self.seed: list[float] = []
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self.seed.append(x)
            if len(self.seed) < self.length:
                return None
            self.value = float(np.array(self.seed, dtype=np.float64).sum() / self.length)
            self.seed = []
            return self.value
        self.value = _ewm_step(self.value, x, self.alpha)
        return self.value

    def to_list(self) -> list[Any]:
        return [self.seed, self.value]

    def load(self, data: list[Any]) -> None:
        self.seed = [float(x) for x in data[0]]
        self.value = None if data[1] is None else float(data[1])


# Plain Python over at most 50 values: numpy's per-call overhead (~10 us) is larger than the
# work, and this runs several times per candle in the live path. fsum is exact, so the
# values agree with pandas' rolling windows to far better than the tested 1e-9.
def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((x - mean) * (x - mean) for x in values) / (len(values) - 1))


class FeatureState:
    """Running feature computation for one symbol; JSON-serializable.

    Feed every closed candle of the symbol, oldest first, starting from the same first candle
    as the batch computation it should agree with. Gaps are not filled: the next candle after a
    gap is treated as the next row, exactly as :func:`compute_features` does.

    Examples
    --------
    >>> state = FeatureState()
    >>> for bar in bars:                       # doctest: +SKIP
    ...     vector = state.update(bar)         # None for the first WARMUP - 1 candles
    """

    _KEEP = max(max(SMA_LENGTHS), max(RETURN_HORIZONS) + 1, BB_LENGTH)

    def __init__(self) -> None:
        self.count = 0
        self.last_ts: int | None = None
        self.closes: deque[float] = deque(maxlen=self._KEEP)
        self.volumes: deque[float] = deque(maxlen=VOLUME_SMA)
        self.returns: deque[float] = deque(maxlen=max(VOLATILITY_LENGTHS))
        self.ema_fast = _Ema(MACD_FAST)
        self.ema_slow = _Ema(MACD_SLOW)
        self.ema_signal = _Ema(MACD_SIGNAL)
        self.rsi_alpha = _com_alpha(alpha=1.0 / RSI_LENGTH)
        self.rsi_up: float | None = None
        self.rsi_down: float | None = None
        # per higher timeframe: the open bucket [id, o, h, l, c], the last closed buckets
        # (o, h, l, c), and whether the first bucket is still to be dropped (started inside)
        self.mtf_open: dict[int, list[float] | None] = {m: None for m in MTF_MINUTES}
        self.mtf_closed: dict[int, deque[tuple[float, float, float, float]]] = {
            m: deque(maxlen=MTF_LOOKBACK) for m in MTF_MINUTES}
        self.mtf_skip: dict[int, bool] = {m: False for m in MTF_MINUTES}

    def _mtf_close(self, minutes: int) -> None:
        bucket = self.mtf_open[minutes]
        self.mtf_open[minutes] = None
        if bucket is None:
            return
        if self.mtf_skip[minutes]:  # the incomplete first bucket: never used
            self.mtf_skip[minutes] = False
            return
        self.mtf_closed[minutes].append((bucket[1], bucket[2], bucket[3], bucket[4]))

    def _mtf_update(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        for m in MTF_MINUTES:
            tf = m * 60_000
            bid = ts // tf
            if self.count == 1:
                self.mtf_skip[m] = ts != bid * tf
            cur = self.mtf_open[m]
            if cur is not None and cur[0] != bid:  # a later bucket began: the open one closed
                self._mtf_close(m)
                cur = None
            if cur is None:
                self.mtf_open[m] = [float(bid), o, h, lo, c]
            else:
                cur[2] = max(cur[2], h)
                cur[3] = min(cur[3], lo)
                cur[4] = c
            if ts >= (bid + 1) * tf - BASE_MS:  # this candle ends the bucket
                self._mtf_close(m)

    # ------------------------------------------------------------------------------------------
    def update(self, bar: Bar) -> np.ndarray | None:
        """Add one closed candle; return its feature vector, or None while warming up.

        Parameters
        ----------
        bar : Bar
            The next closed candle (open time strictly after the previous one).

        Returns
        -------
        numpy.ndarray or None
            float64 vector in ``FEATURE_NAMES`` order, or None for the first ``WARMUP - 1``
            candles.

        Raises
        ------
        FeatureError
            The candle is not newer than the previous one (the state is left unchanged).
        """
        ts = int(bar.ts)
        if self.last_ts is not None and ts <= self.last_ts:
            raise FeatureError(
                f"candle {ts} is not after the previous one {self.last_ts}; feed candles in "
                "order, once each (a rebuilt state must replay the history from the start)"
            )
        o, h, lo, c, v = (float(bar.open), float(bar.high), float(bar.low), float(bar.close),
                          float(bar.volume))
        prev_close = self.closes[-1] if self.closes else None
        self.count += 1
        self.last_ts = ts
        self.closes.append(c)
        self.volumes.append(v)

        # RSI: RMA of gains and losses; the first diff is NaN, so both start at candle 2.
        if prev_close is not None:
            diff = c - prev_close
            self.rsi_up = _ewm_step(self.rsi_up, diff if diff > 0 else 0.0, self.rsi_alpha)
            self.rsi_down = _ewm_step(self.rsi_down, diff if diff < 0 else 0.0, self.rsi_alpha)
            self.returns.append(math.log(c) - math.log(prev_close))
        fast = self.ema_fast.update(c)
        slow = self.ema_slow.update(c)
        macd = None if fast is None or slow is None else fast - slow
        signal = self.ema_signal.update(macd) if macd is not None else None
        self._mtf_update(ts, o, h, lo, c)
        if self.count < WARMUP:
            return None
        return self._vector(ts, o, h, lo, c, v, macd, signal)

    def _vector(self, ts: int, o: float, h: float, lo: float, c: float, v: float,
                macd: float | None, signal: float | None) -> np.ndarray:
        closes = self.closes
        nan = math.nan
        recent = list(closes)
        sma = {n: _mean(recent[-n:]) for n in SMA_LENGTHS}
        std = _std(recent[-BB_LENGTH:])
        vol_sma = _mean(self.volumes)
        vol_sma_short = _mean(list(self.volumes)[-VOLUME_SMA_SHORT:])
        up, down = self.rsi_up, self.rsi_down
        denom = (up or 0.0) + abs(down or 0.0)
        rsi = 100.0 * up / denom if up is not None and denom != 0 else nan
        macd_v = nan if macd is None else macd
        signal_v = nan if signal is None else signal
        mid = sma[BB_LENGTH]
        log_c = math.log(c)
        values: dict[str, float] = {
            "open": o, "high": h, "low": lo, "close": c, "volume": v,
            "RSI_14": rsi, "MACD": macd_v, "MACD_signal": signal_v,
            "BB_upper": mid + BB_STD * std, "BB_lower": mid - BB_STD * std,
            "volume_sma_ratio": 1.0 if vol_sma == 0 else v / vol_sma,
        }
        for n in SMA_LENGTHS:
            values[f"SMA_{n}"] = sma[n]
            values[f"dist_sma_{n}"] = c / sma[n] - 1.0
        for hz in RETURN_HORIZONS:
            values[f"ret_{hz}"] = log_c - math.log(closes[-1 - hz])
        values["dist_bb_upper"] = (c - (mid + BB_STD * std)) / c
        values["dist_bb_lower"] = (c - (mid - BB_STD * std)) / c
        values["bb_width"] = 2.0 * BB_STD * std / mid
        values["macd_rel"] = macd_v / c
        values["macd_signal_rel"] = signal_v / c
        values["macd_hist_rel"] = (macd_v - signal_v) / c
        rets = list(self.returns)
        for n in VOLATILITY_LENGTHS:
            values[f"volatility_{n}"] = _std(rets[-n:])
        values["range_rel"] = (h - lo) / c
        values["body_rel"] = (c - o) / c
        values["upper_wick_rel"] = (h - max(o, c)) / c
        values["lower_wick_rel"] = (min(o, c) - lo) / c
        values["volume_trend"] = 1.0 if vol_sma == 0 else vol_sma_short / vol_sma
        values["rsi_scaled"] = rsi / 100.0 - 0.5
        angle = 2.0 * math.pi * ((ts // 60_000) % MINUTES_PER_DAY) / MINUTES_PER_DAY
        values["hour_sin"] = math.sin(angle)
        values["hour_cos"] = math.cos(angle)
        for m in MTF_MINUTES:
            values.update(_mtf_values(f"mtf{m}", list(self.mtf_closed[m]), c))
        return np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON types (no NaN), for a changelogged table."""
        return {
            "schema": FEATURE_SCHEMA_VERSION,
            "count": self.count,
            "last_ts": self.last_ts,
            "closes": list(self.closes),
            "volumes": list(self.volumes),
            "returns": list(self.returns),
            "ema_fast": self.ema_fast.to_list(),
            "ema_slow": self.ema_slow.to_list(),
            "ema_signal": self.ema_signal.to_list(),
            "rsi_up": self.rsi_up,
            "rsi_down": self.rsi_down,
            "mtf": {
                str(m): {"open": self.mtf_open[m], "closed": [list(x) for x in self.mtf_closed[m]],
                         "skip": self.mtf_skip[m]}
                for m in MTF_MINUTES
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureState:
        """Rebuild a state saved by :meth:`to_dict`.

        Raises
        ------
        FeatureError
            The dict was written for another feature schema or is malformed; rebuild the
            state by replaying the symbol's history.
        """
        if not isinstance(d, dict) or d.get("schema") != FEATURE_SCHEMA_VERSION:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise FeatureError(
                f"feature state was saved for schema {got!r}, this code computes "
                f"{FEATURE_SCHEMA_VERSION!r}; rebuild it by replaying the history"
            )
        state = cls()
        try:
            state.count = int(d["count"])
            state.last_ts = None if d["last_ts"] is None else int(d["last_ts"])
            state.closes.extend(float(x) for x in d["closes"])
            state.volumes.extend(float(x) for x in d["volumes"])
            state.returns.extend(float(x) for x in d["returns"])
            state.ema_fast.load(d["ema_fast"])
            state.ema_slow.load(d["ema_slow"])
            state.ema_signal.load(d["ema_signal"])
            state.rsi_up = None if d["rsi_up"] is None else float(d["rsi_up"])
            state.rsi_down = None if d["rsi_down"] is None else float(d["rsi_down"])
            for m in MTF_MINUTES:
                saved = d["mtf"][str(m)]
                bucket = saved["open"]
                state.mtf_open[m] = None if bucket is None else [float(x) for x in bucket]
                state.mtf_closed[m].extend(
                    (float(a), float(b), float(c), float(e)) for a, b, c, e in saved["closed"])
                state.mtf_skip[m] = bool(saved["skip"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise FeatureError(
                f"feature state is malformed ({exc!r}); replay the history"
            ) from None
        return state
