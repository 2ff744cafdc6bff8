"""The training report: markdown tables and a feature-importance chart (PNG) beside it."""

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
        "| model | acc | bal. acc | macro F1 | log loss | P SELL | R SELL | P BUY | R BUY |"
        " P NEUTRAL | R NEUTRAL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ROWS:
        if name not in metrics:
            continue
        m = metrics[name]
        p, r = m["precision"], m["recall"]
        lines.append(
            f"| {name} | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | "
            f"{_f(m['macro_f1'])} | {_f(m['log_loss'])} | {_f(p['SELL'])} | {_f(r['SELL'])} | "
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
        "| symbol | test rows | BUY signals | BUY hit rate | BUY then DOWN | UP base rate |"
        " SELL signals | SELL hit rate | SELL then UP | DOWN base rate |",
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


def write_report(results: Mapping[str, TrainResult], path: Path) -> Path:
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
        "scale-free features. Walk-forward (TimeSeriesSplit, purge gap = label horizon); "
        "every figure is on test folds only, next to two baselines on the same rows: "
        "`majority` (most frequent class of the training fold) and `persistence` (the realized "
        "move of the previous horizon continues).",
        "",
    ]
    if any_res is not None:
        lab = any_res.label
        lines += [
            f"Label: {lab['horizon']} candles ahead ({lab['timeframe']}), UP/DOWN beyond "
            f"{lab['threshold_pct']:.3f}% (requested {lab['requested_threshold_pct']}%, never "
            f"below 2 x fee {lab['fee_pct']}%).",
            "",
        ]
    lines += ["## Summary (pooled test folds)", "", *summary_table(results), ""]
    lines += [
        "## Thresholded ensemble signals (pooled test folds)",
        "",
        "Hit rate: share of BUY (SELL) signals followed by an UP (DOWN) label; 'then DOWN/UP': "
        "share followed by the opposite move; base rate: share of UP (DOWN) labels among all "
        "test rows (what a random signal would hit).",
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
            + (" (promoted)." if res.promoted else " (not promoted)."),
            "",
            "### Overall (pooled test folds)",
            "",
            *metrics_table(res.overall),
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
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
