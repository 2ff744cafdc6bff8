"""An Order published to ``orders`` on the embedded Apache Kafka becomes a message in the channel.

Real: Kafka (the session fixture ``kafka`` from tests/conftest.py), aiokafka, the OrdersFeed,
``channel_poster`` and discord.py's channel/message code. Faked: only the Discord gateway
(dpytest, with the two shims explained in tests/unit/test_bot_commands.py).

The records go to the real ``orders`` topic, keyed by symbol like the broker's, with ids that
start with ``bot-it-``; the feed reads from the earliest offset, so it also tolerates orders
that other tests sharing the broker may have written (it waits for its own ids).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from aiokafka import AIOKafkaProducer

from models.records import Order
from tests.fakes.records import order_fields
from tinhieu.bot.commands import channel_poster, create_bot
from tinhieu.bot.orders_feed import ALERTS_TOPIC, ORDERS_TOPIC, OrdersFeed, alerts_feed
from tinhieu.bot.service import TradingService
from tinhieu.monitoring.alerts import AlertBook
from tinhieu.settings import Settings, load_settings

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0  # a guard against hanging forever, not a timing assertion


class NoExchange:
    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Any]:
        raise ConnectionError("not used by this test")


def order(order_id: str, side: str = "BUY", **changes: Any) -> Order:
    fields = order_fields(id=order_id, side=side, model_version="ens-it")
    fields.update(changes)
    return Order(**fields)


class Posted:
    """Wraps the real ``post``: remembers the footer of every embed and wakes waiters."""

    def __init__(self, post: Any) -> None:
        self._post = post
        self.footers: list[str] = []
        self._changed = asyncio.Condition()

    async def __call__(self, embed: discord.Embed) -> None:
        await self._post(embed)
        async with self._changed:
            self.footers.append(embed.footer.text or "")
            self._changed.notify_all()

    async def wait_for(self, order_id: str) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.has(order_id)), DEADLINE_S
            )

    def has(self, order_id: str) -> bool:
        return any(order_id in footer for footer in self.footers)


@pytest.fixture
async def bot_channel(kafka: Any) -> AsyncIterator[tuple[Settings, discord.abc.Messageable]]:
    app_id = f"bot-it-{uuid.uuid4().hex[:8]}"  # a new consumer group per test run
    settings = load_settings(broker_url=kafka.url, app_id=app_id, symbols="btc")
    bot = create_bot(settings, TradingService(settings, None, NoExchange()))
    await bot._async_setup_hook()
    bot._connection._intents.members = True  # dpytest shim 1
    bot._connection.member_cache_flags = discord.MemberCacheFlags.from_intents(
        bot._connection._intents
    )
    await bot.setup_hook()  # dpytest shim 2
    dpytest.configure(bot)
    bot._ready.set()  # dpytest never sends READY
    yield settings, dpytest.get_config().channels[0]
    await dpytest.empty_queue()


async def _produce(bootstrap: str, records: list[tuple[bytes, bytes]],
                   topic: str = ORDERS_TOPIC) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        metas = [
            await producer.send_and_wait(topic, value=value, key=key)
            for key, value in records
        ]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def _run_until(feed: OrdersFeed, posted: Posted, order_id: str) -> None:
    task = asyncio.create_task(feed.run())
    try:
        await posted.wait_for(order_id)
    finally:
        await feed.stop()
        await asyncio.wait_for(task, DEADLINE_S)


def _channel_messages() -> list[discord.Message]:
    messages = []
    while not dpytest.sent_queue.empty():
        messages.append(dpytest.get_message())
    return messages


async def test_orders_become_channel_messages_and_the_feed_resumes_after_a_restart(
    kafka: Any, bot_channel: tuple[Settings, Any], caplog: pytest.LogCaptureFixture
) -> None:
    settings, channel = bot_channel
    caplog.set_level(logging.INFO, logger="tinhieu.bot.orders_feed")
    first_id = f"bot-it-{uuid.uuid4().hex}"
    second_id = f"bot-it-{uuid.uuid4().hex}"
    key = b"BTC/USDT"
    broken = b'{"id": "bot-it-broken", "side": '
    [(bad_partition, bad_offset), _] = await _produce(
        kafka.bootstrap, [(key, broken), (key, order(first_id).dumps())]
    )
    client = dpytest.get_config().client

    # first run: the bad record is skipped, the order is posted in the channel
    posted = Posted(channel_poster(client, channel.id))
    feed = OrdersFeed(settings, posted, start_from="earliest")
    await _run_until(feed, posted, first_id)

    mine = [m for m in _channel_messages() if first_id in (m.embeds[0].footer.text or "")]
    assert len(mine) == 1
    assert mine[0].channel.id == channel.id
    assert mine[0].embeds[0].title == "🟢 MUA BTC/USDT · đã khớp"
    assert feed.group == f"{settings.app_id}-discord-bot"
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[BO QUA]")]
    assert any(f"orders[{bad_partition}]@{bad_offset}" in line for line in skipped)

    # second run, same consumer group: only what came after the committed offset
    await _produce(
        kafka.bootstrap,
        [(key, order(second_id, "SELL", reason="take_profit", price=88305.0, pnl=465.12).dumps())],
    )
    posted_again = Posted(channel_poster(client, channel.id))
    feed_again = OrdersFeed(settings, posted_again, start_from="earliest")
    await _run_until(feed_again, posted_again, second_id)

    assert not posted_again.has(first_id), "the restarted feed posted an order a second time"
    assert not any("bot-it-broken" in f for f in posted_again.footers)
    theirs = [m for m in _channel_messages() if second_id in (m.embeds[0].footer.text or "")]
    assert [m.embeds[0].title for m in theirs] == ["🔴 BÁN BTC/USDT · đã khớp"]


async def test_an_alert_raised_by_the_monitor_reaches_the_channel_in_vietnamese(
    kafka: Any, bot_channel: tuple[Settings, Any]
) -> None:
    settings, channel = bot_channel
    book = AlertBook.from_dict(None, clear_after=2)
    at = 1_700_000_000_000 + uuid.uuid4().int % 1_000_000  # an id of this run
    [alert] = book.evaluate("BTC/USDT", {"losing_streak": (True, 6.0, 5.0)}, at)
    assert alert.state == "raised"
    broken = b'{"id": "x", "state": "melted"}'
    await _produce(kafka.bootstrap, [(b"BTC/USDT", broken),
                                     (b"BTC/USDT", json.dumps(alert.to_dict()).encode())],
                   topic=ALERTS_TOPIC)
    client = dpytest.get_config().client
    posted = Posted(channel_poster(client, channel.id))
    feed = alerts_feed(settings, posted, start_from="earliest")
    await _run_until(feed, posted, alert.id)

    mine = [m for m in _channel_messages() if alert.id in (m.embeds[0].footer.text or "")]
    assert len(mine) == 1 and mine[0].channel.id == channel.id
    embed = mine[0].embeds[0]
    assert embed.title == "[CANH BAO] BTC/USDT"
    assert embed.description == alert.message and "lệnh lỗ liên tiếp" in embed.description
    assert feed.group == f"{settings.app_id}-discord-alerts" and feed.skipped == 1
