"""The trained LSTM as numpy arrays: what the registry stores and the ensemble serves.

``LstmModel.predict_proba`` is the network's forward pass in numpy (float64), verified equal
to Keras' own output (float32) to 1e-5 (tests/unit/test_deep.py). It imports neither Keras nor
JAX, so a saved model loads and predicts without them; the ensemble still serves it only when
the extra is installed (one rule for "is the LSTM part of this worker").

Network (Keras' conventions, gates in the order input, forget, cell, output)::

    x_t   = clip((features_t - mean) / scale, -CLIP, CLIP)          t = 1..L (oldest first)
    z_t   = x_t W + h_{t-1} U + b
    c_t   = sigmoid(z_f) c_{t-1} + sigmoid(z_i) tanh(z_c);   h_t = sigmoid(z_o) tanh(c_t)
    e_t   = v . tanh(h_t A + a);   alpha = softmax_t(e);   context = sum_t alpha_t h_t
    p     = softmax(context D + d)                                   (SELL, NEUTRAL, BUY)

Every product is an element-wise multiply and a sum over the last axis (no BLAS), so a row's
result does not depend on the other rows of the batch: ``predict`` on one candle equals
``predict_many`` on many, bit for bit, as for the tree and linear models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from tinhieu.deep import SEQUENCE_LENGTH
from tinhieu.deep.sequences import Sequences
from tinhieu.ensemble import CalibratedModel
from tinhieu.labels import CLASSES

CLIP = 10.0
"""Standardized inputs are clipped to +-CLIP (a flash-crash candle must not saturate every gate)."""
_CHUNK = 2048


@dataclass(frozen=True)
class LstmConfig:
    """Sizes and training rules of the LSTM. Modest: 2 shared CPU cores."""

    sequence_length: int = SEQUENCE_LENGTH
    units: int = 16
    attention_units: int = 16
    dropout: float = 0.1
    learning_rate: float = 2e-3
    batch_size: int = 256
    max_epochs: int = 15
    patience: int = 2
    """Early stopping: epochs without a lower validation loss before the best weights return."""
    validation_share: float = 0.15
    """Most recent share of the fitted rows (after a purge of the label span) that early
    stopping watches; the calibration rows come after them and stay unseen."""
    max_train_rows: int | None = 30_000
    """Most recent rows fitted (like svm_max_rows): the LSTM is the slowest fit."""
    seed: int = 7
    class_weight: str | None = "balanced"
    calibrate: bool = True
    calibration_share: float = 0.25
    calibration: str = "isotonic"


QUICK_LSTM = LstmConfig(units=8, attention_units=8, max_epochs=2, patience=1,
                        max_train_rows=4_000, calibrate=False)
"""Tiny LSTM for tests and demos (what ``training.QUICK`` selects)."""


def _lin(x: np.ndarray, wt: np.ndarray, b: np.ndarray) -> np.ndarray:
    # (n, k) x (m, k) -> (n, m): element-wise product and a sum over the last axis.
    return (x[:, None, :] * wt[None, :, :]).sum(axis=2) + b


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


class LstmModel:
    """An exported LSTM-with-attention classifier (numpy weights, scaler, training record)."""

    sequence_length: int

    def __init__(self, weights: dict[str, np.ndarray], mean: np.ndarray, scale: np.ndarray,
                 config: LstmConfig, history: dict[str, Any] | None = None) -> None:
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.config = config
        self.sequence_length = int(config.sequence_length)
        self.history = dict(history or {})
        """Epochs run, best epoch, losses: what early stopping saw."""
        self.classes_ = np.array(CLASSES)
        w = self.weights
        self._wt = w["kernel"].T.copy()          # (4u, f)
        self._ut = w["recurrent_kernel"].T.copy()  # (4u, u)
        self._at = w["att_w"].T.copy()           # (a, u)
        self._dt = w["out_w"].T.copy()           # (3, u)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def standardize(self, rows: np.ndarray) -> np.ndarray:
        """What the network sees of raw feature rows (Keras is fed the same, as float32)."""
        return np.clip((np.asarray(rows, dtype=np.float64) - self.mean) / self.scale, -CLIP, CLIP)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Sizes and rules (the registry metadata's ``params``)."""
        return {**asdict(self.config), **{f"history_{k}": v for k, v in self.history.items()
                                          if isinstance(v, (int, float, str))}}

    def predict_proba(self, X: Sequences | np.ndarray) -> np.ndarray:
        """(n, 3) probabilities in ``CLASSES`` order of windows ``X`` ((n, L, f) or
        :class:`Sequences`)."""
        seq = X if isinstance(X, Sequences) else _as_sequences(np.asarray(X, dtype=np.float64))
        if seq.length != self.sequence_length:
            raise ValueError(f"lstm: windows of {seq.length} rows, the model was trained on "
                             f"{self.sequence_length}")
        used = np.unique(seq.index)
        proj = np.zeros((seq.base.shape[0], self._wt.shape[0]))
        for lo in range(0, used.size, _CHUNK):
            part = used[lo:lo + _CHUNK]
            proj[part] = _lin(self.standardize(seq.base[part]), self._wt, self.weights["bias"])
        out = np.empty((len(seq), len(CLASSES)))
        for lo in range(0, len(seq), _CHUNK):
            out[lo:lo + _CHUNK] = self._recur(proj, seq.index[lo:lo + _CHUNK])
        return out

    def _recur(self, proj: np.ndarray, index: np.ndarray) -> np.ndarray:
        n, steps = index.shape
        u = self._ut.shape[1]
        h = np.zeros((n, u))
        c = np.zeros((n, u))
        hs = np.empty((n, steps, u))
        for s in range(steps):
            z = proj[index[:, s]] + (h[:, None, :] * self._ut[None, :, :]).sum(axis=2)
            gates = expit(z)  # one call for the input, forget and output gates
            c = gates[:, u:2 * u] * c + gates[:, :u] * np.tanh(z[:, 2 * u:3 * u])
            h = gates[:, 3 * u:] * np.tanh(c)
            hs[:, s] = h
        e = np.tanh((hs[:, :, None, :] * self._at[None, None, :, :]).sum(axis=3)
                    + self.weights["att_b"])
        score = (e * self.weights["att_v"]).sum(axis=2)
        alpha = _softmax(score, axis=1)
        context = (alpha[:, :, None] * hs).sum(axis=1)
        return _softmax(_lin(context, self._dt, self.weights["out_b"]))


