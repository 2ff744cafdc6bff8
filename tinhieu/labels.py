"""Training labels: what the trade would have done, or how far the price moved.

Two schemes (``settings.label_scheme``):

``triple_barrier`` (default): the outcome of the broker's own long, computed by
:func:`tinhieu.broker.step` itself (no second copy of the fill rules). For candle ``t``: a BUY
signal on ``t`` fills at the open of ``t + 1``; the stop loss and take profit are set from
that fill price; every later candle is checked with the broker's rules (a candle that opens
beyond a level fills at its open, both levels inside one candle = stop loss first); when
neither level is touched by candle ``t + max_holding``, a SELL signal on that candle closes
the position at the open of ``t + max_holding + 1``. Fees on both sides (``fee_pct``).

* ``+1`` BUY: the take profit filled first;
* ``-1`` SELL: the stop loss filled first, or the time exit lost money after fees
  ("a held long should be closed here": its expected outcome is negative);
* ``0`` NEUTRAL: the time exit, not negative after fees.

``fixed_horizon``: the move of the close over ``horizon`` candles:

* ``+1`` UP when ``close[t + horizon] / close[t] - 1 >  threshold``
* ``-1`` DOWN when it is ``< -threshold``
* ``0`` NEUTRAL otherwise

with ``threshold = max(threshold_pct, 2 * fee_pct) / 100``: a move smaller than the round-trip
fee cannot be traded for a profit, so it never counts as UP or DOWN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# The classes and the action of each are declared once, in the core; re-exported here.
from tinhieu.core_types import ACTION_BY_CLASS as ACTIONS
from tinhieu.core_types import CLASSES, DOWN, NEUTRAL, UP


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


# --- triple barrier: the broker's own trade ---------------------------------------------------
EXIT_NONE, EXIT_TAKE, EXIT_STOP, EXIT_TIME = 0, 1, 2, 3
EXIT_REASONS: dict[int, str] = {EXIT_NONE: "-", EXIT_TAKE: "take_profit", EXIT_STOP: "stop_loss",
                                EXIT_TIME: "time"}
_REASON_CODE = {"take_profit": EXIT_TAKE, "stop_loss": EXIT_STOP, "signal": EXIT_TIME}
_TOUCH_SLACK = 1e-9  # the numpy search may only find a touch EARLIER than the broker would


@dataclass(frozen=True)
class TradeOutcomes:
    """The broker's trade entered from each candle (arrays, one value per candle).

    ``label`` is NaN, ``exit_row`` -1 and ``reason`` ``EXIT_NONE`` where the outcome is not
    known inside the data (the last ``max_holding + 1`` candles) or the barriers are not
    defined (volatility warm-up).
    """

    label: np.ndarray
    net_return: np.ndarray
    """Round trip profit net of both fees, as a fraction of the entry notional."""
    exit_row: np.ndarray
    """Index of the candle on which the exit filled (the label is known after its close)."""
    reason: np.ndarray
    stop_loss_pct: np.ndarray
    take_profit_pct: np.ndarray
    max_holding: int


def break_even_probability(stop_loss_pct: float, take_profit_pct: float, fee_pct: float) -> float:
    """Probability of the take profit above which a long has a positive expected result.

    With fill price ``P``, a take profit nets ``W = tp - f (2 + tp)`` of the notional (fee on
    the entry and on the exit at ``P (1 + tp)``) and a stop loss loses ``L = sl + f (2 - sl)``
    (fractions). Counting every trade that does not reach its take profit as a full stop
    loss (time exits lose less: the gate is conservative), ``p W - (1 - p) L > 0`` when
    ``p > L / (W + L)``. Defaults 2 % / 5 % / 0.1 %: ``0.02198 / 0.06993 = 0.3143``.
    """
    sl, tp, f = stop_loss_pct / 100.0, take_profit_pct / 100.0, fee_pct / 100.0
    win = tp - f * (2.0 + tp)
    loss = sl + f * (2.0 - sl)
    if win <= 0:
        return 1.0  # the take profit does not even pay the fees
    return float(loss / (win + loss))


def rolling_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Sample std of 1-candle log returns over the last ``window`` returns; NaN before."""
    c = np.asarray(close, dtype=np.float64)
    r = np.full(c.shape[0], np.nan)
    r[1:] = np.diff(np.log(c))
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > window:
        win = np.lib.stride_tricks.sliding_window_view(r[1:], window)
        out[window:] = win.std(axis=1, ddof=1)
    return out


