"""The predict step: each new closed candle -> features -> ensemble -> a Signal.

It runs inside ``update_windows`` (registered in ``on_new_candle``), so it sees each
symbol's candles in partition order, right after the window took them, with no extra
Kafka hop. Its own state (the incremental features) lives in ``symbol_to_features``.
"""

from __future__ import annotations

from streams.app import settings  # first: the app must exist  # isort: skip

import logging
import time
from typing import Any

from agents.hooks import on_new_candle
from models.records import ModelVote, Signal
from streams.topics import signals_topic
from streams.views import health_sections
from tables.signals import (
    SIGNAL_MEMORY,
    candle_key,
    candle_to_signal,
    symbol_to_features,
    symbol_to_signal,
)
from tinhieu.candles import Bar
from tinhieu.ensemble import parse_weights
from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.registry import ModelRegistry
from tinhieu.signals import ModelCache, predict_candle

log = logging.getLogger("tinhieu.predict")

models = ModelCache(
    ModelRegistry(settings.models_path),
    weights=parse_weights(settings.ensemble_weights),
    min_confidence=settings.min_confidence,
)
health_sections["models"] = models.status
latency_ms: list[float] = []  # recent predict latencies, for /health


def make_signal(symbol: str, bar: Bar, verdict: Any, model_version: str) -> Signal:
    p = verdict.prediction
    votes = (
        []
        if p is None
        else [
            ModelVote(
                model=v.model,
                action=v.action,
                confidence=v.confidence,
                version=v.version,
                weight=v.weight,
            )
            for v in p.votes
        ]
    )
    return Signal(
        symbol=symbol,
        candle_time=bar.ts,
        action="NEUTRAL" if p is None else p.action,
        confidence=0.0 if p is None else p.confidence,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        votes=votes,
        model_version=model_version,
        feature_schema=FEATURE_SCHEMA_VERSION,
        latency_ms=round(verdict.latency_ms, 4),
        emitted_at=time.time(),
    )


async def predict_signal(
    symbol: str, bar: Bar, window: dict[str, Any], redelivered: bool = False
) -> None:
    """Features then ensemble for one new candle; a Signal once features are warm.

    Whether the candle was already predicted is decided by this step's own state (the
    feature state's last candle), not by the window: after a crash the window's changelog
    write may have survived while the feature state's did not, and skipping the candle
    then would leave a hole in the incremental indicators. A candle already predicted is
    not predicted again; its signal is sent again (the broker is idempotent per candle),
    from the feature-state value itself when it is the latest (one atomic write), else
    from ``candle_to_signal``.
    """
    del window, redelivered
    key = symbol.encode()
    stored = symbol_to_features.get(key)
    features = stored.get("state") if stored else None
    if features and (features.get("last_ts") or 0) >= bar.ts:
        symbol_to_features[key] = stored  # re-log: the local store may be ahead of Kafka
        again = stored.get("signal")
        if not again or again.get("candle_time") != bar.ts:
            again = candle_to_signal.get(candle_key(symbol, bar.ts))
        if again:
            await signals_topic.send(key=symbol, value=Signal.from_data(again))
        return
    ensemble = models.get(symbol)
    state, verdict = predict_candle(features, bar, ensemble)
    if ensemble is None or not verdict.features_ready:
        symbol_to_features[key] = {"state": state, "signal": None}
        return
    signal = make_signal(symbol, bar, verdict, ensemble.model_version)
    latency_ms.append(verdict.latency_ms)
    del latency_ms[:-1000]
    data = signal.asdict()
    data["votes"] = [v.asdict() for v in signal.votes]
    symbol_to_features[key] = {"state": state, "signal": data}
    symbol_to_signal[key] = data
    candle_to_signal[candle_key(symbol, bar.ts)] = data
    expired = candle_key(symbol, bar.ts - SIGNAL_MEMORY * settings.timeframe_ms)
    if candle_to_signal.get(expired) is not None:
        del candle_to_signal[expired]
    await signals_topic.send(key=symbol, value=signal)


def _latency() -> dict[str, Any]:
    if not latency_ms:
        return {}
    ordered = sorted(latency_ms)
    return {
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "samples": len(ordered),
    }


health_sections["predict_latency"] = _latency
on_new_candle.append(predict_signal)
