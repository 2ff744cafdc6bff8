"""The ensemble rule and a fast inference path for the three models.

Weighted soft vote over the classes SELL (-1), NEUTRAL (0), BUY (+1)::

    p = sum_m w_m * p_m / sum_m w_m          # p_m: model m's class probabilities
    action = argmax(p)                        # a tie with NEUTRAL goes to NEUTRAL
    action = NEUTRAL when p[action] < min_confidence
    confidence = p[action]                    # the probability of the class emitted

Models trained on trade-outcome (triple-barrier) labels carry a break-even probability ``b``
(:func:`tinhieu.labels.break_even_probability` of the stop loss, take profit and fees); for
them the rule is the trader's one (``buy_threshold = b``)::

    BUY      when p[BUY] >= max(min_confidence, b)      # positive expected result after fees
    SELL     else when SELL = argmax(p), p[SELL] >= min_confidence and p[BUY] < b
    NEUTRAL  otherwise

The probabilities are calibrated (:class:`CalibratedModel`) so that ``p[BUY]`` is the
frequency with which the broker's take profit came first on unseen candles.

Inference does not call scikit-learn: each fitted model is compiled once into flat numpy
arrays (trees: node tables traversed for all trees at once; scaler + linear models: plain
arithmetic; the sigmoid-calibrated linear SVM likewise). scikit-learn's per-call input
validation costs ~0.3 ms per model per row; the compiled path costs a few tens of
microseconds and equals ``predict_proba`` to 1e-9 (tests/unit/test_ensemble.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.special import expit

from tinhieu import i18n
from tinhieu.core_types import Vote  # one vote type for ensemble, records and bot
from tinhieu.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, MODEL_COLUMNS, MODEL_FEATURES
from tinhieu.labels import ACTIONS, CLASSES, DOWN, NEUTRAL, UP
from tinhieu.registry import LoadedModel, ModelRegistry, ModelRegistryError

ALGORITHMS: tuple[str, ...] = ("rf", "svm", "lr")
OPTIONAL_ALGORITHMS: tuple[str, ...] = ("lstm",)
"""Served only when its extra is installed (``pip install -e .[deep]``) and the symbol has a
production model of it; it reads the last rows, not one (:mod:`tinhieu.deep`)."""
_NEUTRAL_COL = CLASSES.index(NEUTRAL)
_BUY_COL = CLASSES.index(UP)
_SELL_COL = CLASSES.index(DOWN)
_ACTION_BY_COL = tuple(ACTIONS[c] for c in CLASSES)

logger = logging.getLogger(__name__)
i18n.register(
    {
        "ensemble.partial": (
            i18n.TAGS["warn"],
            "{symbol}: thieu mo hinh production {missing}; dung {present}",
            "{symbol}: no production model for {missing}; using {present}",
        ),
        "ensemble.loaded": (
            i18n.TAGS["model"],
            "{symbol}: nap ensemble {version} (trong so {weights})",
            "{symbol}: loaded ensemble {version} (weights {weights})",
        ),
    }
)


@dataclass(frozen=True)
class Prediction:
    """The ensemble's verdict for one candle."""

    action: str
    confidence: float
    votes: tuple[Vote, ...]
    model_version: str
    probabilities: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    """Weighted probabilities of (SELL, NEUTRAL, BUY)."""


