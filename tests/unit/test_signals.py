"""The live predict step: model hot reload and the incremental path, with real models."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from models.records import Signal
from tinhieu.broker import RiskConfig
from tinhieu.candles import Bar, ValidCandle
from tinhieu.data import load_candles, parse_time
from tinhieu.ensemble import Ensemble
from tinhieu.features import WARMUP, compute_features
from tinhieu.pipeline import MODEL_ERROR, NO_MODEL, WARMING_UP, advance
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.signals import ModelCache
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


RISK = RiskConfig(min_confidence=0.45)


def _candles(df) -> list:
    return [
        (ValidCandle("BTC/USDT", Bar(int(r[0]), *map(float, r[1:6]))), offset)
        for offset, r in enumerate(df.itertuples(index=False))
    ]


def test_the_live_path_matches_the_batch_path_in_any_batching(tmp_path, btc) -> None:
    """advance() over batches of any size == compute_features + predict_many (training and
    backtest), and a re-delivered batch changes nothing."""
    registry = ModelRegistry(tmp_path / "models")
    train_quick(btc, "BTC/USDT", load_settings(model_dir=tmp_path / "models"), registry)
    ensemble = Ensemble.from_registry(registry, "BTC/USDT", min_confidence=0.45)
    day = btc.iloc[-(WARMUP + 100) :].reset_index(drop=True)
    batch = ensemble.predict_many(compute_features(day).to_numpy()[WARMUP - 1 :])
    candles = _candles(day)
    for size in (1, 7, 500):
        record, signals = None, []
        for start in range(0, len(candles), size):
            step = advance(record, "BTC/USDT", candles[start : start + size], ensemble, RISK,
                           window_size=60, timeframe_ms=60_000)
            assert not step.rejected
            record = json.loads(json.dumps(step.record))  # through the table's JSON
            signals.extend(step.signals)
        assert [s["candle_time"] for s in signals] == day["timestamp"].tolist()
        assert {s["reason"] for s in signals[: WARMUP - 1]} == {"warming_up"}
        live = signals[WARMUP - 1 :]
        assert len(live) == len(batch)
        for a, b in zip(live, batch, strict=True):
            assert a["reason"] == "" and a["action"] == b.action
            assert a["confidence"] == pytest.approx(b.confidence, rel=1e-9)
        # The pipeline's signal dicts are exactly the Signal record's JSON (they are sent
        # as they are): every field, no other key, the same values after decoding.
        for data in (live[0], signals[0]):
            record_json = Signal.from_data(json.loads(json.dumps(data))).asdict()
            record_json["votes"] = [v.asdict() for v in record_json["votes"]]
            assert record_json == data
        again = advance(record, "BTC/USDT", candles[-50:], ensemble, RISK, window_size=60,
                        timeframe_ms=60_000)
        assert again.signals == [] and again.redelivered == 50
        assert again.record["features"] == record["features"]


def test_no_model_and_a_failing_model_still_give_a_signal_per_candle(btc) -> None:
    candles = _candles(btc.iloc[: WARMUP + 5])
    none = advance(None, "BTC/USDT", candles, None, RISK, window_size=60, timeframe_ms=60_000)
    assert len(none.signals) == len(candles)
    assert {(s["action"], s["reason"], len(s["votes"])) for s in none.signals} == {
        ("NEUTRAL", NO_MODEL, 0)
    }

    class Broken:
        model_version = "rf:broken"

        def predict_many(self, X):
            raise EOFError("model file truncated")

    broken = advance(None, "BTC/USDT", candles, Broken(), RISK, window_size=60, timeframe_ms=60_000)
    assert [s["reason"] for s in broken.signals] == [WARMING_UP] * (WARMUP - 1) + [
        MODEL_ERROR
    ] * 6
    assert broken.model_error == "EOFError: model file truncated"


def test_bad_candles_are_refused_and_the_rest_applied(btc) -> None:
    candles = _candles(btc.iloc[:10])
    late = candles[3]
    conflicting = (ValidCandle("BTC/USDT", candles[5][0].bar._replace(close=1.0)), 11)
    batch = candles[:8] + [(late[0], 12), conflicting] + candles[8:]
    out = advance(None, "BTC/USDT", batch, None, RISK, window_size=60, timeframe_ms=60_000)
    assert [(r.index, r.code) for r in out.rejected] == [(9, "conflicting_duplicate")]
    assert out.duplicates == 1  # the same candle again, same values: idempotent
    assert len(out.signals) == 10
    assert len(out.record["window"]["candles"]) == 10


def test_a_symbol_whose_models_were_not_promoted_says_why(tmp_path, btc) -> None:
    registry = ModelRegistry(tmp_path / "models")
    train_quick(btc, "BTC/USDT", load_settings(model_dir=tmp_path / "models"), registry,
                promote=False)
    cache = ModelCache(registry, weights=None, min_confidence=0.6)
    assert cache.refresh("BTC/USDT") is None
    why = cache.status()["missing"]["BTC/USDT"]
    assert why.startswith("no model in production: the newest models (")
    assert "were not promoted" in why and "trades nothing" in why
