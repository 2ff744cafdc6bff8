"""Drift of the live features, predictions and errors against the training data.

Training stores a reference of its feature matrix with the models
(:func:`feature_reference`, metadata key ``drift_reference``); live, a :class:`DriftMonitor`
per symbol compares the last ``window`` feature rows with it.

The rule for ``feature_drift`` (docs/MONITORING.md, "Drift: false alarms and detection
delay", has the measurements behind the defaults): a feature *drifts* when both

* its PSI (population stability index over the training quantile bins) exceeds
  ``psi_threshold``: the distribution moved by an amount that matters, and
* the two-sample KS test (``scipy.stats.ks_2samp``) of the window against the reference
  sample rejects at ``ks_pvalue``: the move is not sampling noise;

and the symbol raises ``feature_drift`` when at least ``min_features`` features drift at
once. One feature alone moves often on real candles (a busy day moves the volume ratio or one
volatility), which is not a change of regime; a regime change moves the volatility, range,
band width and return features together. The KS p-value alone is no rule on candle features:
they are strongly autocorrelated (a 50-candle SMA distance changes slowly), so a day of
1-minute rows holds far fewer independent values than rows and KS rejects almost any two
days; it only confirms what PSI found.

``prediction_drift``: the PSI of the window's action shares (BUY/NEUTRAL/SELL) against the
shares the models predicted on their training data exceeds ``prediction_psi_threshold``.
``error_drift``: ADWIN (``river.drift.ADWIN``) on the stream of outcome errors (1 wrong,
0 right; means of ``error_block`` outcomes) detected a rise of the error rate within the
last ``window`` outcomes.

Cost: an update stores the row in a ring buffer (a few microseconds); every ``check_every``
rows the new rows are binned at once against the reference edges, PSI comes from the bin
counts, and the
KS test only for the features whose PSI is over the threshold (none in a stable period), so
the heavy statistics are rare. ``status(full=True)`` tests every feature now (for a view).
The monitor lives in memory and starts again after a restart, as a rolling window should.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from river.drift import ADWIN
from scipy.stats import ks_2samp

__all__ = ["ACTIONS", "REFERENCE_VERSION", "DriftMonitor", "feature_reference", "psi"]

ACTIONS: tuple[str, ...] = ("SELL", "NEUTRAL", "BUY")
REFERENCE_VERSION = 1
EPS = 1e-4
"""Floor of a bin's share in PSI: an empty bin costs a bounded amount instead of infinity."""


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Population stability index ``sum((a - e) * ln(a / e))`` along the last axis.

    ``expected`` and ``actual`` are shares per bin (each row sums to 1); shares below
    ``eps`` count as ``eps``. 0 means the same distribution; 0.1 is a small move, 0.25 a
    large one (the usual reading in credit scoring, where PSI comes from).
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def _round(values: np.ndarray, digits: int = 7) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def feature_reference(
    X: np.ndarray,
    columns: Sequence[str],
    actions: np.ndarray | Sequence[str] | None = None,
    bins: int = 10,
    sample: int = 500,
    seed: int = 0,
    window: int = 1440,
    null_quantile: float = 1.0,
) -> dict[str, Any]:
    """JSON-able reference of the training features, for :class:`DriftMonitor`.

    Parameters
    ----------
    X : numpy.ndarray
        Training feature matrix, rows x ``len(columns)``; rows with a non-finite value are
        left out.
    columns : sequence of str
        Feature names in column order (live rows must come in the same order).
    actions : array of str or int, optional
        The action the models predicted on each training row (``BUY``/``NEUTRAL``/``SELL``
        or the classes 1/0/-1); their shares are the prediction reference.
    bins : int
        Quantile bins per feature for PSI (ties, as in discrete features, merge bins).
    sample : int
        Rows kept for the KS test, drawn without replacement with ``seed``: the same
        training data always gives the same reference.
    window : int
        Rows of the live window the reference is calibrated for (``drift_window``).
    null_quantile : float
        The training data's own variability: the PSI of each consecutive block of
        ``window`` training rows against the whole is computed per feature, and this
        quantile of it is stored (``psi_null``). A live window whose PSI stays under it is
        no further from the training data than the training data's own days were.

    Returns
    -------
    dict
        ``version``, ``columns``, ``n`` (rows used), ``edges`` (per feature, the interior
        bin edges), ``expected`` (per feature, the share of training rows per bin),
        ``sample`` (per feature, the sampled values), ``psi_null`` (per feature, the
        ``null_quantile`` of the block PSI; None with fewer than 4 blocks), ``null_window``,
        ``null_blocks``, ``actions`` (action -> share, or None).

    Raises
    ------
    ValueError
        Shapes disagree, or no row is finite.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(columns):
        raise ValueError(f"X has shape {X.shape}; expected rows x {len(columns)} columns")
    if bins < 2:
        raise ValueError(f"bins must be at least 2, not {bins}")
    finite = np.isfinite(X).all(axis=1)
    Xf = X[finite]
    if Xf.shape[0] == 0:
        raise ValueError("no row of X is finite: nothing to build a drift reference from")
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges: list[list[float]] = []
    expected: list[list[float]] = []
    n_blocks = Xf.shape[0] // window if window > 0 else 0
    null: list[float] | None = [] if n_blocks >= 4 else None
    for j in range(Xf.shape[1]):
        col = Xf[:, j]
        e = np.unique(np.quantile(col, quantiles))
        e_list = _round(e)
        e = np.unique(np.array(e_list))  # the rounded edges are the ones used live
        idx = np.searchsorted(e, col, side="right")
        counts = np.bincount(idx, minlength=e.size + 1)
        share = counts / col.size
        edges.append([float(v) for v in e])
        expected.append(_round(share, 6))
        if null is not None:
            blocks = idx[: n_blocks * window].reshape(n_blocks, window)
            per_block = np.stack([np.bincount(b, minlength=e.size + 1) for b in blocks])
            block_psi = psi(share, per_block / window)
            null.append(round(float(np.quantile(block_psi, null_quantile)), 6))
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(Xf.shape[0], size=min(sample, Xf.shape[0]), replace=False))
    shares: dict[str, float] | None = None
    if actions is not None:
        acts = np.asarray(actions)
        if acts.shape[0] != X.shape[0]:
            raise ValueError(f"actions has {acts.shape[0]} values for {X.shape[0]} rows")
        acts = acts[finite]
        if acts.dtype.kind in "iuf":
            names = np.array(ACTIONS)[np.asarray(acts, dtype=np.int64) + 1]
        else:
            names = acts.astype(str)
        shares = {a: round(float(np.mean(names == a)), 6) for a in ACTIONS}
    return {
        "version": REFERENCE_VERSION,
        "columns": list(columns),
        "n": int(Xf.shape[0]),
        "edges": edges,
        "expected": expected,
        "sample": [_round(Xf[take, j], 6) for j in range(Xf.shape[1])],
        "psi_null": null,
        "null_window": int(window),
        "null_quantile": float(null_quantile),
        "null_blocks": int(n_blocks),
        "actions": shares,
    }


class DriftMonitor:
    """Rolling drift of one symbol's features, predictions and errors (in memory).

    Parameters
    ----------
    reference : dict
        :func:`feature_reference` of the training data.
    window : int
        Rows (candles) in the rolling window compared with the reference.
    psi_threshold : float
        PSI over which a feature is a drift candidate.
    ks_pvalue : float
        KS p-value under which a candidate is confirmed.
    prediction_psi_threshold : float
        PSI of the action shares over which ``prediction_drift`` is raised.
    adwin_delta : float
        ADWIN confidence on the error stream (smaller: fewer false changes, later).
    check_every : int
        Rows between two computations of PSI and KS.
    min_features : int
        Features that must drift at once for ``feature_drift`` (see the module docstring).
    error_block : int
        Outcomes averaged into one ADWIN input. Outcomes of overlapping trades come in
        runs (strongly autocorrelated), which ADWIN, built for independent values, reads as
        changes: fed one by one (bench/drift.py) it found a rise in every stable real
        period; in blocks of 10 in 20 of 74, and still caught 4 of 5 injected rises.
    min_rows : int, optional
        Rows in the window before feature or prediction drift is reported; default
        ``window``: the thresholds are calibrated on full windows, and a half-filled one
        after a restart is noisier.
    """

    def __init__(
        self,
        reference: dict[str, Any],
        window: int,
        psi_threshold: float,
        ks_pvalue: float,
        prediction_psi_threshold: float,
        adwin_delta: float,
        check_every: int,
        min_features: int = 10,
        min_rows: int | None = None,
        error_block: int = 10,
    ) -> None:
        if window < 2 or check_every < 1 or min_features < 1:
            raise ValueError("window must be >= 2, check_every and min_features >= 1")
        self.columns: list[str] = list(reference["columns"])
        self.window = int(window)
        self.psi_threshold = float(psi_threshold)
        self.ks_pvalue = float(ks_pvalue)
        self.prediction_psi_threshold = float(prediction_psi_threshold)
        self.check_every = int(check_every)
        self.min_features = int(min_features)
        self.min_rows = max(1, int(min_rows if min_rows is not None else window))
        n_feat = len(self.columns)
        edges = [np.asarray(e, dtype=np.float64) for e in reference["edges"]]
        self._nbins = np.array([e.size + 1 for e in edges], dtype=np.int64)
        width = int(self._nbins.max())
        # padded edges: the bin of x is the count of edges <= x (searchsorted side="right")
        self._edges = np.full((n_feat, width - 1), np.inf)
        self._expected = np.zeros((n_feat, width))
        for j, e in enumerate(edges):
            self._edges[j, : e.size] = e
            self._expected[j, : e.size + 1] = reference["expected"][j]
        null = reference.get("psi_null")
        self._thresholds = np.full(n_feat, self.psi_threshold)
        if null is not None and len(null) == n_feat:
            self._thresholds = np.maximum(self._thresholds, np.asarray(null, dtype=np.float64))
        self._offsets = np.arange(n_feat, dtype=np.int64) * width
        self._width = width
        self._counts = np.zeros(n_feat * width, dtype=np.int64)
        self._bins = np.zeros((self.window, n_feat), dtype=np.int64)
        self._binned = np.zeros(self.window, dtype=bool)  # the row's bins are in _counts
        self._pending = 0  # rows stored since the last binning
        self._values = np.zeros((self.window, n_feat), dtype=np.float64)
        self._sample = np.asarray(reference["sample"], dtype=np.float64).T  # rows x features
        self._pos = 0
        self._filled = 0
        self.rows_seen = 0
        self.rows_skipped = 0
        # predictions
        ref_actions = reference.get("actions")
        self._ref_list: list[float] | None = ([float(ref_actions.get(a, 0.0)) for a in ACTIONS]
                                              if ref_actions else None)
        self._actions = np.zeros(self.window, dtype=np.int64)
        self._action_counts = np.zeros(len(ACTIONS), dtype=np.int64)
        self._apos = 0
        self._afilled = 0
        self._action_index = {a: i for i, a in enumerate(ACTIONS)}
        # errors
        self._adwin = ADWIN(delta=adwin_delta)
        self.error_block = max(1, int(error_block))
        self._block_sum = 0
        self._block_n = 0
        self.errors_seen = 0
        self.error_changes = 0
        self.error_increases = 0
        self._last_increase: int | None = None
        self._ks_cache: dict[int, tuple[float, float]] = {}
        self._last: dict[str, Any] = self._empty_check()
        self._feature_part: dict[str, Any] | None = None

    # --- updates (hot path) -------------------------------------------------------------------
    def update_features(self, row: np.ndarray) -> None:
        """Add one feature row (reference column order); a non-finite row is skipped."""
        x = np.asarray(row, dtype=np.float64)
        if not np.isfinite(x).all():
            self.rows_skipped += 1
            return
        pos = self._pos
        if self._filled < self.window:
            self._filled += 1
        self._values[pos] = x
        self._pos = (pos + 1) % self.window
        self._pending += 1
        self.rows_seen += 1
        if self.rows_seen % self.check_every == 0:
            self._check()

    def _bin_pending(self) -> None:
        """Move the bin counts by the rows added since the last check, in one vectorised
        step: the hot path only stores the row."""
        m = self._pending
        if m == 0:
            return
        self._pending = 0
        size = self._counts.size
        if m >= self.window:  # every row was replaced: count the window again
            rows = np.arange(self._filled)
            self._counts[:] = 0
        else:
            rows = (self._pos - m + np.arange(m)) % self.window
            old = self._bins[rows][self._binned[rows]]
            if old.size:
                self._counts -= np.bincount(old.ravel(), minlength=size)
        vals = self._values[rows]
        new = (vals[:, :, None] >= self._edges[None, :, :]).sum(axis=2) + self._offsets
        self._counts += np.bincount(new.ravel(), minlength=size)
        self._bins[rows] = new
        self._binned[rows] = True

    def update_prediction(self, action: str) -> None:
        """Add one model verdict (``BUY``/``NEUTRAL``/``SELL``); anything else is ignored."""
        i = self._action_index.get(action)
        if i is None:
            return
        if self._afilled == self.window:
            self._action_counts[self._actions[self._apos]] -= 1
        else:
            self._afilled += 1
        self._action_counts[i] += 1
        self._actions[self._apos] = i
        self._apos = (self._apos + 1) % self.window

    def update_error(self, error: bool) -> None:
        """Add one resolved outcome: ``True`` when the prediction was wrong."""
        self.errors_seen += 1
        self._block_sum += 1 if error else 0
        self._block_n += 1
        if self._block_n < self.error_block:
            return
        before = self._adwin.estimation
        self._adwin.update(self._block_sum / self._block_n)
        self._block_sum = self._block_n = 0
        if self._adwin.drift_detected:
            self.error_changes += 1
            if self._adwin.estimation > before:
                self.error_increases += 1
                self._last_increase = self.errors_seen

    # --- statistics ---------------------------------------------------------------------------
    def _empty_check(self) -> dict[str, Any]:
        return {"checked_at_row": None, "psi": None, "ks_statistic": {}, "ks_pvalue": {},
                "over": [], "drifting_features": []}

    def _window_values(self) -> np.ndarray:
        return self._values[: self._filled] if self._filled < self.window else self._values

    def _psi_now(self) -> np.ndarray:
        counts = self._counts.reshape(len(self.columns), self._width).astype(np.float64)
        actual = counts / max(self._filled, 1)
        return psi(self._expected, actual)

    def _ks(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if idx.size == 0:
            return np.zeros(0), np.zeros(0)
        res = ks_2samp(self._sample[:, idx], self._window_values()[:, idx], axis=0,
                       method="asymp")
        return np.atleast_1d(res.statistic), np.atleast_1d(res.pvalue)

    def _check(self, full: bool = False) -> None:
        self._bin_pending()
        values = self._psi_now()
        over = np.flatnonzero(values > self._thresholds)
        # A KS result stays valid while its feature stays over its PSI threshold, so a
        # persistent drift costs no further tests; a feature that falls back is forgotten.
        ks = {j: r for j, r in self._ks_cache.items() if values[j] > self._thresholds[j]}
        if full:
            tested = np.arange(len(self.columns))
        elif over.size >= self.min_features:  # fewer candidates cannot fire the rule
            tested = np.array([j for j in over if int(j) not in ks], dtype=np.int64)
        else:
            tested = over[:0]
        stat, pval = self._ks(tested)
        for j, st, pv in zip(tested, stat, pval, strict=True):
            ks[int(j)] = (float(st), float(pv))
        self._ks_cache = {j: r for j, r in ks.items() if values[j] > self._thresholds[j]}
        drifting = [int(j) for j in over if ks.get(int(j), (0.0, 1.0))[1] < self.ks_pvalue]
        self._feature_part = None
        self._last = {"checked_at_row": self.rows_seen, "psi": values,
                      "ks_statistic": {j: r[0] for j, r in ks.items()},
                      "ks_pvalue": {j: r[1] for j, r in ks.items()},
                      "over": [int(j) for j in over], "drifting_features": drifting}

    def status(self, full: bool = False) -> dict[str, Any]:
        """The drift figures of the last check, and the flags.

        Parameters
        ----------
        full : bool
            Run a check now with the KS test of every feature (a few tens of ms), instead
            of reporting the last periodic check (KS only where PSI is over the threshold;
            ``None`` elsewhere).

        Returns
        -------
        dict
            ``rows`` in the window, ``ready`` (at least ``min_rows``), ``checked_at_row``;
            ``features``: name -> ``{"psi", "ks_statistic", "ks_pvalue"}``; ``max_psi``,
            ``max_psi_feature``, ``features_over_threshold`` (PSI), ``features_drifting``
            (PSI and KS); ``prediction_psi``, ``action_shares``,
            ``reference_action_shares``; ``error_rate`` (ADWIN's estimate),
            ``error_change_detected``, ``error_changes``, ``error_increases``;
            ``drifting``: ``feature_drift``, ``prediction_drift``, ``error_drift`` (bool).
        """
        if full and self._filled:
            self._check(full=True)
        part = self._feature_part
        if part is None:  # built once per check: status() may be called on every candle
            part = self._feature_part = self._feature_summary()
        ready = self._filled >= self.min_rows
        n_drifting = part["features_drifting"]
        pred_psi = None
        shares = None
        if self._afilled:
            actual = [c / self._afilled for c in self._action_counts.tolist()]
            shares = {a: round(v, 6) for a, v in zip(ACTIONS, actual, strict=True)}
            if self._ref_list is not None:
                pred_psi = sum((max(a, EPS) - max(e, EPS)) * math.log(max(a, EPS) / max(e, EPS))
                               for a, e in zip(actual, self._ref_list, strict=True))
        recent_rise = (self._last_increase is not None
                       and self.errors_seen - self._last_increase < self.window)
        return {
            "rows": self._filled,
            "ready": ready,
            "rows_seen": self.rows_seen,
            "rows_skipped": self.rows_skipped,
            **part,
            "prediction_psi": pred_psi,
            "action_shares": shares,
            "reference_action_shares": (None if self._ref_list is None else
                                        dict(zip(ACTIONS, self._ref_list, strict=True))),
            "error_rate": (float(self._adwin.estimation) if self.errors_seen else None),
            "errors_seen": self.errors_seen,
            "error_change_detected": self.error_changes > 0,
            "error_changes": self.error_changes,
            "error_increases": self.error_increases,
            "rule": (f"feature_drift: >= {self.min_features} features with PSI > "
                     f"{self.psi_threshold:g} and KS p < {self.ks_pvalue:g}"),
            "drifting": {
                "feature_drift": bool(ready and n_drifting >= self.min_features),
                "prediction_drift": bool(self._afilled >= self.min_rows and pred_psi is not None
                                         and pred_psi > self.prediction_psi_threshold),
                "error_drift": bool(recent_rise),
            },
        }

    def _feature_summary(self) -> dict[str, Any]:
        last = self._last
        features: dict[str, dict[str, float | None]] = {}
        max_psi = None
        max_feature = None
        if last["psi"] is not None:
            values = last["psi"]
            for j, name in enumerate(self.columns):
                features[name] = {"psi": round(float(values[j]), 6),
                                  "psi_threshold": round(float(self._thresholds[j]), 6),
                                  "ks_statistic": last["ks_statistic"].get(j),
                                  "ks_pvalue": last["ks_pvalue"].get(j)}
            k = int(np.argmax(values))
            max_psi, max_feature = float(values[k]), self.columns[k]
        return {
            "checked_at_row": last["checked_at_row"],
            "features": features,
            "max_psi": max_psi,
            "max_psi_feature": max_feature,
            "features_over_threshold": len(last["over"]),
            "features_drifting": len(last["drifting_features"]),
            "drifting_feature_names": [self.columns[j] for j in last["drifting_features"]],
        }

    @property
    def feature_drift(self) -> bool:
        """The ``feature_drift`` flag of the last check, without building the status."""
        return (self._filled >= self.min_rows
                and len(self._last["drifting_features"]) >= self.min_features)