# --- weights ------------------------------------------------------------------------------------
def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"rf=1,svm=0.5,lr=1"`` -> ``{"rf": 1.0, "svm": 0.5, "lr": 1.0}``; None/empty -> None.

    Models not named get weight 0 (``"rf=1"`` means RF alone).

    Raises
    ------
    ValueError
        Unknown model name, a value that is not a finite number >= 0, or all weights zero.
    """
    if text is None or not text.strip():
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in (*ALGORITHMS, *OPTIONAL_ALGORITHMS):
            raise ValueError(
                f"ensemble_weights: bad item {part.strip()!r}; use e.g. 'rf=1,svm=1,lr=1' with "
                f"models {', '.join((*ALGORITHMS, *OPTIONAL_ALGORITHMS))}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(
                f"ensemble_weights: {name} weight {value.strip()!r} is not a number"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"ensemble_weights: {name} weight must be >= 0, got {value.strip()}")
        weights[name] = number
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"ensemble_weights: at least one weight must be > 0 (got {text!r})")
    return weights


# --- the vote -----------------------------------------------------------------------------------
def combine(
    probas: np.ndarray,
    weights: np.ndarray,
    min_confidence: float,
    buy_threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ensemble rule on stacked model probabilities.

    Parameters
    ----------
    probas : numpy.ndarray
        Shape (n_models, n_rows, 3), columns in ``CLASSES`` order (SELL, NEUTRAL, BUY).
    weights : numpy.ndarray
        Shape (n_models,), >= 0, not all zero.
    min_confidence : float
        Below it the action is NEUTRAL.
    buy_threshold : float, optional
        The break-even probability of trade-outcome labels: BUY when ``p[BUY]`` clears
        ``max(min_confidence, buy_threshold)`` even if another class is more likely; SELL
        only while ``p[BUY]`` is below it. None: the plain argmax rule (fixed-horizon labels).

    Returns
    -------
    (columns, confidences, weighted)
        Column index of the action per row, the probability of that class, and the weighted
        probabilities (n_rows, 3).
    """
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if not total > 0:
        raise ValueError("ensemble weights must not all be zero")
    weighted = (probas * (w / total)[:, None, None]).sum(axis=0)
    best = weighted.max(axis=1)
    cols = np.argmax(weighted, axis=1)
    cols = np.where(weighted[:, _NEUTRAL_COL] == best, _NEUTRAL_COL, cols)
    cols = np.where(best < min_confidence, _NEUTRAL_COL, cols)
    if buy_threshold is not None:
        p_buy = weighted[:, _BUY_COL]
        buy = p_buy >= max(float(min_confidence), float(buy_threshold))
        cols = np.where(cols == _BUY_COL, _NEUTRAL_COL, cols)  # BUY only through the gate
        cols = np.where((cols == _SELL_COL) & (p_buy >= buy_threshold), _NEUTRAL_COL, cols)
        cols = np.where(buy, _BUY_COL, cols)
    conf = weighted[np.arange(weighted.shape[0]), cols]
    return cols, conf, weighted


