"""Performance figures of an equity curve, and the buy-and-hold baseline beside them.

Plain numpy. Returns are per candle (simple returns of the marked-to-market equity);
Sharpe and Sortino are annualized with ``sqrt(candles per year)`` (525,600 for 1m candles),
with a zero risk-free rate, as is usual for crypto. Annualized return uses the calendar time
the curve covers (outages included), not the candle count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000

METRIC_LABELS: dict[str, str] = {
    "total_return_pct": "Total return %",
    "annualized_return_pct": "Annualized return %",
    "sharpe": "Sharpe (annualized)",
    "sortino": "Sortino (annualized)",
    "max_drawdown_pct": "Max drawdown %",
    "win_rate_pct": "Win rate %",
    "trades": "Round trips",
    "exposure_pct": "Exposure % of candles",
    "fees_paid": "Fees paid (USDT)",
    "final_equity": "Final equity (USDT)",
}


def periods_per_year(timeframe_ms: int) -> float:
    """Candles per year for a timeframe (1m: 525,600)."""
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be > 0, got {timeframe_ms}")
    return MS_PER_YEAR / timeframe_ms


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a positive fraction (0.12 = 12 %)."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(eq)
    return float(np.max(1.0 - eq / peaks))


def sharpe_sortino(returns: np.ndarray, ppy: float) -> tuple[float, float]:
    """Annualized Sharpe and Sortino of per-candle returns (risk-free rate 0)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return 0.0, 0.0
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    scale = math.sqrt(ppy)
    sharpe = mean / std * scale if std > 0 else 0.0
    sortino = mean / downside * scale if downside > 0 else 0.0
    return sharpe, sortino


def compute_metrics(
    equity: np.ndarray,
    *,
    timeframe_ms: int,
    timestamps: np.ndarray | None = None,
    fills: Iterable[Any] = (),
    in_position: np.ndarray | None = None,
) -> dict[str, float]:
    """All figures of one equity curve.

    Parameters
    ----------
    equity : numpy.ndarray
        Marked-to-market equity after each candle.
    timeframe_ms : int
        Candle length; sets the annualization.
    timestamps : numpy.ndarray, optional
        Candle open times (ms); the span sets the annualized return. Default: candle count.
    fills : iterable of Fill or dict
        The fills, for round trips, win rate and fees.
    in_position : numpy.ndarray of bool, optional
        True where a position was held after the candle; gives the exposure.

    Returns
    -------
    dict
        Keys of ``METRIC_LABELS``.
    """
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        raise ValueError("empty equity curve: no candles in the backtest range")
    total = float(eq[-1] / eq[0] - 1.0)
    if timestamps is not None and len(timestamps) > 0:
        span_ms = float(timestamps[-1] - timestamps[0]) + timeframe_ms
    else:
        span_ms = float(eq.size * timeframe_ms)
    years = span_ms / MS_PER_YEAR
    try:
        annual = (1.0 + total) ** (1.0 / years) - 1.0 if total > -1.0 and years > 0 else -1.0
    except OverflowError:  # a big return over minutes, compounded over a year
        annual = math.inf
    returns = eq[1:] / eq[:-1] - 1.0
    sharpe, sortino = sharpe_sortino(returns, periods_per_year(timeframe_ms))
    rows = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in fills]
    exits = [r for r in rows if r["side"] == "SELL"]
    wins = sum(1 for r in exits if float(r["pnl"]) > 0)
    exposure = float(np.mean(in_position)) if in_position is not None and len(in_position) else 0.0
    return {
        "total_return_pct": total * 100.0,
        "annualized_return_pct": annual * 100.0,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown_pct": max_drawdown(eq) * 100.0,
        "win_rate_pct": wins / len(exits) * 100.0 if exits else 0.0,
        "trades": float(len(exits)),
        "exposure_pct": exposure * 100.0,
        "fees_paid": float(sum(float(r["fee"]) for r in rows)),
        "final_equity": float(eq[-1]),
    }


def buy_and_hold(
    open_: np.ndarray,
    close: np.ndarray,
    *,
    entry_index: int,
    cash: float,
    position_size_pct: float,
    commission_pct: float,
) -> tuple[np.ndarray, float]:
    """Equity of buying at ``open_[entry_index]`` with the broker's sizing and fee, then holding.

    The entry is the first candle on which the strategy itself could have filled (after the
    feature warm-up), so both start from the same moment with the same cash. Returns the
    equity curve (cash before the entry) and the entry fee.
    """
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    eq = np.full(c.shape[0], float(cash))
    if entry_index >= c.shape[0]:
        return eq, 0.0
    rate = commission_pct / 100.0
    price = float(o[entry_index])
    notional = min(cash * position_size_pct / 100.0, cash / (1.0 + rate))
    amount = notional / price
    fee = amount * rate * price
    rest = cash - amount * price - fee
    eq[entry_index:] = rest + amount * c[entry_index:]
    return eq, fee


def format_metrics_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table: one row per metric, one column per curve (strategy, buy & hold...)."""
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in METRIC_LABELS.items():
        cells = []
        for name in names:
            value = columns[name].get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("-")
            elif key == "trades":
                cells.append(f"{value:.0f}")
            else:
                cells.append(f"{value:,.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
