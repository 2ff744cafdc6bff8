"""Build and fit the LSTM with Keras 3 on JAX (CPU), then export it to numpy.

Importing this module sets ``KERAS_BACKEND=jax`` (the one environment write of the project:
Keras reads its backend from the environment at import) and imports Keras; it needs the
``deep`` extra (``pip install -e .[deep]``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from tinhieu.deep import require

require()
_backend = os.environ.get("KERAS_BACKEND")
if _backend not in (None, "jax"):
    raise ImportError(f"KERAS_BACKEND={_backend!r} is set; tinhieu.deep runs Keras on 'jax' "
                      "(unset it, or set it to jax)")
os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402  (the backend must be chosen first)
from keras import ops  # noqa: E402

from tinhieu.deep.forward import CalibratedLstm, LstmConfig, LstmModel  # noqa: E402
from tinhieu.deep.sequences import Sequences  # noqa: E402
from tinhieu.labels import CLASSES  # noqa: E402

if keras.backend.backend() != "jax":  # imported earlier with another backend
    raise ImportError(f"Keras runs on {keras.backend.backend()!r}; tinhieu.deep needs 'jax'")


@keras.saving.register_keras_serializable(package="tinhieu")
class AttentionPooling(keras.layers.Layer):
    """Additive attention over time: ``alpha = softmax_t(v . tanh(h_t A + a))``, output
    ``sum_t alpha_t h_t``."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape: tuple[int, ...]) -> None:
        d = int(input_shape[-1])
        self.w = self.add_weight(shape=(d, self.units), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")
        self.v = self.add_weight(shape=(self.units,), initializer="glorot_uniform", name="v")

    def call(self, h: Any) -> Any:
        e = ops.tanh(ops.matmul(h, self.w) + self.b)
        alpha = ops.softmax(ops.sum(e * self.v, axis=-1), axis=-1)
        return ops.sum(h * ops.expand_dims(alpha, -1), axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def build_keras(config: LstmConfig, n_features: int) -> keras.Model:
    """LSTM (all steps) -> attention pooling -> dropout -> softmax over 3 classes."""
    inp = keras.Input(shape=(config.sequence_length, n_features), name="features")
    h = keras.layers.LSTM(config.units, return_sequences=True, name="lstm")(inp)
    ctx = AttentionPooling(config.attention_units, name="attention")(h)
    ctx = keras.layers.Dropout(config.dropout, name="dropout")(ctx)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="out")(ctx)
    model = keras.Model(inp, out, name="lstm_attention")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def export(model: keras.Model, mean: np.ndarray, scale: np.ndarray, config: LstmConfig,
           history: dict[str, Any] | None = None) -> LstmModel:
    """The Keras network's weights as an :class:`LstmModel` (numpy only)."""
    lstm = model.get_layer("lstm")
    kernel, recurrent, bias = (np.asarray(w) for w in lstm.get_weights())
    att_w, att_b, att_v = (np.asarray(w) for w in model.get_layer("attention").get_weights())
    out_w, out_b = (np.asarray(w) for w in model.get_layer("out").get_weights())
    return LstmModel({"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias,
                      "att_w": att_w, "att_b": att_b, "att_v": att_v,
                      "out_w": out_w, "out_b": out_b}, mean, scale, config, history)


def to_keras(model: LstmModel, n_features: int) -> keras.Model:
    """A Keras network carrying an exported model's weights (tests compare the two paths)."""
    net = build_keras(model.config, n_features)
    w = model.weights
    net.get_layer("lstm").set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    net.get_layer("attention").set_weights([w["att_w"], w["att_b"], w["att_v"]])
    net.get_layer("out").set_weights([w["out_w"], w["out_b"]])
    return net


def keras_inputs(model: LstmModel, seq: Sequences) -> np.ndarray:
    """Windows as Keras sees them: standardized with the model's scaler, float32."""
    return model.standardize(seq.materialize()).astype(np.float32)


def class_weights(y_idx: np.ndarray, mode: str | None) -> np.ndarray:
    """Per-class weights as scikit-learn's ``class_weight="balanced"``: n / (k * count)."""
    counts = np.bincount(y_idx, minlength=len(CLASSES)).astype(np.float64)
    if mode is None:
        return np.ones(len(CLASSES))
    present = counts > 0
    w = np.ones(len(CLASSES))
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


def _split(n: int, span: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Train rows, then (after ``span`` purged rows) the most recent ``share`` to validate."""
    n_val = int(n * share)
    n_fit = n - n_val - span
    if n_val < 100 or n_fit < 200:
        return np.arange(n), np.arange(0)
    return np.arange(n_fit), np.arange(n - n_val, n)


def fit_network(seq: Sequences, y: np.ndarray, config: LstmConfig, span: int) -> LstmModel:
    """Fit the network on time-ordered windows ``seq`` with labels ``y`` (-1/0/+1).

    Early stopping watches the most recent ``validation_share`` of the rows (purged of the
    label span before it); the weights of the best validation epoch are kept.
    """
    keras.utils.set_random_seed(config.seed)
    y_idx = np.searchsorted(np.array(CLASSES), np.asarray(y, dtype=int)).astype(np.int32)
    tr, va = _split(len(seq), span, config.validation_share)
    base_rows = np.unique(seq.index[tr])
    mean = seq.base[base_rows].mean(axis=0)
    scale = seq.base[base_rows].std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    shell = LstmModel({"kernel": np.zeros((seq.shape[2], 4)), "recurrent_kernel":
                       np.zeros((1, 4)), "bias": np.zeros(4), "att_w": np.zeros((1, 1)),
                       "att_b": np.zeros(1), "att_v": np.zeros(1), "out_w": np.zeros((1, 3)),
                       "out_b": np.zeros(3)}, mean, scale, config)
    cw = class_weights(y_idx[tr], config.class_weight)
    model = build_keras(config, seq.shape[2])
    x_tr = keras_inputs(shell, seq[tr])
    callbacks = []
    fit_kw: dict[str, Any] = {}
    if va.size:
        fit_kw["validation_data"] = (keras_inputs(shell, seq[va]), y_idx[va])
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True))
    started = time.perf_counter()
    hist = model.fit(x_tr, y_idx[tr], sample_weight=cw[y_idx[tr]], epochs=config.max_epochs,
                     batch_size=config.batch_size, shuffle=True, verbose=0,
                     callbacks=callbacks, **fit_kw)
    losses = hist.history.get("val_loss") or hist.history.get("loss") or [float("nan")]
    record = {"epochs": len(hist.history.get("loss", [])),
              "best_epoch": int(np.nanargmin(losses)) + 1,
              "best_val_loss": float(np.nanmin(losses)) if va.size else float("nan"),
              "fit_rows": int(tr.size), "validation_rows": int(va.size),
              "seconds": round(time.perf_counter() - started, 2),
              "keras": keras.__version__, "backend": keras.backend.backend()}
    return export(model, mean, scale, config, record)


def fit_lstm(seq: Sequences, y: np.ndarray, config: LstmConfig,
             span: int) -> LstmModel | CalibratedLstm:
    """What ``training.fit_model`` runs for ``lstm``: the most recent ``max_train_rows``
    windows; with ``calibrate`` the last ``calibration_share`` of them (after a purge of
    ``span``) calibrate, as for the other models (``training.calibration_split``)."""
    from tinhieu.training import calibration_split

    y = np.asarray(y)
    if config.max_train_rows is not None and len(seq) > config.max_train_rows:
        seq, y = seq[np.arange(len(seq) - config.max_train_rows, len(seq))], \
            y[-config.max_train_rows:]
    if not config.calibrate:
        return fit_network(seq, y, config, span)
    fit_rows, cal_rows = calibration_split(len(seq), span, config.calibration_share)
    if cal_rows.size == 0 or np.unique(y[fit_rows]).shape[0] < 2:
        return fit_network(seq, y, config, span)
    base = fit_network(seq[fit_rows], y[fit_rows], config, span)
    return CalibratedLstm(base, config.calibration).fit_calibration(seq[cal_rows], y[cal_rows])
