"""The predict step of the live stream (plain Python): incremental features, then the
ensemble, per closed candle. The same FeatureState and Ensemble serve training, the
backtest (which proves batch == incremental) and replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tinhieu import i18n
from tinhieu.candles import Bar
from tinhieu.ensemble import Ensemble, Prediction
from tinhieu.features import FEATURE_SCHEMA_VERSION, FeatureError, FeatureState
from tinhieu.registry import ModelRegistry, ModelRegistryError

log = logging.getLogger("tinhieu.signals")

i18n.register(
    {
        "signals.no_model": (
            i18n.TAGS["model"],
            "{symbol}: chưa có mô hình production ({error}); sẽ bắt đầu ra tín hiệu khi có "
            "mô hình được promote, không cần khởi động lại",
            "{symbol}: no production model ({error}); signals start as soon as one is "
            "promoted, no restart needed",
        ),
        "signals.reloaded": (
            i18n.TAGS["model"],
            "{symbol}: đã nạp mô hình {version}",
            "{symbol}: loaded models {version}",
        ),
    }
)


@dataclass(frozen=True, slots=True)
class CandleVerdict:
    """What the predict step made of one candle."""

    prediction: Prediction | None  # None: no usable feature row (warm-up or non-finite)
    features_ready: bool
    latency_ms: float


class ModelCache:
    """Ensembles per symbol, rebuilt when the registry's production pointers change.

    A symbol without models is reported once (not once per candle) and retried every
    ``check_every_s`` seconds, so a model promoted later is picked up without a restart.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        weights: Mapping[str, float] | None,
        min_confidence: float,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.weights = weights
        self.min_confidence = min_confidence
        self.check_every_s = check_every_s
        self._clock = clock
        self._ensembles: dict[str, Ensemble] = {}
        self._fingerprints: dict[str, str] = {}
        self._checked: dict[str, float] = {}
        self._errors: dict[str, str] = {}

    def get(self, symbol: str) -> Ensemble | None:
        now = self._clock()
        if now - self._checked.get(symbol, -1e18) < self.check_every_s:
            return self._ensembles.get(symbol)
        self._checked[symbol] = now
        try:
            fingerprint = self.registry.production_fingerprint(symbol)
        except ModelRegistryError as exc:
            fingerprint = f"error:{exc}"
        if fingerprint == self._fingerprints.get(symbol):
            return self._ensembles.get(symbol)
        self._fingerprints[symbol] = fingerprint
        try:
            ensemble = Ensemble.from_registry(
                self.registry, symbol, self.weights, self.min_confidence
            )
        except (ModelRegistryError, ValueError, OSError) as exc:
            self._ensembles.pop(symbol, None)
            if self._errors.get(symbol) != str(exc):
                i18n.log(log, logging.WARNING, "signals.no_model", symbol=symbol, error=exc)
            self._errors[symbol] = str(exc)
            return None
        self._errors.pop(symbol, None)
        self._ensembles[symbol] = ensemble
        i18n.log(
            log, logging.INFO, "signals.reloaded", symbol=symbol, version=ensemble.model_version
        )
        return ensemble

    def status(self) -> dict[str, Any]:
        """For /health: loaded model versions and why a symbol has none."""
        return {
            "loaded": {s: e.model_version for s, e in self._ensembles.items()},
            "missing": dict(self._errors),
            "feature_schema": FEATURE_SCHEMA_VERSION,
        }


def predict_candle(
    state: Mapping[str, Any] | None,
    bar: Bar,
    ensemble: Ensemble | None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, Any], CandleVerdict]:
    """Advance the symbol's feature state by ``bar`` and ask the ensemble.

    Returns the new state (JSON-able, for the table) and the verdict. The input state is
    not modified.
    """
    began = clock()
    try:
        features = FeatureState.from_dict(dict(state)) if state else FeatureState()
    except FeatureError:  # written for another feature schema: warm up again
        features = FeatureState()
    row = features.update(bar)
    prediction = None
    if row is not None and ensemble is not None:
        try:
            prediction = ensemble.predict(row)
        except ValueError:  # a model feature not finite for this candle: no verdict
            prediction = None
    latency_ms = (clock() - began) * 1000.0
    return features.to_dict(), CandleVerdict(prediction, row is not None, latency_ms)
