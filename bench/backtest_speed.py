"""Candles per second of the full offline backtest, beside a plain Backtrader run.

    .venv/bin/python bench/backtest_speed.py [--train-rows 10000] [--quick]

1. Trains the production-size models (``ModelConfig()``: RF 60 trees, calibrated linear SVM,
   logistic regression; 2 walk-forward folds) per symbol on the first ``--train-rows``
   candles of ``../shared/data/binance-spot-1m-2021`` into a temporary registry
   (``--quick``: the tiny ``train_quick`` models instead). Training time is not counted.
2. Times ``run_backtest`` (features + ensemble + risk step, all 5 symbols) over every candle
   after the training range (the features warm up on the ``WARMUP`` candles before it, as the
   command does), and, on the same candles, each stage alone.
3. Times a Backtrader ``Cerebro`` with an empty strategy over the same candles in the same
   process, and prints the ratio; then the Backtrader engine itself
   (``tinhieu.backtest.bt_engine.run_backtrader``: the same signals through ``BackBroker``
   with the four analyzers, what ``backtest --engine backtrader`` adds).

Figures go to stdout; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import backtrader as bt
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinhieu.backtest import predict_signals, run_backtest, simulate, warmup_candles  # noqa: E402
from tinhieu.backtest.bt_engine import run_backtrader  # noqa: E402
from tinhieu.broker import RiskConfig  # noqa: E402
from tinhieu.data import load_candles  # noqa: E402
from tinhieu.ensemble import Ensemble  # noqa: E402
from tinhieu.registry import ModelRegistry  # noqa: E402
from tinhieu.settings import load_settings  # noqa: E402
from tinhieu.training import ModelConfig, train_quick, train_symbol  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "binance-spot-1m-2021"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


class Empty(bt.Strategy):
    def next(self) -> None:
        pass


def backtrader_empty(frames: dict[str, pd.DataFrame]) -> float:
    """Seconds for an empty-strategy Cerebro over each symbol's candles (one run per symbol)."""
    total = 0.0
    for df in frames.values():
        frame = df.assign(datetime=pd.to_datetime(df["timestamp"], unit="ms")).set_index("datetime")
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            bt.feeds.PandasData(
                dataname=frame[["open", "high", "low", "close", "volume"]], openinterest=None
            )
        )
        cerebro.broker.setcommission(commission=0.001)
        cerebro.addstrategy(Empty)
        t0 = time.perf_counter()
        cerebro.run()
        total += time.perf_counter() - t0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="tiny train_quick models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = load_settings()
    full = {s: load_candles(DATA / f"{s.replace('/', '')}_1m.csv.gz") for s in SYMBOLS}
    with tempfile.TemporaryDirectory(prefix="tinhieu-bench-") as tmp:
        registry = ModelRegistry(Path(tmp) / "models")
        t0 = time.perf_counter()
        for sym, df in full.items():
            train = df.iloc[: args.train_rows]
            if args.quick:
                trained = train_quick(train, sym, settings, registry)
            else:
                trained = train_symbol(
                    train, sym, settings, registry, n_splits=2, config=ModelConfig()
                )
            # speed, not merit: use the models even when training's promotion gate refused them
            for algo, version in trained.versions.items():
                registry.promote(sym, algo, version)
        train_s = time.perf_counter() - t0
        starts = {s: int(df["timestamp"].iloc[args.train_rows]) for s, df in full.items()}
        start = max(starts.values())
        frames = {s: df[df["timestamp"] >= start].reset_index(drop=True) for s, df in full.items()}
        n = sum(len(d) for d in frames.values())

        t0 = time.perf_counter()
        result = run_backtest(
            full,
            settings,
            registry,
            start_ms=start,
            end_ms=None,
            out_dir=Path(tmp) / "report",
            progress=False,
        )
        total_s = time.perf_counter() - t0
        loop_s = result.seconds

        # stage by stage on the same candles
        cfg = RiskConfig.from_settings(settings)
        feat_pred_s = step_s = bt_engine_s = 0.0
        for sym, df in frames.items():
            ens = Ensemble.from_registry(registry, sym, min_confidence=settings.min_confidence)
            t0 = time.perf_counter()
            preds, _ = predict_signals(df, ens, warmup_candles())
            feat_pred_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            simulate(sym, df, preds, cfg)
            step_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            run_backtrader(sym, df, preds, cfg, settings.timeframe_ms)
            bt_engine_s += time.perf_counter() - t0
        bt_s = backtrader_empty(frames)

    models = "train_quick (tiny)" if args.quick else "ModelConfig() (production sizes)"
    print(f"symbols: {', '.join(SYMBOLS)}; candles backtested: {n:,}; models: {models}")
    print(f"  training on {args.train_rows:,} candles per symbol (not counted): {train_s:.1f} s")
    print(f"  fills: {len(result.fills):,}")
    print(
        f"  full backtest loop (features + ensemble + step): {loop_s:.2f} s = "
        f"{n / loop_s:,.0f} candles/s"
    )
    print(
        f"  ... including report files (md, png, csv, jsonl): {total_s:.2f} s = "
        f"{n / total_s:,.0f} candles/s"
    )
    print(f"  features + ensemble alone: {feat_pred_s:.2f} s = {n / feat_pred_s:,.0f} candles/s")
    print(f"  risk step alone: {step_s:.2f} s = {n / step_s:,.0f} candles/s")
    print(f"  backtrader Cerebro, empty strategy: {bt_s:.2f} s = {n / bt_s:,.0f} candles/s")
    print(f"  ratio full backtest / backtrader empty: {bt_s / loop_s:.1f}x")
    print(
        f"  backtrader engine (same signals, BackBroker + 4 analyzers): {bt_engine_s:.2f} s = "
        f"{n / bt_engine_s:,.0f} candles/s"
    )


if __name__ == "__main__":
    main()
