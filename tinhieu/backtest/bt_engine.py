"""Backtrader's broker over the same candles and signals as the fast engine.

The fast engine (:func:`tinhieu.backtest.engine.simulate`) calls :func:`tinhieu.broker.step`
candle by candle. This module runs the same per-candle signals (the ensemble's actions and
confidences, computed once by :func:`~tinhieu.backtest.engine.predict_signals`) through a
real ``backtrader.Cerebro`` with its ``BackBroker``, and reads Backtrader's own analyzers
(``SharpeRatio``, ``DrawDown``, ``TradeAnalyzer``, ``Returns``). It is the second opinion
behind ``backtest --engine backtrader`` and the reference of
``tests/unit/test_backtrader_parity.py``.

How ``step``'s rules are wired into Backtrader, and why:

* ``cheat_on_open=True``: a pending entry is submitted in ``next_open`` of the fill candle,
  when its open is known, so the size (``cash * position_size_pct / open``, capped so that
  notional + fee fits the cash) and the stop/take-profit levels (relative to the fill price)
  are those of ``step``; the market order still fills at that open, exactly like a market
  order placed after the signal candle closed.
* the stop order is submitted before the limit order (OCO), so when both levels lie inside
  one candle ``BackBroker`` executes the stop first: ``step``'s conservative rule.
* the stop and limit orders are submitted with the entry, so they can fill on the entry
  candle itself, like ``step`` (bracket children would only activate on the next bar).
* commission: ``setcommission(commission=cfg.commission_rate)`` (percentage of the notional
  per side, ``RiskConfig.commission_pct`` = the ``fee_pct`` setting).

The one known difference (:data:`DOCUMENTED_DIFFERENCE`): a candle that opens above the take
profit and then falls through the stop. The open is the candle's first trade, so ``step``
takes the profit at the open; ``BackBroker`` checks the stop order first (submission order)
and sells at the stop. :func:`compare_fills` counts these fills apart from any other
difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import backtrader as bt
import pandas as pd

from tinhieu.broker import Fill, RiskConfig
from tinhieu.performance import periods_per_year

if TYPE_CHECKING:
    from tinhieu.backtest.engine import PredictionLike

DOCUMENTED_DIFFERENCE = (
    "A candle that opens above the take profit and then falls through the stop: the fast "
    "engine fills at the take profit (at the open, the candle's first trade); Backtrader's "
    "BackBroker checks the stop order first (submission order) and fills at the stop. Later "
    "fills of the same symbol then differ in amount only (the cash differs from there on)."
)

_REASONS = {bt.Order.Market: "signal", bt.Order.Stop: "stop_loss", bt.Order.Limit: "take_profit"}

_MS_PER_MINUTE = 60_000
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class BtFill:
    """One order ``BackBroker`` executed; ``index`` is the candle's row in the frame."""

    side: str
    reason: str
    index: int
    fill_time: int
    price: float
    amount: float
    fee: float


@dataclass
class BacktraderRun:
    """What Backtrader made of one symbol: its fills, its book and its analyzers' figures.

    ``figures`` uses the keys of :data:`tinhieu.performance.METRIC_LABELS` where Backtrader
    has the same figure (plus ``net_pnl``), so it sits beside the fast engine's metrics.
    """

    symbol: str
    fills: list[BtFill]
    final_cash: float
    final_value: float
    position: float
    figures: dict[str, float]
    analyzers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class SignalStrategy(bt.Strategy):
    """``step``'s rules as a Backtrader strategy over per-candle (action, confidence).

    Params: ``actions`` and ``confidences`` (one per candle; action None = no signal),
    ``times`` (the candles' open times, ms, for the fills) and ``cfg``
    (:class:`~tinhieu.broker.RiskConfig`).
    """

    params = (("actions", ()), ("confidences", ()), ("cfg", None), ("times", ()))

    def __init__(self) -> None:
        self.pending: str | None = None
        self.exits: list[bt.Order] = []
        self.fills: list[BtFill] = []

    def next_open(self) -> None:
        cfg: RiskConfig = self.p.cfg
        if self.pending == "BUY" and not self.position:
            price = self.data.open[0]
            cash = self.broker.getcash()
            rate = cfg.commission_rate
            size = min(cash * cfg.position_size_pct / 100.0, cash / (1.0 + rate)) / price
            self.buy(size=size, exectype=bt.Order.Market)
            stop = self.sell(
                size=size, exectype=bt.Order.Stop, price=price * (1.0 - cfg.stop_loss_pct / 100.0)
            )
            limit = self.sell(
                size=size,
                exectype=bt.Order.Limit,
                oco=stop,
                price=price * (1.0 + cfg.take_profit_pct / 100.0),
            )
            self.exits = [stop, limit]
        elif self.pending == "SELL" and self.position:
            for order in self.exits:
                self.cancel(order)
            self.exits = []
            self.close(exectype=bt.Order.Market)
        self.pending = None

    def next(self) -> None:
        i = len(self) - 1
        action = self.p.actions[i]
        if action is None or self.p.confidences[i] < self.p.cfg.min_confidence or self.pending:
            return
        if action == "BUY" and not self.position:
            self.pending = "BUY"
        elif action == "SELL" and self.position:
            self.pending = "SELL"

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            i = len(self) - 1
            ex = order.executed
            self.fills.append(
                BtFill(
                    side="BUY" if order.isbuy() else "SELL",
                    reason=_REASONS.get(order.exectype, str(order.exectype)),
                    index=i,
                    fill_time=int(self.p.times[i]),
                    price=float(ex.price),
                    amount=abs(float(ex.size)),
                    fee=float(ex.comm),
                )
            )


