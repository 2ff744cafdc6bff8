"""News: the leader polls RSS/Atom feeds into ``news``; an agent keeps per-symbol sentiment.

- ``ingest_news`` (leader-only timer, every ``news_poll_interval_s``; off while ``news_feeds``
  is empty): fetches every due feed with aiohttp, parses it with :func:`tinhieu.news.parse_feed`
  in an executor, and publishes each headline it has not published before: one ``NewsItem``
  per mentioned symbol keyed by the symbol, ``*`` when none. The ids already published (and
  the rejections already dead-lettered) are remembered in a bounded set, rebuilt from the
  tail of ``news`` and ``dead_letters`` when this worker becomes the leader, so neither a
  second poll nor a restart nor a leader change publishes a headline twice.
- A feed that fails (network, HTTP status, a document that is not RSS/Atom) is retried at
  later ticks with the exchange ingest's schedule: the wait doubles per failed poll from
  ``news_poll_interval_s`` up to ``ingest_backoff_max_s``; one log line per failed poll.
- A malformed feed and each entry without a date go to ``dead_letters`` once (key ``news``,
  partition and offset -1: they never were on a topic; ``DeadLetter.key`` is the feed URL).
- ``track_sentiment`` folds each batch of ``news`` into ``symbol_to_sentiment`` (one write per
  symbol and batch); ``GET /sentiment/{symbol}[?at=ms]`` answers from it on the owner worker.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist before topics/tables  # isort: skip

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from faust.types import EventT
from faust.web import Request, Response, View

from agents.batching import batches
from agents.deadletter import send_dead_letter
from models.records import DeadLetter, NewsItem
from streams.topics import DEAD_LETTERS, NEWS, news_raw_topic, publish_json
from streams.views import health_sections, routed
from tables import read_for_event, write_for_event
from tables.sentiment import symbol_to_sentiment
from tinhieu import i18n, news
from tinhieu.exchange.backoff import describe, iso
from tinhieu.kafka_io import decode_json, read_topic
from tinhieu.settings import Settings

log = logging.getLogger("tinhieu.news")
INGEST = "ingest_news"
AGENT = "track_sentiment"
SEEN_MAX = 50_000  # ids remembered; the topic tail read at start covers the recent ones
TAIL = 5_000  # messages read per partition of news / dead_letters at start
LATEST_KEPT = 20  # latest headlines kept per symbol for the views and the bot

i18n.register(
    {
        "news_start": (
            i18n.TAGS["init"],
            "worker này là leader: đọc {count} nguồn tin mỗi {interval} s; đã biết {seen} tin",
            "this worker is the leader: polling {count} news feed(s) every {interval} s; "
            "{seen} headline(s) already published",
        ),
        "news_published": (
            i18n.TAGS["data"],
            "đã gửi {count} tin mới từ {feed}",
            "published {count} new headline(s) from {feed}",
        ),
        "news_failed": (
            i18n.TAGS["retry"],
            "không đọc được nguồn tin {feed} từ {since} (lần thất bại thứ {failures}): "
            "{error}; thử lại sau {delay:.0f} s",
            "cannot read the news feed {feed} since {since} (failed attempt {failures}): "
            "{error}; next attempt in {delay:.0f} s",
        ),
        "news_recovered": (
            i18n.TAGS["conn"],
            "nguồn tin {feed} đọc được lại (lỗi từ {since}, {failures} lần)",
            "the news feed {feed} is readable again (failing since {since}, {failures} attempts)",
        ),
    }
)


class FeedError(Exception):
    """A feed that could not be fetched or read, with what to check."""


class FeedState:
    """One feed's outage state: the exchange ingest's schedule (``PollBackoff.delay_after``:
    ``base_s * 2 ** (failures - 1)`` capped at ``max_s``), logged once per failed poll."""

    def __init__(self, url: str, base_s: float, max_s: float, clock: Callable[[], float]):
        self.url = url
        self.base_s = base_s
        self.max_s = max(base_s, max_s)
        self._clock = clock
        self.failures = 0
        self.since_wall = 0.0
        self.next_at = 0.0
        self.last_error = ""
        self.last_ok: float | None = None

    def due(self) -> bool:
        return self.failures == 0 or self._clock() >= self.next_at - self.base_s / 2

    def failed(self, exc: BaseException) -> None:
        if self.failures == 0:
            self.since_wall = time.time()
        self.failures += 1
        delay = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 60))
        self.next_at = self._clock() + delay
        self.last_error = describe(exc)
        i18n.log(
            log,
            logging.WARNING,
            "news_failed",
            feed=self.url,
            since=iso(self.since_wall),
            failures=self.failures,
            error=self.last_error,
            delay=delay,
        )

    def succeeded(self) -> None:
        if self.failures:
            i18n.log(
                log,
                logging.INFO,
                "news_recovered",
                feed=self.url,
                since=iso(self.since_wall),
                failures=self.failures,
            )
        self.failures = 0
        self.last_ok = time.time()

    def health(self) -> dict[str, Any]:
        if self.failures == 0:
            ok = iso(self.last_ok) if self.last_ok else None
            return {"status": "ok" if ok else "starting", "last_poll": ok}
        return {
            "status": "failing",
            "since": iso(self.since_wall),
            "failed_attempts": self.failures,
            "last_error": self.last_error,
        }


def rejection_id(code: str, feed: str, payload: str) -> str:
    """Id of a dead-lettered rejection, recomputed from the DeadLetter's code, key, payload."""
    return "dl:" + hashlib.sha256(f"{code}\n{feed}\n{payload}".encode()).hexdigest()


