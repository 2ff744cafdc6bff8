"""Training labels: did the price move enough over the next candles to pay for a trade?

Label of candle ``t`` (known only at ``t + horizon``):

* ``+1`` UP when ``close[t + horizon] / close[t] - 1 >  threshold``
* ``-1`` DOWN when it is ``< -threshold``
* ``0`` NEUTRAL otherwise

with ``threshold = max(threshold_pct, 2 * fee_pct) / 100``: a move smaller than the round-trip
fee cannot be traded for a profit, so it never counts as UP or DOWN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DOWN, NEUTRAL, UP = -1, 0, 1
CLASSES: tuple[int, int, int] = (DOWN, NEUTRAL, UP)
ACTIONS: dict[int, str] = {DOWN: "SELL", NEUTRAL: "NEUTRAL", UP: "BUY"}


def effective_threshold_pct(threshold_pct: float, fee_pct: float) -> float:
    """The move (percent) that counts as UP/DOWN: never below the round-trip fee."""
    if threshold_pct < 0 or fee_pct < 0:
        raise ValueError(
            f"threshold_pct ({threshold_pct}) and fee_pct ({fee_pct}) must not be negative"
        )
    return max(float(threshold_pct), 2.0 * float(fee_pct))


def forward_return(close: pd.Series | np.ndarray, horizon: int) -> np.ndarray:
    """``close[t + horizon] / close[t] - 1``; NaN for the last ``horizon`` rows."""
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of candles >= 1, got {horizon!r}")
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > horizon:
        out[:-horizon] = c[horizon:] / c[:-horizon] - 1.0
    return out


def classify_returns(returns: np.ndarray, threshold_pct: float, fee_pct: float) -> np.ndarray:
    """Map returns (fractions) to -1/0/+1 with the fee-aware threshold; NaN stays NaN."""
    thr = effective_threshold_pct(threshold_pct, fee_pct) / 100.0
    r = np.asarray(returns, dtype=np.float64)
    labels = np.where(r > thr, float(UP), np.where(r < -thr, float(DOWN), float(NEUTRAL)))
    labels[np.isnan(r)] = np.nan
    return labels


def make_labels(
    close: pd.Series | np.ndarray, horizon: int, threshold_pct: float, fee_pct: float
) -> np.ndarray:
    """-1 DOWN / 0 NEUTRAL / +1 UP from the forward return over ``horizon`` candles.

    Parameters
    ----------
    close : pandas.Series or numpy.ndarray
        Close prices, one per candle, ascending time.
    horizon : int
        Candles ahead (>= 1).
    threshold_pct : float
        Move in percent that counts as UP/DOWN; raised to ``2 * fee_pct`` when lower.
    fee_pct : float
        Fee per side in percent.

    Returns
    -------
    numpy.ndarray
        float64 labels; NaN for the last ``horizon`` rows (their future is unknown).
    """
    return classify_returns(forward_return(close, horizon), threshold_pct, fee_pct)


def previous_move_labels(
    close: pd.Series | np.ndarray, horizon: int, threshold_pct: float, fee_pct: float
) -> np.ndarray:
    """Label of the move that ended at ``t`` (``close[t] / close[t - horizon]``).

    Known at ``t``: the persistence baseline predicts that this move continues. NaN for the
    first ``horizon`` rows.
    """
    labels = make_labels(close, horizon, threshold_pct, fee_pct)
    out = np.full(labels.shape[0], np.nan)
    if labels.shape[0] > horizon:
        out[horizon:] = labels[:-horizon]
    return out


def spans_gap(timestamps: np.ndarray, before: int, after: int, timeframe_ms: int) -> np.ndarray:
    """True where rows ``t - before .. t + after`` are not consecutive candles.

    Used to drop training rows whose feature window or label horizon crosses a hole in the
    data (an exchange outage): their "5-candle return" would really span hours.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    n = ts.shape[0]
    broken = np.zeros(n, dtype=bool)  # broken[i]: the step from row i-1 to row i is a gap
    if n > 1:
        broken[1:] = np.diff(ts) != timeframe_ms
    csum = np.concatenate([[0], np.cumsum(broken)])
    lo = np.clip(np.arange(n) - before + 1, 0, n)  # steps lo..hi-1 inclusive ends
    hi = np.clip(np.arange(n) + after + 1, 0, n)
    out = (csum[hi] - csum[lo]) > 0
    # rows too close to either end cannot have a full window: caller masks them with NaN
    return out
