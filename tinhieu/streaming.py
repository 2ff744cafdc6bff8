"""Live push of signals, orders, alerts, signal outcomes and dead letters to WebSocket and
SSE clients (no Faust).

A :class:`Hub` fans each message out to the connected clients whose :class:`Subscription`
matches it. Every client has its own bounded queue: a client that falls ``queue_size``
messages behind is dropped (its handler closes the connection with the reason), so a slow
or stalled client never slows the feed, the agents or the other clients.

The hub is fed by one coroutine per worker (:func:`kafka_feed`: a plain aiokafka consumer,
no consumer group, every partition of ``signals``, ``orders``, ``dead_letters``, ``alerts``
and ``signal_outcomes`` from their end; outcomes only to clients that ask for them),
started when the first client subscribes and stopped when the last leaves.
``streams/stream_views.py`` holds the aiohttp handlers; the rules here are unit-tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tinhieu.symbols import UnknownSymbolError, normalize
from tinhieu.webapi import ApiError, parse_symbol

log = logging.getLogger("tinhieu.streaming")

MESSAGE_TYPES = ("signal", "order", "dead_letter", "alert", "outcome")
DEFAULT_TYPES = ("signal", "order", "dead_letter", "alert")  # outcomes: on request
TOPIC_TYPES = {"signals": "signal", "orders": "order", "dead_letters": "dead_letter",
               "alerts": "alert", "signal_outcomes": "outcome"}
STREAM_PARAMS = ("symbols", "types")
MAX_SUBSCRIBE_BYTES = 4096  # a subscribe message is small: anything larger is refused
HEARTBEAT_S = 15.0


def _split(kind: str, data: dict[str, Any], text: str) -> list[tuple[dict[str, Any], str]]:
    """A ``signal_outcomes`` message carries a symbol's outcomes together
    (:class:`models.records.SignalOutcomes`): clients get one ``outcome`` message each."""
    if kind != "outcome" or not isinstance(data.get("outcomes"), list):
        return [(data, text)]
    return [(o, json.dumps(o, separators=(",", ":"))) for o in data["outcomes"]
            if isinstance(o, dict)]


@dataclass(frozen=True, slots=True)
class Subscription:
    """Which messages a client wants: ``None`` means every symbol (or every type)."""

    symbols: frozenset[str] | None = None
    types: frozenset[str] = frozenset(DEFAULT_TYPES)

    def matches(self, kind: str, symbol: str | None) -> bool:
        """A message without a symbol (a dead letter of an unkeyed message) goes only to
        clients that did not ask for particular symbols; a cluster-wide alert (exchange
        unreachable, a stalled partition) goes to every client that takes alerts."""
        if kind not in self.types:
            return False
        if self.symbols is None or (kind == "alert" and symbol is None):
            return True
        return symbol is not None and symbol in self.symbols

    def as_json(self) -> dict[str, Any]:
        return {
            "symbols": sorted(self.symbols) if self.symbols is not None else None,
            "types": [t for t in MESSAGE_TYPES if t in self.types],
        }


def _symbols(values: Iterable[str], supported: tuple[str, ...]) -> frozenset[str] | None:
    out = {parse_symbol(v, supported) for v in values if str(v).strip()}
    return frozenset(out) if out else None


def _types(values: Iterable[str]) -> frozenset[str]:
    out = set()
    for value in values:
        text = str(value).strip().lower()
        if not text:
            continue
        if text not in MESSAGE_TYPES:
            raise ApiError(
                400,
                "invalid_query",
                f"type {text[:40]!r} is unknown; accepted: {', '.join(MESSAGE_TYPES)}",
            )
        out.add(text)
    return frozenset(out) if out else frozenset(DEFAULT_TYPES)


def parse_stream_query(
    query: Mapping[str, str] | Iterable[tuple[str, str]], supported: Iterable[str]
) -> Subscription:
    """``?symbols=btc,eth&types=signal,order`` -> a Subscription (both optional: all).

    The REST API's rules: an unknown or repeated parameter is refused (``invalid_query``),
    each symbol is checked by ``tinhieu.webapi.parse_symbol`` (``invalid_symbol`` 400,
    ``unknown_symbol`` 404)."""
    supported = tuple(supported)
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in STREAM_PARAMS:
            raise ApiError(
                400,
                "invalid_query",
                f"unknown query parameter {name[:40]!r}; accepted: {', '.join(STREAM_PARAMS)}",
            )
        if name in seen:
            raise ApiError(400, "invalid_query", f"query parameter {name!r} given twice")
        seen[name] = value
    return Subscription(
        symbols=_symbols(seen.get("symbols", "").split(","), supported),
        types=_types(seen.get("types", "").split(",")),
    )


def parse_subscribe_message(text: str | bytes, supported: Iterable[str]) -> Subscription:
    """A WebSocket client's ``{"subscribe": {"symbols": [...], "types": [...]}}``.

    A missing or empty list means all; the symbols and types follow the query's rules.
    Anything else is an ``ApiError`` 400 ``invalid_message`` that names what is wrong."""
    supported = tuple(supported)
    if len(text) > MAX_SUBSCRIBE_BYTES:
        raise ApiError(
            400, "invalid_message", f"message of {len(text)} bytes (limit {MAX_SUBSCRIBE_BYTES})"
        )
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "invalid_message", "not JSON; send "
                       '{"subscribe": {"symbols": ["BTC-USDT"], "types": ["signal"]}}') from None
    if not isinstance(obj, dict) or set(obj) != {"subscribe"} or not isinstance(
        obj["subscribe"], dict
    ):
        raise ApiError(
            400,
            "invalid_message",
            'the only message accepted is {"subscribe": {"symbols": [...], "types": [...]}}',
        )
    body = obj["subscribe"]
    unknown = set(body) - set(STREAM_PARAMS)
    if unknown:
        raise ApiError(
            400,
            "invalid_message",
            f"unknown field(s) {sorted(unknown)!r} in subscribe; accepted: symbols, types",
        )
    lists = {}
    for name in STREAM_PARAMS:
        value = body.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(400, "invalid_message", f"subscribe.{name} must be a list of strings")
        lists[name] = value
    try:
        return Subscription(_symbols(lists["symbols"], supported), _types(lists["types"]))
    except ApiError as exc:  # same detail, one code for everything a message gets wrong
        raise ApiError(400, "invalid_message", exc.detail, **exc.extra) from None


def frame(kind: str, data: Any) -> str:
    """The JSON text of one message: ``{"type": kind, "data": data}``."""
    return json.dumps({"type": kind, "data": data}, separators=(",", ":"))


_DROPPED = object()  # put in a dropped client's emptied queue: wakes its writer at once


class Client:
    """One connected client: its subscription and its bounded queue of message texts."""

    def __init__(self, subscription: Subscription, queue_size: int) -> None:
        self.subscription = subscription
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.dropped = asyncio.Event()
        self.reason = ""

    def offer(self, kind: str, symbol: str | None, text: str) -> bool:
        """Queue ``text`` if subscribed; False when the queue is full (drop the client)."""
        if not self.subscription.matches(kind, symbol):
            return True
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    def drop(self, reason: str) -> None:
        """Mark the client dropped; what it had queued is discarded."""
        if self.dropped.is_set():
            return
        self.reason = reason
        self.dropped.set()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_DROPPED)

    async def next(self, timeout: float | None = None) -> str | None:
        """The next message text; ``None`` after ``timeout`` s (time for a heartbeat).

        Raises ``ConnectionAbortedError`` once the client is dropped. Cheap when messages
        are waiting (no suspension): a writer drains its queue in one go."""
        if timeout is None:
            item = await self.queue.get()
        else:
            try:
                async with asyncio.timeout(timeout):
                    item = await self.queue.get()
            except TimeoutError:
                return None
        if item is _DROPPED:
            raise ConnectionAbortedError(self.reason)
        return item

    def waiting(self) -> list[str]:
        """Every message already queued, without waiting (stops before a drop)."""
        out = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is _DROPPED:
                self.queue.put_nowait(item)
                break
            out.append(item)
        return out


Feed = Callable[["Hub", asyncio.Event], Awaitable[None]]


class Hub:
    """Fan-out of typed messages to clients; runs ``feed`` while anyone is connected.

    ``feed(hub, ready)`` calls :meth:`publish` for every message and sets ``ready`` once it
    will see every message written from then on (a client is told ``subscribed`` only
    after that)."""

    def __init__(self, feed: Feed, queue_size: int, ready_timeout_s: float = 15.0) -> None:
        self.feed = feed
        self.queue_size = queue_size
        self.ready_timeout_s = ready_timeout_s
        self.clients: set[Client] = set()
        self.published = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()

    async def connect(self, subscription: Subscription) -> Client:
        """Register a client; start the feed if it is the first. Raises ``TimeoutError``
        (client not registered) when the feed is not ready in ``ready_timeout_s``."""
        client = Client(subscription, self.queue_size)
        async with self._lock:
            self.clients.add(client)
            if self._task is None or self._task.done():
                self._ready = asyncio.Event()
                self._task = asyncio.create_task(self.feed(self, self._ready), name="stream-feed")
        try:
            await asyncio.wait_for(self._ready.wait(), self.ready_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            await self.disconnect(client)
            raise
        return client

    async def disconnect(self, client: Client) -> None:
        """Forget a client; stop the feed when it was the last."""
        async with self._lock:
            self.clients.discard(client)
            if not self.clients:
                await self._stop_feed()

    async def _stop_feed(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def publish(self, kind: str, symbol: str | None, data_json: str) -> None:
        """Queue one message for every matching client; drop those whose queue is full.

        ``data_json`` is the record's JSON text, embedded as is (encoded once, not per
        client). Never waits."""
        self.published += 1
        text = f'{{"type":"{kind}","data":{data_json}}}'
        for client in tuple(self.clients):
            if not client.offer(kind, symbol, text):
                self.clients.discard(client)
                self.dropped += 1
                client.drop(
                    f"too slow: {self.queue_size} messages waiting (setting "
                    "stream_client_queue); reconnect and read faster"
                )

    async def close(self) -> None:
        """Shutdown: drop every client (their handlers close the connections), stop the feed."""
        async with self._lock:
            for client in tuple(self.clients):
                client.drop("the worker is shutting down")
            self.clients.clear()
            await self._stop_feed()


def message_symbol(kind: str, key: bytes | None, data: Mapping[str, Any],
                   supported: tuple[str, ...]) -> str | None:
    """The symbol a message is about: a signal's or order's ``symbol``; a dead letter's
    original message key when it is a configured symbol (else ``None``)."""
    raw = data.get("key") if kind == "dead_letter" else data.get("symbol")
    if raw is None and kind != "dead_letter" and key:
        raw = key.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return normalize(raw, supported)
    except UnknownSymbolError:
        return None


def kafka_feed(bootstrap: list[str], supported: Iterable[str], retry_s: float = 2.0) -> Feed:
    """A feed reading the topics of ``TOPIC_TYPES`` with one aiokafka
    consumer: no group, every partition assigned, from the end. If Kafka fails, it starts
    again from the end after ``retry_s`` (what was written meanwhile is not pushed)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    symbols = tuple(supported)

    async def run_once(hub: Hub, ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            tps = []
            for topic in TOPIC_TYPES:
                consumer._client.add_topic(topic)  # ask for topics nobody subscribed to
            await consumer._client.force_metadata_update()
            for topic in TOPIC_TYPES:
                parts = consumer.partitions_for_topic(topic) or set()
                tps.extend(TopicPartition(topic, p) for p in sorted(parts))
            if not tps:
                raise RuntimeError(f"topics {', '.join(TOPIC_TYPES)} not found")
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)  # resolve the end now: ready means "from here"
            ready.set()
            yield_every = max(1, hub.queue_size // 4)
            since_yield = 0
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batch.items():
                    kind = TOPIC_TYPES[tp.topic]
                    for rec in records:
                        if rec.value is None:
                            continue
                        try:
                            text = rec.value.decode()
                            data = json.loads(text)
                        except (UnicodeDecodeError, json.JSONDecodeError):
                            continue  # not a record of ours: nothing a client could read
                        if not isinstance(data, dict):
                            continue
                        for one, one_text in _split(kind, data, text):
                            hub.publish(kind, message_symbol(kind, rec.key, one, symbols),
                                        one_text)
                        since_yield += 1
                        if since_yield >= yield_every:
                            # Let the clients' writers drain their queues: a burst (a
                            # replay, a catch-up) must not fill a reading client's queue.
                            since_yield = 0
                            await asyncio.sleep(0)
        finally:
            await consumer.stop()

    async def feed(hub: Hub, ready: asyncio.Event) -> None:
        while True:
            try:
                await run_once(hub, ready)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the clients stay connected
                log.exception("stream feed failed; restarting from the end in %.0f s", retry_s)
                await asyncio.sleep(retry_s)

    return feed
