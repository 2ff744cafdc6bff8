"""Walk-forward training of the per-symbol RF + SVM + LR ensemble, judged by after-fee trading.

For each symbol:

1. features (:func:`tinhieu.features.compute_features`) and labels
   (:func:`tinhieu.labels.make_scheme_labels`: the broker's own trade by default, the
   fixed-horizon move as an option); rows whose feature window or label span crosses a hole
   in the data are dropped (never filled);
2. ``TimeSeriesSplit(n_splits, gap=span)`` where ``span`` is the candles a label looks ahead
   (``max_holding_candles + 1`` for trade labels): each fold trains on the past only and the
   purge keeps every training label's trade out of the test candles;
3. inside each training set the most recent ``calibration_share`` of rows (after another
   purge of ``span`` rows) are held out to calibrate each model's probabilities
   (:class:`tinhieu.ensemble.CalibratedModel`); the test fold is never touched;
4. per fold, every model, the ensemble and two baselines on the same test rows
   (classification, Brier score, reliability), and the model-gated strategy run through
   :func:`tinhieu.broker.step` beside buy-and-hold and a moving-average crossover with the
   same stop loss and take profit; then pooled over the folds;
5. the models are refit on all usable rows (the same calibration split), saved to the
   registry with their walk-forward evidence, and promoted only when the pooled after-fee
   result of the gated strategy beats cash, buy-and-hold and the crossover with at least
   ``promotion_min_trades`` round trips (the promotion gate); otherwise they are registered
   unpromoted with the reason.

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
from tinhieu.ensemble import ALGORITHMS, CalibratedModel, combine, compile_model
from tinhieu.features import FEATURE_SCHEMA_VERSION, MODEL_FEATURES, WARMUP, compute_features
from tinhieu.labels import (
    ACTIONS,
    CLASSES,
    Labels,
    barrier_levels,
    break_even_probability,
    label_settings,
    make_scheme_labels,
    spans_gap,
)
from tinhieu.monitoring.drift import feature_reference
from tinhieu.registry import ModelRegistry, open_registry
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
        "train.gate": (
            i18n.TAGS["model"],
            "{symbol}: {verdict}: {reason}",
            "{symbol}: {verdict}: {reason}",
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
STRATEGIES = ("ensemble", "buy_and_hold", "ma_crossover")
"""The trading figures of every fold: the model-gated strategy and the two baselines."""
MIN_CONFIDENCE_GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
"""min_confidence values the walk-forward also replays the gated strategy with."""
MA_FAST, MA_SLOW = 50, 200
"""The moving-average crossover baseline (candles): BUY on a cross up, SELL on a cross down."""
RELIABILITY_BINS = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0 + 1e-9])


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
    class_weight: str | None = "balanced"
    """Classes weighted inversely to their frequency in the training rows (rare BUY labels)."""
    calibrate: bool = True
    """Calibrate each model on the most recent ``calibration_share`` of its training rows."""
    calibration_share: float = 0.25
    rf_calibration: str = "isotonic"
    svm_calibration: str = "sigmoid"
    lr_calibration: str = "isotonic"


QUICK = ModelConfig(rf_trees=15, rf_max_depth=6, rf_min_samples_leaf=30, rf_max_samples=0.5,
                    svm_max_rows=2_000, calibrate=False)
"""Tiny models for tests and demos (a few seconds on ~5k candles), not calibrated."""


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
    trading: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pooled after-fee figures of ``STRATEGIES`` over the test folds."""
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per model: Brier scores and the reliability table of P(BUY), pooled test folds."""
    confidence_grid: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pooled gated-strategy figures for each ``MIN_CONFIDENCE_GRID`` value."""
    promotion: dict[str, Any] = field(default_factory=dict)
    """``promoted``, ``reason`` and the figures the gate compared."""


