"""agents.news without Kafka: folding headlines into the table value, the feeds' backoff."""

from __future__ import annotations

from agents import news as news_agent
from models.records import NewsItem
from tinhieu import news


def item(i: int, sentiment: float = 0.5) -> NewsItem:
    return NewsItem(
        id=f"id{i}",
        source="https://feed.example/rss",
        published_ms=1_796_000_000_000 + i * 60_000,
        title=f"headline {i}",
        url=f"https://feed.example/{i}",
        symbols=["BTC/USDT"],
        sentiment=sentiment,
    )


def test_fold_items_is_pure_idempotent_and_keeps_the_latest() -> None:
    first = news_agent.fold_items(None, [item(1), item(2, -0.5)], 3600.0)
    assert [h["id"] for h in first["latest"]] == ["id1", "id2"]
    again = news_agent.fold_items(first, [item(2, -0.5)], 3600.0)  # redelivered
    assert again == first
    many = news_agent.fold_items(first, [item(i) for i in range(3, 40)], 3600.0)
    assert len(many["latest"]) == news_agent.LATEST_KEPT
    assert many["latest"][-1]["id"] == "id39"
    assert len(first["latest"]) == 2  # not changed
    at = news.state_as_of(many["state"], item(40).published_ms)
    assert at["total"] == 39


def test_feed_backoff_doubles_up_to_the_cap() -> None:
    now = [0.0]
    feed = news_agent.FeedState("https://feed.example/rss", 10.0, 35.0, lambda: now[0])
    assert feed.due()
    waits = []
    for _ in range(4):
        feed.failed(RuntimeError("boom"))
        waits.append(feed.next_at - now[0])
    assert waits == [10.0, 20.0, 35.0, 35.0]
    assert not feed.due()
    now[0] = feed.next_at
    assert feed.due()
    assert feed.health()["status"] == "failing"
    feed.succeeded()
    assert feed.failures == 0 and feed.health()["status"] == "ok"


def test_rejection_id_matches_the_dead_letter_fields() -> None:
    a = news_agent.rejection_id("undated_entry", "https://f/rss", "title='x'")
    assert a == news_agent.rejection_id("undated_entry", "https://f/rss", "title='x'")
    assert a != news_agent.rejection_id("undated_entry", "https://g/rss", "title='x'")
