"""The backtest engine: the live code path (features, ensemble, risk step) over history files.

Per symbol: :func:`tinhieu.features.compute_features` (batch, proven equal to the streaming
``FeatureState``), ``Ensemble.predict_many`` on every candle that has a full feature row,
then :func:`tinhieu.broker.step` over every candle of the range.

Warm-up: the features warm up on the ``WARMUP`` candles before the range start when the
history has them (as a live worker warms up on its back-fill), so the first candle of the
range already has a signal and a backtest of a range gives the signals of a live run that
started earlier. Without history before the start, the features warm up inside the range as
the live pipeline does after a cold start: no signal (hence no order) before candle
``WARMUP`` of the range, and the report says so. Either way the offline orders equal the
ones the pipeline produces for the same candles (``orders.jsonl`` has the ``Order`` fields
for that comparison).

``engine="backtrader"`` also runs the same candles and signals through Backtrader's broker
(:mod:`tinhieu.backtest.bt_engine`) and puts its analyzers beside the fast engine's figures.

Honesty rules: only models whose training data ended before the backtest range are used
(refused otherwise unless ``allow_overlap=True``), and every figure stands beside a naive
baseline on the same candles (buy and hold for the money; always-NEUTRAL and persistence for
the signals' classification).

:func:`run_backtest` writes its outputs with :mod:`tinhieu.backtest.report`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from tinhieu import i18n
from tinhieu.backtest.report import fmt_ms, write_report
from tinhieu.broker import Fill, RiskConfig, SignalIn, new_state, step
from tinhieu.candles import Bar
from tinhieu.data import find_history_file, load_candles, parse_time
from tinhieu.features import WARMUP
from tinhieu.performance import buy_and_hold, compute_metrics

if TYPE_CHECKING:
    from tinhieu.backtest.bt_engine import BacktraderRun, FillComparison

log = logging.getLogger(__name__)

i18n.register(
    {
        "backtest.start": (
            "[KHOI TAO]",
            "Backtest {symbols} tu {start} den {end}",
            "Backtest {symbols} from {start} to {end}",
        ),
        "backtest.symbol": (
            "[DU LIEU]",
            "{symbol}: {candles} nen, {signals} tin hieu, {fills} lenh khop, "
            "loi nhuan {ret:+.2f}% (mua giu {bh:+.2f}%)",
            "{symbol}: {candles} candles, {signals} signals, {fills} fills, "
            "return {ret:+.2f}% (buy and hold {bh:+.2f}%)",
        ),
        "backtest.done": (
            "[KHOI TAO]",
            "Bao cao backtest: {path} ({rate:,.0f} nen/giay)",
            "Backtest report: {path} ({rate:,.0f} candles/s)",
        ),
        "backtest.overlap": (
            "[CANH BAO]",
            "{symbol}: mo hinh {model} da hoc du lieu den {train_end}, trung voi "
            "khoang backtest (allow_overlap=True): ket qua qua lac quan",
            "{symbol}: model {model} was trained on data up to {train_end}, "
            "inside the backtest range (allow_overlap=True): results are "
            "optimistic",
        ),
    }
)


class BacktestError(ValueError):
    """The backtest cannot run as asked; the message says why and what to do."""


class PredictionLike(Protocol):
    action: str
    confidence: float
    model_version: str


class Predictor(Protocol):
    def predict_many(self, X: np.ndarray) -> Sequence[PredictionLike]: ...


PredictorFactory = Callable[[str], Predictor]
"""symbol -> an object with ``predict_many(X)``; ``X`` rows are in ``FEATURE_NAMES`` order."""

ENGINES = ("fast", "backtrader")
"""``fast``: :func:`simulate` (``step`` per candle). ``backtrader``: the same, plus Backtrader's
``BackBroker`` and analyzers on the same candles and signals, side by side in the report."""


@dataclass
class SymbolResult:
    """Everything the backtest learned about one symbol."""

    symbol: str
    timestamps: np.ndarray
    close: np.ndarray
    equity: np.ndarray
    buy_hold: np.ndarray
    in_position: np.ndarray
    buy_hold_in_position: np.ndarray
    fills: list[Fill]
    metrics: dict[str, float]
    buy_hold_metrics: dict[str, float]
    signals: int
    actions: np.ndarray  # -1/0/+1 per candle, NaN where no signal
    confidences: np.ndarray  # per candle, NaN where no signal
    history_candles: int  # candles before the range the features warmed up on
    first_signal_index: int  # first candle of the range that can have a signal
    classification: dict[str, Any] = field(default_factory=dict)
    model_versions: list[str] = field(default_factory=list)
    backtrader: BacktraderRun | None = None  # engine="backtrader" only
    fill_comparison: FillComparison | None = None  # engine="backtrader" only


@dataclass
class BacktestResult:
    """Per-symbol results, the combined figures and where the report was written."""

    symbols: dict[str, SymbolResult]
    out_dir: Path
    candles: int
    seconds: float
    engine: str = "fast"
    backtrader_seconds: float = 0.0
    portfolio: dict[str, float] = field(default_factory=dict)
    portfolio_buy_hold: dict[str, float] = field(default_factory=dict)

    @property
    def fills(self) -> list[Fill]:
        return [f for r in self.symbols.values() for f in r.fills]

    @property
    def candles_per_s(self) -> float:
        return self.candles / self.seconds if self.seconds > 0 else float("inf")


# --- the engine -----------------------------------------------------------------------------
def warmup_candles() -> int:
    """Index of the first candle with a signal in a series (the first full feature row)."""
    return WARMUP - 1


def history_candles() -> int:
    """Candles before the range start the features warm up on, when the history has them.

    ``WARMUP``: the first range candle is then row ``WARMUP`` of the series (a signal from row
    ``WARMUP - 1`` on), exactly where a live worker that back-filled ``WARMUP`` candles is.
    """
    return WARMUP


def with_history(
    df: pd.DataFrame, start_ms: int | None, end_ms: int | None, history: int
) -> tuple[pd.DataFrame, int]:
    """The candles of ``[start_ms, end_ms)`` preceded by up to ``history`` earlier candles.

    Returns the frame (index reset) and how many of its first rows are history. Candles are
    counted, not minutes: history across a data gap is used as the live stream would.
    """
    ts = df["timestamp"].to_numpy(np.int64)
    lo = 0 if start_ms is None else int(np.searchsorted(ts, start_ms, side="left"))
    hi = len(ts) if end_ms is None else int(np.searchsorted(ts, end_ms, side="left"))
    first = max(0, lo - history)
    return df.iloc[first : max(hi, lo)].reset_index(drop=True), lo - first


def simulate(
    symbol: str,
    df: pd.DataFrame,
    predictions: Sequence[PredictionLike | None],
    cfg: RiskConfig,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[Fill], np.ndarray, np.ndarray]:
    """Run :func:`tinhieu.broker.step` over every candle of ``df``.

    ``predictions[i]`` is the signal of candle ``i`` (None: no signal). Returns the final
    state, the fills, the equity after each candle and whether a position was held.
    """
    if len(predictions) != len(df):
        raise BacktestError(
            f"{symbol}: {len(predictions)} predictions for {len(df)} candles; one per candle"
        )
    ts = df["timestamp"].to_numpy(np.int64).tolist()
    o = df["open"].to_numpy(np.float64).tolist()
    h = df["high"].to_numpy(np.float64).tolist()
    lo = df["low"].to_numpy(np.float64).tolist()
    c = df["close"].to_numpy(np.float64).tolist()
    v = df["volume"].to_numpy(np.float64).tolist()
    n = len(ts)
    cash = np.empty(n)
    qty = np.empty(n)
    state = new_state(symbol, cfg)
    fills: list[Fill] = []
    for i in range(n):
        t = ts[i]
        p = predictions[i]
        sig = None if p is None else SignalIn(symbol, t, p.action, p.confidence, p.model_version)
        state, f = step(state, Bar(t, o[i], h[i], lo[i], c[i], v[i]), sig, cfg)
        if f:
            fills.extend(f)
        cash[i] = state["cash"]
        qty[i] = state["qty"]
        if progress is not None and i % 10_000 == 9_999:
            progress(10_000)
    if progress is not None:
        progress(n % 10_000)
    equity = cash + qty * np.asarray(c)
    return state, fills, equity, qty > 0.0


class StoredPrediction(NamedTuple):
    """What the broker needs of a prediction (the backtest does not keep per-model votes)."""

    action: str
    confidence: float
    model_version: str


def _predict_rows(predictor: Predictor, X: np.ndarray,
                  history: np.ndarray | None = None) -> Sequence[PredictionLike]:
    """``predict_many``, or for an :class:`~tinhieu.ensemble.Ensemble` the same rule without
    building per-row vote objects: ``combine(member_probas(X))``, exactly what ``predict_many``
    computes before it wraps each row (about 5x faster on 100k rows)."""
    from tinhieu.ensemble import Ensemble, combine
    from tinhieu.labels import ACTIONS, CLASSES

    if not isinstance(predictor, Ensemble):
        return list(predictor.predict_many(X))
    cols, conf, _ = combine(predictor.member_probas(X, history), predictor.weights,
                            predictor.min_confidence, predictor.buy_threshold)
    names = [ACTIONS[c] for c in CLASSES]
    version = predictor.model_version
    return [
        StoredPrediction(names[c], f, version)
        for c, f in zip(cols.tolist(), conf.tolist(), strict=True)
    ]


def predict_signals(
    df: pd.DataFrame, predictor: Predictor, warmup: int, chunk: int = 20_000
) -> tuple[list[PredictionLike | None], np.ndarray]:
    """Features of every candle, and a prediction for each candle the live stream would sign.

    Like the predict agent, a candle gets a signal only from the first full feature row
    (index ``warmup``) on, and only when its model features are all finite (the ensemble
    refuses NaN/inf rows; live, such a candle gets no signal either). Rows are predicted in
    chunks of ``chunk`` to bound memory. Returns the per-candle predictions (None: no signal)
    and the feature matrix (``FEATURE_NAMES`` order).
    """
    from tinhieu.features import MODEL_COLUMNS, compute_features

    features = compute_features(df)
    X = features.to_numpy(np.float64)
    preds: list[PredictionLike | None] = [None] * len(df)
    usable = np.isfinite(X[:, MODEL_COLUMNS]).all(axis=1)
    # FeatureState.update returns its first row on the WARMUP-th candle (index WARMUP - 1).
    usable[: min(max(warmup, 0), len(df))] = False
    rows = np.flatnonzero(usable)
    for lo in range(0, len(rows), chunk):
        part = rows[lo : lo + chunk]
        # a sequence member (LSTM) reads the rows before the chunk, as live reads its record
        context = int(getattr(predictor, "context_rows", 0) or 0)
        past = X[rows[max(0, lo - context):lo]] if context and lo else None
        out = _predict_rows(predictor, X[part], past)
        if len(out) != len(part):
            raise BacktestError(
                f"predict_many returned {len(out)} predictions for {len(part)} rows"
            )
        for i, p in zip(part.tolist(), out, strict=True):
            preds[i] = p
    return preds, X


# --- honesty checks -------------------------------------------------------------------------
def check_training_windows(
    registry: Any, symbol: str, start_ms: int, allow_overlap: bool
) -> list[str]:
    """Refuse production models trained on data at or after ``start_ms``.

    Returns the versions checked. Raises :class:`BacktestError` naming the model, its training
    end and the fix, unless ``allow_overlap`` (then logs a warning).
    """
    rows = [r for r in registry.list(symbol) if r.get("production")]
    if not rows:
        raise BacktestError(
            f"no production model for {symbol} in the registry; train one first "
            "(faust -A streams.app train) on data before the backtest range"
        )
    versions = []
    for meta in rows:
        name = f"{meta.get('algorithm')} {meta.get('version')}"
        versions.append(name)
        end = meta.get("train_end_ms")
        if end is None or int(end) > start_ms:
            if not allow_overlap:
                raise BacktestError(
                    f"{symbol}: model {name} was trained on data up to {fmt_ms(end)}, which "
                    f"is not before the backtest start {fmt_ms(start_ms)}: its results would "
                    "be look-ahead. Start the backtest after the training end, retrain on "
                    "earlier data, or pass allow_overlap=True (--allow-overlap) knowingly"
                )
            i18n.log(
                log,
                logging.WARNING,
                "backtest.overlap",
                symbol=symbol,
                model=name,
                train_end=fmt_ms(end),
            )
    return versions


def _default_factory(settings: Any, registry: Any) -> PredictorFactory:
    from tinhieu.ensemble import Ensemble, parse_weights

    weights = parse_weights(getattr(settings, "ensemble_weights", None))

    def factory(symbol: str) -> Predictor:
        return Ensemble.from_registry(
            registry,
            symbol,
            weights=weights,  # type: ignore[no-any-return]
            min_confidence=settings.min_confidence,
        )

    return factory


# --- classification of the signals ----------------------------------------------------------
_ACTION_CODE = {"SELL": -1.0, "NEUTRAL": 0.0, "BUY": 1.0}


def signal_classification(
    timestamps: np.ndarray, close: np.ndarray, actions: np.ndarray, settings: Any
) -> dict[str, Any]:
    """Precision/recall of the signals against the realized move over the label horizon.

    Candles whose horizon crosses a hole in the data are left out (their "5-candle move"
    would span hours). Baselines on the same candles: always NEUTRAL, and persistence (the
    move that just ended continues).
    """
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    from tinhieu.labels import make_labels, previous_move_labels, spans_gap

    horizon = int(settings.label_horizon)
    truth = make_labels(close, horizon, settings.label_threshold_pct, settings.fee_pct)
    persist = previous_move_labels(close, horizon, settings.label_threshold_pct, settings.fee_pct)
    broken = spans_gap(timestamps, horizon, horizon, settings.timeframe_ms)
    ok = ~np.isnan(actions) & ~np.isnan(truth) & ~np.isnan(persist) & ~broken
    if not ok.any():
        return {"rows": 0}
    y, pred, pers = truth[ok], actions[ok], persist[ok]
    neutral = np.zeros_like(y)
    labels = [-1.0, 0.0, 1.0]
    names = ["SELL/DOWN", "NEUTRAL", "BUY/UP"]

    def scores(p: np.ndarray) -> dict[str, float]:
        return {
            "accuracy": float(accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, labels=labels, average="macro", zero_division=0)),
        }

    return {
        "rows": int(ok.sum()),
        "report": classification_report(
            y, pred, labels=labels, target_names=names, zero_division=0, digits=3
        ),
        "model": scores(pred),
        "always_neutral": scores(neutral),
        "persistence": scores(pers),
        "class_share": {n: float(np.mean(y == lab)) for n, lab in zip(names, labels, strict=True)},
    }


# --- the run --------------------------------------------------------------------------------
def run_backtest(
    frames: Mapping[str, pd.DataFrame],
    settings: Any,
    registry: Any,
    *,
    start_ms: int | None,
    end_ms: int | None,
    allow_overlap: bool = False,
    out_dir: Path,
    progress: bool = True,
    predictor_factory: PredictorFactory | None = None,
    engine: str = "fast",
) -> BacktestResult:
    """Backtest every symbol of ``frames`` and write the report to ``out_dir``.

    Parameters
    ----------
    frames : mapping of symbol to DataFrame
        Candles (``timestamp,open,high,low,close,volume``), ascending. The rows in
        ``[start_ms, end_ms)`` are traded; up to ``WARMUP`` rows before ``start_ms`` (when
        the frame has them) warm the features up, so the first candle of the range already
        has a signal. Without them the features warm up on the range itself, as the live
        stream does after a cold start.
    settings : tinhieu.settings.Settings
        Risk rules, label horizon/threshold, ensemble weights, timeframe.
    registry : tinhieu.registry.ModelRegistry
        Source of the production models (ignored when ``predictor_factory`` is given, except
        for the training-window check when it is not None).
    start_ms, end_ms : int or None
        The range (open times, ms UTC); None = from the first / to the last candle.
    allow_overlap : bool
        Accept models trained on data inside the range (results are then optimistic).
    out_dir : Path
        Folder of ``report.md``, ``equity.png``, ``trades.csv``, ``orders.jsonl``.
    progress : bool
        Show a tqdm progress bar (on stderr).
    predictor_factory : callable, optional
        ``symbol -> predictor`` with ``predict_many``; default ``Ensemble.from_registry``.
    engine : {"fast", "backtrader"}
        ``backtrader`` also runs the same candles and signals through Backtrader's
        ``BackBroker`` with its analyzers, side by side with the fast engine in the report.

    Raises
    ------
    BacktestError
        No candles in the range, a model trained on the range, wrong predictions, an
        unknown engine.
    """
    from tqdm import tqdm

    if engine not in ENGINES:
        raise BacktestError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    cfg = RiskConfig.from_settings(settings)
    out_dir = Path(out_dir)
    sliced: dict[str, tuple[pd.DataFrame, int]] = {}
    for symbol, df in frames.items():
        part, history = with_history(df, start_ms, end_ms, history_candles())
        if len(part) == history:
            raise BacktestError(
                f"{symbol}: no candles between {fmt_ms(start_ms)} and {fmt_ms(end_ms)}; "
                f"the data covers {fmt_ms(df['timestamp'].min() if len(df) else None)} to "
                f"{fmt_ms(df['timestamp'].max() if len(df) else None)}"
            )
        sliced[symbol] = part, history
    if not sliced:
        raise BacktestError("no symbols to backtest")
    first = min(int(d["timestamp"].iloc[h]) for d, h in sliced.values())
    last = max(int(d["timestamp"].iloc[-1]) for d, _ in sliced.values())
    i18n.log(
        log,
        logging.INFO,
        "backtest.start",
        symbols=", ".join(sliced),
        start=fmt_ms(first),
        end=fmt_ms(last),
    )

    versions: dict[str, list[str]] = {}
    if registry is not None:
        for symbol, (df, history) in sliced.items():
            versions[symbol] = check_training_windows(
                registry, symbol, int(df["timestamp"].iloc[history]), allow_overlap
            )
    if predictor_factory is None and registry is None:
        raise BacktestError("no model registry and no predictor_factory: nothing to predict with")
    factory = predictor_factory or _default_factory(settings, registry)

    total = sum(len(d) - h for d, h in sliced.values())
    started = time.perf_counter()
    bt_seconds = 0.0
    results: dict[str, SymbolResult] = {}
    with tqdm(total=total, unit="candle", disable=not progress, desc="backtest") as bar:
        for symbol, (df, history) in sliced.items():
            bar.set_postfix_str(symbol)
            preds, _ = predict_signals(df, factory(symbol), warmup_candles())
            df, preds = df.iloc[history:].reset_index(drop=True), preds[history:]
            _, fills, equity, held = simulate(symbol, df, preds, cfg, progress=bar.update)
            results[symbol] = _summarize(
                symbol,
                df,
                preds,
                fills,
                equity,
                held,
                cfg,
                settings,
                history,
                versions.get(symbol, []),
            )
            if engine == "backtrader":
                bt_started = time.perf_counter()
                _beside_backtrader(results[symbol], df, preds, cfg, settings)
                bt_seconds += time.perf_counter() - bt_started
    seconds = time.perf_counter() - started - bt_seconds
    result = BacktestResult(results, out_dir, total, seconds, engine, bt_seconds)
    _portfolio(result, settings)
    write_report(result, settings, start_ms=start_ms, end_ms=end_ms, allow_overlap=allow_overlap)
    i18n.log(
        log, logging.INFO, "backtest.done", path=out_dir / "report.md", rate=result.candles_per_s
    )
    return result


def _beside_backtrader(
    r: SymbolResult,
    df: pd.DataFrame,
    preds: Sequence[PredictionLike | None],
    cfg: RiskConfig,
    settings: Any,
) -> None:
    """The same range candles and the same signals through Backtrader; fills compared."""
    # imported here: Backtrader is only needed when it is asked for
    from tinhieu.backtest.bt_engine import compare_fills, run_backtrader

    r.backtrader = run_backtrader(r.symbol, df, preds, cfg, settings.timeframe_ms)
    r.fill_comparison = compare_fills(r.fills, r.backtrader.fills)


def _summarize(
    symbol: str,
    df: pd.DataFrame,
    preds: Sequence[PredictionLike | None],
    fills: list[Fill],
    equity: np.ndarray,
    held: np.ndarray,
    cfg: RiskConfig,
    settings: Any,
    history: int,
    versions: list[str],
) -> SymbolResult:
    ts = df["timestamp"].to_numpy(np.int64)
    close = df["close"].to_numpy(np.float64)
    first_signal = max(0, warmup_candles() - history)
    bh, bh_fee = buy_and_hold(
        df["open"].to_numpy(np.float64),
        close,
        entry_index=first_signal + 1,
        cash=cfg.starting_cash,
        position_size_pct=cfg.position_size_pct,
        commission_pct=cfg.commission_pct,
    )
    tf = settings.timeframe_ms
    bh_held = np.arange(len(ts)) >= first_signal + 1
    metrics = compute_metrics(equity, timeframe_ms=tf, timestamps=ts, fills=fills, in_position=held)
    bh_metrics = compute_metrics(bh, timeframe_ms=tf, timestamps=ts, in_position=bh_held)
    bh_metrics.update(fees_paid=bh_fee, trades=float("nan"), win_rate_pct=float("nan"))
    actions = np.array([np.nan if p is None else _ACTION_CODE.get(p.action, np.nan) for p in preds])
    confidences = np.array([np.nan if p is None else float(p.confidence) for p in preds])
    seen_versions = sorted({p.model_version for p in preds if p is not None})
    result = SymbolResult(
        symbol=symbol,
        timestamps=ts,
        close=close,
        equity=equity,
        buy_hold=bh,
        in_position=held,
        buy_hold_in_position=bh_held,
        fills=fills,
        metrics=metrics,
        buy_hold_metrics=bh_metrics,
        signals=int(np.sum(~np.isnan(actions))),
        actions=actions,
        confidences=confidences,
        history_candles=history,
        first_signal_index=first_signal,
        classification=signal_classification(ts, close, actions, settings),
        model_versions=versions or seen_versions,
    )
    i18n.log(
        log,
        logging.INFO,
        "backtest.symbol",
        symbol=symbol,
        candles=len(df),
        signals=result.signals,
        fills=len(fills),
        ret=metrics["total_return_pct"],
        bh=bh_metrics["total_return_pct"],
    )
    return result


def _portfolio(result: BacktestResult, settings: Any) -> None:
    """Sum of the per-symbol books on the union of their timestamps (forward-filled)."""
    if not result.symbols:
        return
    curves, holds, fills = [], [], []
    for r in result.symbols.values():
        curves.append(pd.Series(r.equity, index=r.timestamps))
        holds.append(pd.Series(r.buy_hold, index=r.timestamps))
        fills.extend(r.fills)
    eq = pd.concat(curves, axis=1).sort_index().ffill().bfill().sum(axis=1)
    bh = pd.concat(holds, axis=1).sort_index().ffill().bfill().sum(axis=1)
    ts = eq.index.to_numpy(np.int64)
    tf = settings.timeframe_ms
    held = pd.concat(
        [pd.Series(r.in_position, index=r.timestamps) for r in result.symbols.values()], axis=1
    ).sort_index()
    any_held = held.fillna(False).astype(bool).any(axis=1).to_numpy()
    bh_held = (
        pd.concat(
            [
                pd.Series(r.buy_hold_in_position, index=r.timestamps)
                for r in result.symbols.values()
            ],
            axis=1,
        )
        .sort_index()
        .fillna(False)
        .astype(bool)
        .any(axis=1)
        .to_numpy()
    )
    result.portfolio = compute_metrics(
        eq.to_numpy(), timeframe_ms=tf, timestamps=ts, fills=fills, in_position=any_held
    )
    result.portfolio_buy_hold = compute_metrics(
        bh.to_numpy(), timeframe_ms=tf, timestamps=ts, in_position=bh_held
    )
    result.portfolio_buy_hold.update(
        trades=float("nan"),
        win_rate_pct=float("nan"),
        fees_paid=sum(r.buy_hold_metrics["fees_paid"] for r in result.symbols.values()),
    )


def run_backtest_command(
    settings: Any,
    symbols: Sequence[str] | None,
    data_dir: Path | str,
    start: str | None,
    end: str | None,
    out_dir: Path | str,
    allow_overlap: bool = False,
    registry: Any = None,
    progress: bool = True,
    engine: str = "fast",
) -> BacktestResult:
    """What ``faust -A streams.app backtest`` runs: load the history files, backtest, report.

    ``symbols`` in any form (``btc``, ``BTCUSDT``); default all configured ones. ``start`` /
    ``end`` as ``2021-05-01`` or ``2021-05-01T12:00`` (UTC) or ms. The candles before
    ``start`` in the files warm the features up (see :func:`run_backtest`). ``engine``:
    one of :data:`ENGINES`.
    """
    from tinhieu.symbols import normalize

    if registry is None:
        from tinhieu.registry import open_registry

        registry = open_registry(settings)
    chosen = [normalize(s, settings.symbols) for s in (symbols or settings.symbols)]
    start_ms, end_ms = parse_time(start), parse_time(end)
    # from the file's first candle: run_backtest warms up on the WARMUP candles before start_ms
    frames = {
        sym: load_candles(find_history_file(data_dir, sym, settings.timeframe), None, end_ms)
        for sym in chosen
    }
    return run_backtest(
        frames,
        settings,
        registry,
        start_ms=start_ms,
        end_ms=end_ms,
        allow_overlap=allow_overlap,
        out_dir=Path(out_dir),
        progress=progress,
        engine=engine,
    )
