"""Live model monitoring of one worker's symbols: quality, drift, alerts (no Faust here).

The candle agent calls :meth:`Monitors.observe` with what :func:`tinhieu.pipeline.advance`
made of a symbol's batch. It keeps:

* per symbol, in the symbol's record (``record["monitor"]``, written with the window in one
  changelog message): the rolling quality of the verdicts from their outcomes
  (:class:`tinhieu.monitoring.quality.QualityState`), the alert hysteresis
  (:class:`tinhieu.monitoring.alerts.AlertBook`), the current losing streak of the book and
  the newest outcomes;
* per symbol, in memory: the drift monitor against the reference stored with the models
  (:class:`tinhieu.monitoring.drift.DriftMonitor`); it starts again after a restart or a new
  model, as a rolling window should.

Conditions checked on every batch, each raising one alert until it clears (hysteresis):
feature, prediction and error-stream drift, an accuracy drop against the walk-forward
figure, a losing streak, and a symbol with candles but no model. Times are candle times, so
a replay gives the same alerts with the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinhieu.features import MODEL_COLUMNS
from tinhieu.labels import label_settings
from tinhieu.monitoring.alerts import Alert, AlertBook
from tinhieu.monitoring.drift import DriftMonitor
from tinhieu.monitoring.quality import QualityState

RECENT_OUTCOMES = 20
DAY_S = 86_400


def new_monitor_state() -> dict[str, Any]:
    return {"quality": None, "alerts": None, "streak": 0, "recent": [], "closed": 0}


def drift_reference(ensemble: Any) -> dict[str, Any] | None:
    """The training reference stored with the ensemble's models (the first that has one)."""
    for meta in (getattr(ensemble, "metadata", None) or {}).values():
        ref = meta.get("drift_reference") if isinstance(meta, Mapping) else None
        if ref:
            return ref
    return None


def walk_forward_figures(ensemble: Any) -> dict[str, Any] | None:
    """The ensemble's pooled walk-forward classification figures from training."""
    for meta in (getattr(ensemble, "metadata", None) or {}).values():
        metrics = meta.get("metrics") if isinstance(meta, Mapping) else None
        if isinstance(metrics, Mapping) and isinstance(metrics.get("ensemble"), Mapping):
            out = dict(metrics["ensemble"])
            base = metrics.get("baselines") or {}
            if isinstance(base, Mapping):
                out["baselines"] = {k: v.get("accuracy") for k, v in base.items()
                                    if isinstance(v, Mapping)}
            return out
    return None


