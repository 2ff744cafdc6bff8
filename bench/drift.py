"""Drift monitor on real candles: false alarms in stable periods, delay after a regime change.

Features are the models' own (``tinhieu.features.compute_features``, ``MODEL_FEATURES``),
computed per file from ``../shared/data`` exactly as training computes them; rows with a
non-finite feature (the warm-up) are left out.

* Reference: a training period (1m: the first ``--ref-days`` days of each 2021 file; 1h: the
  year ``--ref-year-1h``), built with :func:`tinhieu.monitoring.drift.feature_reference`
  and the monitor's window.
* (a) Stable periods: later periods of the same volatility regime: every day (1m) or week
  (1h) of ``window + period`` candles has a realised volatility (std of the 1-candle log
  returns) inside the range of the reference's own days (weeks). Each is fed to a fresh
  monitor (the first ``window`` candles fill it, alarms are counted on the ``period`` after).
  An alarm is a rise of ``feature_drift``; reported per 1,000 candles and as the share of
  periods with any alarm.
* (b) Regime change: the first stable period without an alarm (its first ``window``
  candles) joined to the most volatile period outside the reference (the day, 1m, or week,
  1h, with the highest realised volatility, from ``window // 2`` candles before it), as
  feature rows (each part's features computed on its own continuous candles). Delay =
  candles after the join until ``feature_drift`` rises.

Run: ``.venv/bin/python bench/drift.py`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinhieu.data import load_candles  # noqa: E402
from tinhieu.features import MODEL_FEATURES, compute_features  # noqa: E402
from tinhieu.labels import label_settings, make_scheme_labels  # noqa: E402
from tinhieu.monitoring.drift import DriftMonitor, feature_reference  # noqa: E402
from tinhieu.settings import load_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SYMBOLS = ("BTC", "ETH", "XRP", "SOL", "BNB")
DAY_MS = 86_400_000


@dataclass
class Series:
    symbol: str
    timeframe: str
    ts: np.ndarray
    X: np.ndarray
    vol_period: np.ndarray  # per row: the realised volatility of its day (1m) / week (1h)
    period_id: np.ndarray
    error: np.ndarray  # per row: 1.0 when the persistence baseline is wrong, nan: no label


def load_series(symbol: str, timeframe: str) -> Series:
    folder = "binance-spot-1m-2021" if timeframe == "1m" else "binance-spot-1h"
    df = load_candles(DATA / folder / f"{symbol}USDT_{timeframe}.csv.gz")
    X = compute_features(df)[list(MODEL_FEATURES)].to_numpy(np.float64)
    ts = df["timestamp"].to_numpy(np.int64)
    logret = np.diff(np.log(df["close"].to_numpy(np.float64)), prepend=np.nan)
    span = DAY_MS if timeframe == "1m" else 7 * DAY_MS
    pid = ts // span
    vol = np.full(ts.size, np.nan)
    for p in np.unique(pid):
        m = pid == p
        vol[m] = np.nanstd(logret[m])
    settings = load_settings(_env_file=None, timeframe=timeframe)
    labels = make_scheme_labels(df, label_settings(settings))
    error = np.where(np.isnan(labels.y) | np.isnan(labels.previous), np.nan,
                     (labels.y != labels.previous).astype(float))
    ok = np.isfinite(X).all(axis=1)
    return Series(symbol, timeframe, ts[ok], X[ok], vol[ok], pid[ok], error[ok])


def monitor(ref: dict, args: argparse.Namespace) -> DriftMonitor:
    return DriftMonitor(ref, window=args.window, psi_threshold=args.psi,
                        ks_pvalue=args.ks_pvalue, prediction_psi_threshold=0.25,
                        adwin_delta=args.adwin_delta, check_every=args.check_every,
                        error_block=args.error_block,
                        min_features=args.min_features)


def feed(m: DriftMonitor, rows: np.ndarray) -> np.ndarray:
    """Feed rows; return per row whether feature_drift is set after it."""
    flags = np.zeros(rows.shape[0], dtype=bool)
    for i, r in enumerate(rows):
        m.update_features(r)
        flags[i] = m.feature_drift
    return flags


def feed_errors(m: DriftMonitor, errors: np.ndarray) -> np.ndarray:
    """Feed the error stream; return per row the count of detected rises so far."""
    out = np.zeros(errors.size, dtype=np.int64)
    for i, e in enumerate(errors):
        if np.isfinite(e):
            m.update_error(bool(e))
        out[i] = m.error_increases
    return out


def rises(flags: np.ndarray) -> int:
    prev = np.concatenate([[False], flags[:-1]])
    return int((flags & ~prev).sum())


def stable_periods(s: Series, ref_mask: np.ndarray, length: int, lo: float, hi: float,
                   start: int) -> list[tuple[int, int]]:
    """Non-overlapping runs of ``length`` rows after ``start``, every period in [lo, hi]."""
    out = []
    inside = (s.vol_period >= lo) & (s.vol_period <= hi) & ~ref_mask
    contiguous = np.concatenate([[True], np.diff(s.ts) > 0])  # rows are ascending anyway
    i = start
    n = s.ts.size
    while i + length <= n:
        seg = slice(i, i + length)
        if inside[seg].all() and contiguous[seg].all():
            out.append((i, i + length))
            i += length
        else:
            bad = np.flatnonzero(~inside[seg])
            i += int(bad[-1]) + 1 if bad.size else 1
    return out


def run(args: argparse.Namespace) -> None:
    null = "" if args.no_null else f", training p{round(args.null_quantile * 100)} block PSI"
    print(f"window {args.window}, check_every {args.check_every}, PSI > max({args.psi}"
          f"{null}), KS p < {args.ks_pvalue}, min_features {args.min_features}\n")
    header = (f"{'series':10s} {'ref rows':>9s} {'stable periods':>14s} {'candles':>8s} "
              f"{'alarms/1k':>9s} {'periods w/ alarm':>16s} {'change delay':>12s} "
              f"{'us/update':>9s}")
    print(header)
    print("-" * len(header))
    tot_candles = tot_alarms = tot_periods = tot_alarmed = 0
    delays: list[float] = []
    err_rows: list[str] = []
    for tf in args.timeframes:
        for sym in SYMBOLS:
            s = load_series(sym, tf)
            if tf == "1m":
                ref_mask = s.ts < s.ts[0] + args.ref_days * DAY_MS
            else:
                year = (s.ts // DAY_MS // 365.2425 + 1970).astype(int)
                ref_mask = year == args.ref_year_1h
            if ref_mask.sum() < 2 * args.window:
                print(f"{sym} {tf}: reference too short, skipped")
                continue
            ref = feature_reference(s.X[ref_mask], list(MODEL_FEATURES), window=args.window,
                                    null_quantile=args.null_quantile)
            if args.no_null:
                ref["psi_null"] = None
            ref_vol = np.unique(s.vol_period[ref_mask])
            lo, hi = float(np.min(ref_vol)), float(np.max(ref_vol))
            period = args.period_1m if tf == "1m" else args.period_1h
            start = int(np.flatnonzero(ref_mask)[-1]) + 1
            periods = stable_periods(s, ref_mask, args.window + period, lo, hi, start)
            periods = periods[: args.max_periods]
            alarms = 0
            alarmed = 0
            err_rises = 0
            err_alarmed = 0
            quiet: list[tuple[int, int]] = []
            elapsed = 0.0
            fed = 0
            for a, b in periods:
                m = monitor(ref, args)
                t0 = time.perf_counter()
                flags = feed(m, s.X[a:b])
                elapsed += time.perf_counter() - t0
                fed += b - a
                counted = flags[args.window:]
                k = rises(counted) + int(counted[0])
                alarms += k
                alarmed += k > 0
                if k == 0:
                    quiet.append((a, b))
                inc = feed_errors(m, s.error[a:b])
                err_rises += int(inc[-1] - inc[args.window - 1])
                err_alarmed += inc[-1] > inc[args.window - 1]
            n_candles = len(periods) * period
            # (b) regime change: calm window, then the most volatile period after the reference
            later = ~ref_mask  # the most volatile period outside the reference, any year
            delay_txt = "-"
            err_delay_txt = "-"
            if quiet and later.any():
                hot = int(np.nanargmax(np.where(later, s.vol_period, -np.inf)))
                first = int(np.flatnonzero(s.period_id == s.period_id[hot])[0])
                begin = max(0, first - args.window // 2)
                calm = s.X[quiet[0][0]: quiet[0][0] + args.window]  # a period without alarm
                crash = s.X[begin: begin + 3 * args.window]
                m = monitor(ref, args)
                flags = feed(m, np.vstack([calm, crash]))
                after = flags[args.window:]
                if after.any():
                    d = int(np.argmax(after)) + 1
                    delays.append(d)
                    delay_txt = f"{d}"
                else:
                    delay_txt = f">{after.size}"
                    delays.append(np.inf)
                # a controlled rise on the real, autocorrelated stream: after the join,
                # a third of the right outcomes turn wrong
                q0 = quiet[0][0]
                tail = s.error[q0 + args.window: q0 + 4 * args.window].copy()
                flip = np.random.default_rng(0).random(tail.size) < 1 / 3
                tail[(tail == 0) & flip] = 1.0
                e = np.concatenate([s.error[q0: q0 + args.window], tail])
                inc = feed_errors(monitor(ref, args), e)
                rose = np.flatnonzero(inc[args.window:] > inc[args.window - 1])
                err_delay_txt = f"{int(rose[0]) + 1}" if rose.size else f">{e.size - args.window}"
            us = elapsed / fed * 1e6 if fed else float("nan")
            per_k = alarms / n_candles * 1000 if n_candles else float("nan")
            share = f"{alarmed}/{len(periods)}"
            print(f"{sym + ' ' + tf:10s} {int(ref_mask.sum()):9d} {len(periods):14d} "
                  f"{n_candles:8d} {per_k:9.3f} {share:>16s} {delay_txt:>12s} {us:9.1f}")
            err_rows.append(f"{sym + ' ' + tf:10s} {err_rises / max(n_candles, 1) * 1000:17.3f} "
                            f"{f'{err_alarmed}/{len(periods)}':>16s} {err_delay_txt:>12s} "
                            f"{np.nanmean(s.error[ref_mask]):16.3f}")
            tot_candles += n_candles
            tot_alarms += alarms
            tot_periods += len(periods)
            tot_alarmed += alarmed
    print("-" * len(header))
    finite = [d for d in delays if np.isfinite(d)]
    print(f"all: {tot_periods} stable periods, {tot_candles} candles, "
          f"{tot_alarms / max(tot_candles, 1) * 1000:.3f} alarms per 1,000 candles, "
          f"{tot_alarmed}/{tot_periods} periods with an alarm; regime change detected "
          f"{len(finite)}/{len(delays)}, delay median "
          f"{np.median(finite) if finite else float('nan'):.0f} max "
          f"{max(finite) if finite else float('nan'):.0f} candles")
    print(f"\nerror stream: ADWIN (delta {args.adwin_delta:g}, blocks of {args.error_block}) "
          "on the errors of the persistence baseline "
          "(the newest known\noutcome repeats), labels of the default triple barrier, "
          "fed in candle order; same periods;\nchange: the stream after the first window "
          "of the quiet period with 1/3 of its right outcomes made wrong")
    print(f"{'series':10s} {'rises per 1,000':>17s} {'periods w/ rise':>16s} "
          f"{'change delay':>12s} {'reference error':>16s}")
    for row in err_rows:
        print(row)


def cost(args: argparse.Namespace) -> None:
    """Time per call on a stable SOL 1m period, best of 3 (the CPU may be shared)."""
    s = load_series("SOL", "1m")
    ref_mask = s.ts < s.ts[0] + args.ref_days * DAY_MS
    ref = feature_reference(s.X[ref_mask], list(MODEL_FEATURES), window=args.window,
                            null_quantile=args.null_quantile)
    rows = s.X[~ref_mask][: 3 * args.window]
    best: dict[str, float] = {}

    def timed(name: str, fn, n: int) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        best[name] = min(best.get(name, np.inf), (time.perf_counter() - t0) / n * 1e6)

    for _ in range(3):
        m = monitor(ref, args)
        timed("update_features (checks included)", lambda m=m: [m.update_features(r)
                                                                 for r in rows], len(rows))
        timed("update_prediction", lambda m=m: [m.update_prediction("NEUTRAL")
                                                for _ in range(10_000)], 10_000)
        timed("update_error", lambda m=m: [m.update_error(False) for _ in range(10_000)],
              10_000)
        timed("status(), first after a check", lambda m=m: m.status(), 1)
        timed("status(), again (per candle)", lambda m=m: [m.status() for _ in range(1000)],
              1000)
        timed("status(full=True): KS of every feature", lambda m=m: m.status(full=True), 1)
    for name, us in best.items():
        print(f"  {name:40s} {us:10.1f} us")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeframes", nargs="+", default=["1m", "1h"])
    p.add_argument("--window", type=int, default=1440)
    p.add_argument("--check-every", type=int, default=60)
    p.add_argument("--psi", type=float, default=0.25)
    p.add_argument("--ks-pvalue", type=float, default=0.001)
    p.add_argument("--min-features", type=int, default=10)
    p.add_argument("--null-quantile", type=float, default=1.0)
    p.add_argument("--no-null", action="store_true",
                   help="ignore the training's own block PSI: one PSI threshold for all")
    p.add_argument("--ref-days", type=int, default=30)
    p.add_argument("--ref-year-1h", type=int, default=2023)
    p.add_argument("--period-1m", type=int, default=1440, help="candles per stable period")
    p.add_argument("--period-1h", type=int, default=720)
    p.add_argument("--max-periods", type=int, default=20)
    p.add_argument("--adwin-delta", type=float, default=0.002)
    p.add_argument("--error-block", type=int, default=10,
                   help="outcomes averaged into one ADWIN input")
    p.add_argument("--cost-only", action="store_true")
    args = p.parse_args()
    if not args.cost_only:
        run(args)
    print("\ncost per call (SOL 1m, a stable period, best of 3):")
    cost(args)


if __name__ == "__main__":
    main()
