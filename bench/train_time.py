"""Training time of the walk-forward RF + SVM + LR ensemble on the 5 symbols of 1m 2021 data.

Run: ``.venv/bin/python bench/train_time.py [--report docs/ML_report.md] [--splits 5]``

Prints the seconds per symbol and in total; the models go to a temporary registry, the report
(tables + feature-importance PNG) to ``--report``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from tinhieu.data import find_history_file, load_candles
from tinhieu.registry import ModelRegistry
from tinhieu.report import write_report
from tinhieu.settings import load_settings
from tinhieu.training import train_symbol

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance-spot-1m-2021"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=None, help="write the report here")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--symbols", default=",".join(SYMBOLS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    results = {}
    total_rows = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp))
        for sym in args.symbols.split(","):
            df = load_candles(find_history_file(DATA, sym, "1m"))
            t0 = time.perf_counter()
            res = train_symbol(df, sym, settings, registry, n_splits=args.splits,
                               max_train_rows=args.max_train_rows, progress=None)
            results[res.symbol] = res
            total_rows += len(df)
            print(f"{res.symbol:10s} candles={len(df):6d} usable={res.rows:6d} "
                  f"train_s={time.perf_counter() - t0:6.1f}", flush=True)
    total = time.perf_counter() - started
    print(f"TOTAL symbols={len(results)} candles={total_rows} folds={args.splits} "
          f"seconds={total:.1f} cores={os.cpu_count()}")
    if args.report:
        write_report(results, args.report)
        print(f"report: {args.report}")


if __name__ == "__main__":
    main()
