"""The LSTM's input: for candle ``t``, the last ``length`` feature rows known at ``t``.

One rule everywhere (training, walk-forward, backtest, replay and live):

    window(t) = the last ``length`` *finite* model-feature rows up to and including ``t``,
                oldest first; fewer than ``length`` exist -> the oldest one is repeated.

Never a row after ``t``. Gaps in the candles are treated as the features treat them: the rows
are consecutive feature rows, whatever time lies between them (training drops the rows whose
feature window crosses a gap anyway, so a training window never spans one). Rows that are not
finite (the warm-up) are not part of any window.

A :class:`Sequences` holds the windows as an index into one 2-D matrix, so 70k windows of 32
rows cost 70k x 32 integers, not 70k x 32 x 40 floats.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np


class Sequences:
    """Windows ``base[index[i]]`` (shape ``(len(index), length, n_features)``), not copied."""

    def __init__(self, base: np.ndarray, index: np.ndarray) -> None:
        self.base = np.asarray(base, dtype=np.float64)
        self.index = np.asarray(index, dtype=np.intp)
        if self.base.ndim != 2 or self.index.ndim != 2:
            raise ValueError(f"Sequences: base must be 2-D and index 2-D, got "
                             f"{self.base.shape} and {self.index.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.index.shape[0], self.index.shape[1], self.base.shape[1])

    @property
    def length(self) -> int:
        return int(self.index.shape[1])

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, rows: Any) -> Sequences:
        index = self.index[rows]
        if index.ndim == 1:
            index = index[None, :]
        return Sequences(self.base, index)

    def materialize(self, dtype: Any = np.float64) -> np.ndarray:
        """The windows as one array (n, length, n_features)."""
        return self.base[self.index].astype(dtype, copy=False)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.materialize(dtype or np.float64)


def windows(rows: np.ndarray, length: int, first: int = 0) -> Sequences:
    """The windows of rows ``first..`` of consecutive finite rows ``rows`` (oldest first)."""
    rows = np.asarray(rows, dtype=np.float64)
    pos = np.arange(first, rows.shape[0])
    index = np.clip(pos[:, None] - length + 1 + np.arange(length)[None, :], 0, None)
    return Sequences(rows, index)


def serving_windows(history: np.ndarray | None, X: np.ndarray, length: int) -> Sequences:
    """The windows of the rows of ``X`` (consecutive finite rows, oldest first), with the
    rows that came before them in ``history`` (only its last ``length - 1`` are used)."""
    X = np.asarray(X, dtype=np.float64)
    if history is None or len(history) == 0 or length <= 1:
        return windows(X, length)
    h = np.asarray(history, dtype=np.float64)[-(length - 1):]
    if h.shape[1] != X.shape[1]:
        raise ValueError(f"history rows have {h.shape[1]} values, feature rows {X.shape[1]}")
    return windows(np.vstack([h, X]), length, first=h.shape[0])


def training_sequences(X_all: np.ndarray, rows: np.ndarray, length: int) -> Sequences:
    """Windows for candle rows ``rows`` of the full (one row per candle) feature matrix.

    Only rows at or before each ``t`` are read; a later row never changes an earlier window
    (tested). Rows ``rows`` must be finite themselves.
    """
    X_all = np.asarray(X_all, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(X_all).all(axis=1))
    rows = np.asarray(rows, dtype=np.intp)
    pos = np.searchsorted(finite, rows, side="right") - 1
    if rows.size and ((pos < 0).any() or (finite[np.clip(pos, 0, None)] != rows).any()):
        raise ValueError("training_sequences: every row must have finite features")
    index = np.clip(pos[:, None] - length + 1 + np.arange(length)[None, :], 0, None)
    return Sequences(X_all[finite], index)


# --- the live history, in the symbol's record ------------------------------------------------
def encode_rows(rows: np.ndarray) -> dict[str, Any]:
    """Feature rows as JSON: shape and the exact float64 bytes (base64)."""
    arr = np.ascontiguousarray(rows, dtype="<f8")
    return {"shape": [int(arr.shape[0]), int(arr.shape[1])],
            "f8": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_rows(data: Mapping[str, Any] | None) -> np.ndarray | None:
    """The rows :func:`encode_rows` wrote (None for none)."""
    if not data:
        return None
    shape = tuple(int(v) for v in data["shape"])
    return np.frombuffer(base64.b64decode(data["f8"]), dtype="<f8").reshape(shape).copy()