def barrier_levels(
    close: np.ndarray,
    *,
    mode: str,
    stop_loss_pct: float,
    take_profit_pct: float,
    max_holding: int,
    vol_window: int = 60,
    stop_vol_mult: float = 1.0,
    take_vol_mult: float = 2.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Stop loss and take profit distances (percent) per candle.

    ``fixed``: the broker's ``stop_loss_pct`` / ``take_profit_pct`` everywhere.
    ``volatility``: ``mult * sigma * sqrt(max_holding) * 100`` where ``sigma`` is the rolling
    std of 1-candle log returns over ``vol_window`` candles known at ``t`` (clipped to
    0.1-50 % for the stop and 0.1-500 % for the take profit); NaN during its warm-up.
    """
    n = np.asarray(close).shape[0]
    if mode == "fixed":
        return np.full(n, float(stop_loss_pct)), np.full(n, float(take_profit_pct))
    if mode != "volatility":
        raise ValueError(f"barrier mode must be 'fixed' or 'volatility', got {mode!r}")
    scale = rolling_volatility(close, vol_window) * np.sqrt(max_holding) * 100.0
    return (np.clip(stop_vol_mult * scale, 0.1, 50.0),
            np.clip(take_vol_mult * scale, 0.1, 500.0))


def _first_touch(low: np.ndarray, high: np.ndarray, stop: np.ndarray, take: np.ndarray,
                 rows: np.ndarray, max_holding: int, chunk: int = 4096) -> np.ndarray:
    """First candle in ``t+1 .. t+max_holding`` whose range may touch a level; else -1.

    A small slack makes the search find touches a hair early, never late: the broker then
    decides on that candle, and the labeller steps on candle by candle if it did not exit.
    """
    out = np.full(rows.shape[0], -1, dtype=np.int64)
    lw = np.lib.stride_tricks.sliding_window_view(low, max_holding)
    hw = np.lib.stride_tricks.sliding_window_view(high, max_holding)
    for a in range(0, rows.shape[0], chunk):
        r = rows[a:a + chunk]
        s = stop[a:a + chunk, None] * (1.0 + _TOUCH_SLACK)
        k = take[a:a + chunk, None] * (1.0 - _TOUCH_SLACK)
        hit = (lw[r + 1] <= s) | (hw[r + 1] >= k)
        first = hit.argmax(axis=1)
        out[a:a + chunk] = np.where(hit.any(axis=1), r + 1 + first, -1)
    return out


def triple_barrier_outcomes(
    df: pd.DataFrame,
    *,
    stop_loss_pct: float | np.ndarray,
    take_profit_pct: float | np.ndarray,
    max_holding: int,
    fee_pct: float,
) -> TradeOutcomes:
    """The broker's long entered from every candle: labels, net returns, exit candles.

    Parameters
    ----------
    df : pandas.DataFrame
        Candles ``timestamp,open,high,low,close,volume``, ascending. Gaps are not filled: a
        candle after an outage is the next candle, as for the broker (training drops labels
        whose trade spans a gap).
    stop_loss_pct, take_profit_pct : float or numpy.ndarray
        Distances from the entry fill, percent; per candle for volatility barriers (the
        broker receives them through its ``RiskConfig`` at the entry, as live would).
    max_holding : int
        Candles the long is held at most (>= 1).
    fee_pct : float
        Commission per side, percent (``settings.fee_pct``).

    Returns
    -------
    TradeOutcomes

    Every label is computed by :func:`tinhieu.broker.step`: a BUY signal on ``t``, then the
    candles ``t + 1 ..`` until an exit fill. A numpy search finds the first candle that may
    touch a level so the candles in between (where the broker does nothing) are skipped.
    """
    from tinhieu.broker import RiskConfig, SignalIn, new_state, step
    from tinhieu.candles import Bar

    if int(max_holding) != max_holding or max_holding < 1:
        raise ValueError(f"max_holding must be a whole number of candles >= 1, got {max_holding!r}")
    max_holding = int(max_holding)
    ts = df["timestamp"].to_numpy(np.int64)
    o = df["open"].to_numpy(np.float64)
    h = df["high"].to_numpy(np.float64)
    lo = df["low"].to_numpy(np.float64)
    c = df["close"].to_numpy(np.float64)
    v = df["volume"].to_numpy(np.float64)
    n = ts.shape[0]
    sl = np.broadcast_to(np.asarray(stop_loss_pct, dtype=np.float64), (n,))
    tp = np.broadcast_to(np.asarray(take_profit_pct, dtype=np.float64), (n,))
    label = np.full(n, np.nan)
    net = np.full(n, np.nan)
    exit_row = np.full(n, -1, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)
    last = n - max_holding - 1  # rows 0 .. last-1 have every candle their trade may need
    rows = np.arange(max(0, last))
    rows = rows[np.isfinite(sl[rows]) & np.isfinite(tp[rows])]
    if rows.size == 0:
        return TradeOutcomes(label, net, exit_row, reason, np.array(sl), np.array(tp),
                             max_holding)
    # the broker's own levels: price * (1 - sl / 100), price * (1 + tp / 100)
    entry = o[rows + 1]
    stop = entry * (1.0 - sl[rows] / 100.0)
    take = entry * (1.0 + tp[rows] / 100.0)
    touch = _first_touch(lo, h, stop, take, rows, max_holding)
    bars = [Bar(int(ts[i]), float(o[i]), float(h[i]), float(lo[i]), float(c[i]), float(v[i]))
            for i in range(n)]
    cfgs: dict[tuple[float, float], RiskConfig] = {}
    sym = "LABEL/USDT"
    for t, first in zip(rows.tolist(), touch.tolist(), strict=True):
        key = (float(sl[t]), float(tp[t]))
        cfg = cfgs.get(key)
        if cfg is None:
            cfg = RiskConfig(starting_cash=1_000_000.0, position_size_pct=100.0,
                             stop_loss_pct=key[0], take_profit_pct=key[1],
                             commission_pct=float(fee_pct), min_confidence=0.0)
            if len(cfgs) < 100_000:
                cfgs[key] = cfg
        end = t + max_holding
        state = new_state(sym, cfg)
        state, _ = step(state, bars[t], SignalIn(sym, int(ts[t]), "BUY", 1.0, "label"), cfg)
        k = t + 1
        notional = 0.0
        while True:
            sig = SignalIn(sym, int(ts[k]), "SELL", 1.0, "label") if k == end else None
            state, fills = step(state, bars[k], sig, cfg)
            done = None
            for f in fills:
                if f.side == "BUY":
                    notional = f.amount * f.price
                else:
                    done = f
            if done is not None:
                net[t] = done.pnl / notional
                exit_row[t] = k
                code = _REASON_CODE[done.reason]
                reason[t] = code
                if code == EXIT_TAKE:
                    label[t] = UP
                elif code == EXIT_STOP or net[t] < 0:
                    label[t] = DOWN
                else:
                    label[t] = NEUTRAL
                break
            if k > end:  # cannot happen: the pending SELL fills on candle end + 1
                raise AssertionError(f"no exit for the trade of candle {t}")
            # skip candles where nothing can happen: no touch before `first`, no signal
            if k < end:
                nxt = k + 1
                if first == -1:
                    nxt = end
                elif first > nxt:
                    nxt = min(first, end)
                k = nxt
            else:
                k = end + 1
    return TradeOutcomes(label, net, exit_row, reason, np.array(sl), np.array(tp), max_holding)


def resolved_label_before(labels: np.ndarray, exit_row: np.ndarray) -> np.ndarray:
    """For each ``t``: the label of the latest trade whose exit filled on or before ``t``.

    What the persistence baseline knows at the close of ``t`` for triple-barrier labels
    ("the last trade's outcome repeats"); NaN until the first trade resolved.
    """
    n = labels.shape[0]
    latest = np.full(n, -1, dtype=np.int64)
    ok = exit_row >= 0
    src = np.nonzero(ok)[0]
    np.maximum.at(latest, exit_row[ok], src)
    latest = np.maximum.accumulate(latest)
    out = np.full(n, np.nan)
    has = latest >= 0
    out[has] = labels[latest[has]]
    return out


def label_settings(settings: Any) -> dict[str, Any]:
    """The label parameters of ``settings`` (stored with every model)."""
    scheme = getattr(settings, "label_scheme", "triple_barrier")
    out: dict[str, Any] = {"scheme": scheme, "fee_pct": float(settings.fee_pct),
                           "timeframe": settings.timeframe}
    if scheme == "fixed_horizon":
        out.update(horizon=int(settings.label_horizon),
                   threshold_pct=effective_threshold_pct(settings.label_threshold_pct,
                                                         settings.fee_pct),
                   requested_threshold_pct=float(settings.label_threshold_pct))
    else:
        out.update(max_holding=int(getattr(settings, "max_holding_candles", 240)),
                   barrier_mode=getattr(settings, "barrier_mode", "fixed"),
                   stop_loss_pct=float(settings.stop_loss_pct),
                   take_profit_pct=float(settings.take_profit_pct),
                   vol_window=int(getattr(settings, "barrier_vol_window", 60)),
                   stop_vol_mult=float(getattr(settings, "barrier_stop_vol_mult", 1.0)),
                   take_vol_mult=float(getattr(settings, "barrier_take_vol_mult", 2.5)))
    return out


@dataclass(frozen=True)
class Labels:
    """Labels of one candle history under one scheme, with what training needs of them."""

    y: np.ndarray
    previous: np.ndarray
    """What the persistence baseline predicts at ``t`` (known at ``t``)."""
    span: int
    """Candles after ``t`` the label looks at: the purge/embargo between folds."""
    params: dict[str, Any]
    outcomes: TradeOutcomes | None = None


def make_scheme_labels(df: pd.DataFrame, params: dict[str, Any]) -> Labels:
    """Labels of ``df`` for the parameters of :func:`label_settings`."""
    close = df["close"].to_numpy(np.float64)
    if params["scheme"] == "fixed_horizon":
        hz = int(params["horizon"])
        thr = float(params.get("requested_threshold_pct", params["threshold_pct"]))
        return Labels(make_labels(close, hz, thr, params["fee_pct"]),
                      previous_move_labels(close, hz, thr, params["fee_pct"]), hz, params)
    if params["scheme"] != "triple_barrier":
        raise ValueError(f"label scheme must be triple_barrier or fixed_horizon, got "
                         f"{params['scheme']!r}")
    hold = int(params["max_holding"])
    sl, tp = barrier_levels(close, mode=params["barrier_mode"],
                            stop_loss_pct=params["stop_loss_pct"],
                            take_profit_pct=params["take_profit_pct"], max_holding=hold,
                            vol_window=params["vol_window"],
                            stop_vol_mult=params["stop_vol_mult"],
                            take_vol_mult=params["take_vol_mult"])
    out = triple_barrier_outcomes(df, stop_loss_pct=sl, take_profit_pct=tp, max_holding=hold,
                                  fee_pct=params["fee_pct"])
    return Labels(out.label, resolved_label_before(out.label, out.exit_row), hold + 1, params,
                  out)


__all__: Sequence[str] = (
    "ACTIONS", "CLASSES", "DOWN", "NEUTRAL", "UP", "Labels", "TradeOutcomes",
    "barrier_levels", "break_even_probability", "effective_threshold_pct", "forward_return",
    "label_settings", "make_labels", "make_scheme_labels", "previous_move_labels",
    "resolved_label_before", "rolling_volatility", "spans_gap", "triple_barrier_outcomes",
)
