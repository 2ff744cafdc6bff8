"""The news ingest end to end: a local HTTP server serves RSS and Atom documents (one
malformed, one entry without a date) to a real worker polling every second. Each headline
reaches ``news`` once per mentioned symbol, across polls and a restart; the bad ones reach
``dead_letters`` once; ``GET /sentiment/{symbol}`` answers from ``symbol_to_sentiment``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.procs import Worker, app_env, run_command, wait_for
from tinhieu import news
from tinhieu.kafka_io import decode_json, read_topic

pytestmark = pytest.mark.integration
FEEDS = Path(__file__).resolve().parents[1] / "fakes" / "feeds"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")
NEW_ITEM = """    <item>
      <title>Bitcoin Slides as Miners Dump Coins</title>
      <link>https://news.example.com/markets/2026/12/01/miners-dump</link>
      <pubDate>Tue, 01 Dec 2026 06:05:00 +0000</pubDate>
    </item>
  </channel>"""


class Feeds:
    """A local HTTP server serving the documents in ``docs`` (path -> bytes)."""

    def __init__(self) -> None:
        self.docs = {
            "/rss.xml": (FEEDS / "rss2.xml").read_bytes(),
            "/atom.xml": (FEEDS / "atom.xml").read_bytes(),
            "/bad.xml": (FEEDS / "malformed.xml").read_bytes(),
        }
        self.hits: Counter[str] = Counter()
        docs, hits = self.docs, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits[self.path] += 1
                body = docs.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/xml")
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def feeds():
    server = Feeds()
    try:
        yield server
    finally:
        server.server.shutdown()


def expected_messages(feeds: Feeds) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for path in ("/rss.xml", "/atom.xml"):
        for h in news.parse_feed(feeds.docs[path], feeds.url + path).headlines:
            for key in news.message_keys(news.detect_symbols(h.title, SYMBOLS)):
                out[(key, h.id)] += 1
    return out


def topic(env: dict[str, str], name: str) -> list[tuple[str, dict]]:
    rows = asyncio.run(read_topic(env["TINHIEU_BROKER_URL"], name))
    return [(k.decode(), o) for _, _, k, v in rows if k and (o := decode_json(v))]


def test_news_once_each_across_polls_and_restart(kafka, feeds, tmp_path) -> None:
    env = app_env(
        kafka.url,
        tmp_path / "worker",
        "it-news",
        news_feeds=f"{feeds.url}/rss.xml,{feeds.url}/atom.xml,{feeds.url}/bad.xml",
        news_poll_interval_s=1,
        ingest_backoff_max_s=2,
        news_half_life_s=3600,
        symbols=",".join(SYMBOLS),
    )
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        want = expected_messages(feeds)
        assert sum(want.values()) == 6  # BTC, ETH + SOL, BNB, and two under "*"

        def got() -> Counter[tuple[str, str]]:
            return Counter((k, o["id"]) for k, o in topic(env, "news"))

        wait_for(got, 40, "the headlines on news", ready=lambda c: set(c) >= set(want))
        wait_for(lambda: feeds.hits["/rss.xml"], 10, "a second poll", ready=lambda n: n >= 3)
        assert got() == want, worker.tail()

        def letters() -> Counter[tuple[str, str]]:
            return Counter(
                (o["code"], o["key"]) for k, o in topic(env, "dead_letters") if k == "news"
            )

        bad = {
            ("malformed_feed", f"{feeds.url}/bad.xml"),
            ("undated_entry", f"{feeds.url}/rss.xml"),
        }
        wait_for(letters, 20, "the dead letters", ready=lambda c: set(c) >= bad)
        assert letters() == Counter(bad)

        at = max(o["published_ms"] for _, o in topic(env, "news")) + 1

        def sentiment(symbol: str, when: int = at) -> dict:
            status, body = worker.get(f"/sentiment/{symbol}?at={when}")
            return body if status == 200 else {}

        btc = wait_for(lambda: sentiment("BTC-USDT"), 20, "BTC sentiment",
                       ready=lambda b: b.get("total") == 1)
        assert btc["score"] > 0 and btc["latest"][0]["title"].startswith("Bitcoin Rallies")
        eth = wait_for(lambda: sentiment("eth"), 20, "ETH sentiment",
                       ready=lambda b: b.get("total") == 1)
        assert eth["score"] < 0 and eth["count_24h"] == 1
        first_btc = btc["latest"][0]["published_ms"]
        assert sentiment("BTC-USDT", first_btc)["total"] == 0  # as of: strictly before
        assert worker.get("/sentiment/DOGE")[0] == 404

        # a new entry: published once, on the next poll
        feeds.docs["/rss.xml"] = feeds.docs["/rss.xml"].replace(b"  </channel>", NEW_ITEM.encode())
        want = expected_messages(feeds)
        wait_for(got, 20, "the new headline", ready=lambda c: set(c) >= set(want))

        worker.stop()
        hits = feeds.hits["/rss.xml"]
        worker = Worker(env, tmp_path / "worker2.log").start()
        worker.wait_ready()
        wait_for(lambda: feeds.hits["/rss.xml"], 30, "polls after the restart",
                 ready=lambda n: n >= hits + 3)
        time.sleep(1.0)
        assert got() == want, worker.tail()
        assert letters() == Counter(bad)
        at2 = max(o["published_ms"] for _, o in topic(env, "news")) + 1
        btc = wait_for(lambda: sentiment("BTC-USDT", at2), 20, "BTC after the restart",
                       ready=lambda b: b.get("total") == 2)
        assert btc["count_24h"] == 2
    finally:
        worker.stop()

    # a history file: the timezone is stated, once per headline and symbol, never twice
    history = tmp_path / "history.csv"
    history.write_text(
        "timestamp,headline\n"
        "1709123422000,\"bitcoin tops $59,000, apple reportedly cancels car plans\"\n"
        "1709125200000,nlp in finance market worth $18.8 billion by 2028\n"
        "oops,solana rallies\n"
    )
    out = run_command(env, "news-replay", str(history), "--timezone", "Asia/Ho_Chi_Minh")
    assert "Asia/Ho_Chi_Minh" in out and "line 4" in out and "published 2 headlines" in out
    replayed = [(k, o) for k, o in topic(env, "news") if o["source"] == "file:history.csv"]
    assert sorted(k for k, _ in replayed) == ["*", "BTC/USDT"]
    btc_row = next(o for k, o in replayed if k == "BTC/USDT")
    assert btc_row["published_ms"] == 1709123422000 - 7 * 3_600_000
    again = run_command(env, "news-replay", str(history), "--timezone", "Asia/Ho_Chi_Minh")
    assert "published 0 headlines" in again and "(2 already there)" in again
    assert "unknown timezone" in run_command_failure(env, str(history), "Mars/Base")


def run_command_failure(env: dict[str, str], *args: str) -> str:
    with pytest.raises(AssertionError) as failed:
        run_command(env, "news-replay", args[0], "--timezone", args[1])
    return str(failed.value)
