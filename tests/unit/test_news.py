"""tinhieu.news: feed parsing, symbols, sentiment, the per-symbol sentiment state."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tinhieu import news

FEEDS = Path(__file__).resolve().parents[1] / "fakes" / "feeds"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


# ---- feeds ---------------------------------------------------------------------------------


def test_rss_entries_become_utc_headlines_and_undated_is_refused() -> None:
    parsed = news.parse_feed((FEEDS / "rss2.xml").read_bytes(), "https://news.example.com/rss")
    got = {h.title: h for h in parsed.headlines}
    assert list(got) == [
        "Bitcoin Rallies to All-Time High as Spot ETF Inflows Surge",
        "Ether, SOL Slump After DeFi Exploit Drains $40M",
        "Fed Minutes Show Officials Split on Rate Path",
    ]
    first = got["Bitcoin Rallies to All-Time High as Spot ETF Inflows Surge"]
    assert first.published_ms == ms("2026-12-01T05:30:00+00:00")
    assert first.url.endswith("bitcoin-rallies-all-time-high")
    assert first.source == "https://news.example.com/rss"
    # +0200 and GMT offsets normalized to UTC
    assert got["Ether, SOL Slump After DeFi Exploit Drains $40M"].published_ms == ms(
        "2026-12-01T05:15:00+00:00"
    )
    assert got["Fed Minutes Show Officials Split on Rate Path"].published_ms == ms(
        "2026-12-01T04:00:00+00:00"
    )
    assert [r.code for r in parsed.rejected] == ["undated_entry"]
    assert "XRP Ledger Upgrade Goes Live" in parsed.rejected[0].payload


def test_atom_uses_published_then_updated_in_utc() -> None:
    parsed = news.parse_feed((FEEDS / "atom.xml").read_bytes(), "https://wire.example.org/atom")
    assert not parsed.rejected
    bnb, sue = parsed.headlines
    assert bnb.title == "Binance Coin (BNB) Hits Record as Exchange Expands"
    assert bnb.published_ms == ms("2026-12-01T08:45:00+00:00")  # published, not updated
    assert bnb.url == "https://wire.example.org/2026/12/bnb-record"
    assert sue.published_ms == ms("2026-12-01T05:50:00+00:00")  # only <updated>


@pytest.mark.parametrize(
    "data",
    [
        (FEEDS / "malformed.xml").read_bytes(),
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b'{"items": []}',
    ],
)
def test_malformed_feed_is_one_rejection(data: bytes) -> None:
    parsed = news.parse_feed(data, "https://bad.example/feed")
    assert parsed.headlines == []
    assert [r.code for r in parsed.rejected] == ["malformed_feed"]
    assert "https://bad.example/feed" in parsed.rejected[0].reason


def test_feed_bytes_are_never_a_file_name(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes((FEEDS / "atom.xml").read_bytes())
    parsed = news.parse_feed(str(path).encode(), "https://evil.example/feed")
    assert parsed.headlines == []
    assert [r.code for r in parsed.rejected] == ["malformed_feed"]


def test_news_item_record_round_trip() -> None:
    from models.records import NewsItem

    headline = news.parse_feed((FEEDS / "atom.xml").read_bytes(), "src").headlines[0]
    item = NewsItem(**news.enrich(headline, SYMBOLS))
    back = NewsItem.loads(item.dumps())
    assert back == item and back.symbols == ["BNB/USDT"]
    assert set(json.loads(item.dumps())) == {
        "id",
        "source",
        "published_ms",
        "title",
        "url",
        "symbols",
        "sentiment",
    }


def test_id_is_deterministic() -> None:
    a = news.parse_feed((FEEDS / "atom.xml").read_bytes(), "s").headlines[0]
    b = news.parse_feed((FEEDS / "atom.xml").read_bytes(), "other").headlines[0]
    assert a.id == b.id == news.headline_id("x", "y", 0, a.url)  # the URL decides
    assert news.headline_id("s", "t", 1) != news.headline_id("s", "t", 2)
    assert len(a.id) == 64


# ---- symbols -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bitcoin tops $59,000, apple reportedly cancels car plans", ["BTC/USDT"]),
        ("XBT/USD futures open higher", ["BTC/USDT"]),
        ("$BTC and $eth rip", ["BTC/USDT", "ETH/USDT"]),
        ("Ether rises as ETHE discount narrows", ["ETH/USDT"]),
        ("ETHE discount narrows", []),  # a trust's ticker, not ETH
        ("Ethereum devs schedule upgrade", ["ETH/USDT"]),
        ("the ether of the internet", []),  # common noun: capitalized only
        ("Ripple wins in court; XRP jumps", ["XRP/USDT"]),
        ("a ripple effect in bond markets", []),
        ("SOL hits record", ["SOL/USDT"]),
        ("Solana outage", ["SOL/USDT"]),
        ("sol y sombra en Madrid", []),  # Spanish "sun"
        ("whales buy $sol", ["SOL/USDT"]),
        ("Solanart marketplace closes", []),  # word boundary
        ("Binance lists a new token", []),  # the exchange is not BNB
        ("Binance Coin (BNB) up 5%", ["BNB/USDT"]),
        ("binance  coin rallies", ["BNB/USDT"]),
        ("Dogecoin soars", []),  # not configured
    ],
)
def test_detect_symbols(text: str, expected: list[str]) -> None:
    assert news.detect_symbols(text, SYMBOLS) == expected


def test_detect_only_configured_symbols_and_unknown_bases_by_ticker() -> None:
    assert news.detect_symbols("Dogecoin soars, DOGE up", ("DOGE/USDT",)) == ["DOGE/USDT"]
    assert news.detect_symbols("PEPE frenzy", ("PEPE/USDT",)) == ["PEPE/USDT"]
    assert news.detect_symbols("bitcoin and ether", ("ETH/USDT",)) == []


def test_message_keys() -> None:
    assert news.message_keys(["BTC/USDT", "ETH/USDT"]) == ["BTC/USDT", "ETH/USDT"]
    assert news.message_keys([]) == [news.NO_SYMBOL_KEY] == ["*"]


# ---- sentiment -----------------------------------------------------------------------------


def test_crypto_lexicon_changes_the_score() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    plain = SentimentIntensityAnalyzer()
    for text, sign in [
        ("Exchange hacked, users rekt", -1),
        ("Bitcoin to the moon after ETF approval", 1),
        ("Protocol exploit drains $40M", -1),
    ]:
        base = plain.polarity_scores(text)["compound"]
        ours = news.score(text)
        assert sign * ours > sign * base + 0.3, (text, base, ours)
    assert news.score("exchange hack") < -0.5
    assert -1.0 <= news.score("moon " * 50) <= 1.0


def test_enrich_builds_news_item_fields() -> None:
    headline = news.parse_feed((FEEDS / "rss2.xml").read_bytes(), "src").headlines[1]
    item = news.enrich(headline, SYMBOLS)
    assert item["symbols"] == ["ETH/USDT", "SOL/USDT"]
    assert item["sentiment"] < 0
    assert item["id"] == headline.id
    json.dumps(item)


# ---- state ---------------------------------------------------------------------------------

T0 = ms("2026-12-01T00:00:00+00:00")
HL = 3600.0


def test_decayed_state_and_counts() -> None:
    state = None
    state = news.apply_headline(state, T0, 0.8, "a", half_life_s=HL)
    state = news.apply_headline(state, T0 + 30 * 60_000, -0.4, "b", half_life_s=HL)
    json.dumps(state)
    at = news.state_as_of(state, T0 + news.HOUR_MS)
    assert at["score"] == pytest.approx(0.8 * 0.5 - 0.4 * 2**-0.5)
    assert at["count_1h"] == 2  # the window is [t - 1 h, t): "a", exactly 1 h old, counts
    assert news.state_as_of(state, T0 + news.HOUR_MS + 1)["count_1h"] == 1
    assert at["count_24h"] == 2 and at["total"] == 2
    later = news.state_as_of(state, T0 + 10 * news.DAY_MS)
    assert abs(later["score"]) < 1e-50 and later["count_24h"] == 0
    assert later["mean"] == pytest.approx(at["mean"])  # decay keeps the weighted mean
    assert news.state_as_of(None, T0)["score"] == 0.0


def test_apply_is_pure_and_idempotent() -> None:
    state = news.apply_headline(None, T0, 0.5, "a", half_life_s=HL)
    frozen = json.dumps(state, sort_keys=True)
    again = news.apply_headline(state, T0, 0.5, "a", half_life_s=HL)
    assert json.dumps(state, sort_keys=True) == frozen
    assert again == state


def test_order_independent_and_folding_matches_history() -> None:
    rng = random.Random(7)
    items = [(T0 + rng.randrange(0, 5 * news.DAY_MS), rng.uniform(-1, 1)) for _ in range(300)]
    states = []
    for order in (items, sorted(items), sorted(items, reverse=True)):
        state = None
        for t, x in order:
            state = news.apply_headline(state, t, x, f"id{t}-{x}", half_life_s=HL)
        states.append(state)
    t = max(t for t, _ in items) + 1
    answers = [news.state_as_of(s, t) for s in states]
    reference = news.sentiment_from_headlines(items, t, half_life_s=HL)
    for a in answers:
        assert a["score"] == pytest.approx(reference["score"], abs=1e-9)
        assert a["mean"] == pytest.approx(reference["mean"], abs=1e-9)
        assert (a["count_1h"], a["count_24h"], a["total"]) == (
            reference["count_1h"],
            reference["count_24h"],
            reference["total"],
        )


def test_as_of_a_later_headline_never_changes_an_earlier_state() -> None:
    rng = random.Random(11)
    state = None
    applied: list[tuple[int, float]] = []
    t = T0
    for _ in range(200):
        t += rng.randrange(0, 20 * 60_000)
        x = rng.uniform(-1, 1)
        query = t - rng.randrange(0, 6 * news.HOUR_MS)
        before = news.state_as_of(state, query) if state is not None else None
        state = news.apply_headline(state, t, x, f"{t}-{x}", half_life_s=HL)
        applied.append((t, x))
        # the new headline is published at t >= query: the answer at query is unchanged
        if before is not None and t >= query:
            assert news.state_as_of(state, query) == before
        expected = news.sentiment_from_headlines(applied, query, half_life_s=HL)
        got = news.state_as_of(state, query)
        assert got["score"] == pytest.approx(expected["score"], abs=1e-9)
        assert got["count_24h"] == expected["count_24h"]
    # a headline published exactly at the query time is not "before" it
    s2 = news.apply_headline(None, T0, 1.0, "x", half_life_s=HL)
    assert news.state_as_of(s2, T0)["total"] == 0


def test_as_of_too_old_is_refused_with_a_reason() -> None:
    state = news.apply_headline(None, T0, 0.1, "old", half_life_s=HL)
    state = news.apply_headline(state, T0 + 5 * news.DAY_MS, 0.2, "new", half_life_s=HL)
    with pytest.raises(ValueError, match="too old"):
        news.state_as_of(state, T0 + news.DAY_MS)
    assert news.state_as_of(state, T0 + 4 * news.DAY_MS)["count_24h"] == 0


def test_recent_list_is_bounded() -> None:
    state = None
    for i in range(news.MAX_RECENT + 10):
        state = news.apply_headline(state, T0 + i, 0.1, str(i), half_life_s=HL)
    assert state is not None
    assert len(state["recent"]) == news.MAX_RECENT
    assert state["folded"]["count"] == 10


def test_new_state_refuses_a_bad_half_life() -> None:
    with pytest.raises(ValueError, match="half_life_s"):
        news.new_state(0)


# ---- history files -------------------------------------------------------------------------

HISTORY = Path(__file__).resolve().parents[3] / "shared" / "data" / "news"


def test_wall_clock_timezone_rule() -> None:
    wall = ms("2024-03-01T12:00:00+00:00")
    assert news.wall_ms_to_utc(wall, "UTC") == wall
    assert news.wall_ms_to_utc(wall, "Asia/Ho_Chi_Minh") == wall - 7 * news.HOUR_MS
    assert news.wall_ms_to_utc(wall, "America/New_York") == wall + 5 * news.HOUR_MS
    with pytest.raises(news.HistoryFileError, match="unknown timezone"):
        news.wall_ms_to_utc(wall, "Mars/Olympus")


def test_load_history_skips_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        "timestamp,headline\n"
        "1709123422000,\"bitcoin tops $59,000, apple cancels car plans\"\n"
        "yesterday,Ether slides\n"
        "1709123640000,\n"
        "1709123700000,Solana ETF filing\n"
    )
    history = news.load_history(str(path), "UTC")
    assert [h.title for h in history.headlines] == [
        "bitcoin tops $59,000, apple cancels car plans",
        "Solana ETF filing",
    ]
    assert history.skipped_count == 2
    assert history.skipped[0].startswith("line 3:")
    assert history.headlines[0].source == "file:h.csv"
    again = news.load_history(str(path), "UTC")
    assert [h.id for h in again.headlines] == [h.id for h in history.headlines]
    with pytest.raises(news.HistoryFileError, match="timestamp,headline"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        news.load_history(str(tmp_path / "x.csv"), "UTC")


@pytest.mark.skipif(not HISTORY.exists(), reason="../shared/data not present")
def test_shared_history_file_loads() -> None:
    history = news.load_history(str(HISTORY / "crypto_news_headlines.csv.gz"), "UTC")
    assert len(history.headlines) == 1046 and history.skipped_count == 0
    btc = [h for h in history.headlines if news.detect_symbols(h.title, SYMBOLS) == ["BTC/USDT"]]
    assert len(btc) > 100


def test_news_settings() -> None:
    from tinhieu.settings import SettingsError, load_settings

    assert load_settings().news_feeds == ()
    s = load_settings(news_feeds=" https://a.example/rss , http://b.example/atom.xml,,")
    assert s.news_feeds == ("https://a.example/rss", "http://b.example/atom.xml")
    with pytest.raises(SettingsError, match="TINHIEU_NEWS_FEEDS"):
        load_settings(news_feeds="ftp://a.example/rss")
    with pytest.raises(SettingsError, match="news_half_life_s"):
        load_settings(news_half_life_s=0)