def _as_sequences(X: np.ndarray) -> Sequences:
    if X.ndim != 3:
        raise ValueError(f"lstm: windows must be (rows, length, features), got {X.shape}")
    n, steps, f = X.shape
    return Sequences(X.reshape(n * steps, f), np.arange(n * steps).reshape(n, steps))


class CalibratedLstm(CalibratedModel):
    """:class:`tinhieu.ensemble.CalibratedModel` over an :class:`LstmModel`: the same
    per-class isotonic maps, fitted on the rows after the LSTM's own (never a test fold).

    Only the inputs differ (windows, not rows), so the scores are computed here instead of
    going through ``numpy.asarray``."""

    def __init__(self, base: LstmModel, method: str = "isotonic") -> None:
        super().__init__(base, method=method, score="proba")
        self.sequence_length = base.sequence_length
        self._precomputed: np.ndarray | None = None

    def _scores(self, X: Any) -> np.ndarray:
        if self._precomputed is not None:
            return self._precomputed
        return self.base.predict_proba(X)  # classes_ == CLASSES

    def fit_calibration(self, X: Any, y: np.ndarray) -> CalibratedLstm:
        self._precomputed = self.base.predict_proba(X)
        try:
            super().fit_calibration(np.zeros((len(y), 0)), y)
        finally:
            self._precomputed = None
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._calibrate(self._scores(X))

    def reference_predict_proba(self, X: Any) -> np.ndarray:
        return self.predict_proba(X)

    def uncalibrated_proba(self, X: Any) -> np.ndarray:
        return self.base.predict_proba(X)


def lstm_config(model_config: Any) -> LstmConfig:
    """The LSTM's sizes for a ``training.ModelConfig``: its seed, class weights and
    calibration; ``training.QUICK`` (uncalibrated, tests and demos) gets :data:`QUICK_LSTM`."""
    base = LstmConfig() if model_config.calibrate else QUICK_LSTM
    from dataclasses import replace

    return replace(base, seed=model_config.seed, class_weight=model_config.class_weight,
                   calibrate=model_config.calibrate,
                   calibration_share=model_config.calibration_share)
