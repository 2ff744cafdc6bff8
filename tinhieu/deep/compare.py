"""Tree ensemble alone vs tree ensemble + LSTM on the same walk-forward folds.

Runs :func:`tinhieu.training.train_symbol` twice per symbol on the same candles (so the same
``TimeSeriesSplit`` folds, purge and embargo, labels and baselines): ``algorithms=rf,svm,lr``
and ``rf,svm,lr,lstm``, into a temporary registry, never promoting. Prints the markdown rows
of docs/ML.md ("LSTM with attention") and writes every figure as JSON.

Run (needs the deep extra)::

    .venv/bin/python -m tinhieu.deep.compare --symbols ETH/USDT --end 2021-05-20 \\
        --out var/reports/lstm_compare.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from tinhieu.data import find_history_file, load_candles, parse_time
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.training import train_symbol

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-spot-1m-2021"
SETUPS = {"trees": "rf,svm,lr", "trees+lstm": "rf,svm,lr,lstm"}


def _summary(res: Any) -> dict[str, Any]:
    cls = {name: {k: m[k] for k in ("log_loss", "balanced_accuracy", "macro_f1", "brier_buy")}
           for name, m in res.overall.items()}
    return {"classification": cls, "trading": res.trading, "weights": res.weights,
            "signals": res.signals, "seconds": res.seconds, "rows": res.rows,
            "folds": len(res.folds), "start": res.folds[0]["test_start_ms"],
            "end": res.folds[-1]["test_end_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", default="ETH/USDT")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--start", default=None)
    parser.add_argument("--end", default="2021-05-20")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("var/reports/lstm_compare.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, dict[str, Any]] = {}
    for sym in [s.strip() for s in args.symbols.split(",") if s.strip()]:
        df = load_candles(find_history_file(args.data, sym, "1m"), parse_time(args.start),
                          parse_time(args.end))
        results[sym] = {}
        for name, algos in SETUPS.items():
            settings = load_settings().model_copy(update={"algorithms": algos})
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                res = train_symbol(df, sym, settings, ModelRegistry(Path(tmp)),
                                   n_splits=args.splits, promote=False, progress=False)
                results[sym][name] = _summary(res)
                print(f"{sym} {name}: {time.perf_counter() - started:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
    print(table(results))


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown rows: per symbol and setup, the pooled walk-forward figures."""
    lines = ["| symbol | models | gated ensemble: return % / trips / win % / max DD % | "
             "buy and hold % | MA crossover % / trips | log loss: ensemble / lstm / majority "
             "/ persistence | balanced acc. | macro F1 | Brier P(BUY) | lstm weight | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sym, by in results.items():
        for name, r in by.items():
            t, c = r["trading"], r["classification"]
            e = t["ensemble"]
            lstm_ll = f"{c['lstm']['log_loss']:.3f}" if "lstm" in c else "-"
            lines.append(
                f"| {sym} | {name} | {e['total_return_pct']:.2f} / {e['trades']:.0f} / "
                f"{e['win_rate_pct']:.1f} / {e['max_drawdown_pct']:.2f} | "
                f"{t['buy_and_hold']['total_return_pct']:.2f} | "
                f"{t['ma_crossover']['total_return_pct']:.2f} / "
                f"{t['ma_crossover']['trades']:.0f} | "
                f"{c['ensemble']['log_loss']:.3f} / {lstm_ll} / "
                f"{c['majority']['log_loss']:.3f} / {c['persistence']['log_loss']:.3f} | "
                f"{c['ensemble']['balanced_accuracy']:.3f} | {c['ensemble']['macro_f1']:.3f} | "
                f"{c['ensemble']['brier_buy']:.4f} | "
                f"{r['weights'].get('lstm', 0.0):.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