# --- models -------------------------------------------------------------------------------------
def build_models(config: ModelConfig,
                 algorithms: Sequence[str] = ALGORITHMS) -> dict[str, Any]:
    """Fresh, unfitted scikit-learn models, keyed by algorithm (rf, svm, lr); ``lstm`` (the
    optional ``deep`` extra) is its :class:`tinhieu.deep.forward.LstmConfig`.

    With ``config.calibrate`` the SVM is a bare linear SVM (its decision values are
    calibrated later by :class:`CalibratedModel`); without, it carries scikit-learn's own
    3-fold sigmoid calibration so that it has probabilities at all.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    cw = config.class_weight
    svc = LinearSVC(C=config.svm_c, dual="auto", max_iter=5000, random_state=config.seed,
                    class_weight=cw)
    models: dict[str, Any] = {
        "rf": RandomForestClassifier(
            n_estimators=config.rf_trees,
            max_depth=config.rf_max_depth,
            min_samples_leaf=config.rf_min_samples_leaf,
            max_samples=config.rf_max_samples,
            max_features="sqrt",
            n_jobs=1,
            random_state=config.seed,
            class_weight=None if cw is None else "balanced_subsample",
        ),
        # Linear SVM: an RBF kernel costs O(support vectors) per prediction; SVC(probability=
        # True) is deprecated in scikit-learn 1.9.
        "svm": Pipeline([
            ("scale", StandardScaler()),
            ("clf", svc if config.calibrate else CalibratedClassifierCV(
                svc, method="sigmoid", cv=config.calibration_folds)),
        ]),
        "lr": Pipeline([
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=config.lr_c, solver="newton-cholesky",
                                       max_iter=config.lr_max_iter, class_weight=cw)),
        ]),
    }
    if "lstm" in algorithms:
        from tinhieu.deep.forward import lstm_config

        models["lstm"] = lstm_config(config)
    return {a: models[a] for a in algorithms}


def training_algorithms(settings: Settings) -> tuple[str, ...]:
    """The ``algorithms`` setting as a tuple; ``lstm`` only with the ``deep`` extra.

    Raises
    ------
    TrainingError
        ``lstm`` asked for without Keras/JAX installed (the message names the install).
    """
    algos = tuple(dict.fromkeys(
        a.strip() for a in str(getattr(settings, "algorithms", "rf,svm,lr")).split(",")
        if a.strip()))
    if "lstm" in algos:
        from tinhieu.deep import DeepUnavailable, require

        try:
            require("algorithms=...lstm")
        except DeepUnavailable as exc:
            raise TrainingError(str(exc)) from None
    return algos


def model_inputs(data: Dataset, algorithms: Sequence[str]) -> dict[str, Any]:
    """What each model reads for the usable rows: the feature rows, or for ``lstm`` the
    windows of the last ``SEQUENCE_LENGTH`` rows up to each (``tinhieu.deep.sequences``)."""
    inputs: dict[str, Any] = {a: data.X for a in algorithms}
    if "lstm" in algorithms:
        from tinhieu.deep import SEQUENCE_LENGTH
        from tinhieu.deep.sequences import training_sequences

        inputs["lstm"] = training_sequences(data.features, data.rows, SEQUENCE_LENGTH)
    return inputs


def _fit_base(algo: str, model: Any, X: np.ndarray, y: np.ndarray, config: ModelConfig) -> Any:
    if algo == "svm" and X.shape[0] > config.svm_max_rows:
        # The most recent rows: the SVM is the slowest fit and recency matters most.
        X, y = X[-config.svm_max_rows:], y[-config.svm_max_rows:]
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def calibration_split(n: int, span: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows (of a time-ordered training set of ``n`` rows) to fit on and to calibrate on.

    The last ``share`` of the rows calibrate; ``span`` rows before them are purged so no
    fitted label's trade reaches a calibration candle. Both are empty when too short.
    """
    n_cal = int(n * share)
    n_fit = n - n_cal - span
    if n_cal < 50 or n_fit < 50:
        return np.arange(n), np.arange(0)
    return np.arange(n_fit), np.arange(n - n_cal, n)


def fit_model(algo: str, model: Any, X: np.ndarray, y: np.ndarray, config: ModelConfig,
              span: int) -> Any:
    """Fit one model on time-ordered rows; calibrated on its own last rows when configured.

    Only ``X, y`` are seen: the caller passes a training set, never a test fold.
    """
    if algo == "lstm":  # the deep extra: X are windows, ``model`` its LstmConfig
        from tinhieu.deep.keras_model import fit_lstm

        return fit_lstm(X, y, model, span)
    if not config.calibrate:
        return _fit_base(algo, model, X, y, config)
    fit_rows, cal_rows = calibration_split(X.shape[0], span, config.calibration_share)
    if cal_rows.size == 0 or np.unique(y[fit_rows]).shape[0] < 2:
        if algo == "svm":  # a bare LinearSVC gives no probabilities: it needs its calibration
            raise TrainingError(
                f"cannot calibrate the svm on {X.shape[0]} training rows (fit rows "
                f"{fit_rows.size}, calibration rows {cal_rows.size}, label classes in the fit "
                f"rows {np.unique(y[fit_rows]).shape[0]}): give a longer history or fewer folds")
        return _fit_base(algo, model, X, y, config)
    base = _fit_base(algo, model, X[fit_rows], y[fit_rows], config)
    method = getattr(config, f"{algo}_calibration")
    wrapped = CalibratedModel(base, method=method, score="decision" if algo == "svm" else "proba")
    return wrapped.fit_calibration(X[cal_rows], y[cal_rows])


# --- metrics --------------------------------------------------------------------------------------
def classification_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, log loss, Brier, per-class precision and recall."""
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
    onehot = (y.astype(int)[:, None] == np.array(CLASSES)[None, :]).astype(np.float64)
    return {
        "n": int(y.shape[0]),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(log_loss(y, p, labels=labels)),
        "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
        "brier_buy": float(((p[:, 2] - onehot[:, 2]) ** 2).mean()),
        "precision": {CLASS_NAMES[i]: float(prec[i]) for i in range(3)},
        "recall": {CLASS_NAMES[i]: float(rec[i]) for i in range(3)},
        "support": {CLASS_NAMES[i]: int(support[i]) for i in range(3)},
    }


def reliability_table(y: np.ndarray, p_buy: np.ndarray) -> list[dict[str, Any]]:
    """Bins of predicted P(BUY): rows, mean prediction, observed BUY frequency."""
    out = []
    idx = np.digitize(p_buy, RELIABILITY_BINS) - 1
    for b in range(len(RELIABILITY_BINS) - 1):
        m = idx == b
        out.append({
            "lo": float(RELIABILITY_BINS[b]), "hi": float(min(1.0, RELIABILITY_BINS[b + 1])),
            "n": int(m.sum()),
            "mean_p": float(p_buy[m].mean()) if m.any() else None,
            "observed": float((y[m] == CLASSES[2]).mean()) if m.any() else None,
        })
    return out


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
    """Predict that the last known outcome repeats (the move of the last ``horizon`` candles,
    or the outcome of the latest trade that has exited).

    Probabilities: the training fold's class shares given the previous outcome (Laplace +1).
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
        return {a: 1.0 for a in logloss}
    maj = float(np.mean(majority))
    w = {a: _skill(float(np.mean(logloss[a])), maj) for a in logloss}
    if not any(v > 0 for v in w.values()):
        return {a: 1.0 for a in logloss}
    return w


