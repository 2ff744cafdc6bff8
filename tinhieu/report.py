"""The training report: classification, calibration and after-fee trading tables (markdown)
and a feature-importance chart (PNG) beside it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tinhieu.features import FEATURE_SCHEMA_VERSION, MODEL_FEATURES

if TYPE_CHECKING:
    from tinhieu.training import TrainResult

ROWS = ("rf", "svm", "lr", "ensemble", "majority", "persistence")


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}"


def metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows: one per model/baseline, the usual metrics and per-class P/R."""
    lines = [
        "| model | acc | bal. acc | macro F1 | log loss | Brier | P SELL | R SELL | P BUY | R BUY |"
        " P NEUTRAL | R NEUTRAL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ROWS:
        if name not in metrics:
            continue
        m = metrics[name]
        p, r = m["precision"], m["recall"]
        lines.append(
            f"| {name} | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | "
            f"{_f(m['macro_f1'])} | {_f(m['log_loss'])} | {_f(m.get('brier'))} | "
            f"{_f(p['SELL'])} | {_f(r['SELL'])} | "
            f"{_f(p['BUY'])} | {_f(r['BUY'])} | {_f(p['NEUTRAL'])} | {_f(r['NEUTRAL'])} |"
        )
    return lines


def summary_table(results: Mapping[str, TrainResult]) -> list[str]:
    """One row per symbol: balanced accuracy and log loss of each model beside the baselines."""
    head = "| symbol | rows | " + " | ".join(f"{n} bal.acc / logloss" for n in ROWS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(ROWS)]
    for sym, res in results.items():
        cells = [
            f"{_f(res.overall[n]['balanced_accuracy'])} / {_f(res.overall[n]['log_loss'])}"
            for n in ROWS
        ]
        lines.append(f"| {sym} | {res.rows} | " + " | ".join(cells) + " |")
    return lines


def signals_table(results: Mapping[str, TrainResult]) -> list[str]:
    lines = [
        "| symbol | test rows | BUY signals | BUY hit rate | BUY then SELL | BUY base rate |"
        " SELL signals | SELL hit rate | SELL then BUY | SELL base rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sym, res in results.items():
        s = res.signals
        lines.append(
            f"| {sym} | {s['n']} | {s['BUY_signals']} | {_f(s['BUY_hit_rate'])} | "
            f"{_f(s.get('BUY_wrong_rate'))} | {_f(s['BUY_base_rate'])} | {s['SELL_signals']} | "
            f"{_f(s['SELL_hit_rate'])} | {_f(s.get('SELL_wrong_rate'))} | "
            f"{_f(s['SELL_base_rate'])} |"
        )
    return lines


STRATEGY_NAMES = {"ensemble": "gated ensemble", "buy_and_hold": "buy and hold",
                  "ma_crossover": "MA 50/200 crossover"}


def trading_rows(name: str, t: Mapping[str, Any]) -> str:
    return (f"{_f(t['total_return_pct'], 2)} | {_f(t['sharpe'], 2)} | "
            f"{_f(t['max_drawdown_pct'], 2)} | {t['trades']:.0f} | {_f(t['win_rate_pct'], 1)} | "
            f"{_f(t['exposure_pct'], 1)}")


def trading_table(results: Mapping[str, TrainResult]) -> list[str]:
    """Pooled after-fee figures of the gated strategy and the baselines, one row each."""
    lines = ["| symbol | strategy | return % | Sharpe | max DD % | round trips | win % | "
             "exposure % |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for sym, res in results.items():
        for name, t in res.trading.items():
            lines.append(f"| {sym} | {STRATEGY_NAMES.get(name, name)} | "
                         f"{trading_rows(name, t)} |")
    return lines


def promotion_table(results: Mapping[str, TrainResult]) -> list[str]:
    lines = ["| symbol | promoted | why |", "|---|---|---|"]
    for sym, res in results.items():
        p = res.promotion
        lines.append(f"| {sym} | {'yes' if p.get('promoted') else '**no**'} | "
                     f"{p.get('reason', '-')} |")
    return lines


def calibration_table(results: Mapping[str, TrainResult]) -> list[str]:
    """Brier score of P(BUY) before and after calibration, and the 3-class Brier."""
    names = ("rf", "svm", "lr", "ensemble", "majority")
    lines = ["| symbol | " + " | ".join(f"{n} Brier BUY raw -> cal. / 3-class" for n in names)
             + " |", "|---|" + "---:|" * len(names)]
    for sym, res in results.items():
        cells = []
        for n in names:
            c = res.calibration.get(n)
            cells.append("-" if c is None else
                         f"{_f(c['brier_buy_uncalibrated'], 4)} -> {_f(c['brier_buy'], 4)} / "
                         f"{_f(c['brier'])}")
        lines.append(f"| {sym} | " + " | ".join(cells) + " |")
    return lines


def reliability_table_md(res: TrainResult, name: str = "ensemble") -> list[str]:
    """Predicted P(BUY) bins against the observed BUY frequency (pooled test folds)."""
    rel = res.calibration.get(name, {}).get("reliability", [])
    lines = ["| P(BUY) bin | rows | mean predicted | observed |", "|---|---:|---:|---:|"]
    for b in rel:
        if b["n"]:
            lines.append(f"| {b['lo']:.2f}-{b['hi']:.2f} | {b['n']} | {_f(b['mean_p'])} | "
                         f"{_f(b['observed'])} |")
    return lines


def confidence_grid_table(results: Mapping[str, TrainResult]) -> list[str]:
    grid = sorted({k for r in results.values() for k in r.confidence_grid}, key=float)
    lines = ["| symbol | " + " | ".join(f"min_conf {g}: return % / trips" for g in grid) + " |",
             "|---|" + "---:|" * len(grid)]
    for sym, res in results.items():
        cells = [f"{_f(res.confidence_grid[g]['total_return_pct'], 2)} / "
                 f"{res.confidence_grid[g]['trades']:.0f}" if g in res.confidence_grid else "-"
                 for g in grid]
        lines.append(f"| {sym} | " + " | ".join(cells) + " |")
    return lines


def describe_label(lab: Mapping[str, Any]) -> str:
    """One sentence on the label scheme of a run."""
    if lab.get("scheme") == "fixed_horizon":
        return (f"Labels: fixed horizon, {lab['horizon']} candles ahead ({lab['timeframe']}), "
                f"UP/DOWN beyond {lab['threshold_pct']:.3f}% (requested "
                f"{lab['requested_threshold_pct']}%, never below 2 x fee {lab['fee_pct']}%).")
    levels = (f"stop loss {lab['stop_loss_pct']}% / take profit {lab['take_profit_pct']}%"
              if lab.get("barrier_mode") == "fixed" else
              f"stop {lab['stop_vol_mult']} / take profit {lab['take_vol_mult']} x the "
              f"{lab['vol_window']}-candle volatility scaled to the holding time")
    be = lab.get("break_even")
    return (f"Labels: triple barrier, the broker's own long entered at the next open: {levels}, "
            f"at most {lab['max_holding']} candles ({lab['timeframe']}), fee {lab['fee_pct']}% "
            "per side. BUY = take profit first; SELL = stop loss first or a losing time exit; "
            "NEUTRAL = time exit not losing. "
            + (f"BUY gate: P(BUY) >= max(min_confidence, break-even {be:.4f})." if be else ""))


def importance_chart(results: Mapping[str, TrainResult], path: Path) -> Path:
    """Horizontal bars of the final RF's impurity importances, one series per symbol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(MODEL_FEATURES)
    symbols = [s for s, r in results.items() if r.importances]
    mean = np.array([np.mean([results[s].importances[n] for s in symbols]) if symbols else 0.0
                     for n in names])
    order = np.argsort(mean)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(names) + 1.5))
    height = 0.8 / max(1, len(symbols))
    for i, sym in enumerate(symbols):
        vals = np.array([results[sym].importances[n] for n in names])[order]
        ax.barh(np.arange(len(names)) + i * height, vals, height=height, label=sym)
    ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2)
    ax.set_yticklabels([names[j] for j in order], fontsize=8)
    ax.set_xlabel("RandomForest impurity importance")
    ax.set_title("Feature importance (final RF per symbol)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def out_of_sample_lines(oos: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The trained models over later candles no fold saw."""
    lines = ["| symbol | period | strategy | return % | Sharpe | max DD % | round trips | win % |"
             " exposure % |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for sym, o in oos.items():
        for name, t in o["trading"].items():
            lines.append(f"| {sym} | {o['start']} -> {o['end']} | "
                         f"{STRATEGY_NAMES.get(name, name)} | {trading_rows(name, t)} |")
    lines += ["", "| symbol | labelled rows | ensemble log loss | Brier | Brier BUY | "
              "BUY signals | BUY hit rate | BUY base rate |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for sym, o in oos.items():
        c, sg = o.get("classification"), o.get("signals")
        if c is None or sg is None:
            continue
        lines.append(f"| {sym} | {c['n']} | {_f(c['log_loss'])} | {_f(c['brier'])} | "
                     f"{_f(c['brier_buy'], 4)} | {sg['BUY_signals']} | "
                     f"{_f(sg['BUY_hit_rate'])} | {_f(sg['BUY_base_rate'])} |")
    return lines


def write_report(results: Mapping[str, TrainResult], path: Path,
                 out_of_sample: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write the markdown report to ``path`` and ``<stem>_importance.png`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chart = path.with_name(f"{path.stem}_importance.png")
    if results:
        importance_chart(results, chart)
    any_res = next(iter(results.values()), None)
    lines = [
        "# tinhieu training report",
        "",
        f"Feature schema `{FEATURE_SCHEMA_VERSION}`; models see {len(MODEL_FEATURES)} "
        "scale-free features. Walk-forward (TimeSeriesSplit, purge gap = the label's span); "
        "every figure is on test folds only, next to baselines on the same rows: "
        "`majority` (most frequent class of the training fold) and `persistence` (the last "
        "known outcome repeats). Probabilities are calibrated on the most recent part of each "
        "training set (purged), never on a test fold.",
        "",
    ]
    if any_res is not None:
        lines += [describe_label(any_res.label), ""]
    lines += [
        "## Trading after fees (pooled test folds, the broker's own rules)",
        "",
        "The gated ensemble's signals and the baselines' go through `tinhieu.broker.step` with "
        "the same stop loss, take profit, sizing and fees; buy and hold enters at the first "
        "test candle's next open. Sharpe is annualized per candle; max DD on the chained "
        "fold curves.",
        "",
        *trading_table(results),
        "",
        "## Promotion gate",
        "",
        "Promoted only when the gated strategy's pooled after-fee return beats cash, buy and "
        "hold and the MA crossover with enough round trips.",
        "",
        *promotion_table(results),
        "",
        "## Calibration (pooled test folds)",
        "",
        "Brier score of P(BUY) before -> after calibration, and the 3-class Brier score "
        "(lower is better; `majority` predicts the training class shares).",
        "",
        *calibration_table(results),
        "",
        *(["## Out of sample: the trained models over later candles", "",
            "The final models (promoted or not) over candles after the training range, "
            "which no fold saw; same broker, fees and baselines.", "",
            *out_of_sample_lines(out_of_sample), ""] if out_of_sample else []),
        "## min_confidence replayed on the walk-forward (gated ensemble, pooled)",
        "",
        "Chosen on these same test folds: read it as a sensitivity table, not as unseen "
        "evidence.",
        "",
        *confidence_grid_table(results),
        "",
        "## Classification summary (pooled test folds)",
        "",
        *summary_table(results),
        "",
        "## Gated ensemble signals (pooled test folds)",
        "",
        "Hit rate: share of BUY (SELL) signals whose label was BUY (SELL); 'then SELL/BUY': "
        "share with the opposite label; base rate: share of that label among all test rows.",
        "",
        *signals_table(results),
        "",
    ]
    if results:
        lines += [f"![feature importance]({chart.name})", ""]
    for sym, res in results.items():
        lines += [
            f"## {sym}",
            "",
            f"{res.rows} usable rows ({res.dropped_gap_rows} dropped next to data gaps); final "
            f"models trained on {_iso(res.train_start_ms)} -> {_iso(res.train_end_ms)} UTC in "
            f"{res.seconds:.1f}s. Ensemble weights: "
            + ", ".join(f"{a}={w:.3f}" for a, w in res.weights.items())
            + ". Versions: "
            + ", ".join(f"{a} `{v}`" for a, v in res.versions.items())
            + (" (promoted)." if res.promoted else " (registered, **not promoted**).")
            + (f" Gate: {res.promotion.get('reason')}." if res.promotion else ""),
            "",
            "### Overall (pooled test folds)",
            "",
            *metrics_table(res.overall),
            "",
            "### Reliability of the ensemble's P(BUY)",
            "",
            *reliability_table_md(res),
            "",
        ]
        for fold in res.folds:
            lines += [
                f"### Fold {fold['fold']}: train {fold['train_rows']} rows "
                f"{_iso(fold['train_start_ms'])} -> {_iso(fold['train_end_ms'])}, test "
                f"{fold['test_rows']} rows {_iso(fold['test_start_ms'])} -> "
                f"{_iso(fold['test_end_ms'])}",
                "",
                *metrics_table(fold["metrics"]),
                "",
            ]
            if fold.get("trading"):
                lines += ["| strategy | return % | Sharpe | max DD % | round trips | win % | "
                          "exposure % |", "|---|---:|---:|---:|---:|---:|---:|"]
                lines += [f"| {STRATEGY_NAMES.get(n, n)} | {trading_rows(n, t)} |"
                          for n, t in fold["trading"].items()]
                lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