def bt_timeframe(timeframe_ms: int) -> tuple[int, int]:
    """Backtrader's (timeframe, compression) for a candle length: 1m -> (Minutes, 1)."""
    if timeframe_ms % _MS_PER_DAY == 0:
        return bt.TimeFrame.Days, timeframe_ms // _MS_PER_DAY
    if timeframe_ms % _MS_PER_MINUTE == 0:
        return bt.TimeFrame.Minutes, timeframe_ms // _MS_PER_MINUTE
    raise ValueError(f"timeframe of {timeframe_ms} ms is not a whole number of minutes")


def _analysis(analyzer: Any) -> dict[str, Any]:
    """An analyzer's AutoOrderedDict as plain nested dicts (printable, comparable)."""

    def plain(x: Any) -> Any:
        return {k: plain(v) for k, v in x.items()} if isinstance(x, dict) else x

    return plain(analyzer.get_analysis())


def run_backtrader(
    symbol: str,
    df: pd.DataFrame,
    predictions: Sequence[PredictionLike | None],
    cfg: RiskConfig,
    timeframe_ms: int = _MS_PER_MINUTE,
) -> BacktraderRun:
    """Run ``predictions`` (one per candle of ``df``, None = no signal) through Cerebro.

    Parameters
    ----------
    symbol : str
        Name for the result.
    df : pandas.DataFrame
        Candles ``timestamp,open,high,low,close,volume`` (ascending), the same rows the fast
        engine simulates.
    predictions : sequence
        Objects with ``action`` and ``confidence`` (or None), as from ``predict_signals``.
    cfg : RiskConfig
        The same risk rules as the fast engine.
    timeframe_ms : int
        Candle length; sets the analyzers' period and annualization (1m: 525,600 per year).

    Returns
    -------
    BacktraderRun
        Fills, final cash/value/position, and the analyzers' figures.
    """
    if len(predictions) != len(df):
        raise ValueError(
            f"{symbol}: {len(predictions)} predictions for {len(df)} candles; one per candle"
        )
    frame = df.assign(datetime=pd.to_datetime(df["timestamp"], unit="ms")).set_index("datetime")
    timeframe, compression = bt_timeframe(timeframe_ms)
    ppy = periods_per_year(timeframe_ms)
    cerebro = bt.Cerebro(cheat_on_open=True, stdstats=False)
    cerebro.adddata(
        bt.feeds.PandasData(
            dataname=frame[["open", "high", "low", "close", "volume"]],
            openinterest=None,
            timeframe=timeframe,
            compression=compression,
        )
    )
    cerebro.broker.setcash(cfg.starting_cash)
    cerebro.broker.setcommission(commission=cfg.commission_rate)
    cerebro.addstrategy(
        SignalStrategy,
        actions=[None if p is None else p.action for p in predictions],
        confidences=[0.0 if p is None else float(p.confidence) for p in predictions],
        cfg=cfg,
        times=df["timestamp"].to_numpy().tolist(),
    )
    # per-candle returns, annualized like tinhieu.performance (sqrt(ppy), sample std, rf 0)
    cerebro.addanalyzer(
        bt.analyzers.SharpeRatio,
        _name="sharpe",
        timeframe=timeframe,
        compression=compression,
        factor=ppy,
        annualize=True,
        riskfreerate=0.0,
        stddev_sample=True,
    )
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(
        bt.analyzers.Returns,
        _name="returns",
        timeframe=timeframe,
        compression=compression,
        tann=ppy,
    )
    started = time.perf_counter()
    (strategy,) = cerebro.run()
    seconds = time.perf_counter() - started
    analyzers = {
        name: _analysis(getattr(strategy.analyzers, name))
        for name in ("sharpe", "drawdown", "trades", "returns")
    }
    return BacktraderRun(
        symbol=symbol,
        fills=list(strategy.fills),
        final_cash=float(cerebro.broker.getcash()),
        final_value=float(cerebro.broker.getvalue()),
        position=float(strategy.position.size),
        figures=_figures(analyzers, strategy.fills, float(cerebro.broker.getvalue())),
        analyzers=analyzers,
        seconds=seconds,
    )


