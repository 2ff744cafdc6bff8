"""``faust -A streams.app news-replay FILE [--timezone UTC]``: publish a headline history file.

History files such as ``../shared/data/news/crypto_news_headlines.csv.gz`` (columns
``timestamp,headline``) do not say their timezone: the command takes it from ``--timezone``
(default UTC) and prints which one it used. Each headline becomes one ``NewsItem`` per
mentioned symbol (key ``*`` when none), exactly like the feed ingest; headlines whose id is
already on the tail of ``news`` are skipped, so replaying a file twice publishes it once.
"""

from __future__ import annotations

import asyncio
import json

from faust.cli import argument, option

from streams.app import app, settings
from streams.topics import NEWS
from tinhieu import news
from tinhieu.kafka_io import decode_json, ensure_topics, make_producer, read_topic


@app.command(
    argument("file"),
    option(
        "--timezone",
        default="UTC",
        show_default=True,
        help="IANA timezone of the file's timestamps (the file does not say): UTC, "
        "Asia/Ho_Chi_Minh, America/New_York, ...",
    ),
)
async def news_replay(self: object, file: str, timezone: str) -> None:
    """Publish the headlines of a history CSV (timestamp,headline) to the news topic."""
    loop = asyncio.get_running_loop()
    try:
        history = await loop.run_in_executor(None, news.load_history, file, timezone)
    except news.HistoryFileError as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    print(
        f"[DU LIEU] {file}: {len(history.headlines)} headlines; timestamps read as the wall "
        f"clock of {timezone} (the file does not state its timezone; --timezone to change)"
    )
    for line in history.skipped:
        print(f"[BO QUA] {line}")
    if history.skipped_count > len(history.skipped):
        print(f"[BO QUA] ... {history.skipped_count - len(history.skipped)} more")
    await ensure_topics(settings.broker_url, [NEWS], settings.partitions, settings.replicas)
    seen = set()
    for _p, _o, _k, value in await read_topic(settings.broker_url, NEWS, tail=50_000):
        obj = decode_json(value)
        if obj and isinstance(obj.get("id"), str):
            seen.add(obj["id"])
    fresh = [h for h in history.headlines if h.id not in seen]
    symbols = settings.symbols
    items = await loop.run_in_executor(None, lambda: [news.enrich(h, symbols) for h in fresh])
    producer = make_producer(settings.broker_url)
    await producer.start()
    pending = []
    messages = 0
    try:
        for item in sorted(items, key=lambda i: i["published_ms"]):
            value = json.dumps(item).encode()
            for key in news.message_keys(item["symbols"]):
                pending.append(await producer.send(NEWS, value, key=key.encode()))
                messages += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    print(
        f"[DU LIEU] published {len(items)} headlines as {messages} messages to {NEWS} "
        f"({len(history.headlines) - len(items)} already there)"
    )
