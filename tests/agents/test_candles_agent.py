"""process_candles under Faust's test_context (real RocksDB table, real models trained on
shared data; only the Kafka producer, the edge, is replaced by a recorder)."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from unittest import mock

import pytest

from agents import candles as candles_agent
from models.records import Alert, Order, Signal, SignalOutcomes
from streams import monitoring as monitoring_views
from streams.app import runtime
from tables.windows import symbol_to_window
from tinhieu.data import load_candles, parse_time
from tinhieu.features import WARMUP
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.signals import ModelCache
from tinhieu.training import train_quick

T0 = 1_617_321_600_000


def candle(symbol: str, i: int, close: float) -> bytes:
    return json.dumps(
        {
            "symbol": symbol,
            "timestamp": T0 + i * 60_000,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 1.0,
        }
    ).encode()


def _delivered() -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


@contextmanager
def recorded(models: ModelCache | None = None):
    """Record signals and dead letters instead of producing them to Kafka."""
    signals: list = []
    letters: list[tuple[str, str]] = []
    alerts: list = []

    async def send_signal(topic, key, value):
        assert key == value["symbol"]
        if topic == "signals":
            signals.append(Signal.from_data(value))  # what a consumer of the topic reads
        elif topic == "signal_outcomes":
            SignalOutcomes.from_data(value)
        else:
            assert topic == "orders"
            Order.from_data(value)  # the Order record's shape
        return _delivered()

    async def send_alert(topic, key, value):
        assert topic == "alerts" and key == (value["symbol"] or "*")
        alerts.append(Alert.from_data(value))
        return _delivered()

    async def send_letter(event, code, reason, agent):
        letters.append((code, reason))
        return _delivered()

    patches = [
        mock.patch.object(candles_agent, "publish_json", send_signal),
        mock.patch.object(candles_agent, "send_dead_letter", send_letter),
        mock.patch.object(monitoring_views, "publish_json", send_alert),
    ]
    if models is not None:
        patches.append(mock.patch.object(runtime, "models", models))
    for p in patches:
        p.start()
    runtime.models_loaded.set()
    try:
        yield signals, letters
    finally:
        for p in patches:
            p.stop()


async def test_windows_per_symbol_a_signal_per_new_candle_and_bad_ones_dead_lettered() -> None:
    with recorded() as (signals, letters):
        async with candles_agent.process_candles.test_context() as agent:
            for i in range(3):
                await agent.put(candle("ETH/USDT", i, 2000 + i), key=b"ETH/USDT", partition=1)
                await agent.put(candle("BTC/USDT", i, 50000 + i), key=b"BTC/USDT", partition=1)
            await agent.put(b"{broken", key=b"BTC/USDT", partition=1)
            await agent.put(candle("BTC/USDT", 1, 50001), key=b"BTC/USDT", partition=1)  # resent
            await agent.put(candle("BTC/USDT", 0, 7), key=b"BTC/USDT", partition=1)  # conflict
            await agent.put(candle("DOGE/USDT", 5, 7), key=b"DOGE/USDT", partition=1)
            await agent.put(candle("BTC/USDT", 3, 50003), key=b"BTC/USDT", partition=1)
            await asyncio.sleep(0.1)  # the last batch's wait
            btc = symbol_to_window.get(b"BTC/USDT")
            eth = symbol_to_window.get(b"ETH/USDT")
    assert [c[4] for c in btc["window"]["candles"]] == [50000, 50001, 50002, 50003]
    assert [c[4] for c in eth["window"]["candles"]] == [2000, 2001, 2002]
    assert [code for code, _ in letters] == [
        "decode_error",
        "conflicting_duplicate",
        "unknown_symbol",
    ]
    # Every new valid candle has a signal, the resent one not again; no model: NEUTRAL,
    # no votes, and the reason.
    assert len(signals) == 7
    assert {(s.action, s.reason, len(s.votes)) for s in signals} == {("NEUTRAL", "no_model", 0)}
    assert btc["signal"]["candle_time"] == T0 + 3 * 60_000
    assert btc["features"]["last_ts"] == T0 + 3 * 60_000  # one record: window and features


@pytest.fixture(scope="module")
def eth(data_1m):
    return load_candles(
        data_1m / "ETHUSDT_1m.csv.gz", parse_time("2021-04-10"), parse_time("2021-04-12T12:00")
    )


async def test_model_signals_once_the_indicators_settled(tmp_path, eth) -> None:
    # ETH's candles under the name XRP/USDT: a symbol no other test of this module writes.
    registry = ModelRegistry(tmp_path / "models")
    train_quick(eth, "XRP/USDT", load_settings(model_dir=tmp_path / "models"), registry)
    cache = ModelCache(registry, weights=None, min_confidence=0.6)
    cache.refresh("XRP/USDT")
    live = eth.iloc[-(WARMUP + 40) :]
    with recorded(cache) as (signals, letters):
        async with candles_agent.process_candles.test_context() as agent:
            for row in live.itertuples(index=False):
                value = json.dumps(
                    {"symbol": "XRP/USDT", "timestamp": int(row[0]), "open": row[1],
                     "high": row[2], "low": row[3], "close": row[4], "volume": row[5]}
                ).encode()
                await agent.put(value, key=b"XRP/USDT", partition=2)
            await asyncio.sleep(0.1)
            record = symbol_to_window.get(b"XRP/USDT")
    assert not letters
    assert [s.candle_time for s in signals] == live["timestamp"].tolist()  # every candle
    warm, verdicts = signals[: WARMUP - 1], signals[WARMUP - 1 :]
    assert {(s.action, s.reason) for s in warm} == {("NEUTRAL", "warming_up")}
    assert all(s.reason == "" and {v.model for v in s.votes} == {"rf", "svm", "lr"}
               for s in verdicts)
    assert all(s.action in ("BUY", "SELL", "NEUTRAL") and 0 <= s.confidence <= 1 for s in verdicts)
    assert record["signal"]["candle_time"] == int(live["timestamp"].iloc[-1])


async def test_a_batch_over_several_partitions_reads_each_symbols_own_record() -> None:
    """Batches that hold two symbols of two partitions continue each symbol's record (the
    agent reads and writes each record in its own symbol's partition)."""
    with recorded() as (signals, letters):
        async with candles_agent.process_candles.test_context() as agent:
            for batch in range(3):
                for i in range(batch * 4, batch * 4 + 4):
                    await agent.put(candle("SOL/USDT", i, 100 + i), key=b"SOL/USDT",
                                    partition=3)
                    await agent.put(candle("BNB/USDT", i, 500 + i), key=b"BNB/USDT",
                                    partition=0)
                await asyncio.sleep(0.05)  # the batch closes
            sol = symbol_to_window.get(b"SOL/USDT")
            bnb = symbol_to_window.get(b"BNB/USDT")
    assert not letters
    assert [c[4] for c in sol["window"]["candles"]] == [100 + i for i in range(12)]
    assert [c[4] for c in bnb["window"]["candles"]] == [500 + i for i in range(12)]
    assert sol["book"]["last_candle_time"] == T0 + 11 * 60_000
