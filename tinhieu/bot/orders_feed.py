"""The bot's readers of the ``orders`` and ``alerts`` topics: one Vietnamese embed per order
or alert in the channel (:class:`OrdersFeed`; :func:`alerts_feed` is the same reader on
``alerts``).

An aiokafka consumer in its own consumer group (``<app_id>-discord-bot``), so the bot never
takes partitions from the workers. Offsets are committed only after the embed is posted:
after a restart the feed resumes with the first order it had not posted yet (an order can be
posted twice if the bot dies between posting and committing; never lost).

A record that does not decode into an ``Order`` is logged ``[BO QUA]`` and skipped (its
offset is committed, so it is not retried forever). A failed post is retried with backoff
while the feed runs; the offset is not committed until it succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_type_hints

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from models.records import Alert, Order
from tinhieu import i18n
from tinhieu.core_types import SIDES, Fill
from tinhieu.kafka_io import bootstrap_servers
from tinhieu.settings import Settings

__all__ = ["ALERTS_TOPIC", "ORDERS_TOPIC", "OrdersFeed", "alerts_feed", "bootstrap_servers",
           "decode_alert", "decode_order", "group_id"]

logger = logging.getLogger(__name__)

ORDERS_TOPIC = "orders"
ALERTS_TOPIC = "alerts"

i18n.register(
    {
        "feed.start": (
            i18n.TAGS["init"],
            "bot doc topic {topic!r} tu {servers} (nhom {group})",
            "the bot reads topic {topic!r} from {servers} (group {group})",
        ),
        "feed.bad_order": (
            i18n.TAGS["skip"],
            "ban ghi {topic}[{partition}]@{offset} khong phai Order hop le: {reason}",
            "record {topic}[{partition}]@{offset} is not a valid Order: {reason}",
        ),
        "feed.posted": (
            i18n.TAGS["order"],
            "da dang lenh {order_id} ({symbol} {side}) len Discord",
            "posted order {order_id} ({symbol} {side}) to Discord",
        ),
        "feed.post_failed": (
            i18n.TAGS["retry"],
            "khong dang duoc lenh {order_id} len Discord ({error}); thu lai sau {delay:.0f} s",
            "could not post order {order_id} to Discord ({error}); retrying in {delay:.0f} s",
        ),
        "feed.kafka_failed": (
            i18n.TAGS["retry"],
            "loi Kafka khi doc {topic!r}: {error}; thu lai sau {delay:.0f} s",
            "Kafka error while reading {topic!r}: {error}; retrying in {delay:.0f} s",
        ),
    }
)

Post = Callable[[Any], Awaitable[None]]
ConsumerFactory = Callable[..., AIOKafkaConsumer]

# The float fields of an order: Faust's validate() lets true and NaN through, the embed cannot.
_NUMBER_FIELDS = tuple(name for name, kind in get_type_hints(Fill).items() if kind is float)


def group_id(settings: Settings) -> str:
    """The bot's own consumer group: ``<app_id>-discord-bot``."""
    return f"{settings.app_id}-discord-bot"


def _record(cls: Any, value: bytes | None) -> Any:
    """The record of type ``cls`` in a record value (a JSON object; Faust's metadata
    dropped); ``ValueError`` saying what is wrong."""
    if value is None:
        raise ValueError("empty value (tombstone)")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"JSON {type(data).__name__}, not an object")
    data.pop("__faust", None)
    try:
        return cls.from_data(data)
    except TypeError as exc:
        raise ValueError(f"fields missing or unknown: {exc}") from None


def decode_order(value: bytes | None) -> Order:
    """The ``Order`` in a record value (JSON); ``ValueError`` saying what is wrong."""
    order: Order = _record(Order, value)
    errors = order.validate()
    if errors:
        raise ValueError("; ".join(str(e) for e in errors))
    if str(order.side).upper() not in SIDES:
        raise ValueError(f"side {order.side!r} is not one of {', '.join(SIDES)}")
    for name in _NUMBER_FIELDS:
        value_ = getattr(order, name)
        if isinstance(value_, bool) or not isinstance(value_, int | float) or not math.isfinite(
            value_
        ):
            raise ValueError(f"{name} {value_!r} is not a finite number")
    return order


def decode_alert(value: bytes | None) -> Alert:
    """The ``Alert`` in a record value (JSON); ``ValueError`` saying what is wrong."""
    alert: Alert = _record(Alert, value)
    for name in ("id", "kind", "state", "message"):
        if not isinstance(getattr(alert, name), str) or not getattr(alert, name):
            raise ValueError(f"{name} {getattr(alert, name)!r} is not text")
    if alert.state not in ("raised", "cleared"):
        raise ValueError(f"state {alert.state!r} is not raised or cleared")
    return alert