def _figures(analyzers: dict[str, Any], fills: Sequence[BtFill], value: float) -> dict[str, float]:
    """The analyzers' numbers under the keys of ``METRIC_LABELS`` (NaN where absent)."""
    nan = float("nan")
    trades = analyzers["trades"]
    closed = float(trades.get("total", {}).get("closed", 0) or 0)
    won = float(trades.get("won", {}).get("total", 0) or 0)
    rtot = analyzers["returns"].get("rtot", nan)
    sharpe = analyzers["sharpe"].get("sharperatio")
    return {
        "total_return_pct": math.expm1(rtot) * 100.0 if math.isfinite(rtot) else -100.0,
        "annualized_return_pct": float(analyzers["returns"].get("rnorm100", nan)),
        "sharpe": nan if sharpe is None else float(sharpe),
        "max_drawdown_pct": float(analyzers["drawdown"].get("max", {}).get("drawdown", nan)),
        "win_rate_pct": won / closed * 100.0 if closed else 0.0,
        "trades": closed,
        "net_pnl": float(trades.get("pnl", {}).get("net", {}).get("total", 0.0) or 0.0),
        "fees_paid": float(sum(f.fee for f in fills)),
        "final_equity": value,
    }


@dataclass
class FillComparison:
    """Fills of the two engines for one symbol, matched by (side, candle).

    ``same``: side, candle, reason, price, amount and fee agree (relative ``rel``).
    ``documented``: the known difference (fast: take profit at the open; Backtrader: the stop).
    ``amount_only``: same side, candle and price; amount/fee differ because the cash already
    differs after an earlier difference. ``other``: anything else, described one per line.
    """

    fast_fills: int
    backtrader_fills: int
    same: int = 0
    documented: int = 0
    amount_only: int = 0
    other: list[str] = field(default_factory=list)

    @property
    def differ(self) -> int:
        """Fills (of either engine, matched by side and candle) that are not the same."""
        return self.documented + self.amount_only + len(self.other)


def _close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def compare_fills(
    fast: Sequence[Fill], theirs: Sequence[BtFill], rel: float = 1e-9
) -> FillComparison:
    """Match the fast engine's fills with Backtrader's by (side, fill candle) and classify."""
    ours = {(f.side, f.fill_time): f for f in fast}
    bts = {(f.side, f.fill_time): f for f in theirs}
    out = FillComparison(fast_fills=len(fast), backtrader_fills=len(theirs))
    for key in sorted(ours.keys() | bts.keys(), key=lambda k: (k[1], k[0] == "SELL")):
        a, b = ours.get(key), bts.get(key)
        when = pd.Timestamp(key[1], unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
        if a is None or b is None:
            only = "fast engine" if b is None else "Backtrader"
            out.other.append(f"{key[0]} at {when}: only the {only} filled")
        elif (a.reason, b.reason) == ("take_profit", "stop_loss") and _close(
            b.price, a.stop_loss, rel
        ):
            out.documented += 1
        elif a.reason != b.reason or not _close(a.price, b.price, rel):
            out.other.append(
                f"{key[0]} at {when}: fast {a.reason} {a.price:.8g}, "
                f"Backtrader {b.reason} {b.price:.8g}"
            )
        elif _close(a.amount, b.amount, rel) and _close(a.fee, b.fee, rel):
            out.same += 1
        elif out.differ:  # the books' cash already differs: sizes follow
            out.amount_only += 1
        else:
            out.other.append(
                f"{key[0]} at {when}: amount {a.amount:.10g} vs {b.amount:.10g}, "
                f"fee {a.fee:.8g} vs {b.fee:.8g} with no earlier difference"
            )
    return out
