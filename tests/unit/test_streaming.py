"""The streaming hub without Kafka or aiohttp: subscription rules, fan-out, the bounded
queue that drops a slow client, the feed's lazy start and stop, subscribe messages."""

from __future__ import annotations

import asyncio
import json

import pytest

from tinhieu.streaming import (
    DEFAULT_TYPES,
    Hub,
    Subscription,
    message_symbol,
    parse_stream_query,
    parse_subscribe_message,
)
from tinhieu.webapi import ApiError

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


class FakeFeed:
    """Counts starts and stops; ready at once (the hub publishes by hand)."""

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0

    async def __call__(self, hub: Hub, ready: asyncio.Event) -> None:
        self.starts += 1
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stops += 1


def sig(symbol: str, t: int) -> str:
    return json.dumps({"symbol": symbol, "candle_time": t, "action": "NEUTRAL"})


# --- query and subscribe message ------------------------------------------------------
def test_query_defaults_to_everything() -> None:
    sub = parse_stream_query({}, SYMBOLS)
    assert sub.symbols is None and sub.types == frozenset(DEFAULT_TYPES)
    assert parse_stream_query({"symbols": "", "types": ""}, SYMBOLS) == sub


def test_query_symbols_and_types_use_the_rest_rules() -> None:
    sub = parse_stream_query([("symbols", "btc, ETH-USDT"), ("types", "signal,ORDER")], SYMBOLS)
    assert sub.symbols == {"BTC/USDT", "ETH/USDT"} and sub.types == {"signal", "order"}
    assert parse_stream_query({"symbols": "BTC/USDT"}, SYMBOLS).symbols == {"BTC/USDT"}
    cases = [
        ({"symbols": "doge"}, 404, "unknown_symbol"),
        ({"symbols": "btc;drop"}, 400, "invalid_symbol"),
        ({"types": "signal,fills"}, 400, "invalid_query"),
        ({"symbol": "btc"}, 400, "invalid_query"),
        ([("types", "order"), ("types", "signal")], 400, "invalid_query"),
    ]
    for query, status, error in cases:
        with pytest.raises(ApiError) as info:
            parse_stream_query(query, SYMBOLS)
        assert (info.value.status, info.value.error) == (status, error), query
        assert info.value.detail


def test_subscribe_message() -> None:
    sub = parse_subscribe_message(
        '{"subscribe": {"symbols": ["eth"], "types": ["order", "dead_letter"]}}', SYMBOLS
    )
    assert sub == Subscription(frozenset({"ETH/USDT"}), frozenset({"order", "dead_letter"}))
    assert parse_subscribe_message('{"subscribe": {}}', SYMBOLS) == Subscription()
    assert sub.as_json() == {"symbols": ["ETH/USDT"], "types": ["order", "dead_letter"]}
    for bad in (
        "not json",
        "[1]",
        '{"unsubscribe": {}}',
        '{"subscribe": {"symbols": "btc"}}',
        '{"subscribe": {"symbols": [1]}}',
        '{"subscribe": {"sym": ["btc"]}}',
        '{"subscribe": {"symbols": ["doge"]}}',
        '{"subscribe": {"types": ["candle"]}}',
        '{"subscribe": {"symbols": ["' + "x" * 5000 + '"]}}',
    ):
        with pytest.raises(ApiError) as info:
            parse_subscribe_message(bad, SYMBOLS)
        assert info.value.status == 400 and info.value.error == "invalid_message", bad
        assert info.value.detail


def test_message_symbol() -> None:
    assert message_symbol("signal", b"BTC/USDT", {"symbol": "BTC/USDT"}, SYMBOLS) == "BTC/USDT"
    assert message_symbol("order", b"ETH/USDT", {}, SYMBOLS) == "ETH/USDT"
    letter = {"source_topic": "market_data", "key": "SOL/USDT"}
    assert message_symbol("dead_letter", b"market_data", letter, SYMBOLS) == "SOL/USDT"
    assert message_symbol("dead_letter", b"market_data", {"key": None}, SYMBOLS) is None
    assert message_symbol("dead_letter", b"market_data", {"key": "junk!"}, SYMBOLS) is None


