"""Walk-forward training of the RF + SVM + LR ensemble on the 5 symbols of 1m 2021 data:
time, and the figures for docs/ML.md (trading after fees, calibration, baselines).

Run: ``.venv/bin/python bench/train_time.py [--report docs/ML_report.md] [--splits 5]
[--label-scheme triple_barrier|fixed_horizon] [--max-holding 240] [--barrier-mode fixed]
[--end 2021-05-20] [--oos-end 2021-06-16] [--json out.json]
[--data ../shared/data/binance-spot-1h --timeframe 1h]``

Prints the seconds per symbol and in total; the models go to a temporary registry, the report
(tables + feature-importance PNG) to ``--report``. With ``--end``, training uses the candles
before it and the trained models (promoted or not) are then run over the candles from
``--end`` to ``--oos-end`` that no fold ever saw: the out-of-sample check.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from tinhieu.data import find_history_file, load_candles, parse_time
from tinhieu.registry import ModelRegistry
from tinhieu.report import write_report
from tinhieu.settings import load_settings
from tinhieu.training import evaluate_out_of_sample, train_symbol

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance-spot-1m-2021"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=None, help="write the report here")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--symbols", default=",".join(SYMBOLS))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--label-scheme", default=None)
    parser.add_argument("--max-holding", type=int, default=None)
    parser.add_argument("--barrier-mode", default=None)
    parser.add_argument("--min-confidence", type=float, default=None)
    parser.add_argument("--timeframe", default=None, help="e.g. 1h with --data .../binance-spot-1h")
    parser.add_argument("--end", default=None, help="train on candles before this (UTC)")
    parser.add_argument("--oos-end", default=None, help="out-of-sample check up to this")
    parser.add_argument("--json", type=Path, default=None, help="figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = {k: v for k, v in {
        "label_scheme": args.label_scheme, "max_holding_candles": args.max_holding,
        "barrier_mode": args.barrier_mode, "min_confidence": args.min_confidence,
        "timeframe": args.timeframe,
    }.items() if v is not None}
    settings = load_settings(**overrides)
    end_ms = parse_time(args.end)
    results = {}
    oos = {}
    total_rows = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp))
        for sym in args.symbols.split(","):
            full = load_candles(find_history_file(args.data, sym, settings.timeframe))
            df = full if end_ms is None else full[full["timestamp"] < end_ms]
            t0 = time.perf_counter()
            res = train_symbol(df.reset_index(drop=True), sym, settings, registry,
                               n_splits=args.splits, max_train_rows=args.max_train_rows,
                               progress=None)
            results[res.symbol] = res
            total_rows += len(df)
            t = res.trading
            print(f"{res.symbol:10s} candles={len(df):6d} usable={res.rows:6d} "
                  f"train_s={time.perf_counter() - t0:6.1f} "
                  f"ens={t['ensemble']['total_return_pct']:+.2f}%/"
                  f"{t['ensemble']['trades']:.0f} "
                  f"bh={t['buy_and_hold']['total_return_pct']:+.2f}% "
                  f"ma={t['ma_crossover']['total_return_pct']:+.2f}% "
                  f"promoted={res.promoted}", flush=True)
            if end_ms is not None:
                oos_end = parse_time(args.oos_end)
                later = full if oos_end is None else full[full["timestamp"] < oos_end]
                if (later["timestamp"] >= end_ms).sum() > settings.max_holding_candles + 10:
                    oos[res.symbol] = evaluate_out_of_sample(
                        later.reset_index(drop=True), res.symbol, settings, registry,
                        res.versions, start_ms=end_ms)
                    o = oos[res.symbol]["trading"]
                    print(f"  out of sample {oos[res.symbol]['start']} -> "
                          f"{oos[res.symbol]['end']}: ens="
                          f"{o['ensemble']['total_return_pct']:+.2f}%/"
                          f"{o['ensemble']['trades']:.0f} "
                          f"bh={o['buy_and_hold']['total_return_pct']:+.2f}% "
                          f"ma={o['ma_crossover']['total_return_pct']:+.2f}%", flush=True)
    total = time.perf_counter() - started
    print(f"TOTAL symbols={len(results)} candles={total_rows} folds={args.splits} "
          f"seconds={total:.1f} cores={os.cpu_count()}")
    if args.report:
        write_report(results, args.report, out_of_sample=oos or None)
        print(f"report: {args.report}")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": overrides, "seconds": total,
            "results": {s: {"trading": r.trading, "promotion": r.promotion,
                            "label": r.label, "calibration": r.calibration,
                            "confidence_grid": r.confidence_grid, "signals": r.signals,
                            "overall": r.overall, "rows": r.rows,
                            "folds": [{k: f[k] for k in ("fold", "trading", "test_start_ms",
                                                         "test_end_ms")} for f in r.folds]}
                        for s, r in results.items()},
            "out_of_sample": oos,
        }, indent=1, default=float))


if __name__ == "__main__":
    main()
