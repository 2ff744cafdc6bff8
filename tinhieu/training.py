"""Walk-forward training of the per-symbol RF + SVM + LR ensemble.

For each symbol:

1. features (:func:`tinhieu.features.compute_features`) and labels
   (:func:`tinhieu.labels.make_labels`); rows whose feature window or label horizon crosses a
   hole in the data are dropped (never filled);
2. ``TimeSeriesSplit(n_splits, gap=horizon)``: each fold trains on the past only, and the
   ``horizon`` rows between train and test are purged so no training label sees a test candle;
3. per fold, every model, the ensemble and two baselines on the same test rows: the majority
   class of the training fold, and persistence (the realized move of the previous ``horizon``
   candles, known at ``t``, continues);
4. the models are refit on all usable rows, saved to the registry with their walk-forward
   metrics and ensemble weight, and promoted to production.

The ensemble weight of a model is its walk-forward log-loss skill over the majority baseline,
``max(0, 1 - logloss_model / logloss_majority)``; inside the walk-forward, fold ``k`` uses
the weights of folds ``< k`` only (equal weights for the first fold).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tinhieu import i18n
from tinhieu.data import COLUMNS, find_history_file, load_candles, parse_time
from tinhieu.ensemble import ALGORITHMS, combine, compile_model
from tinhieu.features import FEATURE_SCHEMA_VERSION, MODEL_FEATURES, WARMUP, compute_features
from tinhieu.labels import (
    ACTIONS,
    CLASSES,
    effective_threshold_pct,
    make_labels,
    previous_move_labels,
    spans_gap,
)
from tinhieu.registry import ModelRegistry
from tinhieu.settings import Settings
from tinhieu.symbols import canonical, normalize

logger = logging.getLogger(__name__)
i18n.register(
    {
        "train.start": (
            i18n.TAGS["model"],
            "{symbol}: huan luyen tren {rows} nen ({start} -> {end}), {folds} fold walk-forward",
            "{symbol}: training on {rows} candles ({start} -> {end}), {folds} walk-forward folds",
        ),
        "train.done": (
            i18n.TAGS["model"],
            "{symbol}: xong trong {seconds:.1f}s; production {versions}",
            "{symbol}: done in {seconds:.1f}s; production {versions}",
        ),
        "train.data": (
            i18n.TAGS["data"],
            "{symbol}: {rows} nen tu {source}",
            "{symbol}: {rows} candles from {source}",
        ),
        "train.report": (
            i18n.TAGS["model"],
            "bao cao huan luyen: {path}",
            "training report: {path}",
        ),
    }
)

BASELINES = ("majority", "persistence")
CLASS_NAMES = tuple(ACTIONS[c] for c in CLASSES)  # SELL, NEUTRAL, BUY


class TrainingError(ValueError):
    """Training cannot run on this input; the message says why and what to do."""


@dataclass(frozen=True)
class ModelConfig:
    """Model sizes. Modest on purpose: 2 shared cores, ~100k candles per symbol."""

    rf_trees: int = 60
    rf_max_depth: int = 8
    rf_min_samples_leaf: int = 100
    rf_max_samples: float = 0.3
    svm_c: float = 0.05
    svm_max_rows: int = 20_000
    calibration_folds: int = 3
    lr_c: float = 0.1
    lr_max_iter: int = 100  # newton-cholesky converges in ~5 iterations (lbfgs: 135, 20x slower)
    seed: int = 7


QUICK = ModelConfig(rf_trees=15, rf_max_depth=6, rf_min_samples_leaf=30, rf_max_samples=0.5,
                    svm_max_rows=2_000)
"""Tiny models for tests and demos (a few seconds on ~5k candles)."""


@dataclass
class TrainResult:
    """What training one symbol produced."""

    symbol: str
    versions: dict[str, str]
    weights: dict[str, float]
    folds: list[dict[str, Any]]
    overall: dict[str, dict[str, Any]]
    signals: dict[str, Any]
    importances: dict[str, float]
    rows: int
    dropped_gap_rows: int
    train_start_ms: int
    train_end_ms: int
    label: dict[str, Any]
    seconds: float
    promoted: bool
    config: dict[str, Any] = field(default_factory=dict)


# --- models -------------------------------------------------------------------------------------
def build_models(config: ModelConfig) -> dict[str, Any]:
    """Fresh, unfitted scikit-learn models, keyed by algorithm (rf, svm, lr)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return {
        "rf": RandomForestClassifier(
            n_estimators=config.rf_trees,
            max_depth=config.rf_max_depth,
            min_samples_leaf=config.rf_min_samples_leaf,
            max_samples=config.rf_max_samples,
            max_features="sqrt",
            n_jobs=1,
            random_state=config.seed,
        ),
        # Linear SVM: an RBF kernel costs O(support vectors) per prediction; probabilities by
        # sigmoid calibration (SVC(probability=True) is deprecated in scikit-learn 1.9).
        "svm": Pipeline([
            ("scale", StandardScaler()),
            ("clf", CalibratedClassifierCV(
                LinearSVC(C=config.svm_c, dual="auto", max_iter=5000,
                          random_state=config.seed),
                method="sigmoid", cv=config.calibration_folds,
            )),
        ]),
        "lr": Pipeline([
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=config.lr_c, solver="newton-cholesky",
                                       max_iter=config.lr_max_iter)),
        ]),
    }