# --- compiled models ------------------------------------------------------------------------------
class FastModel(Protocol):
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, n_model_features) -> (n, 3) probabilities in ``CLASSES`` order."""
        ...


def _class_columns(classes: Sequence[Any]) -> np.ndarray:
    try:
        return np.array([CLASSES.index(int(c)) for c in classes])
    except ValueError:
        raise ValueError(f"model classes {list(classes)} are not a subset of {CLASSES}") from None


def _linear(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    # Elementwise product + sum over the last axis: the same arithmetic for one row or many,
    # so predict() and predict_many() agree exactly (a BLAS matmul may not).
    return (X[:, None, :] * coef[None, :, :]).sum(axis=2) + intercept


class _Scaler:
    def __init__(self, scaler: Any | None) -> None:
        self.mean = None if scaler is None or scaler.mean_ is None else scaler.mean_.copy()
        self.scale = None if scaler is None or scaler.scale_ is None else scaler.scale_.copy()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.mean is not None:
            X = X - self.mean
        if self.scale is not None:
            X = X / self.scale
        return X


class FastForest:
    """A fitted RandomForest/ExtraTrees classifier as flat node tables."""

    def __init__(self, forest: Any) -> None:
        cols = _class_columns(forest.classes_)
        lefts, rights, feats, thrs, values, roots = [], [], [], [], [], []
        offset = 0
        depth = 0
        for est in forest.estimators_:
            t = est.tree_
            n = t.node_count
            leaf = t.children_left < 0
            idx = np.arange(n)
            lefts.append(np.where(leaf, idx, t.children_left) + offset)
            rights.append(np.where(leaf, idx, t.children_right) + offset)
            feats.append(np.where(leaf, 0, t.feature))
            thrs.append(np.where(leaf, np.inf, t.threshold))
            v = t.value[:, 0, :].astype(np.float64)
            v = v / v.sum(axis=1, keepdims=True)
            full = np.zeros((n, len(CLASSES)))
            full[:, cols] = v
            values.append(full)
            roots.append(offset)
            offset += n
            depth = max(depth, int(t.max_depth))
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.feature = np.concatenate(feats).astype(np.intp)
        self.threshold = np.concatenate(thrs)
        self.value = np.concatenate(values)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 inputs with float64 thresholds.
        x = X.astype(np.float32).astype(np.float64)
        n = x.shape[0]
        node = np.repeat(self.roots[None, :], n, axis=0)
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node].sum(axis=1) / self.n_trees


class FastLogistic:
    """StandardScaler + LogisticRegression as numpy arithmetic."""

    def __init__(self, scaler: Any | None, lr: Any) -> None:
        self.scaler = _Scaler(scaler)
        self.cols = _class_columns(lr.classes_)
        self.coef = np.asarray(lr.coef_, dtype=np.float64)
        self.intercept = np.asarray(lr.intercept_, dtype=np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = _linear(self.scaler(X), self.coef, self.intercept)
        if z.shape[1] == 1:
            p1 = expit(z[:, 0])
            p = np.stack([1.0 - p1, p1], axis=1)
        else:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
        out = np.zeros((X.shape[0], len(CLASSES)))
        out[:, self.cols] = p
        return out


class FastCalibratedLinear:
    """StandardScaler + CalibratedClassifierCV(sigmoid) over a linear SVM (or any linear)."""

    def __init__(self, scaler: Any | None, calibrated: Any) -> None:
        if getattr(calibrated, "method", "sigmoid") != "sigmoid":
            raise ValueError("only sigmoid calibration has a fast path")
        self.scaler = _Scaler(scaler)
        self.cols = _class_columns(calibrated.classes_)
        self.parts = []
        for cc in calibrated.calibrated_classifiers_:
            est = cc.estimator
            cal_classes = list(cc.classes)
            pos = np.array([cal_classes.index(c) for c in est.classes_])
            a = np.array([c.a_ for c in cc.calibrators], dtype=np.float64)
            b = np.array([c.b_ for c in cc.calibrators], dtype=np.float64)
            self.parts.append(
                (np.asarray(est.coef_, np.float64), np.asarray(est.intercept_, np.float64),
                 pos, a, b, len(cal_classes))
            )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Xs = self.scaler(X)
        n = X.shape[0]
        total = None
        for coef, intercept, pos, a, b, n_classes in self.parts:
            d = _linear(Xs, coef, intercept)
            proba = np.zeros((n, n_classes))
            if n_classes == 2:
                proba[:, 1] = expit(-(a[0] * d[:, 0] + b[0]))
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                proba[:, pos[: d.shape[1]]] = expit(-(a * d + b))
                den = proba.sum(axis=1)[:, None]
                proba = np.divide(proba, den, out=np.full_like(proba, 1 / n_classes),
                                  where=den != 0)
            total = proba if total is None else total + proba
        assert total is not None
        mean = total / len(self.parts)
        out = np.zeros((n, len(CLASSES)))
        out[:, self.cols] = mean
        return out


class SklearnFallback:
    """Any other classifier: scikit-learn's own predict_proba (slow, but correct)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cols = _class_columns(model.classes_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], len(CLASSES)))
        out[:, self.cols] = self.model.predict_proba(X)
        return out


