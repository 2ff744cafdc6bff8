"""Tree ensemble alone vs + news sentiment features (and the LSTM) on the same walk-forward folds.

Runs :func:`tinhieu.training.train_symbol` on the 1h candles of the news period, once per
setup, on the **same candles**, so the same ``TimeSeriesSplit`` folds, purge, labels,
baselines and broker figures:

* ``trees``: ``rf,svm,lr`` on ``MODEL_FEATURES`` (the default configuration);
* ``trees+sent``: the same with the columns of :func:`tinhieu.sentiment_features.candle_sentiment`
  appended through ``train_symbol(extra_features=...)`` (the symbol's headlines and all
  headlines, as of each candle's close, half-life ``news_half_life_s``);
* ``trees+placebo``: the same columns from the same headlines with their times rotated by
  half the news period (same counts and scores, timing unrelated to the candles): how much
  eight columns of this shape move the figures by chance;
* ``trees+lstm`` and ``trees+lstm+sent`` (``--lstm``, needs the deep extra).

The candles start ``WARMUP - 1`` hours before the first usable row (one day after the first
headline, so the 24 h columns are complete) and end ``max_holding_candles + 1`` hours after the
last headline (so the last row has its label); no candle of the usable rows lies outside the
headline history. Models go to a temporary registry, never promoted. Prints the markdown rows
of docs/ML.md ("News sentiment features") and writes every figure as JSON.

Run::

    .venv/bin/python -m tinhieu.sentiment_compare --symbols BTC/USDT,ETH/USDT --lstm \\
        --out var/reports/sentiment_compare.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tinhieu.data import find_history_file, load_candles
from tinhieu.features import WARMUP
from tinhieu.registry import ModelRegistry
from tinhieu.sentiment_features import (
    DAY_MS,
    HOUR_MS,
    HeadlineArrays,
    candle_sentiment,
    feature_names,
    load_history_headlines,
)
from tinhieu.settings import load_settings
from tinhieu.training import train_symbol

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SYMBOLS = "BTC/USDT,ETH/USDT,XRP/USDT,SOL/USDT,BNB/USDT"


def _summary(res: Any) -> dict[str, Any]:
    cls = {name: {k: m[k] for k in ("log_loss", "balanced_accuracy", "macro_f1", "brier_buy")}
           for name, m in res.overall.items()}
    sent = {k: v for k, v in res.importances.items() if k in feature_names()}
    return {"classification": cls, "trading": res.trading, "weights": res.weights,
            "signals": res.signals, "seconds": res.seconds, "rows": res.rows,
            "folds": len(res.folds), "start": res.folds[0]["test_start_ms"],
            "end": res.folds[-1]["test_end_ms"], "promotion": res.promotion,
            "rf_importance_sentiment": sum(sent.values()), "rf_importances_sentiment": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", default=SYMBOLS)
    parser.add_argument("--data", type=Path, default=SHARED / "binance-spot-1h")
    parser.add_argument("--news", type=Path,
                        default=SHARED / "news" / "crypto_news_headlines.csv.gz")
    parser.add_argument("--timezone", default="UTC",
                        help="IANA zone of the news file's timestamps (docs/NEWS.md: UTC)")
    parser.add_argument("--max-holding", type=int, default=48,
                        help="max_holding_candles (1h candles) of the trade labels")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--lstm", action="store_true", help="also trees+lstm(+sent)")
    parser.add_argument("--out", type=Path, default=Path("var/reports/sentiment_compare.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    base = load_settings().model_copy(update={"timeframe": "1h",
                                              "max_holding_candles": args.max_holding})
    headlines = load_history_headlines(str(args.news), symbols, args.timezone)
    first = -(-(int(headlines.published_ms[0]) + DAY_MS) // HOUR_MS) * HOUR_MS
    last = int(headlines.published_ms[-1]) // HOUR_MS * HOUR_MS - HOUR_MS  # closes before it
    span = args.max_holding + 1
    placebo = rotated(headlines)
    setups = {"trees": ("rf,svm,lr", None), "trees+sent": ("rf,svm,lr", "sent"),
              "trees+placebo": ("rf,svm,lr", "placebo")}
    if args.lstm:
        setups |= {"trees+lstm": ("rf,svm,lr,lstm", None),
                   "trees+lstm+sent": ("rf,svm,lr,lstm", "sent")}
    results: dict[str, dict[str, Any]] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    for sym in symbols:
        df = load_candles(find_history_file(args.data, sym, "1h"),
                          first - (WARMUP - 1) * HOUR_MS, last + span * HOUR_MS)
        extras = {key: pd.DataFrame(candle_sentiment(df["timestamp"].to_numpy(), HOUR_MS, h,
                                                     sym, half_life_s=base.news_half_life_s))
                  for key, h in (("sent", headlines), ("placebo", placebo))}
        results.setdefault(sym, {})
        for name, (algos, extra) in setups.items():
            if name in results[sym]:
                continue
            settings = base.model_copy(update={"algorithms": algos})
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                res = train_symbol(df, sym, settings, ModelRegistry(Path(tmp)),
                                   n_splits=args.splits, promote=False, progress=False,
                                   extra_features=extras[extra] if extra else None)
                results[sym][name] = _summary(res)
                print(f"{sym} {name}: {res.rows} rows, {time.perf_counter() - started:.0f} s",
                      flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, default=str))
    print(table(results))


def rotated(headlines: HeadlineArrays) -> HeadlineArrays:
    """The headlines with their times rotated by half the period they cover (placebo)."""
    t0, t1 = int(headlines.published_ms[0]), int(headlines.published_ms[-1])
    period = t1 - t0 + 1
    moved = t0 + (headlines.published_ms - t0 + period // 2) % period
    return HeadlineArrays.from_items(zip(moved.tolist(), headlines.sentiment.tolist(),
                                         headlines.symbols, strict=True))


def _gate(promotion: dict[str, Any]) -> str:
    if promotion.get("edge"):
        return "yes"
    reason = str(promotion.get("reason", ""))
    return "no" + (" (< 10 trips)" if "round trips <" in reason else "")


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown rows: per symbol and setup, the pooled walk-forward figures."""
    lines = ["| symbol | models | gated ensemble: return % / trips / win % / max DD % | "
             "buy and hold % | MA crossover % / trips | log loss: ensemble / majority "
             "/ persistence | balanced acc. | macro F1 | Brier P(BUY) | rf importance of "
             "sentiment | gate | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for sym, by in results.items():
        for name, r in by.items():
            t, c = r["trading"], r["classification"]
            e = t["ensemble"]
            imp = (f"{r['rf_importance_sentiment']:.3f}"
                   if "sent" in name or "placebo" in name else "-")
            lines.append(
                f"| {sym} | {name} | {e['total_return_pct']:.2f} / {e['trades']:.0f} / "
                f"{e['win_rate_pct']:.1f} / {e['max_drawdown_pct']:.2f} | "
                f"{t['buy_and_hold']['total_return_pct']:.2f} | "
                f"{t['ma_crossover']['total_return_pct']:.2f} / "
                f"{t['ma_crossover']['trades']:.0f} | "
                f"{c['ensemble']['log_loss']:.3f} / "
                f"{c['majority']['log_loss']:.3f} / {c['persistence']['log_loss']:.3f} | "
                f"{c['ensemble']['balanced_accuracy']:.3f} | {c['ensemble']['macro_f1']:.3f} | "
                f"{c['ensemble']['brier_buy']:.4f} | {imp} | {_gate(r['promotion'])} | "
                f"{r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
