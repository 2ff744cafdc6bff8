"""The backtest report: ``report.md``, ``equity.png``, ``trades.csv`` and ``orders.jsonl``.

Reads a finished :class:`~tinhieu.backtest.engine.BacktestResult`; computes nothing the
engine has not already computed. ``orders.jsonl`` has one ``Order`` per line, for comparison
with the orders of the live pipeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tinhieu.broker import Fill, RiskConfig
from tinhieu.features import WARMUP
from tinhieu.performance import format_metrics_table

if TYPE_CHECKING:
    from tinhieu.backtest.engine import BacktestResult, SymbolResult


def fmt_ms(ms: int | float | None) -> str:
    """``2021-05-01 12:00`` (UTC) for an open time in ms; ``-`` for None."""
    if ms is None:
        return "-"
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def write_orders_jsonl(fills: Sequence[Fill], path: Path) -> None:
    """One ``Order`` JSON object per line, in fill order per symbol."""
    with open(path, "w", encoding="utf-8") as fh:
        for f in fills:
            fh.write(json.dumps(f.to_dict(), sort_keys=False) + "\n")


def read_orders_jsonl(path: Path) -> list[dict[str, Any]]:
    """The orders written by :func:`write_orders_jsonl` (for comparisons with live orders)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_report(
    result: BacktestResult,
    settings: Any,
    *,
    start_ms: int | None,
    end_ms: int | None,
    allow_overlap: bool,
) -> Path:
    """Write ``report.md``, ``equity.png``, ``trades.csv`` and ``orders.jsonl``."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    fills = result.fills
    write_orders_jsonl(fills, out / "orders.jsonl")
    frame = pd.DataFrame([f.to_dict() for f in fills])
    if not frame.empty:
        for col in ("candle_time", "fill_time"):
            frame.insert(
                frame.columns.get_loc(col) + 1,
                f"{col}_utc",
                pd.to_datetime(frame[col], unit="ms", utc=True).dt.strftime("%Y-%m-%d %H:%M"),
            )
    frame.to_csv(out / "trades.csv", index=False)
    plot_equity(result, out / "equity.png")

    cfg = RiskConfig.from_settings(settings)
    first = min(int(r.timestamps[0]) for r in result.symbols.values())
    last = max(int(r.timestamps[-1]) for r in result.symbols.values())
    lines = [
        "# Backtest report",
        "",
        f"Range asked: {fmt_ms(start_ms)} to {fmt_ms(end_ms)}; candles used: {fmt_ms(first)} "
        f"to {fmt_ms(last)} (UTC, open times; "
        f"{result.candles:,} candles, timeframe {settings.timeframe}).",
        f"Risk: starting cash {cfg.starting_cash:,.0f} USDT per symbol, position "
        f"{cfg.position_size_pct:g}% of cash, stop loss {cfg.stop_loss_pct:g}%, take profit "
        f"{cfg.take_profit_pct:g}%, commission {cfg.commission_pct:g}% per side, "
        f"min confidence {cfg.min_confidence:g}, long only.",
        "Fills: market orders at the next candle's open; stop/take profit at the level, or at "
        "the open when the candle gaps beyond it; stop first when both are inside one candle.",
        "Buy and hold: same cash and sizing, bought at the open of the candle after the first "
        "signal (the first on which the strategy could fill), marked at each close.",
        warmup_summary(result),
    ]
    if allow_overlap:
        lines.append(
            "**Warning: allow_overlap was set; models may have been trained on this "
            "range, so these figures are optimistic.**"
        )
    lines += [
        "",
        "## All symbols (sum of the books)",
        "",
        format_metrics_table(
            {"strategy": result.portfolio, "buy and hold": result.portfolio_buy_hold}
        ),
        "",
    ]
    if result.engine == "backtrader":
        lines += ["## Engines side by side: fast (step) and Backtrader (BackBroker)", ""]
        lines += engine_comparison_lines(result)
    for sym, r in result.symbols.items():
        lines += [
            f"## {sym}",
            "",
            f"{len(r.timestamps):,} candles, {r.signals:,} signals, {len(r.fills)} fills; "
            f"models: {', '.join(r.model_versions) or '-'}",
            "",
            f"Warm-up: {symbol_warmup(r)}",
            "",
            format_metrics_table({"strategy": r.metrics, "buy and hold": r.buy_hold_metrics}),
            "",
        ]
        cls = r.classification
        if cls.get("rows"):
            lines += [
                f"Signals against the realized move over {settings.label_horizon} candles "
                f"({cls['rows']:,} candles whose horizon spans no data gap):",
                "",
                "```",
                cls["report"].rstrip(),
                "```",
                "",
                "| signals | accuracy | macro F1 |",
                "|---|---:|---:|",
                *(
                    f"| {name} | {cls[key]['accuracy']:.3f} | {cls[key]['macro_f1']:.3f} |"
                    for key, name in (
                        ("model", "ensemble"),
                        ("always_neutral", "always NEUTRAL"),
                        ("persistence", "persistence (last move continues)"),
                    )
                ),
                "",
            ]
    lines += ["Files: `equity.png`, `trades.csv`, `orders.jsonl` (one Order per line).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def plot_equity(result: BacktestResult, path: Path, max_points: int = 4000) -> None:
    """Price with entries/exits marked, and equity beside buy and hold, one row per symbol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syms = list(result.symbols.values())
    fig, axes = plt.subplots(len(syms), 2, figsize=(14, 3.2 * len(syms)), squeeze=False)
    for row, r in zip(axes, syms, strict=True):
        step_n = max(1, len(r.timestamps) // max_points)
        t = pd.to_datetime(r.timestamps[::step_n], unit="ms")
        row[0].plot(t, r.close[::step_n], lw=0.6, color="0.3")
        for side, marker, color in (("BUY", "^", "tab:green"), ("SELL", "v", "tab:red")):
            pts = [f for f in r.fills if f.side == side]
            if pts:
                row[0].scatter(
                    pd.to_datetime([f.fill_time for f in pts], unit="ms"),
                    [f.price for f in pts],
                    marker=marker,
                    color=color,
                    s=14,
                    label=side,
                    zorder=3,
                )
        row[0].set_title(f"{r.symbol} price and fills")
        if r.fills:
            row[0].legend(loc="best", fontsize=7)
        row[1].plot(t, r.equity[::step_n], lw=0.8, label="strategy")
        row[1].plot(t, r.buy_hold[::step_n], lw=0.8, label="buy and hold")
        row[1].set_title(f"{r.symbol} equity (USDT)")
        row[1].legend(loc="best", fontsize=7)
    import matplotlib.dates as mdates

    for ax in axes.flat:
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def symbol_warmup(r: SymbolResult) -> str:
    """One sentence: where this symbol's features warmed up, and its first signal."""
    if r.history_candles >= WARMUP - 1:
        return (
            f"on the {r.history_candles} candles before the range start (WARMUP = {WARMUP}); "
            "signals from the first candle of the range."
        )
    where = (
        "no history before the range start in the data, so the features warmed up inside the "
        "range (as a live worker after a cold start)"
        if r.history_candles == 0
        else f"only {r.history_candles} candles before the range start (WARMUP = {WARMUP})"
    )
    return (
        f"{where}: no signal before candle {r.first_signal_index + 1} of the range; "
        f"buy and hold bought at the open of candle {r.first_signal_index + 2}."
    )


def warmup_summary(result: BacktestResult) -> str:
    """The report's warm-up line: all symbols warmed up on history, or which did not."""
    cold = [sym for sym, r in result.symbols.items() if r.first_signal_index > 0]
    if not cold:
        return (
            f"Warm-up: the features of every symbol warmed up on the {WARMUP} candles before "
            "the range (indicators settled), so the first candle of the range has a signal, "
            "as in a live run that started earlier."
        )
    return (
        f"Warm-up: **{', '.join(cold)}: not enough candles before the range start in the data "
        f"for the warm-up (WARMUP = {WARMUP}); the features warmed up inside the range, so "
        "its first candles have no signal (see each symbol below).**"
    )


_ENGINE_ROWS = (
    ("total_return_pct", "Total return %"),
    ("annualized_return_pct", "Annualized return %"),
    ("sharpe", "Sharpe (annualized)"),
    ("max_drawdown_pct", "Max drawdown %"),
    ("trades", "Round trips"),
    ("win_rate_pct", "Win rate %"),
    ("net_pnl", "Net P&L of round trips (USDT)"),
    ("fees_paid", "Fees paid (USDT)"),
    ("final_equity", "Final equity (USDT)"),
    ("fills", "Fills"),
)


def _cell(value: float | None, key: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.0f}" if key in ("trades", "fills") else f"{value:,.2f}"


def engine_comparison_lines(result: BacktestResult) -> list[str]:
    """Per symbol: the fast engine's figures beside Backtrader's analyzers, the fill counts,
    and the one documented fill-rule difference (Markdown lines)."""
    from tinhieu.backtest.bt_engine import DOCUMENTED_DIFFERENCE

    lines = [
        "Same candles, same signals (the ensemble's actions and confidences, computed once), "
        "same risk rules and commission. Backtrader's column comes from its analyzers: "
        "Returns (total and annualized), SharpeRatio, DrawDown, TradeAnalyzer (round trips, "
        "wins, net P&L); fees and fills from its executed orders.",
        "",
    ]
    for sym, r in result.symbols.items():
        run, cmp = r.backtrader, r.fill_comparison
        if run is None or cmp is None:
            continue
        fast = dict(r.metrics)
        fast["net_pnl"] = float(sum(f.pnl for f in r.fills if f.side == "SELL"))
        fast["fills"] = float(len(r.fills))
        theirs = dict(run.figures, fills=float(len(run.fills)))
        lines += [
            f"### {sym}",
            "",
            "| metric | fast engine (step) | Backtrader (BackBroker) |",
            "|---|---:|---:|",
            *(
                f"| {label} | {_cell(fast.get(key), key)} | {_cell(theirs.get(key), key)} |"
                for key, label in _ENGINE_ROWS
            ),
            "",
            f"Fills matched by side and candle: {cmp.same} identical, **{cmp.differ} differ** "
            f"({cmp.documented} by the documented difference, {cmp.amount_only} in amount only "
            f"after it, {len(cmp.other)} other).",
        ]
        lines += [f"- other difference: {text}" for text in cmp.other[:10]]
        if len(cmp.other) > 10:
            lines.append(f"- ... and {len(cmp.other) - 10} more")
        lines.append("")
    rate = result.candles / result.backtrader_seconds if result.backtrader_seconds > 0 else 0.0
    lines += [
        f"**The documented difference.** {DOCUMENTED_DIFFERENCE}",
        "",
        "Definitions that differ on purpose: Backtrader's Returns annualizes by candle count "
        "(mean log return per candle x candles per year), the fast engine by calendar time "
        "(data gaps count); Backtrader's SharpeRatio has one more period (the starting cash "
        "to the first candle, a zero return).",
        "",
        f"Backtrader run: {result.backtrader_seconds:.1f} s ({rate:,.0f} candles/s); fast "
        f"engine: {result.seconds:.1f} s ({result.candles_per_s:,.0f} candles/s).",
        "",
    ]
    return lines


def format_engine_comparison(result: BacktestResult) -> str:
    """The side-by-side section as console text (the same Markdown as in report.md)."""
    return "\n".join(engine_comparison_lines(result))
