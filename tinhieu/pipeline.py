"""The candle path of one symbol, as a pure function (no Faust, no clock, no I/O).

A symbol's state is ONE JSON-able record, written once per batch of candles (so at most once
per candle) to the ``symbol_to_window`` table::

    {"symbol": "BTC/USDT",
     "window": {...},          # tinhieu.candles window: last N candles, gaps, source offset
     "features": {...} | None, # tinhieu.features.FeatureState.to_dict()
     "signal": {...} | None,   # the Signal of the newest candle (what the views show)
     "book": {...},            # tinhieu.broker state: cash, position, levels, last candle
     "outcomes": {...},        # tinhieu.outcomes: verdicts whose label is not known yet
     "history": {...}}         # only with a sequence model (LSTM): its last feature rows

The window, the incremental indicators, the newest signal and the broker's book sit in one
value, so they can never disagree after a crash (each changelog message carries them all).

:func:`advance` takes a symbol's record and its next candles (in partition order). For every
NEW candle: the window takes it, the features advance, the ensemble gives its verdict (one
model call for the whole batch), and the broker's rules (:func:`tinhieu.broker.step`, the
function the backtest runs) act on that candle with its signal. Every closed candle gets a
signal: with no model, during the warm-up or when a feature is not finite it is an explicit
NEUTRAL with no votes and a ``reason``, so the book advances (stops, take profits, pending
entries) on every candle, exactly as in the backtest.

Crash safety is the caller's protocol (agents/candles.py): deliver the signals and orders and
write the trade log first, then write the record. A candle at or before the record's source
offset was therefore fully handled and is skipped (``Outcome.REDELIVERED``); a record lost
with a crash is rebuilt by handling the same candles again, which gives the same signals and
the same orders with the same ids (deterministic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinhieu.broker import Fill, RiskConfig, SignalIn, new_state, position_value, step
from tinhieu.candles import CandleError, Outcome, ValidCandle, apply_candle, empty_window
from tinhieu.features import FEATURE_SCHEMA_VERSION, MODEL_COLUMNS, FeatureError, FeatureState
from tinhieu.outcomes import OutcomeTracker

# Why a candle's signal carries no verdict (``Signal.reason``; "" for a model verdict).
NO_MODEL = "no_model"
WARMING_UP = "warming_up"
NOT_FINITE = "features_not_finite"
MODEL_ERROR = "model_error"


class EnsembleLike:  # pragma: no cover - documentation of the interface used here
    """``tinhieu.ensemble.Ensemble``: ``model_version`` and ``predict_many(X)``."""

    model_version: str

    def predict_many(self, X: np.ndarray) -> Sequence[Any]: ...


@dataclass(slots=True)
class Rejected:
    """A candle of the batch that must go to dead letters (``index`` into the input)."""

    index: int
    code: str
    reason: str


@dataclass(slots=True)
class Advanced:
    """What :func:`advance` made of one symbol's batch."""

    record: dict[str, Any]
    signals: list[dict[str, Any]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    equity: list[tuple[str, int, float, float]] = field(default_factory=list)
    """(symbol, candle time, cash, position value) at every fill and every full hour."""
    rejected: list[Rejected] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    """Signals of earlier candles whose label these candles decided (tinhieu.outcomes)."""
    rows: list[np.ndarray | None] = field(default_factory=list)
    """The feature row of each new candle (None during the warm-up), for drift monitors."""
    redelivered: int = 0
    duplicates: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    predict_ms: float = 0.0
    model_error: str | None = None


HOUR_MS = 3_600_000


def new_record(symbol: str, timeframe_ms: int, risk: RiskConfig) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "window": empty_window(symbol, timeframe_ms),
        "features": None,
        "signal": None,
        "book": new_state(symbol, risk),
    }


def _features(data: Mapping[str, Any] | None) -> FeatureState:
    if not data:
        return FeatureState()
    try:
        return FeatureState.from_dict(dict(data))
    except FeatureError:  # written for another feature schema: warm up again
        return FeatureState()


def _signal(
    symbol: str, candle: ValidCandle, action: str, confidence: float, votes: list[dict[str, Any]],
    model_version: str, reason: str, latency_ms: float, emitted_at: float,
) -> dict[str, Any]:
    """The JSON shape of ``models.records.Signal``."""
    bar = candle.bar
    return {
        "symbol": symbol,
        "candle_time": bar.ts,
        "action": action,
        "confidence": confidence,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "votes": votes,
        "model_version": model_version,
        "feature_schema": FEATURE_SCHEMA_VERSION,
        "reason": reason,
        "latency_ms": latency_ms,
        "emitted_at": emitted_at,
    }