# --- hub --------------------------------------------------------------------------------
async def test_fan_out_filters_by_symbol_and_type() -> None:
    hub = Hub(FakeFeed(), queue_size=10)
    btc = await hub.connect(parse_stream_query({"symbols": "btc"}, SYMBOLS))
    orders = await hub.connect(parse_stream_query({"types": "order"}, SYMBOLS))
    everything = await hub.connect(Subscription())
    hub.publish("signal", "BTC/USDT", sig("BTC/USDT", 1))
    hub.publish("signal", "ETH/USDT", sig("ETH/USDT", 1))
    hub.publish("order", "ETH/USDT", '{"id": "o1"}')
    hub.publish("dead_letter", None, '{"code": "decode_error"}')
    hub.publish("signal", "BTC/USDT", sig("BTC/USDT", 2))

    def drain(client) -> list[dict]:
        out = []
        while not client.queue.empty():
            out.append(json.loads(client.queue.get_nowait()))
        return out

    got = drain(btc)
    assert [(m["type"], m["data"]["candle_time"]) for m in got] == [("signal", 1), ("signal", 2)]
    assert [m["data"] for m in drain(orders)] == [{"id": "o1"}]
    assert [m["type"] for m in drain(everything)] == [
        "signal", "signal", "order", "dead_letter", "signal"]
    await hub.close()


async def test_slow_client_is_dropped_and_others_keep_receiving() -> None:
    hub = Hub(FakeFeed(), queue_size=3)
    slow = await hub.connect(Subscription())
    fast = await hub.connect(Subscription())
    received = []
    for t in range(10):
        hub.publish("signal", "BTC/USDT", sig("BTC/USDT", t))
        received.append(json.loads(await fast.next(1.0))["data"]["candle_time"])
    assert received == list(range(10))
    assert slow.dropped.is_set() and "too slow" in slow.reason and slow not in hub.clients
    assert hub.dropped == 1 and fast in hub.clients
    with pytest.raises(ConnectionAbortedError):
        await slow.next(1.0)
    await hub.close()


async def test_next_wakes_on_drop_and_times_out_for_heartbeats() -> None:
    hub = Hub(FakeFeed(), queue_size=3)
    client = await hub.connect(Subscription())
    assert await client.next(0.01) is None  # nothing yet: time for a heartbeat
    waiting = asyncio.create_task(client.next(5.0))
    await asyncio.sleep(0)
    await hub.close()
    with pytest.raises(ConnectionAbortedError, match="shutting down"):
        await waiting


async def test_feed_runs_while_clients_are_connected() -> None:
    feed = FakeFeed()
    hub = Hub(feed, queue_size=3)
    a = await hub.connect(Subscription())
    b = await hub.connect(Subscription())
    assert feed.starts == 1 and hub.running
    await hub.disconnect(a)
    assert hub.running and feed.stops == 0
    await hub.disconnect(b)
    assert not hub.running and feed.stops == 1
    c = await hub.connect(Subscription())
    assert feed.starts == 2 and hub.running
    await hub.close()
    assert not hub.running and feed.stops == 2 and c.dropped.is_set()


async def test_connect_times_out_when_the_feed_is_never_ready() -> None:
    async def never_ready(hub: Hub, ready: asyncio.Event) -> None:
        await asyncio.Event().wait()

    hub = Hub(never_ready, queue_size=3, ready_timeout_s=0.05)
    with pytest.raises(TimeoutError):
        await hub.connect(Subscription())
    assert not hub.clients and not hub.running


async def test_waiting_takes_what_is_queued_and_stops_at_a_drop() -> None:
    hub = Hub(FakeFeed(), queue_size=10)
    client = await hub.connect(Subscription())
    for t in range(3):
        hub.publish("signal", "BTC/USDT", sig("BTC/USDT", t))
    first = await client.next()
    assert [json.loads(m)["data"]["candle_time"] for m in [first, *client.waiting()]] == [
        0, 1, 2]
    assert client.waiting() == []
    await hub.close()
    assert client.waiting() == []
    with pytest.raises(ConnectionAbortedError):
        await client.next()


def test_websocket_text_frames() -> None:
    """RFC 6455 server frames: FIN + text opcode, unmasked, 7/16/64-bit lengths."""
    import struct

    from streams.stream_views import _ws_text_frame

    assert _ws_text_frame("hi") == b"\x81\x02hi"
    mid = "x" * 200
    assert _ws_text_frame(mid) == b"\x81\x7e" + struct.pack("!H", 200) + mid.encode()
    big = "y" * 70_000
    assert _ws_text_frame(big) == b"\x81\x7f" + struct.pack("!Q", 70_000) + big.encode()
    assert _ws_text_frame("đ") == b"\x81\x02" + "đ".encode()
