"""The live predict step: model hot reload and the incremental path, with real models."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tinhieu.candles import Bar
from tinhieu.data import load_candles, parse_time
from tinhieu.ensemble import Ensemble
from tinhieu.features import WARMUP, compute_features
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.signals import ModelCache, predict_candle
from tinhieu.training import train_quick


@pytest.fixture(scope="module")
def btc(data_1m: Path):
    return load_candles(
        data_1m / "BTCUSDT_1m.csv.gz", parse_time("2021-04-10"), parse_time("2021-04-12T12:00")
    )


def test_a_model_promoted_later_is_picked_up_without_restart(tmp_path, btc, caplog) -> None:
    registry = ModelRegistry(tmp_path / "models")
    now = [0.0]
    cache = ModelCache(
        registry, weights=None, min_confidence=0.6, check_every_s=5.0, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING):
        assert cache.get("BTC/USDT") is None
        now[0] += 10
        assert cache.get("BTC/USDT") is None
    reported = [r for r in caplog.records if "BTC/USDT" in r.getMessage()]
    assert len(reported) == 1  # reported once, not once per candle
    assert "BTC/USDT" in cache.status()["missing"]

    train_quick(btc, "BTC/USDT", load_settings(model_dir=tmp_path / "models"), registry)
    assert cache.get("BTC/USDT") is None  # within the check interval: not looked at yet
    now[0] += 10
    ensemble = cache.get("BTC/USDT")
    assert isinstance(ensemble, Ensemble)
    assert cache.status()["loaded"]["BTC/USDT"] == ensemble.model_version
    assert "BTC/USDT" not in cache.status()["missing"]


def test_predict_candle_matches_the_batch_path(tmp_path, btc) -> None:
    registry = ModelRegistry(tmp_path / "models")
    train_quick(btc, "BTC/USDT", load_settings(model_dir=tmp_path / "models"), registry)
    ensemble = Ensemble.from_registry(registry, "BTC/USDT", min_confidence=0.45)
    day = btc.iloc[-400:].reset_index(drop=True)
    batch = ensemble.predict_many(compute_features(day).to_numpy()[WARMUP - 1 :])
    state = None
    live = []
    for row in day.itertuples(index=False):
        state, verdict = predict_candle(state, Bar(int(row[0]), *map(float, row[1:])), ensemble)
        assert isinstance(state, dict)
        if verdict.features_ready:
            live.append(verdict.prediction)
    assert len(live) == len(batch) == len(day) - (WARMUP - 1)
    for a, b in zip(live, batch, strict=True):
        assert a.action == b.action
        assert a.confidence == pytest.approx(b.confidence, rel=1e-9)