class OrdersFeed:
    """Reads ``orders`` and calls ``post(embed)`` for each order, committing after each post.

    Parameters
    ----------
    settings:
        ``broker_url`` (bootstrap servers) and ``app_id`` (consumer group prefix).
    post:
        ``async post(embed)``; normally :func:`tinhieu.bot.commands.channel_poster`.
    topic:
        The orders topic.
    group:
        Consumer group; default ``<app_id>-discord-bot``.
    start_from:
        Where a group without committed offsets starts: ``"latest"`` (default: a new bot does
        not flood the channel with old orders) or ``"earliest"``.
    make_embed:
        ``Order -> embed``; default :func:`tinhieu.bot.messages.order_embed`.
    decode:
        ``bytes -> record`` (raises ``ValueError``); default :func:`decode_order`.
    consumer_factory:
        Builds the consumer (tests may pass another); default ``AIOKafkaConsumer``.
    retry_max_delay_s:
        Longest wait between retries of a failed post or Kafka error.
    """

    def __init__(
        self,
        settings: Settings,
        post: Post,
        *,
        topic: str = ORDERS_TOPIC,
        group: str | None = None,
        start_from: Literal["latest", "earliest"] = "latest",
        make_embed: Callable[[Any], Any] | None = None,
        decode: Callable[[bytes | None], Any] = decode_order,
        consumer_factory: ConsumerFactory = AIOKafkaConsumer,
        retry_max_delay_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.post = post
        self.topic = topic
        self.group = group or group_id(settings)
        self.start_from = start_from
        self.retry_max_delay_s = retry_max_delay_s
        if make_embed is None:
            from tinhieu.bot.messages import order_embed  # discord only where it is needed

            make_embed = order_embed
        self.make_embed = make_embed
        self.decode = decode
        self._consumer_factory = consumer_factory
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self.posted = 0
        self.skipped = 0

    async def run(self) -> None:
        """Consume until :meth:`stop` or cancellation; never raises for a bad order."""
        servers = bootstrap_servers(self.settings.broker_url)
        consumer = self._consumer_factory(
            self.topic,
            bootstrap_servers=servers,
            group_id=self.group,
            client_id=f"{self.settings.app_id}-discord-bot",
            enable_auto_commit=False,
            auto_offset_reset=self.start_from,
            metadata_max_age_ms=30_000,  # notice the topic soon if it is created after us
        )
        self._consumer = consumer
        i18n.log(logger, logging.INFO, "feed.start", topic=self.topic,
                 servers=",".join(servers), group=self.group)
        delay = 1.0
        try:
            while not self._stopping.is_set():
                try:
                    await self._until_stopped(consumer.start())
                    break
                except KafkaError as exc:
                    i18n.log(logger, logging.WARNING, "feed.kafka_failed", topic=self.topic,
                             error=repr(exc), delay=delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, self.retry_max_delay_s)
            delay = 1.0
            while not self._stopping.is_set():
                try:
                    batches = await self._until_stopped(
                        consumer.getmany(timeout_ms=1000, max_records=50)
                    )
                except KafkaError as exc:
                    i18n.log(logger, logging.WARNING, "feed.kafka_failed", topic=self.topic,
                             error=repr(exc), delay=delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, self.retry_max_delay_s)
                    continue
                delay = 1.0
                for tp, records in (batches or {}).items():
                    for record in records:
                        if self._stopping.is_set():
                            return
                        if await self._handle(record):
                            await consumer.commit({tp: record.offset + 1})
        finally:
            self._consumer = None
            await consumer.stop()

    async def stop(self) -> None:
        """Ask :meth:`run` to finish after the order in hand; it then closes the consumer."""
        self._stopping.set()

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Post one record; True when its offset may be committed."""
        try:
            order = self.decode(record.value)
        except ValueError as exc:
            self.skipped += 1
            i18n.log(logger, logging.WARNING, "feed.bad_order", topic=record.topic,
                     partition=record.partition, offset=record.offset, reason=exc)
            return True
        embed = self.make_embed(order)
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self.post(embed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Discord is outside; retry, never crash
                i18n.log(logger, logging.WARNING, "feed.post_failed", order_id=order.id,
                         error=repr(exc), delay=delay)  # never the token: not in the error
                await self._sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)
                continue
            self.posted += 1
            i18n.log(logger, logging.INFO, "feed.posted", order_id=order.id,
                     symbol=order.symbol or "*", side=getattr(order, "side", None) or
                     getattr(order, "kind", ""))
            return True
        return False

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _until_stopped(self, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` unless stop() comes first (then cancel it and return None)."""
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None



def alerts_feed(settings: Settings, post: Post, **options: Any) -> OrdersFeed:
    """The reader of ``alerts``: one embed per alert raised or cleared
    (:func:`tinhieu.bot.messages.alert_embed`), in its own group ``<app_id>-discord-alerts``."""
    from tinhieu.bot.messages import alert_embed

    options.setdefault("group", f"{settings.app_id}-discord-alerts")
    return OrdersFeed(settings, post, topic=ALERTS_TOPIC, decode=decode_alert,
                      make_embed=alert_embed, **options)