class NewsRuntime:
    """What the news ingest keeps between ticks: the HTTP session, the feeds' outage states,
    the ids already published. One per worker process; rebuilt after a gap in the ticks
    (this worker was not the leader for a while)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self.session: aiohttp.ClientSession | None = None
        self.feeds = {
            url: FeedState(
                url, settings.news_poll_interval_s, settings.ingest_backoff_max_s, clock
            )
            for url in settings.news_feeds
        }
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.loaded = False
        self.closed = False
        self._last_tick: float | None = None

    def remember(self, key: str) -> None:
        self.seen[key] = None
        self.seen.move_to_end(key)
        while len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)

    async def load_seen(self) -> None:
        """Ids on the tail of ``news`` and rejections on the tail of ``dead_letters``."""
        self.seen.clear()
        for _p, _o, _key, value in await read_topic(self.settings.broker_url, NEWS, tail=TAIL):
            obj = decode_json(value)
            if obj and isinstance(obj.get("id"), str):
                self.remember(obj["id"])
        letters = await read_topic(self.settings.broker_url, DEAD_LETTERS, tail=TAIL)
        for _p, _o, _key, value in letters:
            obj = decode_json(value)
            if obj and obj.get("agent") == INGEST:
                self.remember(
                    rejection_id(str(obj.get("code")), str(obj.get("key")), str(obj["payload"]))
                )
        self.loaded = True

    async def fetch(self, url: str) -> bytes:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.news_timeout_s),
                headers={"User-Agent": "tinhieu-news/0.1 (+feedparser)"},
            )
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    raise FeedError(f"HTTP {response.status} {response.reason} from {url}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FeedError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc

    async def tick(self) -> None:
        """One timer tick: poll every due feed and publish what is new."""
        now = self._clock()
        interval = self.settings.news_poll_interval_s
        stale = self._last_tick is None or now - self._last_tick > 3 * interval + 30
        self._last_tick = now
        if stale or not self.loaded:
            try:
                await self.load_seen()
            except Exception as exc:  # Kafka not readable: publish nothing rather than twice
                log.error("news: cannot read the tail of %s: %s; retrying next tick", NEWS, exc)
                self.loaded = False
                return
            i18n.log(
                log,
                logging.INFO,
                "news_start",
                count=len(self.feeds),
                interval=interval,
                seen=len(self.seen),
            )
        for feed in self.feeds.values():
            if self.closed:
                return
            if feed.due():
                await self.poll_feed(feed)

    async def poll_feed(self, feed: FeedState) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = await self.fetch(feed.url)
            parsed = await loop.run_in_executor(None, news.parse_feed, data, feed.url)
        except FeedError as exc:
            feed.failed(exc)
            return
        fresh = [h for h in parsed.headlines if h.id not in self.seen]
        symbols = self.settings.symbols
        items = await loop.run_in_executor(None, lambda: [news.enrich(h, symbols) for h in fresh])
        pending: list[Awaitable[Any]] = []
        for item in items:
            NewsItem(**item)  # the record's shape; publish_json writes the same JSON
            for key in news.message_keys(item["symbols"]):
                pending.append(await publish_json(NEWS, key, item))
        letters = []
        for rejected in parsed.rejected:
            rid = rejection_id(rejected.code, feed.url, rejected.payload)
            if rid not in self.seen:
                letters.append(rid)
                pending.append(await send_feed_dead_letter(feed.url, rejected))
        if self.closed:
            return
        await asyncio.gather(*pending)  # delivered before they count as published
        for item in items:
            self.remember(item["id"])
        for rid in letters:
            self.remember(rid)
        if any(r.code == "malformed_feed" for r in parsed.rejected):
            feed.failed(FeedError(parsed.rejected[0].reason))
        else:
            feed.succeeded()
        if items:
            i18n.log(log, logging.INFO, "news_published", count=len(items), feed=feed.url)

    async def close(self) -> None:
        self.closed = True
        if self.session is not None:
            await self.session.close()

    def health(self) -> dict[str, Any]:
        if not self.settings.news_feeds:
            return {"status": "disabled"}
        if not app.is_leader():
            return {"status": "standby", "note": "the leader worker polls the news feeds"}
        return {url: feed.health() for url, feed in self.feeds.items()}


async def send_feed_dead_letter(feed: str, rejected: news.Rejected) -> Awaitable[Any]:
    """A feed's rejection to ``dead_letters``; it was never on a topic (partition, offset -1)."""
    log.warning("news: %s -> dead_letters (%s): %s", feed, rejected.code, rejected.reason)
    letter = DeadLetter(
        source_topic=NEWS,
        partition=-1,
        offset=-1,
        key=feed,
        payload=rejected.payload,
        reason=rejected.reason,
        code=rejected.code,
        agent=INGEST,
        at=time.time(),
    )
    return await app.producer.send(DEAD_LETTERS, NEWS.encode(), letter.dumps(), None, None, None)