def _signal_stats(y: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
    """What the gated ensemble would have signalled, and how often it was right."""
    actions = np.array(CLASSES)[cols]
    out: dict[str, Any] = {"n": int(y.shape[0])}
    for cls, name in ((1, "BUY"), (-1, "SELL")):
        hit = actions == cls
        out[f"{name}_signals"] = int(hit.sum())
        out[f"{name}_hit_rate"] = float((y[hit] == cls).mean()) if hit.any() else None
        # the other way: a stop loss after a BUY, a take profit after a SELL
        out[f"{name}_wrong_rate"] = float((y[hit] == -cls).mean()) if hit.any() else None
        out[f"{name}_base_rate"] = float((y == cls).mean()) if y.size else None
    return out


# --- trading evaluation: the broker's own rules ----------------------------------------------
def simulate_signals(
    candles: pd.DataFrame,
    actions: Sequence[str | None],
    confidences: np.ndarray,
    cfg: Any,
    *,
    entry_levels: tuple[np.ndarray, np.ndarray] | None = None,
    symbol: str = "EVAL/USDT",
) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Run :func:`tinhieu.broker.step` over ``candles`` with one action per candle.

    ``entry_levels`` (stop loss %, take profit % per candle) replace the config's levels for
    an entry signalled on that candle (volatility barriers). Returns the equity after each
    candle (marked to market at the close), the fills and whether a position was held.
    """
    from dataclasses import replace

    from tinhieu.broker import SignalIn, new_state, step
    from tinhieu.candles import Bar

    ts = candles["timestamp"].to_numpy(np.int64).tolist()
    cols = [candles[c].to_numpy(np.float64).tolist()
            for c in ("open", "high", "low", "close", "volume")]
    n = len(ts)
    state = new_state(symbol, cfg)
    fills: list[Any] = []
    cash = np.empty(n)
    qty = np.empty(n)
    for i in range(n):
        a = actions[i]
        sig = None if a is None else SignalIn(symbol, ts[i], a, float(confidences[i]), "wf")
        use = cfg
        pend = state["pending"]
        if entry_levels is not None and pend is not None and pend["side"] == "BUY" and i > 0:
            sl, tp = float(entry_levels[0][i - 1]), float(entry_levels[1][i - 1])
            if math.isfinite(sl) and math.isfinite(tp):
                use = replace(cfg, stop_loss_pct=sl, take_profit_pct=tp)
        state, f = step(state, Bar(ts[i], cols[0][i], cols[1][i], cols[2][i], cols[3][i],
                                   cols[4][i]), sig, use)
        if f:
            fills.extend(f)
        cash[i] = state["cash"]
        qty[i] = state["qty"]
    equity = cash + qty * np.asarray(cols[3])
    return equity, fills, qty > 0.0


def ma_crossover_actions(close: np.ndarray, fast: int = MA_FAST,
                         slow: int = MA_SLOW) -> list[str | None]:
    """BUY where SMA_fast crosses above SMA_slow, SELL where it crosses below (known at t)."""
    c = pd.Series(np.asarray(close, dtype=np.float64))
    diff = (c.rolling(fast).mean() - c.rolling(slow).mean()).to_numpy()
    prev = np.concatenate([[np.nan], diff[:-1]])
    out: list[str | None] = [None] * diff.shape[0]
    for i in np.nonzero((diff > 0) & (prev <= 0))[0]:
        out[i] = "BUY"
    for i in np.nonzero((diff < 0) & (prev >= 0))[0]:
        out[i] = "SELL"
    return out


def _curve(equity: np.ndarray, fills: list[Any], held: np.ndarray,
           ts: np.ndarray) -> dict[str, Any]:
    return {"equity": equity, "fills": fills, "held": held, "ts": ts}


def trading_metrics(curves: Sequence[dict[str, Any]], timeframe_ms: int) -> dict[str, Any]:
    """After-fee figures of one or more consecutive equity curves, chained end to start."""
    from tinhieu.performance import compute_metrics

    parts, scale = [], 1.0
    for cv in curves:
        eq = cv["equity"] / cv["equity"][0] * scale
        parts.append(eq)
        scale = float(eq[-1])
    eq_all = np.concatenate(parts)
    m = compute_metrics(
        eq_all, timeframe_ms=timeframe_ms,
        timestamps=np.concatenate([cv["ts"] for cv in curves]),
        fills=[f for cv in curves for f in cv["fills"]],
        in_position=np.concatenate([cv["held"] for cv in curves]),
    )
    keep = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades", "win_rate_pct",
            "exposure_pct", "fees_paid")
    return {k: float(m[k]) for k in keep}


def _actions_from_cols(cols: np.ndarray) -> list[str | None]:
    names = {0: "SELL", 2: "BUY"}
    return [names.get(int(c)) for c in cols]


# --- data preparation ----------------------------------------------------------------------------
@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    prev: np.ndarray
    ts: np.ndarray
    dropped_gap_rows: int
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Index of each usable row in the candle frame."""
    labels: Labels | None = None
    span: int = 0
    """Candles after ``t`` a label looks at: the purge between train and test."""
    features: np.ndarray | None = None
    """Model features of every candle (the LSTM's windows read the rows before ``t``)."""


def prepare_dataset(df: pd.DataFrame, settings: Settings,
                    label_params: dict[str, Any] | None = None,
                    extra_features: pd.DataFrame | None = None) -> Dataset:
    """Model features, labels and the persistence input of every usable row of ``df``.

    ``extra_features`` (one row per candle of ``df``) are appended after ``MODEL_FEATURES``:
    the hook of offline comparisons (``tinhieu.sentiment_compare``); a row with a
    non-finite extra value is not usable."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TrainingError(f"candles lack column(s) {', '.join(missing)}")
    df = df.reset_index(drop=True)
    params = label_params or label_settings(settings)
    feats = compute_features(df)
    labels = make_scheme_labels(df, params)
    span = labels.span
    ts = df["timestamp"].to_numpy(np.int64)
    gap = spans_gap(ts, before=max(WARMUP, span + 1), after=span,
                    timeframe_ms=settings.timeframe_ms)
    X = feats[list(MODEL_FEATURES)].to_numpy(np.float64)
    if extra_features is not None:
        if len(extra_features) != len(df):
            raise TrainingError(f"extra_features has {len(extra_features)} rows for "
                                f"{len(df)} candles")
        X = np.column_stack([X, extra_features.to_numpy(np.float64)])
    y, prev = labels.y, labels.previous
    complete = np.isfinite(X).all(axis=1) & ~np.isnan(y) & ~np.isnan(prev)
    valid = complete & ~gap
    return Dataset(X[valid], y[valid].astype(int), prev[valid].astype(int), ts[valid],
                   int((complete & gap).sum()), np.nonzero(valid)[0], labels, span, X)


# --- training -----------------------------------------------------------------------------------
def _progress_bar(progress: Any, total: int, desc: str) -> Any:
    if progress is not None and progress is not True and progress is not False:
        return progress  # a tqdm-like object supplied by the caller
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(total=total, desc=desc, unit="fit", disable=disable, leave=False)


def _break_even(data: Dataset, params: dict[str, Any]) -> float | None:
    """The BUY gate of trade-outcome labels (median levels for volatility barriers)."""
    out = data.labels.outcomes if data.labels is not None else None
    if params["scheme"] != "triple_barrier" or out is None:
        return None
    sl = float(np.nanmedian(out.stop_loss_pct[data.rows])) if data.rows.size else math.nan
    tp = float(np.nanmedian(out.take_profit_pct[data.rows])) if data.rows.size else math.nan
    if not (math.isfinite(sl) and math.isfinite(tp)):
        return None
    return break_even_probability(sl, tp, params["fee_pct"])


def promotion_decision(trading: Mapping[str, Mapping[str, Any]], min_trades: int,
                       requested: bool) -> dict[str, Any]:
    """The promotion gate: the gated strategy's pooled after-fee walk-forward return must
    beat cash (0 %), buy-and-hold and the moving-average crossover, over at least
    ``min_trades`` round trips."""
    ens = trading["ensemble"]
    ret = ens["total_return_pct"]
    bars = {"cash": 0.0, "buy_and_hold": trading["buy_and_hold"]["total_return_pct"],
            "ma_crossover": trading["ma_crossover"]["total_return_pct"]}
    lost = [f"{name} {value:+.2f}%" for name, value in bars.items() if not ret > value]
    reasons = []
    if lost:
        reasons.append(f"walk-forward return {ret:+.2f}% after fees does not beat "
                       + ", ".join(lost))
    if ens["trades"] < min_trades:
        reasons.append(f"{ens['trades']:.0f} round trips < promotion_min_trades {min_trades}")
    edge = not reasons
    if not requested:
        reasons.append("--no-promote")
    reason = "; ".join(reasons) if reasons else (
        f"walk-forward return {ret:+.2f}% after fees over {ens['trades']:.0f} round trips "
        f"beats cash, buy-and-hold {bars['buy_and_hold']:+.2f}% and MA crossover "
        f"{bars['ma_crossover']:+.2f}%")
    return {"promoted": edge and requested, "edge": edge, "reason": reason,
            "return_pct": ret, "baselines_pct": bars, "trades": ens["trades"],
            "min_trades": min_trades}


def _calibration_window(ts: np.ndarray, span: int, config: ModelConfig) -> dict[str, Any] | None:
    """First/last candle the models of a fold were fitted and calibrated on (ms)."""
    if not config.calibrate:
        return None
    fit_rows, cal_rows = calibration_split(ts.shape[0], span, config.calibration_share)
    if cal_rows.size == 0:
        return None
    return {"fit_end_ms": int(ts[fit_rows[-1]]), "start_ms": int(ts[cal_rows[0]]),
            "end_ms": int(ts[cal_rows[-1]]), "rows": int(cal_rows.size)}


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
    gate: bool = True,
    label_params: dict[str, Any] | None = None,
    extra_features: pd.DataFrame | None = None,
    data_source: Mapping[str, Any] | None = None,
    actor: str = "training",
) -> TrainResult:
    """Walk-forward evaluate, refit, save (and promote) rf/svm/lr for one symbol.

    Parameters
    ----------
    df : pandas.DataFrame
        Candles of one symbol (``timestamp,open,high,low,close,volume``), ascending.
    symbol : str
        The symbol, any form (``BTCUSDT``, ``btc``).
    settings : Settings
        Label settings (``label_scheme`` and its parameters, ``fee_pct``), the broker's
        risk rules, ``min_confidence``, ``promotion_min_trades``, ``timeframe``.
    registry : ModelRegistry
        Where the refit models go.
    n_splits : int
        Walk-forward folds (>= 2).
    promote : bool
        Make the new models the production ones (when the gate lets them through).
    progress : None, bool or tqdm-like
        None: a bar when stderr is a terminal; True/False: force; an object with
        ``update(n)``: use it.
    max_train_rows : int, optional
        Keep only the most recent rows of every training set (speed).
    config : ModelConfig, optional
        Model sizes; :data:`QUICK` for tests.
    gate : bool
        Apply the promotion gate (``False``: promote whenever ``promote``; test fixtures).
    label_params : dict, optional
        Label parameters instead of :func:`tinhieu.labels.label_settings` of ``settings``.
    extra_features : pandas.DataFrame, optional
        Columns appended to ``MODEL_FEATURES`` (one row per candle), for offline
        comparisons only: the live path does not compute them, so the models are saved
        under a feature schema the registry refuses to serve, and ``promote`` must be False.
    data_source : mapping, optional
        Where the candles came from (e.g. :meth:`tinhieu.retrain.StreamHistory.source`):
        kept in every member's metadata, the run's parameters and the version's tags.
    actor : str
        Who registers the version (``training``, ``retrain``): the alias history's actor.

    Raises
    ------
    TrainingError
        Too few usable rows for the folds, or only one class in the labels.
    """
    from tinhieu.broker import RiskConfig
    from tinhieu.performance import buy_and_hold

    started = time.perf_counter()
    config = config or ModelConfig()
    try:
        symbol = canonical(symbol)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if n_splits < 2:
        raise TrainingError(f"n_splits must be >= 2, got {n_splits}")
    df = df.reset_index(drop=True)
    params = dict(label_params or label_settings(settings))
    names = list(MODEL_FEATURES)
    schema = FEATURE_SCHEMA_VERSION
    if extra_features is not None:
        if promote:
            raise TrainingError("extra_features are for offline comparisons (the live path "
                                "does not compute them): train with promote=False")
        names += [str(c) for c in extra_features.columns]
        schema = f"{FEATURE_SCHEMA_VERSION}+extra:{','.join(names[len(MODEL_FEATURES):])}"
    data = prepare_dataset(df, settings, params, extra_features)
    n = data.y.shape[0]
    span = data.span
    min_rows = (n_splits + 1) * max(50, span * 2)
    if n < min_rows:
        hint = (
            f"; {data.dropped_gap_rows} rows sit next to gaps: does the timeframe setting "
            f"({settings.timeframe}) match the data?"
            if data.dropped_gap_rows > n else ""
        )
        raise TrainingError(
            f"{symbol}: only {n} usable rows after warm-up, labels and gaps (of {len(df)} "
            f"candles); need at least {min_rows} for {n_splits} folds (label span {span}): "
            "give a longer history" + hint
        )
    if np.unique(data.y).shape[0] < 2:
        raise TrainingError(
            f"{symbol}: every label is {ACTIONS[int(data.y[0])]}; use a longer/more volatile "
            "history or other label settings"
        )
    break_even = _break_even(data, params)
    params["break_even"] = break_even
    algos = training_algorithms(settings)
    inputs = model_inputs(data, algos)
    i18n.log(logger, logging.INFO, "train.start", symbol=symbol, rows=n, folds=n_splits,
             start=_iso(data.ts[0]), end=_iso(data.ts[-1]))
    bar = _progress_bar(progress, total=(n_splits + 1) * len(algos), desc=symbol)
    own_bar = bar is not progress

    from sklearn.model_selection import TimeSeriesSplit

    cfg = RiskConfig.from_settings(settings)
    levels = None
    if data.labels is not None and data.labels.outcomes is not None \
            and params.get("barrier_mode") == "volatility":
        levels = (data.labels.outcomes.stop_loss_pct, data.labels.outcomes.take_profit_pct)
    ma_all = ma_crossover_actions(df["close"].to_numpy(np.float64))
    tf_ms = settings.timeframe_ms

    splitter = TimeSeriesSplit(n_splits=n_splits, gap=span)
    folds: list[dict[str, Any]] = []
    pooled: dict[str, list[np.ndarray]] = {}
    pooled_pred: dict[str, list[np.ndarray]] = {}
    pooled_raw: dict[str, list[np.ndarray]] = {}
    pooled_y: list[np.ndarray] = []
    pooled_cols: list[np.ndarray] = []
    curves: dict[str, list[dict[str, Any]]] = {name: [] for name in STRATEGIES}
    grid_curves: dict[float, list[dict[str, Any]]] = {m: [] for m in MIN_CONFIDENCE_GRID}
    ll_hist: dict[str, list[float]] = {a: [] for a in algos}
    maj_hist: list[float] = []
    for k, (tr, te) in enumerate(splitter.split(data.X)):
        if max_train_rows is not None and tr.shape[0] > max_train_rows:
            tr = tr[-max_train_rows:]
        ytr, yte = data.y[tr], data.y[te]
        probas: dict[str, np.ndarray] = {}
        preds: dict[str, np.ndarray] = {}
        raw: dict[str, np.ndarray] = {}
        if np.unique(ytr).shape[0] < 2:
            for algo in algos:  # nothing to learn: the models say what the majority says
                preds[algo], probas[algo] = majority_baseline(ytr, yte.shape[0])
                raw[algo] = probas[algo]
                bar.update(1)
        else:
            for algo, model in build_models(config, algos).items():
                Xtr, Xte = inputs[algo][tr], inputs[algo][te]
                fitted = fit_model(algo, model, Xtr, ytr, config, span)
                probas[algo] = compile_model(fitted).predict_proba(Xte)
                raw[algo] = (fitted.uncalibrated_proba(Xte) if isinstance(fitted, CalibratedModel)
                             else probas[algo])
                preds[algo] = np.array(CLASSES)[probas[algo].argmax(axis=1)].astype(float)
                bar.update(1)
        weights = _weights_from(ll_hist, maj_hist)
        stack = np.stack([probas[a] for a in algos])
        w = np.array([weights[a] for a in algos])
        _, _, ens_p = combine(stack, w, 0.0)
        cols, conf, _ = combine(stack, w, settings.min_confidence, break_even)
        probas["ensemble"] = ens_p
        preds["ensemble"] = np.array(CLASSES)[ens_p.argmax(axis=1)].astype(float)
        raw["ensemble"] = ens_p
        preds["majority"], probas["majority"] = majority_baseline(ytr, yte.shape[0])
        preds["persistence"], probas["persistence"] = persistence_baseline(
            data.prev[tr], ytr, data.prev[te]
        )

        # trading on the test candles: the gated ensemble and the baselines, broker.step
        a, b = int(data.rows[te[0]]), int(data.rows[te[-1]]) + 1
        window = df.iloc[a:b]
        local = data.rows[te] - a
        wts = window["timestamp"].to_numpy(np.int64)
        lv = None if levels is None else (levels[0][a:b], levels[1][a:b])

        def run(actions_at_rows: list[str | None], confs: np.ndarray,
                use_cfg: Any = cfg, window: pd.DataFrame = window,
                local: np.ndarray = local, wts: np.ndarray = wts,
                lv: tuple[np.ndarray, np.ndarray] | None = lv) -> dict[str, Any]:
            acts: list[str | None] = [None] * len(window)
            conf_all = np.ones(len(window))
            for j, act in zip(local.tolist(), actions_at_rows, strict=True):
                acts[j] = act
            conf_all[local] = confs
            eq, fills, held = simulate_signals(window, acts, conf_all, use_cfg,
                                               entry_levels=lv, symbol=symbol)
            return _curve(eq, fills, held, wts)

        fold_curves = {"ensemble": run(_actions_from_cols(cols), conf)}
        bh_eq, bh_fee = buy_and_hold(window["open"].to_numpy(), window["close"].to_numpy(),
                                     entry_index=min(1, len(window) - 1), cash=cfg.starting_cash,
                                     position_size_pct=cfg.position_size_pct,
                                     commission_pct=cfg.commission_pct)
        fold_curves["buy_and_hold"] = _curve(bh_eq, [], np.arange(len(window)) >= 1, wts)
        fold_curves["ma_crossover"] = run([ma_all[int(r)] for r in data.rows[te]],
                                          np.ones(te.shape[0]))
        for name in STRATEGIES:
            curves[name].append(fold_curves[name])
        for mc in MIN_CONFIDENCE_GRID:
            from dataclasses import replace

            gcols, gconf, _ = combine(stack, w, mc, break_even)
            grid_curves[mc].append(run(_actions_from_cols(gcols), gconf,
                                       use_cfg=replace(cfg, min_confidence=mc)))

        fold = {
            "fold": k + 1,
            "train_rows": int(tr.shape[0]),
            "test_rows": int(te.shape[0]),
            "train_start_ms": int(data.ts[tr[0]]),
            "train_end_ms": int(data.ts[tr[-1]]),
            "test_start_ms": int(data.ts[te[0]]),
            "test_end_ms": int(data.ts[te[-1]]),
            "weights": weights,
            "calibration_window": _calibration_window(data.ts[tr], span, config),
            "metrics": {
                name: classification_metrics(yte, preds[name], probas[name])
                for name in (*algos, "ensemble", *BASELINES)
            },
            "signals": _signal_stats(yte, cols),
            "trading": {name: trading_metrics([fold_curves[name]], tf_ms)
                        for name in STRATEGIES},
        }
        folds.append(fold)
        for algo in algos:
            ll_hist[algo].append(fold["metrics"][algo]["log_loss"])
        maj_hist.append(fold["metrics"]["majority"]["log_loss"])
        for name in probas:
            pooled.setdefault(name, []).append(probas[name])
            pooled_pred.setdefault(name, []).append(preds[name])
        for name in raw:
            pooled_raw.setdefault(name, []).append(raw[name])
        pooled_y.append(yte)
        pooled_cols.append(cols)

    y_all = np.concatenate(pooled_y)
    overall = {
        name: classification_metrics(
            y_all, np.concatenate(pooled_pred[name]), np.concatenate(pooled[name])
        )
        for name in pooled
    }
    calibration = {}
    for name in (*algos, "ensemble", "majority"):
        p_all = np.concatenate(pooled[name])
        raw_all = np.concatenate(pooled_raw.get(name, pooled[name]))
        onehot_buy = (y_all == CLASSES[2]).astype(np.float64)
        calibration[name] = {
            "brier": overall[name]["brier"],
            "brier_buy": overall[name]["brier_buy"],
            "brier_buy_uncalibrated": float(((raw_all[:, 2] - onehot_buy) ** 2).mean()),
            "reliability": reliability_table(y_all, p_all[:, 2]),
        }
    signals = _signal_stats(y_all, np.concatenate(pooled_cols))
    trading = {name: trading_metrics(curves[name], tf_ms) for name in STRATEGIES}
    confidence_grid = {f"{mc:g}": trading_metrics(grid_curves[mc], tf_ms)
                       for mc in MIN_CONFIDENCE_GRID}
    final_weights = _weights_from(ll_hist, maj_hist)
    min_trades = int(getattr(settings, "promotion_min_trades", 10))
    decision = promotion_decision(trading, min_trades, promote)
    if not gate:
        decision = {**decision, "promoted": promote,
                    "reason": "gate off (test fixture): " + decision["reason"]}

    # --- refit on every usable row and save ---------------------------------------------------
    rows = np.arange(n)
    if max_train_rows is not None and n > max_train_rows:
        rows = rows[-max_train_rows:]
    y_fin = data.y[rows]
    versions: dict[str, str] = {}
    members: dict[str, tuple[Any, dict[str, Any]]] = {}
    importances: dict[str, float] = {}
    baselines = {b: overall[b] for b in BASELINES}
    # What live monitoring compares the features and the signal mix with (tinhieu.monitor).
    # The signal mix is the walk-forward one (out of sample), not the refit's in-sample mix.
    drift_ref = feature_reference(data.X[rows], names,
                                  window=int(getattr(settings, "drift_window", 1440)))
    wf_actions = np.array(CLASSES)[np.concatenate(pooled_cols)]
    drift_ref["actions"] = {ACTIONS[c]: float((wf_actions == c).mean()) for c in CLASSES}
    for algo, model in build_models(config, algos).items():
        fitted = fit_model(algo, model, inputs[algo][rows], y_fin, config, span)
        base = fitted.base if isinstance(fitted, CalibratedModel) else fitted
        if algo == "rf":
            importances = {
                name: float(v)
                for name, v in zip(names, base.feature_importances_, strict=True)
            }
        meta = {
            "feature_schema": schema,
            "feature_names": names,
            "train_start_ms": int(data.ts[rows[0]]),
            "train_end_ms": int(data.ts[rows[-1]]),
            "train_rows": int(rows.shape[0]),
            "classes": [int(c) for c in fitted.classes_],
            "label": params,
            "calibration": ({"method": fitted.method, "rows": fitted.n_calibration}
                            if isinstance(fitted, CalibratedModel) else None),
            "metrics": {"walk_forward": overall[algo], "ensemble": overall["ensemble"],
                        "baselines": baselines, "n_splits": n_splits,
                        "trading": trading},
            "promotion": decision,
            "ensemble_weight": final_weights[algo],
            "params": _params(base),
            "config": asdict(config),
            "drift_reference": drift_ref,
        }
        if data_source:
            meta["data_source"] = dict(data_source)
        members[algo] = (fitted, meta)
        bar.update(1)
    # One registry call for the whole ensemble: one version (MLflow: one run, the gate's
    # verdict decides the alias) or one file-registry version per member.
    source = dict(data_source or {})
    versions = registry.register(
        symbol, members, promote=bool(decision["promoted"]), reason=decision["reason"],
        actor=actor,
        evidence={"params": {"n_splits": n_splits, "max_train_rows": max_train_rows,
                             "rows": n, "min_confidence": settings.min_confidence,
                             "timeframe": settings.timeframe, "config": asdict(config),
                             **({"data_source": source} if source else {})},
                  **({"data_source": source,
                      "version_tags": {f"data_source.{k}": v for k, v in source.items()}}
                     if source else {}),
                  "folds": folds, "overall": overall, "trading": trading,
                  "calibration": calibration, "confidence_grid": confidence_grid,
                  "signals": signals, "promotion": decision})
    if own_bar:
        bar.close()
    seconds = time.perf_counter() - started
    i18n.log(logger, logging.INFO if decision["promoted"] else logging.WARNING, "train.gate",
             symbol=symbol, verdict="promoted" if decision["promoted"] else "NOT promoted",
             reason=decision["reason"])
    i18n.log(logger, logging.INFO, "train.done", symbol=symbol, seconds=seconds,
             versions=",".join(f"{a}:{v}" for a, v in versions.items())
             if decision["promoted"] else "-")
    return TrainResult(
        symbol=symbol, versions=versions, weights=final_weights, folds=folds, overall=overall,
        signals=signals, importances=importances, rows=n,
        dropped_gap_rows=data.dropped_gap_rows, train_start_ms=int(data.ts[rows[0]]),
        train_end_ms=int(data.ts[rows[-1]]), label=params, seconds=seconds,
        promoted=bool(decision["promoted"]), config=asdict(config), trading=trading,
        calibration=calibration, confidence_grid=confidence_grid, promotion=decision,
    )


def evaluate_out_of_sample(
    df: pd.DataFrame,
    symbol: str,
    settings: Settings,
    registry: ModelRegistry,
    versions: Mapping[str, str],
    *,
    start_ms: int,
) -> dict[str, Any]:
    """Run trained models (any versions, promoted or not) over candles from ``start_ms``.

    ``df`` holds the history before ``start_ms`` too (the feature warm-up) and the candles to
    judge after it. The gated ensemble (weights, break-even and calibration from the models'
    metadata, ``settings.min_confidence``) trades through :func:`tinhieu.broker.step` beside
    buy-and-hold and the MA crossover; its probabilities are scored against the labels of the
    same candles (the label parameters stored with the models).
    """
    from tinhieu.broker import RiskConfig
    from tinhieu.ensemble import Ensemble, Member
    from tinhieu.performance import buy_and_hold

    symbol = canonical(symbol)
    df = df.reset_index(drop=True)
    members, gates, params = [], [], None
    for algo, version in versions.items():
        lm = registry.load(symbol, algo, version)
        members.append(Member(algo, version, float(lm.metadata.get("ensemble_weight", 1.0)),
                              compile_model(lm.model), lm.model))
        params = lm.metadata.get("label", params)
        if params and params.get("break_even") is not None:
            gates.append(float(params["break_even"]))
    if not any(m.weight > 0 for m in members):
        members = [Member(m.algorithm, m.version, 1.0, m.fast, m.model) for m in members]
    ens = Ensemble(symbol, members, min_confidence=settings.min_confidence,
                   buy_threshold=max(gates) if gates else None)
    ts = df["timestamp"].to_numpy(np.int64)
    first = int(np.searchsorted(ts, start_ms))
    X = compute_features(df)[list(MODEL_FEATURES)].to_numpy(np.float64)
    ok = np.isfinite(X).all(axis=1)
    before = np.flatnonzero(ok[:first])  # what a sequence model's first windows read
    ok[:first] = False
    idx = np.nonzero(ok)[0]
    if idx.size == 0:
        raise TrainingError(f"{symbol}: no complete feature row after {_iso(start_ms)}")
    probas = ens.member_probas(X[idx], history=X[before[-ens.context_rows:]])
    cols, conf, weighted = combine(probas, ens.weights, ens.min_confidence, ens.buy_threshold)
    window = df.iloc[first:]
    acts: list[str | None] = [None] * len(window)
    confs = np.ones(len(window))
    for j, act, cf in zip((idx - first).tolist(), _actions_from_cols(cols), conf, strict=True):
        acts[j] = act
        confs[j] = cf
    cfg = RiskConfig.from_settings(settings)
    wts = window["timestamp"].to_numpy(np.int64)
    lv = None
    if params is not None and params.get("barrier_mode") == "volatility":
        sl, tp = barrier_levels(df["close"].to_numpy(np.float64), mode="volatility",
                                stop_loss_pct=params["stop_loss_pct"],
                                take_profit_pct=params["take_profit_pct"],
                                max_holding=int(params["max_holding"]),
                                vol_window=params["vol_window"],
                                stop_vol_mult=params["stop_vol_mult"],
                                take_vol_mult=params["take_vol_mult"])
        lv = (sl[first:], tp[first:])
    curves = {"ensemble": _curve(*simulate_signals(window, acts, confs, cfg, entry_levels=lv,
                                                   symbol=symbol), wts)}
    bh_eq, _ = buy_and_hold(window["open"].to_numpy(), window["close"].to_numpy(),
                            entry_index=min(1, len(window) - 1), cash=cfg.starting_cash,
                            position_size_pct=cfg.position_size_pct,
                            commission_pct=cfg.commission_pct)
    curves["buy_and_hold"] = _curve(bh_eq, [], np.arange(len(window)) >= 1, wts)
    ma = ma_crossover_actions(df["close"].to_numpy(np.float64))[first:]
    curves["ma_crossover"] = _curve(*simulate_signals(window, ma, np.ones(len(window)), cfg,
                                                      entry_levels=lv, symbol=symbol), wts)
    out: dict[str, Any] = {
        "start": _iso(int(wts[0])), "end": _iso(int(wts[-1])), "candles": len(window),
        "trading": {name: trading_metrics([cv], settings.timeframe_ms)
                    for name, cv in curves.items()},
    }
    if params is not None:
        labels = make_scheme_labels(df, params)
        gap = spans_gap(ts, before=max(WARMUP, labels.span + 1), after=labels.span,
                        timeframe_ms=settings.timeframe_ms)
        known = ~np.isnan(labels.y[idx]) & ~gap[idx]
        if known.any():
            y = labels.y[idx][known].astype(int)
            p = weighted[known]
            out["classification"] = classification_metrics(
                y, np.array(CLASSES)[p.argmax(axis=1)].astype(float), p)
            out["signals"] = _signal_stats(y, cols[known])
            out["reliability"] = reliability_table(y, p[:, 2])
    return out


def train_quick(
    df: pd.DataFrame,
    symbol: str,
    settings: Settings,
    registry: ModelRegistry,
    *,
    promote: bool = True,
    label_scheme: str = "fixed_horizon",
) -> TrainResult:
    """Tiny real models into ``registry`` in a few seconds (tests, demos): 2 folds, QUICK sizes.

    A test fixture, not a product: fixed-horizon labels by default (small models then emit
    BUY and SELL often enough for pipeline tests to see orders), no calibration, and the
    promotion gate off (promoted whenever ``promote``). Use ~3-5k candles of real data.
    """
    params = label_settings(settings.model_copy(update={"label_scheme": label_scheme}))
    return train_symbol(df, symbol, settings, registry, n_splits=2, promote=promote,
                        progress=False, config=QUICK, gate=False, label_params=params)


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
        chart = Path(report_path).with_name(f"{Path(report_path).stem}_importance.png")
        for symbol, res in results.items():  # the report beside each symbol's run
            registry.attach_files(symbol, next(iter(res.versions.values())),
                                  [Path(report_path), chart])
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
    Models go to :func:`tinhieu.registry.open_registry` (MLflow by default); the report to
    ``report_path``.
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
    registry = open_registry(settings, clock=clock)
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
