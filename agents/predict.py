"""The predict step: each new closed candle -> features -> ensemble -> a Signal.

It runs inside ``update_windows`` (registered in ``on_new_candle``), so it sees each
symbol's candles in partition order, right after the window took them, with no extra
Kafka hop. Its own state (the incremental features) lives in ``symbol_to_features``.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist  # isort: skip

import logging
import time
from typing import Any

from agents.hooks import on_new_candle
from models.records import ModelVote, Signal
from streams.topics import signals_topic
from streams.views import health_sections
from tables.signals import symbol_to_features, symbol_to_signal
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
    votes = [] if p is None else [
        ModelVote(model=v.model, action=v.action, confidence=v.confidence,
                  version=v.version, weight=v.weight)
        for v in p.votes
    ]
    return Signal(
        symbol=symbol, candle_time=bar.ts,
        action="NEUTRAL" if p is None else p.action,
        confidence=0.0 if p is None else p.confidence,
        open=bar.open, high=bar.high, low=bar.low, close=bar.close, volume=bar.volume,
        votes=votes, model_version=model_version, feature_schema=FEATURE_SCHEMA_VERSION,
        latency_ms=round(verdict.latency_ms, 4), emitted_at=time.time(),
    )


async def predict_signal(symbol: str, bar: Bar, window: dict[str, Any]) -> None:
    """Features then ensemble for one new candle; a Signal once features are warm."""
    key = symbol.encode()
    ensemble = models.get(symbol)
    state, verdict = predict_candle(symbol_to_features.get(key), bar, ensemble)
    symbol_to_features[key] = state
    if ensemble is None or not verdict.features_ready:
        return
    signal = make_signal(symbol, bar, verdict, ensemble.model_version)
    latency_ms.append(verdict.latency_ms)
    del latency_ms[:-1000]
    symbol_to_signal[key] = signal.asdict()
    await signals_topic.send(key=symbol, value=signal)


def _latency() -> dict[str, Any]:
    if not latency_ms:
        return {}
    ordered = sorted(latency_ms)
    return {"p50_ms": ordered[len(ordered) // 2],
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "samples": len(ordered)}


health_sections["predict_latency"] = _latency
on_new_candle.append(predict_signal)