news_runtime = NewsRuntime(settings)
health_sections["news"] = news_runtime.health


@app.on_before_shutdown.connect
async def close_news(sender: Any, **kwargs: Any) -> None:
    """Close the feeds' HTTP session on shutdown."""
    await news_runtime.close()


@app.timer(settings.news_poll_interval_s, on_leader=True, name=INGEST)
async def ingest_news() -> None:
    """Poll the due news feeds and publish the new headlines (leader only)."""
    if not settings.news_feeds or news_runtime.closed:
        return
    await news_runtime.tick()


# ---- sentiment state ------------------------------------------------------------------------


def fold_items(
    value: dict[str, Any] | None, items: Sequence[NewsItem], half_life_s: float
) -> dict[str, Any]:
    """A new table value with ``items`` folded in (``value`` is not changed)."""
    state = value["state"] if value else None
    latest = list(value["latest"]) if value else []
    for item in items:
        before = state
        state = news.apply_headline(
            state, item.published_ms, item.sentiment, item.id, half_life_s=half_life_s
        )
        if before is None or state != before:
            latest.append(
                {
                    "id": item.id,
                    "published_ms": item.published_ms,
                    "title": item.title,
                    "url": item.url,
                    "source": item.source,
                    "sentiment": item.sentiment,
                }
            )
    latest = sorted({h["id"]: h for h in latest}.values(), key=lambda h: h["published_ms"])
    return {"state": state, "latest": latest[-LATEST_KEPT:]}


def _decode(event: EventT) -> NewsItem:
    item = NewsItem.loads(event.value)
    if not isinstance(item.published_ms, int) or not isinstance(item.sentiment, float | int):
        raise ValueError("published_ms must be an integer and sentiment a number")
    return item


async def handle_news_batch(events: Sequence[EventT]) -> None:
    """Fold a batch of ``news`` messages into ``symbol_to_sentiment``, one write per key."""
    by_key: dict[bytes, list[tuple[EventT, NewsItem]]] = {}
    pending: list[Awaitable[Any]] = []
    for event in events:
        try:
            item = _decode(event)
        except Exception as exc:  # noqa: BLE001 - a dead letter, never a crash
            reason = f"not a NewsItem: {type(exc).__name__}: {exc}"
            pending.append(await send_dead_letter(event, "decode_error", reason, agent=AGENT))
            continue
        key = event.message.key or news.NO_SYMBOL_KEY.encode()
        by_key.setdefault(key, []).append((event, item))
    if pending:
        await asyncio.gather(*pending)
    for key, pairs in by_key.items():
        event = pairs[-1][0]
        value = fold_items(
            read_for_event(symbol_to_sentiment, key, event),
            [i for _, i in pairs],
            settings.news_half_life_s,
        )
        write_for_event(symbol_to_sentiment, key, value, event)


@app.agent(news_raw_topic, name=AGENT)
async def track_sentiment(stream):  # type: ignore[no-untyped-def]
    """Headlines -> the per-symbol sentiment state; bad messages to dead letters."""
    async for events in batches(stream, 500):
        await handle_news_batch(events)


@app.page("/sentiment/{symbol}")
class SentimentView(View):
    """``GET /sentiment/BTC-USDT[?at=<ms UTC>]``: the sentiment as of ``at`` (default now)
    from the headlines published before it, with the latest headlines published before it."""

    async def get(self, request: Request, symbol: str) -> Response:
        raw_at = request.query.get("at")
        try:
            at = int(raw_at) if raw_at else int(time.time() * 1000)
        except ValueError:
            return self.json({"error": f"at must be integer ms UTC, not {raw_at!r}"}, status=400)

        async def local(normalized: str) -> Response:
            return self._local(normalized, at)

        return await routed(self, request, symbol_to_sentiment.name, symbol, local)

    def _local(self, symbol: str, at: int) -> Response:
        value = symbol_to_sentiment.get(symbol.encode())
        try:
            answer = news.state_as_of(value["state"] if value else None, at)
        except ValueError as exc:
            return self.json({"error": str(exc), "symbol": symbol}, status=422)
        latest = [h for h in (value["latest"] if value else []) if h["published_ms"] < at]
        return self.json(
            {
                "symbol": symbol,
                "half_life_s": value["state"]["half_life_s"] if value else None,
                **answer,
                "latest": latest[::-1],
            }
        )