def advance(
    record: Mapping[str, Any] | None,
    symbol: str,
    candles: Sequence[tuple[ValidCandle, int | None]],
    ensemble: EnsembleLike | None,
    risk: RiskConfig,
    *,
    window_size: int,
    timeframe_ms: int,
    clock: Callable[[], float] = time.time,
    perf_clock: Callable[[], float] = time.perf_counter,
    label_params: Mapping[str, Any] | None = None,
) -> Advanced:
    """Apply ``candles`` (each with its source offset) to ``symbol``'s record.

    Parameters
    ----------
    record : mapping or None
        The symbol's record (``None``: first candle of the symbol). Never modified.
    candles : sequence of (ValidCandle, offset)
        Validated candles of this symbol, in partition order.
    ensemble : Ensemble or None
        The symbol's models; ``None`` gives NEUTRAL signals with reason ``no_model``.
    risk : RiskConfig
        The broker's rules.
    label_params : mapping, optional
        The label rule (:func:`tinhieu.labels.label_settings`): when given, every verdict's
        outcome is tracked and returned once these candles decide it.

    Returns
    -------
    Advanced
        The new record, a signal per new candle (``models.records.Signal`` fields), the
        broker's fills and equity points, the refused candles (``out_of_order``,
        ``conflicting_duplicate``, ...) with their codes.
    """
    rec = dict(record) if record else new_record(symbol, timeframe_ms, risk)
    window: dict[str, Any] = rec["window"]
    features = _features(rec.get("features"))
    out = Advanced(record=rec)
    fresh: list[tuple[ValidCandle, np.ndarray | None]] = []
    for index, (candle, offset) in enumerate(candles):
        try:
            window, outcome = apply_candle(window, candle, window_size, timeframe_ms, offset)
        except CandleError as err:
            out.rejected.append(Rejected(index, err.code, err.reason))
            continue
        if outcome is Outcome.REDELIVERED:
            out.redelivered += 1
            continue
        if outcome is Outcome.DUPLICATE:
            out.duplicates += 1
            continue
        if outcome is Outcome.GAP:
            out.gaps.append(window["gaps"][-1])
        fresh.append((candle, features.update(candle.bar)))

    began = perf_clock()
    verdicts = _verdicts(ensemble, [row for _, row in fresh], out, rec)
    per_candle_ms = (perf_clock() - began) * 1000.0 / max(1, len(fresh))
    out.predict_ms = per_candle_ms * len(fresh)
    now = clock()
    for (candle, _row), verdict in zip(fresh, verdicts, strict=True):
        if isinstance(verdict, str):
            signal = _signal(symbol, candle, "NEUTRAL", 0.0, [], "", verdict, 0.0, now)
        else:
            votes = [
                {"model": v.model, "action": v.action, "confidence": v.confidence,
                 "version": v.version, "weight": v.weight}
                for v in verdict.votes
            ]
            signal = _signal(symbol, candle, verdict.action, verdict.confidence, votes,
                             verdict.model_version, "", round(per_candle_ms, 4), now)
        out.signals.append(signal)
    book = rec.get("book") or new_state(symbol, risk)
    tracker = (OutcomeTracker(rec.get("outcomes"), label_params, symbol)
               if label_params is not None else None)
    for signal, (candle, _row) in zip(out.signals, fresh, strict=True):
        bar = candle.bar
        if tracker is not None:
            out.outcomes.extend(tracker.on_candle(bar, signal))
        book, fills = step(book, bar, SignalIn(symbol, bar.ts, signal["action"],
                                               signal["confidence"], signal["model_version"]),
                           risk)
        out.fills.extend(fills)
        if fills or bar.ts % HOUR_MS == 0:
            out.equity.append(
                (symbol, bar.ts, float(book["cash"]), position_value(book, bar.close))
            )
    rec["window"] = window
    rec["features"] = features.to_dict()
    rec["book"] = book
    if tracker is not None:
        rec["outcomes"] = tracker.to_dict()
    out.rows = [row for _, row in fresh]
    if out.signals:
        rec["signal"] = out.signals[-1]
    return out


def _verdicts(
    ensemble: EnsembleLike | None, rows: list[np.ndarray | None], out: Advanced,
    record: dict[str, Any],
) -> list[Any]:
    """A Prediction per row, or the reason (str) there is none.

    A sequence model (``ensemble.context_rows`` > 0: the LSTM) also reads the usable rows
    before these; the last ``context_rows`` of them travel in ``record["history"]``."""
    if ensemble is None:  # the reason that matters most to a user: no model at all
        return [NO_MODEL] * len(rows)
    verdicts: list[Any] = [WARMING_UP] * len(rows)
    usable = []
    for i, row in enumerate(rows):
        if row is None:
            continue
        if np.isfinite(row[MODEL_COLUMNS]).all():
            usable.append(i)
        else:
            verdicts[i] = NOT_FINITE
    if not usable:
        return verdicts
    X = np.vstack([rows[i] for i in usable])
    context = int(getattr(ensemble, "context_rows", 0) or 0)
    try:
        if context:
            from tinhieu.deep.sequences import decode_rows, encode_rows

            past = decode_rows(record.get("history"))
            kept = X[:, MODEL_COLUMNS] if past is None else np.vstack([past, X[:, MODEL_COLUMNS]])
            record["history"] = encode_rows(kept[-context:])
            predictions = ensemble.predict_many(X, history=past)
        else:
            record.pop("history", None)
            predictions = ensemble.predict_many(X)
    except Exception as exc:  # a broken model must not stop the book: NEUTRAL, said why
        out.model_error = f"{type(exc).__name__}: {exc}"
        for i in usable:
            verdicts[i] = MODEL_ERROR
        return verdicts
    for i, prediction in zip(usable, predictions, strict=True):
        verdicts[i] = prediction
    return verdicts