def _fit(algo: str, model: Any, X: np.ndarray, y: np.ndarray, config: ModelConfig) -> Any:
    if algo == "svm" and X.shape[0] > config.svm_max_rows:
        # The most recent rows: the SVM is the slowest fit and recency matters most.
        X, y = X[-config.svm_max_rows:], y[-config.svm_max_rows:]
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


# --- metrics --------------------------------------------------------------------------------------
def classification_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, log loss, per-class precision and recall."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
    )

    labels = list(CLASSES)
    p = np.clip(proba, 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    prec, rec, _, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    return {
        "n": int(y.shape[0]),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(log_loss(y, p, labels=labels)),
        "precision": {CLASS_NAMES[i]: float(prec[i]) for i in range(3)},
        "recall": {CLASS_NAMES[i]: float(rec[i]) for i in range(3)},
        "support": {CLASS_NAMES[i]: int(support[i]) for i in range(3)},
    }


def _class_index(y: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array(CLASSES), y.astype(int))


def majority_baseline(y_train: np.ndarray, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Predict the training fold's most frequent class; probabilities = its class shares."""
    counts = np.bincount(_class_index(y_train), minlength=3).astype(np.float64) + 1.0
    proba = np.tile(counts / counts.sum(), (n_test, 1))
    pred = np.full(n_test, CLASSES[int(np.argmax(counts))], dtype=float)
    return pred, proba


def persistence_baseline(
    prev_train: np.ndarray, y_train: np.ndarray, prev_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predict that the move of the last ``horizon`` candles continues.

    Probabilities: the training fold's class shares given the previous move (Laplace +1).
    """
    table = np.ones((3, 3))
    np.add.at(table, (_class_index(prev_train), _class_index(y_train)), 1.0)
    table /= table.sum(axis=1, keepdims=True)
    return prev_test.astype(float), table[_class_index(prev_test)]


def _skill(ll_model: float, ll_majority: float) -> float:
    if not (math.isfinite(ll_model) and ll_majority > 0):
        return 0.0
    return max(0.0, 1.0 - ll_model / ll_majority)


def _weights_from(logloss: Mapping[str, list[float]], majority: list[float]) -> dict[str, float]:
    if not majority:
        return {a: 1.0 for a in ALGORITHMS}
    maj = float(np.mean(majority))
    w = {a: _skill(float(np.mean(logloss[a])), maj) for a in ALGORITHMS}
    if not any(v > 0 for v in w.values()):
        return {a: 1.0 for a in ALGORITHMS}
    return w


def _signal_stats(y: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
    """What the thresholded ensemble would have signalled, and how often it was right."""
    actions = np.array(CLASSES)[cols]
    out: dict[str, Any] = {"n": int(y.shape[0])}
    for cls, name in ((1, "BUY"), (-1, "SELL")):
        hit = actions == cls
        out[f"{name}_signals"] = int(hit.sum())
        out[f"{name}_hit_rate"] = float((y[hit] == cls).mean()) if hit.any() else None
        # a big move the other way: volatility forecasts without direction show up here
        out[f"{name}_wrong_rate"] = float((y[hit] == -cls).mean()) if hit.any() else None
        out[f"{name}_base_rate"] = float((y == cls).mean()) if y.size else None
    return out


# --- data preparation ----------------------------------------------------------------------------
@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    prev: np.ndarray
    ts: np.ndarray
    dropped_gap_rows: int


def prepare_dataset(df: pd.DataFrame, settings: Settings) -> Dataset:
    """Model features, labels and the persistence input of every usable row of ``df``."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TrainingError(f"candles lack column(s) {', '.join(missing)}")
    horizon = settings.label_horizon
    feats = compute_features(df)
    close = df["close"].to_numpy(np.float64)
    y = make_labels(close, horizon, settings.label_threshold_pct, settings.fee_pct)
    prev = previous_move_labels(close, horizon, settings.label_threshold_pct, settings.fee_pct)
    ts = df["timestamp"].to_numpy(np.int64)
    gap = spans_gap(ts, before=max(WARMUP, horizon + 1), after=horizon,
                    timeframe_ms=settings.timeframe_ms)
    X = feats[list(MODEL_FEATURES)].to_numpy(np.float64)
    complete = np.isfinite(X).all(axis=1) & ~np.isnan(y) & ~np.isnan(prev)
    valid = complete & ~gap
    return Dataset(X[valid], y[valid].astype(int), prev[valid].astype(int), ts[valid],
                   int((complete & gap).sum()))


# --- training -----------------------------------------------------------------------------------
def _progress_bar(progress: Any, total: int, desc: str) -> Any:
    if progress is not None and progress is not True and progress is not False:
        return progress  # a tqdm-like object supplied by the caller
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(total=total, desc=desc, unit="fit", disable=disable, leave=False)


def train_symbol(
    df: pd.DataFrame,
    symbol: str,
    settings: Settings,
    registry: ModelRegistry,
    *,
    n_splits: int = 5,
    promote: bool = True,
    progress: Any = None,
    max_train_rows: int | None = None,
    config: ModelConfig | None = None,
) -> TrainResult:
    """Walk-forward evaluate, refit, save (and promote) rf/svm/lr for one symbol.

    Parameters
    ----------
    df : pandas.DataFrame
        Candles of one symbol (``timestamp,open,high,low,close,volume``), ascending.
    symbol : str
        The symbol, any form (``BTCUSDT``, ``btc``).
    settings : Settings
        Uses ``label_horizon``, ``label_threshold_pct``, ``fee_pct``, ``timeframe``,
        ``min_confidence``.
    registry : ModelRegistry
        Where the refit models go.
    n_splits : int
        Walk-forward folds (>= 2).
    promote : bool
        Make the new models the production ones.
    progress : None, bool or tqdm-like
        None: a bar when stderr is a terminal; True/False: force; an object with
        ``update(n)``: use it.
    max_train_rows : int, optional
        Keep only the most recent rows of every training set (speed).
    config : ModelConfig, optional
        Model sizes; :data:`QUICK` for tests.

    Raises
    ------
    TrainingError
        Too few usable rows for the folds, or only one class in the labels.
    """
    started = time.perf_counter()
    config = config or ModelConfig()
    try:
        symbol = canonical(symbol)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if n_splits < 2:
        raise TrainingError(f"n_splits must be >= 2, got {n_splits}")
    data = prepare_dataset(df, settings)
    n = data.y.shape[0]
    horizon = settings.label_horizon
    min_rows = (n_splits + 1) * max(50, horizon * 2)
    if n < min_rows:
        hint = (
            f"; {data.dropped_gap_rows} rows sit next to gaps: does the timeframe setting "
            f"({settings.timeframe}) match the data?"
            if data.dropped_gap_rows > n else ""
        )
        raise TrainingError(
            f"{symbol}: only {n} usable rows after warm-up, labels and gaps (of {len(df)} "
            f"candles); need at least {min_rows} for {n_splits} folds: give a longer history"
            + hint
        )
    if np.unique(data.y).shape[0] < 2:
        raise TrainingError(
            f"{symbol}: every label is {ACTIONS[int(data.y[0])]}; lower label_threshold_pct "
            "or use a longer/more volatile history"
        )
    i18n.log(logger, logging.INFO, "train.start", symbol=symbol, rows=n, folds=n_splits,
             start=_iso(data.ts[0]), end=_iso(data.ts[-1]))
    bar = _progress_bar(progress, total=(n_splits + 1) * len(ALGORITHMS), desc=symbol)
    own_bar = bar is not progress

    from sklearn.model_selection import TimeSeriesSplit

    splitter = TimeSeriesSplit(n_splits=n_splits, gap=horizon)
    folds: list[dict[str, Any]] = []
    pooled: dict[str, list[np.ndarray]] = {}
    pooled_pred: dict[str, list[np.ndarray]] = {}
    pooled_y: list[np.ndarray] = []
    pooled_cols: list[np.ndarray] = []
    ll_hist: dict[str, list[float]] = {a: [] for a in ALGORITHMS}
    maj_hist: list[float] = []
    for k, (tr, te) in enumerate(splitter.split(data.X)):
        if max_train_rows is not None and tr.shape[0] > max_train_rows:
            tr = tr[-max_train_rows:]
        Xtr, ytr, Xte, yte = data.X[tr], data.y[tr], data.X[te], data.y[te]
        probas: dict[str, np.ndarray] = {}
        preds: dict[str, np.ndarray] = {}
        if np.unique(ytr).shape[0] < 2:
            for algo in ALGORITHMS:  # nothing to learn: the models say what the majority says
                preds[algo], probas[algo] = majority_baseline(ytr, yte.shape[0])
                bar.update(1)
        else:
            for algo, model in build_models(config).items():
                fitted = _fit(algo, model, Xtr, ytr, config)
                probas[algo] = compile_model(fitted).predict_proba(Xte)
                preds[algo] = np.array(CLASSES)[probas[algo].argmax(axis=1)].astype(float)
                bar.update(1)
        weights = _weights_from(ll_hist, maj_hist)
        stack = np.stack([probas[a] for a in ALGORITHMS])
        w = np.array([weights[a] for a in ALGORITHMS])
        _, _, ens_p = combine(stack, w, 0.0)
        cols, _, _ = combine(stack, w, settings.min_confidence)
        probas["ensemble"] = ens_p
        preds["ensemble"] = np.array(CLASSES)[ens_p.argmax(axis=1)].astype(float)
        preds["majority"], probas["majority"] = majority_baseline(ytr, yte.shape[0])
        preds["persistence"], probas["persistence"] = persistence_baseline(
            data.prev[tr], ytr, data.prev[te]
        )
        fold = {
            "fold": k + 1,
            "train_rows": int(tr.shape[0]),
            "test_rows": int(te.shape[0]),
            "train_start_ms": int(data.ts[tr[0]]),
            "train_end_ms": int(data.ts[tr[-1]]),
            "test_start_ms": int(data.ts[te[0]]),
            "test_end_ms": int(data.ts[te[-1]]),
            "weights": weights,
            "metrics": {
                name: classification_metrics(yte, preds[name], probas[name])
                for name in (*ALGORITHMS, "ensemble", *BASELINES)
            },
            "signals": _signal_stats(yte, cols),
        }
        folds.append(fold)
        for a in ALGORITHMS:
            ll_hist[a].append(fold["metrics"][a]["log_loss"])
        maj_hist.append(fold["metrics"]["majority"]["log_loss"])
        for name in probas:
            pooled.setdefault(name, []).append(probas[name])
            pooled_pred.setdefault(name, []).append(preds[name])
        pooled_y.append(yte)
        pooled_cols.append(cols)

    y_all = np.concatenate(pooled_y)
    overall = {
        name: classification_metrics(
            y_all, np.concatenate(pooled_pred[name]), np.concatenate(pooled[name])
        )
        for name in pooled
    }
    signals = _signal_stats(y_all, np.concatenate(pooled_cols))
    final_weights = _weights_from(ll_hist, maj_hist)

    # --- refit on every usable row and save ---------------------------------------------------
    rows = np.arange(n)
    if max_train_rows is not None and n > max_train_rows:
        rows = rows[-max_train_rows:]
    X_fin, y_fin = data.X[rows], data.y[rows]
    label = {
        "horizon": horizon,
        "threshold_pct": effective_threshold_pct(settings.label_threshold_pct, settings.fee_pct),
        "requested_threshold_pct": settings.label_threshold_pct,
        "fee_pct": settings.fee_pct,
        "timeframe": settings.timeframe,
    }
    versions: dict[str, str] = {}
    importances: dict[str, float] = {}
    baselines = {b: overall[b] for b in BASELINES}
    for algo, model in build_models(config).items():
        fitted = _fit(algo, model, X_fin, y_fin, config)
        if algo == "rf":
            importances = {
                name: float(v)
                for name, v in zip(MODEL_FEATURES, fitted.feature_importances_, strict=True)
            }
        meta = {
            "feature_schema": FEATURE_SCHEMA_VERSION,
            "feature_names": list(MODEL_FEATURES),
            "train_start_ms": int(data.ts[rows[0]]),
            "train_end_ms": int(data.ts[rows[-1]]),
            "train_rows": int(rows.shape[0]),
            "classes": [int(c) for c in fitted.classes_],
            "label": label,
            "metrics": {"walk_forward": overall[algo], "ensemble": overall["ensemble"],
                        "baselines": baselines, "n_splits": n_splits},
            "ensemble_weight": final_weights[algo],
            "params": _params(fitted),
            "config": asdict(config),
        }
        versions[algo] = registry.save(symbol, algo, fitted, meta)
        bar.update(1)
    if promote:
        for algo, version in versions.items():
            registry.promote(symbol, algo, version)
    if own_bar:
        bar.close()
    seconds = time.perf_counter() - started
    i18n.log(logger, logging.INFO, "train.done", symbol=symbol, seconds=seconds,
             versions=",".join(f"{a}:{v}" for a, v in versions.items()) if promote else "-")
    return TrainResult(
        symbol=symbol, versions=versions, weights=final_weights, folds=folds, overall=overall,
        signals=signals, importances=importances, rows=n,
        dropped_gap_rows=data.dropped_gap_rows, train_start_ms=int(data.ts[rows[0]]),
        train_end_ms=int(data.ts[rows[-1]]), label=label, seconds=seconds, promoted=promote,
        config=asdict(config),
    )


def train_quick(
    df: pd.DataFrame,
    symbol: str,
    settings: Settings,
    registry: ModelRegistry,
    *,
    promote: bool = True,
) -> TrainResult:
    """Tiny real models into ``registry`` in a few seconds (tests, demos): 2 folds, QUICK sizes.

    Use ~3-5k candles of real data; the models are real scikit-learn models, just small.
    """
    return train_symbol(df, symbol, settings, registry, n_splits=2, promote=promote,
                        progress=False, config=QUICK)


def train(
    symbol_frames: Mapping[str, pd.DataFrame],
    settings: Settings,
    registry: ModelRegistry,
    *,
    report_path: Path | None = None,
    n_splits: int = 5,
    promote: bool = True,
    progress: Any = None,
    max_train_rows: int | None = None,
    config: ModelConfig | None = None,
) -> dict[str, TrainResult]:
    """Train every symbol; write the markdown report (and its chart) when ``report_path``."""
    results: dict[str, TrainResult] = {}
    for symbol, df in symbol_frames.items():
        results[symbol] = train_symbol(
            df, symbol, settings, registry, n_splits=n_splits, promote=promote,
            progress=progress, max_train_rows=max_train_rows, config=config,
        )
    if report_path is not None:
        from tinhieu.report import write_report

        write_report(results, Path(report_path))
        i18n.log(logger, logging.INFO, "train.report", path=report_path)
    return results


def run_train_command(
    settings: Settings,
    symbols: Sequence[str],
    data_dir: Path | None,
    start: str | None,
    end: str | None,
    report_path: Path,
    *,
    n_splits: int = 5,
    promote: bool = True,
    max_train_rows: int | None = None,
    history_days: int = 30,
    clock: Callable[[], float] = time.time,
    exchange_factory: Callable[[Settings], Any] | None = None,
    progress: Any = None,
    config: ModelConfig | None = None,
) -> dict[str, TrainResult]:
    """What ``faust -A streams.app train`` runs.

    Candles come from ``data_dir`` (files such as ``BTCUSDT_1m.csv.gz``) or, when
    ``data_dir`` is None, from the exchange (``ExchangeClient.fetch_history``, paginated);
    without ``start`` the exchange history covers the last ``history_days`` days.
    Models go to ``settings.models_path``; the report to ``report_path``.
    """
    start_ms, end_ms = parse_time(start), parse_time(end)
    wanted = [normalize(s, settings.symbols) for s in (symbols or settings.symbols)]
    frames: dict[str, pd.DataFrame] = {}
    if data_dir is not None:
        for sym in wanted:
            path = find_history_file(data_dir, sym, settings.timeframe)
            frames[sym] = load_candles(path, start_ms, end_ms)
            i18n.log(logger, logging.INFO, "train.data", symbol=sym, rows=len(frames[sym]),
                     source=path)
    else:
        if start_ms is None:
            now_ms = int(clock() * 1000) if end_ms is None else end_ms
            start_ms = now_ms - history_days * 86_400_000
        frames = asyncio.run(_fetch_all(settings, wanted, start_ms, end_ms, exchange_factory))
        for sym, df in frames.items():
            i18n.log(logger, logging.INFO, "train.data", symbol=sym, rows=len(df),
                     source=settings.exchange_id)
    registry = ModelRegistry(settings.models_path, clock=clock)
    return train(frames, settings, registry, report_path=report_path, n_splits=n_splits,
                 promote=promote, progress=progress, max_train_rows=max_train_rows,
                 config=config)


async def _fetch_all(
    settings: Settings, symbols: Sequence[str], start_ms: int, end_ms: int | None,
    factory: Callable[[Settings], Any] | None,
) -> dict[str, pd.DataFrame]:
    if factory is None:
        from tinhieu.exchange import ExchangeClient

        factory = ExchangeClient
    client = factory(settings)
    frames = {}
    try:
        for sym in symbols:
            bars = await client.fetch_history(sym, start_ms, end_ms)
            frames[sym] = pd.DataFrame([tuple(b) for b in bars], columns=COLUMNS).astype(
                {"timestamp": np.int64}
            )
    finally:
        await client.close()
    return frames


# --- helpers -------------------------------------------------------------------------------------
def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _params(model: Any) -> dict[str, Any]:
    out = {}
    for k, v in model.get_params(deep=True).items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out