class Monitors:
    """The monitoring state of the symbols this worker owns.

    Parameters
    ----------
    settings : tinhieu.settings.Settings
        Windows, drift thresholds, alert hysteresis, losing streak (the monitoring section).
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.windows_s: tuple[int, ...] = tuple(int(w) for w in settings.monitor_windows_s)
        self._drift: dict[str, tuple[str, DriftMonitor]] = {}
        # The error stream fed to ADWIN takes one outcome per label span: the labels of
        # neighbouring candles share most of their future candles, so their errors are not
        # independent, and ADWIN (which assumes they are) alarms on every busy hour. Those
        # outcomes do not overlap, so each goes to ADWIN alone (error_block=1).
        params = label_settings(settings)
        span = (int(params["horizon"]) if params["scheme"] == "fixed_horizon"
                else int(params["max_holding"]) + 1)
        self.error_stride_ms = span * int(settings.timeframe_ms)
        self._last_error_ms: dict[str, int] = {}

    # --- drift (in memory) --------------------------------------------------------------------
    def drift_monitor(self, symbol: str, ensemble: Any) -> DriftMonitor | None:
        if ensemble is None:
            self._drift.pop(symbol, None)
            return None
        held = self._drift.get(symbol)
        if held is not None and held[0] == ensemble.model_version:
            return held[1]
        ref = drift_reference(ensemble)
        if ref is None:
            self._drift.pop(symbol, None)
            return None
        s = self.settings
        monitor = DriftMonitor(ref, window=s.drift_window, psi_threshold=s.drift_psi_threshold,
                               ks_pvalue=s.drift_ks_pvalue,
                               prediction_psi_threshold=s.drift_prediction_psi_threshold,
                               adwin_delta=s.drift_adwin_delta, check_every=s.drift_check_every,
                               min_features=s.drift_min_features, error_block=1)
        self._drift[symbol] = (ensemble.model_version, monitor)
        return monitor

    def drift_status(self, symbol: str) -> dict[str, Any] | None:
        held = self._drift.get(symbol)
        return None if held is None else {"model_version": held[0], **held[1].status()}

    # --- per batch ----------------------------------------------------------------------------
    def observe(
        self,
        symbol: str,
        state: Mapping[str, Any] | None,
        signals: Sequence[Mapping[str, Any]],
        rows: Sequence[np.ndarray | None],
        outcomes: Sequence[Mapping[str, Any]],
        fills: Sequence[Any],
        ensemble: Any,
    ) -> tuple[dict[str, Any], list[Alert]]:
        """Fold one batch of a symbol into its monitoring state; return it and the alerts
        raised or cleared by it. ``state`` (``record["monitor"]``) is never modified."""
        st = {**new_monitor_state(), **(dict(state) if state else {})}
        if not signals:
            return st, []
        now_ms = int(signals[-1]["candle_time"])
        quality = QualityState.from_dict(st["quality"])
        quality.extend(outcomes)  # takes the SignalOutcome fields as they are
        st["quality"] = quality.to_dict()
        mine = [o for o in outcomes if o.get("model", "champion") == "champion"]
        if mine:
            st["recent"] = ([dict(o) for o in mine] + list(st["recent"]))[:RECENT_OUTCOMES]

        drift = self.drift_monitor(symbol, ensemble)
        if drift is not None:
            for row, signal in zip(rows, signals, strict=False):
                if signal.get("reason"):
                    continue
                if row is not None:
                    model_row = np.asarray(row)[MODEL_COLUMNS]
                    if np.isfinite(model_row).all():
                        drift.update_features(model_row)
                drift.update_prediction(str(signal["action"]))
            last = self._last_error_ms.get(symbol)
            for outcome in outcomes:
                if outcome.get("model", "champion") != "champion":
                    continue
                t = int(outcome["candle_time"])
                if last is None or t >= last + self.error_stride_ms:
                    drift.update_error(not outcome["correct"])
                    last = t
            if last is not None:
                self._last_error_ms[symbol] = last

        streak = int(st["streak"])
        for fill in fills:
            if getattr(fill, "side", None) == "SELL":
                streak = streak + 1 if float(fill.pnl) < 0 else 0
                st["closed"] = int(st["closed"]) + 1
        st["streak"] = streak

        conditions = self._conditions(quality, drift, streak, signals[-1], ensemble, now_ms)
        book = AlertBook.from_dict(st["alerts"], clear_after=self.settings.alert_clear_after)
        alerts = book.evaluate(symbol, conditions, now_ms)
        st["alerts"] = book.to_dict()
        return st, alerts

    def _conditions(self, quality: QualityState, drift: DriftMonitor | None, streak: int,
                    last_signal: Mapping[str, Any], ensemble: Any,
                    now_ms: int) -> dict[str, tuple[bool, float, float]]:
        s = self.settings
        out: dict[str, tuple[bool, float, float]] = {}
        limit = float(s.losing_streak_max)
        out["losing_streak"] = (streak >= limit, float(streak), limit)
        out["model_missing"] = (last_signal.get("reason") == "no_model", 1.0, 0.0)
        if drift is not None:
            status = drift.status()
            flags = status.get("drifting", {})
            out["feature_drift"] = (bool(flags.get("feature_drift")),
                                    float(status.get("max_psi") or 0.0),
                                    float(s.drift_psi_threshold))
            out["prediction_drift"] = (bool(flags.get("prediction_drift")),
                                       float(status.get("prediction_psi") or 0.0),
                                       float(s.drift_prediction_psi_threshold))
            out["error_drift"] = (bool(flags.get("error_drift")),
                                  float(status.get("error_increases") or 0.0), 0.0)
        reference = walk_forward_figures(ensemble)
        if reference and reference.get("accuracy") is not None:
            day = quality.summary(now_ms, DAY_S, model="champion")
            floor = float(reference["accuracy"]) - float(s.accuracy_drop_pct) / 100.0
            live = day.get("accuracy")
            enough = int(day.get("n") or 0) >= int(s.accuracy_min_outcomes)
            out["accuracy_drop"] = (bool(enough and live is not None and live < floor),
                                    float(live if live is not None else 0.0), floor)
        return out

    def summary(self, symbol: str, state: Mapping[str, Any] | None, ensemble: Any,
                now_ms: int, shadow: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``/monitoring/{symbol}`` shows: rolling quality per window beside the
        walk-forward figures, drift, active alerts, streak, newest outcomes."""
        st = {**new_monitor_state(), **(dict(state) if state else {})}
        quality = QualityState.from_dict(st["quality"])
        book = AlertBook.from_dict(st["alerts"], clear_after=self.settings.alert_clear_after)
        return {
            "symbol": symbol,
            "as_of": now_ms,
            "model_version": getattr(ensemble, "model_version", None),
            "quality": {
                f"{w}s": {model: quality.summary(now_ms, w, model=model)
                          for model in ("champion", "challenger")}
                for w in self.windows_s
            },
            "walk_forward": walk_forward_figures(ensemble),
            "drift": self.drift_status(symbol),
            "alerts": [a.to_dict() for a in book.active()],
            "losing_streak": int(st["streak"]),
            "recent_outcomes": list(st["recent"]),
            "shadow": shadow_summary(shadow),
        }


def shadow_summary(shadow: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Champion vs challenger on the same candles since the challenger started."""
    if not shadow:
        return None
    from tinhieu.shadow import figures

    board = shadow.get("board") or {}
    book = shadow.get("book") or {}
    return {
        "challenger": shadow.get("version"),
        "challenger_models": shadow.get("model_version"),
        "since": shadow.get("since"),
        "champion_figures": figures(board.get("champion")),
        "challenger_figures": figures(board.get("challenger")),
        "challenger_book": {k: book.get(k) for k in ("cash", "qty", "realized_pnl",
                                                     "fees_paid", "n_round_trips", "n_wins")},
        "decisions": list(shadow.get("decisions") or []),
    }