class CalibratedModel:
    """A fitted classifier whose class scores are mapped to probabilities by calibrators
    fitted on LATER candles than the classifier saw (walk-forward; never on a test fold).

    Per class ``k``: ``q_k = cal_k(score_k)`` where ``score`` is the base model's
    ``predict_proba`` (forest, logistic regression) or ``decision_function`` (linear SVM), and
    ``cal_k`` is isotonic (a monotone step function, ``numpy.interp`` over its thresholds) or
    sigmoid (Platt: ``expit(a score + b)``) fitted with ``y == k`` as the target. Then
    ``q`` is clipped to [1e-4, 1] and normalized to sum to one. Inference is numpy only.
    """

    def __init__(self, base: Any, method: str = "isotonic", score: str = "proba") -> None:
        if method not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration method must be isotonic or sigmoid, got {method!r}")
        if score not in ("proba", "decision"):
            raise ValueError(f"score must be 'proba' or 'decision', got {score!r}")
        self.base = base
        self.method = method
        self.score = score
        self.classes_ = np.asarray(base.classes_)
        self.calibrators: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.n_calibration = 0
        self._fast: FastModel | None = None

    # pickling: the compiled base is rebuilt on first use
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fast"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _scores(self, X: np.ndarray) -> np.ndarray:
        if self.score == "proba":
            if self._fast is None:
                self._fast = compile_model(self.base)
            full = self._fast.predict_proba(X)  # CLASSES order
            return full[:, _class_columns(self.classes_)]
        if self._fast is None:
            self._fast = _FastDecision(self.base)
        return self._fast.predict_proba(X)  # decision values per class of classes_

    def _reference_scores(self, X: np.ndarray) -> np.ndarray:
        """The same scores through scikit-learn (tests compare the numpy path with it)."""
        if self.score == "proba":
            return np.asarray(self.base.predict_proba(X))
        return _decision_columns(np.asarray(self.base.decision_function(X)), len(self.classes_))

    def fit_calibration(self, X: np.ndarray, y: np.ndarray) -> CalibratedModel:
        """Fit one calibrator per class on held-out rows ``X, y`` (later than the base's)."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        scores = self._scores(np.asarray(X, dtype=np.float64))
        y = np.asarray(y)
        self.calibrators = []
        for j, cls in enumerate(self.classes_):
            target = (y == cls).astype(np.float64)
            s = scores[:, j]
            if target.min() == target.max():  # one outcome only: its frequency, constant
                value = float(target.mean()) if target.size else 0.0
                self.calibrators.append(("const", np.array([value]), np.array([])))
            elif self.method == "isotonic":
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                iso.fit(s, target)
                self.calibrators.append(("isotonic", np.asarray(iso.X_thresholds_, np.float64),
                                         np.asarray(iso.y_thresholds_, np.float64)))
            else:
                lr = LogisticRegression(C=1e4, solver="lbfgs")
                lr.fit(s.reshape(-1, 1), target)
                self.calibrators.append(("sigmoid", np.array([lr.coef_[0, 0],
                                                              lr.intercept_[0]]), np.array([])))
        self.n_calibration = int(y.shape[0])
        return self

    def _calibrate(self, scores: np.ndarray) -> np.ndarray:
        if not self.calibrators:
            raise ValueError("CalibratedModel: fit_calibration was never called")
        q = np.empty_like(scores)
        for j, (kind, a, b) in enumerate(self.calibrators):
            if kind == "const":
                q[:, j] = a[0]
            elif kind == "isotonic":
                q[:, j] = np.interp(scores[:, j], a, b)
            else:
                q[:, j] = expit(a[0] * scores[:, j] + a[1])
        q = np.clip(q, 1e-4, 1.0)
        return q / q.sum(axis=1, keepdims=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities in ``classes_`` order (numpy only after the first call)."""
        return self._calibrate(self._scores(np.asarray(X, dtype=np.float64)))

    def reference_predict_proba(self, X: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` with the base model evaluated by scikit-learn."""
        return self._calibrate(self._reference_scores(np.asarray(X, dtype=np.float64)))

    def uncalibrated_proba(self, X: np.ndarray) -> np.ndarray:
        """The base model's own probabilities in ``CLASSES`` order (reports compare)."""
        X = np.asarray(X, dtype=np.float64)
        if self.score == "proba":
            return compile_model(self.base).predict_proba(X)
        d = self._scores(X)
        e = np.exp(d - d.max(axis=1, keepdims=True))
        out = np.zeros((X.shape[0], len(CLASSES)))
        out[:, _class_columns(self.classes_)] = e / e.sum(axis=1, keepdims=True)
        return out


def _decision_columns(d: np.ndarray, n_classes: int) -> np.ndarray:
    if d.ndim == 1 or d.shape[1] == 1:
        d = d.reshape(-1)
        return np.stack([-d, d], axis=1) if n_classes == 2 else d.reshape(-1, 1)
    return d


class _FastDecision:
    """StandardScaler + a linear classifier's decision function, numpy only."""

    def __init__(self, model: Any) -> None:
        from sklearn.pipeline import Pipeline

        scaler, final = None, model
        if isinstance(model, Pipeline):
            steps = [st for _, st in model.steps if st not in (None, "passthrough")]
            scaler, final = (steps[0], steps[1]) if len(steps) == 2 else (None, steps[0])
        self.scaler = _Scaler(scaler)
        self.coef = np.asarray(final.coef_, dtype=np.float64)
        self.intercept = np.asarray(final.intercept_, dtype=np.float64)
        self.n_classes = len(final.classes_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # decision values, see caller
        return _decision_columns(_linear(self.scaler(X), self.coef, self.intercept),
                                 self.n_classes)


class FastCalibrated(SklearnFallback):
    """:class:`CalibratedModel` in ``CLASSES`` order: its own predict_proba is numpy-only
    already, so the fallback's column reordering is all it needs."""


def compile_model(model: Any) -> FastModel:
    """A fitted scikit-learn classifier -> numpy-only predictor with the same probabilities."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(model, CalibratedModel):
        return FastCalibrated(model)
    scaler = None
    final = model
    if isinstance(model, Pipeline):
        steps = [s for _, s in model.steps if s not in (None, "passthrough")]
        if len(steps) == 2 and isinstance(steps[0], StandardScaler):
            scaler, final = steps
        elif len(steps) == 1:
            final = steps[0]
        else:
            return SklearnFallback(model)
    if isinstance(final, (RandomForestClassifier, ExtraTreesClassifier)) and scaler is None:
        return FastForest(final)
    if isinstance(final, LogisticRegression):
        return FastLogistic(scaler, final)
    if (
        isinstance(final, CalibratedClassifierCV)
        and final.method == "sigmoid"
        and all(hasattr(cc.estimator, "coef_") for cc in final.calibrated_classifiers_)
    ):
        return FastCalibratedLinear(scaler, final)
    return SklearnFallback(model)


# --- the ensemble ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    algorithm: str
    version: str
    weight: float
    fast: FastModel
    model: Any


def sequence_length(model: Any) -> int:
    """Feature rows one prediction of ``model`` reads (1; the LSTM: its window length)."""
    return int(getattr(model, "sequence_length", 1) or 1)


class Ensemble:
    """Weighted soft vote of the production models of one symbol.

    Build it with :meth:`from_registry`; rebuild it when
    ``registry.production_fingerprint(symbol)`` changes (hot reload).

    Rows passed to :meth:`predict_many` (and ``member_probas``, ``actions``) are consecutive
    feature rows, oldest first. A sequence member (the LSTM) reads, for each row, that row
    and the ones before it: from ``X`` itself and, for the first rows, from ``history`` (the
    last ``context_rows`` rows before ``X``; the live pipeline keeps them in the symbol's
    record, the backtest passes the preceding chunk's tail). Without history the oldest row
    is repeated (:mod:`tinhieu.deep.sequences`).
    """

    def __init__(
        self,
        symbol: str,
        members: Sequence[Member],
        min_confidence: float = 0.6,
        feature_schema: str = FEATURE_SCHEMA_VERSION,
        buy_threshold: float | None = None,
    ) -> None:
        if not members:
            raise ModelRegistryError(f"{symbol}: an ensemble needs at least one model")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {min_confidence}")
        weights = np.array([m.weight for m in members], dtype=np.float64)
        if not weights.sum() > 0:
            raise ValueError(f"{symbol}: ensemble weights must not all be zero")
        self.symbol = symbol
        self.members = tuple(members)
        self.min_confidence = float(min_confidence)
        self.buy_threshold = None if buy_threshold is None else float(buy_threshold)
        """Break-even probability of the BUY gate (trade-outcome labels), else None."""
        self.feature_schema = feature_schema
        self.metadata: dict[str, Mapping[str, Any]] = {}
        """Each member's registry metadata (walk-forward figures, drift reference)."""
        self.weights = weights / weights.sum()
        self.model_version = ",".join(f"{m.algorithm}:{m.version}" for m in self.members)
        self._n_model = len(MODEL_FEATURES)
        self._n_full = len(FEATURE_NAMES)
        self.context_rows = max(sequence_length(m.model) for m in self.members) - 1
        """Rows before ``X`` a sequence member reads (0: every member reads one row)."""

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        symbol: str,
        weights: Mapping[str, float] | None = None,
        min_confidence: float = 0.6,
    ) -> Ensemble:
        """Load the production rf/svm/lr models of ``symbol``.

        Models trained on trade-outcome labels carry their break-even probability
        (``metadata["label"]["break_even"]``): BUY then needs
        ``max(min_confidence, break_even)`` (see :func:`combine`).

        Parameters
        ----------
        registry : ModelRegistry
        symbol : str
        weights : mapping, optional
            Overrides the default weights (walk-forward skill stored at training); models not
            named get weight 0 (see :func:`parse_weights`).
        min_confidence : float
            Below it the action is NEUTRAL.

        Raises
        ------
        ModelRegistryError
            No production model at all for ``symbol``, or one that fails verification.
        """
        loaded: list[LoadedModel] = []
        missing = []
        optional = [a for a in OPTIONAL_ALGORITHMS if registry.production(symbol, a) is not None]
        if optional:
            from tinhieu.deep import available

            optional = optional if available() else []  # no extra: rf/svm/lr as before
        for algo in (*ALGORITHMS, *optional):
            if registry.production(symbol, algo) is None:
                missing.append(algo)
                continue
            loaded.append(registry.load(symbol, algo))
        if not loaded:
            raise ModelRegistryError(
                f"no production models for {symbol} in {registry.root}; train them first "
                "(faust -A streams.app train --symbols ...)"
            )
        if missing:
            i18n.log(logger, logging.WARNING, "ensemble.partial", symbol=symbol,
                     missing=",".join(missing), present=",".join(m.algorithm for m in loaded))
        members = []
        for lm in loaded:
            if weights is not None:
                w = float(weights.get(lm.algorithm, 0.0))
            else:
                w = float(lm.metadata.get("ensemble_weight", 1.0))
            members.append(Member(lm.algorithm, lm.version, w, compile_model(lm.model), lm.model))
        if not any(m.weight > 0 for m in members):
            if weights is not None:
                raise ValueError(
                    f"ensemble_weights {dict(weights)} give weight 0 to every production model "
                    f"of {symbol} ({', '.join(m.algorithm for m in members)}); name at least one"
                )
            # every model scored no better than the majority baseline: fall back to equal weights
            members = [Member(m.algorithm, m.version, 1.0, m.fast, m.model) for m in members]
        gates = [lm.metadata.get("label", {}).get("break_even") for lm in loaded]
        known = [float(g) for g in gates if g is not None]
        buy_threshold = max(known) if known else None  # the strictest of the members
        ens = cls(symbol, members, min_confidence=min_confidence, buy_threshold=buy_threshold)
        ens.metadata = {lm.algorithm: lm.metadata for lm in loaded}
        i18n.log(logger, logging.INFO, "ensemble.loaded", symbol=symbol,
                 version=ens.model_version,
                 weights=",".join(f"{m.algorithm}={w:.2f}"
                                  for m, w in zip(members, ens.weights, strict=True)))
        return ens

    # ------------------------------------------------------------------------------------------
    def _model_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"features must be 2-D (rows, features), got shape {X.shape}")
        if X.shape[1] == self._n_full:
            X = X[:, MODEL_COLUMNS]
        elif X.shape[1] != self._n_model:
            raise ValueError(
                f"{self.symbol}: feature rows have {X.shape[1]} values; expected "
                f"{self._n_full} (FEATURE_NAMES) or {self._n_model} (MODEL_FEATURES)"
            )
        if not np.isfinite(X).all():
            bad = sorted({MODEL_FEATURES[j] for j in np.nonzero(~np.isfinite(X))[1]})
            raise ValueError(
                f"{self.symbol}: features {', '.join(bad)} are not finite (warm-up not over?); "
                "no prediction for this candle"
            )
        return X

    def member_probas(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Each member's class probabilities: shape (n_models, n_rows, 3).

        ``history``: feature rows just before ``X`` (only sequence members read them)."""
        Xm = self._model_matrix(X)
        out = []
        for m in self.members:
            length = sequence_length(m.model)
            if length == 1:
                out.append(m.fast.predict_proba(Xm))
                continue
            from tinhieu.deep.sequences import serving_windows

            past = None
            if history is not None and len(history):
                past = self._model_matrix(np.asarray(history, dtype=np.float64)[-(length - 1):])
            out.append(m.fast.predict_proba(serving_windows(past, Xm, length)))
        return np.stack(out)

    def _predictions(self, X: np.ndarray, history: np.ndarray | None = None) -> list[Prediction]:
        probas = self.member_probas(X, history)
        cols, conf, weighted = combine(probas, self.weights, self.min_confidence,
                                       self.buy_threshold)
        own_cols = probas.argmax(axis=2)
        out = []
        for i in range(cols.shape[0]):
            votes = tuple(
                Vote(
                    model=m.algorithm,
                    action=_ACTION_BY_COL[own_cols[k, i]],
                    confidence=float(probas[k, i, own_cols[k, i]]),
                    version=m.version,
                    weight=float(self.weights[k]),
                )
                for k, m in enumerate(self.members)
            )
            out.append(
                Prediction(
                    action=_ACTION_BY_COL[cols[i]],
                    confidence=float(conf[i]),
                    votes=votes,
                    model_version=self.model_version,
                    probabilities=(float(weighted[i, 0]), float(weighted[i, 1]),
                                   float(weighted[i, 2])),
                )
            )
        return out

    def predict(self, features: np.ndarray, history: np.ndarray | None = None) -> Prediction:
        """Verdict for one feature row (``FEATURE_NAMES`` or ``MODEL_FEATURES`` order);
        ``history``: the rows before it (sequence members).

        Raises
        ------
        ValueError
            Wrong length, or a feature is NaN/inf (the candle gets no signal).
        """
        row = np.asarray(features, dtype=np.float64).reshape(1, -1)
        return self._predictions(row, history)[0]

    def predict_many(self, X: np.ndarray, history: np.ndarray | None = None) -> list[Prediction]:
        """Verdicts for many consecutive rows; the same as :meth:`predict` row by row (each
        with the rows before it as ``history``)."""
        return self._predictions(X, history)

    def predict_proba(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Weighted ensemble probabilities (n_rows, 3) in (SELL, NEUTRAL, BUY) order."""
        return combine(self.member_probas(X, history), self.weights, self.min_confidence,
                       self.buy_threshold)[2]

    def actions(self, X: np.ndarray,
                history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Action column (``CLASSES`` order) and confidence per row: the rule of
        :meth:`predict_many` without building vote objects (backtests, evaluation)."""
        cols, conf, _ = combine(self.member_probas(X, history), self.weights,
                                self.min_confidence, self.buy_threshold)
        return cols, conf
