"""Per-candle latency of the live path: FeatureState.update + Ensemble.predict.

Replays real 1-minute BTC candles through the fast path and, in the same run, through the
naive path (pandas-ta over the last ``WARMUP`` candles + scikit-learn single-row
``predict_proba`` of each of the 3 models). Prints p50/p99/max in milliseconds.

Run: ``.venv/bin/python bench/predict_latency.py [--candles 3000]``

The models are trained first (default model sizes, a 2-fold walk-forward on 20k candles) into
a temporary registry; that part is not timed. With the deep extra installed the LSTM is trained
too and ``rf+svm+lr+lstm`` is timed beside the tree ensemble (``--no-lstm`` skips it), with
the last 31 rows carried from candle to candle as the live record carries them.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tinhieu.candles import Bar
from tinhieu.data import load_candles
from tinhieu.ensemble import Ensemble
from tinhieu.features import MODEL_COLUMNS, WARMUP, FeatureState, compute_features
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.training import train_symbol

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance-spot-1m-2021"


def _stats(name: str, ns: list[int]) -> str:
    ms = np.array(ns) / 1e6
    return (f"{name:38s} n={ms.size:5d} p50={np.percentile(ms, 50):7.3f} ms "
            f"p99={np.percentile(ms, 99):7.3f} ms max={ms.max():7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candles", type=int, default=3000, help="candles replayed")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--no-lstm", action="store_true", help="skip the LSTM figures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    df = load_candles(DATA / "BTCUSDT_1m.csv.gz")
    train_df = df.iloc[: args.train_rows]
    # The naive path recomputes the features over the last WARMUP candles (the fewest that
    # give a settled row); the fast path keeps its state from the history before.
    span = WARMUP
    replay = df.iloc[args.train_rows - span : args.train_rows + args.candles]
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp))
        # speed, not skill: serve the models whatever the promotion gate says
        from tinhieu import deep

        with_lstm = deep.available() and not args.no_lstm
        train_symbol(train_df, "BTC/USDT", settings.model_copy(
            update={"algorithms": "rf,svm,lr,lstm" if with_lstm else "rf,svm,lr"}), registry,
            n_splits=2, progress=False, gate=False)
        ens_deep = Ensemble.from_registry(registry, "BTC/USDT",
                                          min_confidence=settings.min_confidence)
        trees = [m for m in ens_deep.members if m.algorithm != "lstm"]
        ens = Ensemble("BTC/USDT", trees, min_confidence=settings.min_confidence,
                       buy_threshold=ens_deep.buy_threshold)
        if not with_lstm:
            ens_deep = None
    models = [m.model for m in ens.members]

    state = FeatureState()
    for row in train_df.itertuples(index=False):  # warm the state on history (not timed)
        state.update(Bar(int(row[0]), *map(float, row[1:])))
    bars = [Bar(int(r[0]), *map(float, r[1:])) for r in replay.itertuples(index=False)]
    rows = replay.to_numpy()
    fast_total, fast_update, fast_predict, naive_total = [], [], [], []
    deep_predict: list[int] = []
    past = None  # the rows before the candle: what the live record's "history" holds
    clock = time.perf_counter_ns
    for i in range(span, len(bars)):
        bar = bars[i]
        t0 = clock()
        vec = state.update(bar)
        t1 = clock()
        pred = ens.predict(vec)
        t2 = clock()
        fast_update.append(t1 - t0)
        fast_predict.append(t2 - t1)
        fast_total.append(t2 - t0)
        if ens_deep is not None:
            t5 = clock()
            ens_deep.predict(vec, history=past)
            deep_predict.append(clock() - t5)
            row = vec[MODEL_COLUMNS][None, :]
            past = row if past is None else np.vstack([past, row])[-ens_deep.context_rows:]

        # naive: the seed's way, a DataFrame of the window through pandas-ta, sklearn x3
        t3 = clock()
        window = pd.DataFrame(rows[i - span + 1 : i + 1],
                              columns=["timestamp", "open", "high", "low", "close", "volume"])
        feats = compute_features(window).to_numpy()[-1:, MODEL_COLUMNS]
        probas = [m.predict_proba(feats) for m in models]
        t4 = clock()
        naive_total.append(t4 - t3)
        assert len(probas) == len(models) and pred.action in ("BUY", "SELL", "NEUTRAL")
    print(f"replayed {len(fast_total)} BTC/USDT 1m candles; ensemble {ens.model_version}")
    print(_stats("fast: FeatureState.update", fast_update))
    print(_stats("fast: Ensemble.predict", fast_predict))
    print(_stats("fast: update + predict (per candle)", fast_total))
    print(_stats("naive: pandas-ta window + sklearn x3", naive_total))
    if ens_deep is not None:
        print(_stats("lstm: Ensemble.predict rf+svm+lr+lstm", deep_predict))
        both = np.array(fast_update) + np.array(deep_predict)
        print(_stats("lstm: update + predict (per candle)", both.tolist()))
        print(f"  {ens_deep.model_version}")
        p99_deep = np.percentile(both / 1e6, 99)
        print(f"lstm goal p99 <= 5 ms: {'met' if p99_deep <= 5 else 'NOT met'} "
              f"(p99 {p99_deep:.3f} ms)")
    p99 = np.percentile(np.array(fast_total) / 1e6, 99)
    speedup = np.median(naive_total) / np.median(fast_total)
    print(f"goal p99 <= 5 ms: {'met' if p99 <= 5 else 'NOT met'} (p99 {p99:.3f} ms); "
          f"median speed-up x{speedup:.1f}")


if __name__ == "__main__":
    main()
