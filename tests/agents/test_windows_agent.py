"""update_windows under Faust's test_context (real RocksDB table, no broker)."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from agents import windows as windows_agent
from tables.windows import symbol_to_window

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


@pytest.fixture
def dead_letters():
    sent: list[tuple[str, str]] = []

    async def fake_send(event, code, reason, agent):  # the Kafka producer is the edge here
        sent.append((code, reason))

    with mock.patch.object(windows_agent, "send_dead_letter", fake_send):
        yield sent


async def test_windows_fill_per_symbol_and_bad_ones_are_dead_lettered(dead_letters) -> None:
    seen: list[tuple[str, int]] = []

    async def hook(symbol, bar, window, redelivered):
        if redelivered:
            return
        seen.append((symbol, bar.ts))

    windows_agent.on_new_candle.append(hook)
    try:
        async with windows_agent.update_windows.test_context() as agent:
            for i in range(3):
                await agent.put(candle("ETH/USDT", i, 2000 + i), key=b"ETH/USDT", partition=1)
                await agent.put(candle("BTC/USDT", i, 50000 + i), key=b"BTC/USDT", partition=1)
            await agent.put(b"{broken", key=b"BTC/USDT", partition=1)
            await agent.put(candle("BTC/USDT", 1, 50001), key=b"BTC/USDT", partition=1)  # resent
            await agent.put(candle("BTC/USDT", 0, 7), key=b"BTC/USDT", partition=1)  # conflict
            await agent.put(candle("DOGE/USDT", 5, 7), key=b"DOGE/USDT", partition=1)
            await agent.put(candle("BTC/USDT", 3, 50003), key=b"BTC/USDT", partition=1)
            btc = symbol_to_window.get(b"BTC/USDT")
            eth = symbol_to_window.get(b"ETH/USDT")
    finally:
        windows_agent.on_new_candle.remove(hook)
    assert [c[4] for c in btc["candles"]] == [50000, 50001, 50002, 50003]
    assert [c[4] for c in eth["candles"]] == [2000, 2001, 2002]
    assert [code for code, _ in dead_letters] == [
        "decode_error",
        "conflicting_duplicate",
        "unknown_symbol",
    ]
    assert len(seen) == 7  # every new valid candle, the resent one not again
