"""The predict step inside update_windows (Faust test_context, real RocksDB tables, real
models trained on shared data): one Signal per candle once the features are warm."""

from __future__ import annotations

import json
from unittest import mock

from agents import predict as predict_agent
from agents import windows as windows_agent
from tables.signals import symbol_to_signal
from tinhieu.data import load_candles, parse_time
from tinhieu.features import WARMUP
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.signals import ModelCache
from tinhieu.training import train_quick


async def test_signals_once_features_are_warm(tmp_path, data_1m) -> None:
    df = load_candles(
        data_1m / "ETHUSDT_1m.csv.gz", parse_time("2021-04-10"), parse_time("2021-04-12T12:00")
    )
    registry = ModelRegistry(tmp_path / "models")
    train_quick(df, "ETH/USDT", load_settings(model_dir=tmp_path / "models"), registry)
    cache = ModelCache(registry, weights=None, min_confidence=0.6)
    sent = []

    async def capture(key=None, value=None, **kw):  # the Kafka producer is the edge here
        sent.append(value)

    live = df.iloc[-80:]
    with (
        mock.patch.object(predict_agent, "models", cache),
        mock.patch.object(predict_agent.signals_topic, "send", capture),
    ):
        async with windows_agent.update_windows.test_context() as agent:
            for row in live.itertuples(index=False):
                value = json.dumps(
                    {
                        "symbol": "ETH/USDT",
                        "timestamp": int(row[0]),
                        "open": row[1],
                        "high": row[2],
                        "low": row[3],
                        "close": row[4],
                        "volume": row[5],
                    }
                ).encode()
                await agent.put(value, key=b"ETH/USDT", partition=2)
            latest = symbol_to_signal.get(b"ETH/USDT")
    assert len(sent) == len(live) - (WARMUP - 1)
    assert [s.candle_time for s in sent] == live["timestamp"].iloc[WARMUP - 1 :].tolist()
    assert {v.model for v in sent[-1].votes} == {"rf", "svm", "lr"}
    assert latest["candle_time"] == int(live["timestamp"].iloc[-1])
    assert all(s.action in ("BUY", "SELL", "NEUTRAL") and 0 <= s.confidence <= 1 for s in sent)
