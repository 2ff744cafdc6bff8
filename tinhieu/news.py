"""News headlines: feed parsing, symbol detection, sentiment and the per-symbol sentiment state.

Pure code (no Faust, no network): the ingest fetches the bytes, the agents and the replay
command call these functions, and the tests call them directly. See ``docs/NEWS.md``.

- :func:`parse_feed` turns RSS or Atom bytes into :class:`Headline` values plus the entries it
  refuses (:class:`Rejected`: a malformed feed, an entry without a date, title or link). An
  entry without a publication date is **refused**, never stamped with the fetch time: an
  as-of join must never see a headline earlier than it was published.
- :func:`detect_symbols` finds the configured symbols a headline mentions, by ticker and name.
- :func:`score` is VADER's compound score in [-1, 1] with :data:`CRYPTO_LEXICON` added.
- :func:`apply_headline` folds a headline into a symbol's JSON-able sentiment state and
  :func:`state_as_of` answers "the state at time t from the headlines published before t".
"""

from __future__ import annotations

import calendar
import hashlib
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import feedparser

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NO_SYMBOL_KEY = "*"
"""Message key of headlines that mention no configured symbol (market-wide news)."""

# --------------------------------------------------------------------------------------------
# Crypto vocabulary added to VADER's lexicon (VADER's scale: -4 very negative .. +4 very
# positive). Multi-word phrases are matched first and scored as one token.
CRYPTO_LEXICON: dict[str, float] = {
    # market moves
    "moon": 2.5,
    "mooning": 2.8,
    "moons": 2.5,
    "pump": 1.5,
    "pumps": 1.5,
    "pumping": 1.5,
    "dump": -2.0,
    "dumps": -2.0,
    "dumping": -2.0,
    "rally": 2.0,
    "rallies": 2.0,
    "rallying": 2.0,
    "surge": 1.8,
    "surges": 1.8,
    "soar": 2.0,
    "soars": 2.0,
    "tops": 0.8,
    "breakout": 1.8,
    "bullish": 2.3,
    "bull": 1.2,
    "bearish": -2.3,
    "bear": -1.2,
    "plunge": -2.3,
    "plunges": -2.3,
    "crash": -2.8,
    "crashes": -2.8,
    "tumble": -2.0,
    "tumbles": -2.0,
    "slump": -2.0,
    "slumps": -2.0,
    "sell-off": -2.0,
    "selloff": -2.0,
    "liquidated": -2.0,
    "liquidations": -1.8,
    "capitulation": -2.5,
    "ath": 2.0,
    "hodl": 1.0,
    "fomo": 0.5,
    "fud": -1.5,
    "rekt": -2.8,
    "rug": -2.8,
    "rugpull": -3.2,
    "scam": -3.0,
    "ponzi": -3.0,
    # security and law
    "hack": -3.0,
    "hacked": -3.0,
    "hacker": -2.5,
    "hackers": -2.5,
    "exploit": -2.8,
    "exploited": -2.8,
    "drained": -2.5,
    "stolen": -2.8,
    "breach": -2.5,
    "lawsuit": -1.8,
    "sues": -1.8,
    "sued": -1.8,
    "ban": -2.0,
    "bans": -2.0,
    "banned": -2.0,
    "crackdown": -2.2,
    "delist": -2.2,
    "delisted": -2.2,
    "delisting": -2.2,
    "insolvent": -3.0,
    "bankruptcy": -3.0,
    "halving": 0.8,
    "adoption": 1.5,
    "listing": 1.0,
    "upgrade": 1.2,
    "partnership": 1.2,
    "inflows": 1.5,
    "outflows": -1.5,
    # phrases (written with spaces; matched case-insensitively as whole words)
    "etf approval": 3.0,
    "etf approved": 3.0,
    "etf rejected": -2.5,
    "etf rejection": -2.5,
    "all-time high": 2.5,
    "all time high": 2.5,
    "to the moon": 3.0,
    "rug pull": -3.2,
    "short squeeze": 1.5,
    "death cross": -2.0,
    "golden cross": 2.0,
}

# Names and tickers per base asset. Tickers in AMBIGUOUS_TICKERS are also common words
# (Spanish "sol", "dot", "link"): they count only in upper case (``SOL``) or as a cashtag
# (``$sol``). Names in CAPITALIZED_NAMES are common nouns too: they count only capitalized
# (``Ether``). The other tickers and names match in any case.
ALIASES: dict[str, tuple[str, ...]] = {
    "BTC": ("btc", "xbt", "bitcoin", "bitcoins"),
    "ETH": ("eth", "ether", "ethereum"),
    "XRP": ("xrp", "ripple"),
    "SOL": ("sol", "solana"),
    "BNB": ("bnb", "binance coin"),
    "DOGE": ("doge", "dogecoin"),
    "ADA": ("ada", "cardano"),
    "LTC": ("ltc", "litecoin"),
    "DOT": ("dot", "polkadot"),
    "AVAX": ("avax", "avalanche"),
    "TRX": ("trx", "tron"),
    "LINK": ("link", "chainlink"),
}
AMBIGUOUS_TICKERS = frozenset({"sol", "ada", "dot", "link"})
CAPITALIZED_NAMES = frozenset({"ether", "ripple", "tron", "avalanche"})


@dataclass(frozen=True)
class Headline:
    """One parsed headline, before the symbols and the sentiment are attached."""

    source: str
    published_ms: int
    title: str
    url: str

    @property
    def id(self) -> str:
        return headline_id(self.source, self.title, self.published_ms, self.url)


@dataclass(frozen=True)
class Rejected:
    """Something a feed held that is not a headline, with why (for ``dead_letters``)."""

    code: str  # malformed_feed, undated_entry, untitled_entry
    reason: str
    payload: str


@dataclass
class ParsedFeed:
    headlines: list[Headline] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def headline_id(source: str, title: str, published_ms: int, url: str = "") -> str:
    """Deterministic id: sha256 of the URL when there is one, else of source, title and time.

    The same headline fetched twice, by two leaders, or replayed gets the same id.
    """
    basis = url.strip() if url.strip() else f"{source}\n{title.strip()}\n{published_ms}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _entry_time_ms(entry: Mapping[str, Any]) -> int | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:  # feedparser normalizes every date format it knows to a UTC struct_time
            return calendar.timegm(value) * 1000
    return None


def parse_feed(data: bytes, source: str) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom ``data`` fetched from ``source`` (the feed URL).

    A document feedparser cannot read at all (not XML, no entries and a parse error) gives one
    ``malformed_feed`` rejection. A well-formed feed with a recoverable error (feedparser's
    ``bozo`` flag) keeps the entries it could read. Entries without a date are rejected with
    ``undated_entry``; entries without a title with ``untitled_entry``.
    """
    result = ParsedFeed()
    # A stream, never the bytes themselves: feedparser would try bytes as a file name first.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=True, resolve_relative_uris=False)
    entries = parsed.get("entries") or []
    version = parsed.get("version") or ""
    if not entries and (parsed.get("bozo") or not version):
        error = parsed.get("bozo_exception")
        reason = f"feed {source} is not a readable RSS/Atom document"
        reason += f": {error}" if error else " (no feed version, no entries)"
        result.rejected.append(
            Rejected("malformed_feed", reason, data[:2000].decode("utf-8", "replace"))
        )
        return result
    for entry in entries:
        title = " ".join(str(entry.get("title") or "").split())
        url = str(entry.get("link") or entry.get("id") or "")
        payload = f"title={title!r} link={url!r}"
        if not title:
            result.rejected.append(
                Rejected("untitled_entry", f"entry without a title in feed {source}", payload)
            )
            continue
        published = _entry_time_ms(entry)
        if published is None:
            result.rejected.append(
                Rejected(
                    "undated_entry",
                    f"entry without a publication date in feed {source}: refused, a headline "
                    "is never stamped with the fetch time",
                    payload,
                )
            )
            continue
        result.headlines.append(Headline(source, published, title, url))
    return result


class HistoryFileError(ValueError):
    """A history file that cannot be read, or a timezone that does not exist."""


@dataclass
class History:
    headlines: list[Headline] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "line N: why", at most 20 kept
    skipped_count: int = 0


def wall_ms_to_utc(wall_ms: int, zone: str) -> int:
    """Epoch-like ms that are really the wall clock of ``zone`` -> true ms UTC.

    ``zone`` is an IANA name (``UTC``, ``Asia/Ho_Chi_Minh``, ``America/New_York``); an
    ambiguous or missing local time (DST changes) takes the first occurrence (``fold=0``).
    """
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HistoryFileError(
            f"unknown timezone {zone!r}: give an IANA name such as UTC, "
            "Asia/Ho_Chi_Minh or America/New_York"
        ) from exc
    wall = datetime(1970, 1, 1) + timedelta(milliseconds=wall_ms)
    return int(wall.replace(tzinfo=tz).astimezone(UTC).timestamp() * 1000)


def load_history(path: str, zone: str) -> History:
    """Headlines of a history CSV (``timestamp,headline``; gzip when the name ends in ``.gz``).

    ``timestamp`` is integer ms; such files do not say their timezone, so the caller states
    it: ``zone`` is the timezone whose wall clock the numbers encode (``UTC``: taken as
    they are). Rows with an empty headline or a timestamp that is not an integer are skipped
    and listed. The source is ``file:<file name>``; without a URL the id is built from the
    source, the title and the time, so replaying a file again gives the same ids.
    """
    import csv
    import gzip
    import os

    wall_ms_to_utc(0, zone)  # an unknown zone fails before the file is read
    source = f"file:{os.path.basename(path)}"
    out = History()
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"timestamp", "headline"} <= set(reader.fieldnames):
                raise HistoryFileError(
                    f"{path}: needs the columns timestamp,headline, has {reader.fieldnames}"
                )
            for line, row in enumerate(reader, start=2):
                title = " ".join((row.get("headline") or "").split())
                raw = (row.get("timestamp") or "").strip()
                why = None if title else "empty headline"
                if why is None and not raw.lstrip("-").isdigit():
                    why = f"timestamp {raw!r} is not integer ms"
                if why is not None:
                    out.skipped_count += 1
                    if len(out.skipped) < 20:
                        out.skipped.append(f"line {line}: {why}")
                    continue
                published = wall_ms_to_utc(int(raw), zone)
                out.headlines.append(Headline(source, published, title, ""))
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise HistoryFileError(f"cannot read {path}: {exc}") from exc
    return out


# --------------------------------------------------------------------------------------------
# Symbols


def _alias_pattern(alias: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in alias.split())
    edge_l, edge_r = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
    if alias in AMBIGUOUS_TICKERS:  # upper case, or a cashtag in any case
        return re.compile(rf"(?:\$(?i:{words})|{edge_l}{words.upper()}){edge_r}")
    if alias in CAPITALIZED_NAMES:  # "Ether", "ETHER", not "ether"
        first, rest = re.escape(alias[0].upper()), re.escape(alias[1:])
        return re.compile(rf"{edge_l}{first}(?i:{rest}){edge_r}")
    return re.compile(rf"{edge_l}(?i:{words}){edge_r}")


@lru_cache(maxsize=64)
def _matchers(symbols: tuple[str, ...]) -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
    out = []
    for symbol in symbols:
        base = symbol.split("/")[0].upper()
        aliases = ALIASES.get(base, (base.lower(),))
        out.append((symbol, tuple(_alias_pattern(a) for a in aliases)))
    return tuple(out)


def detect_symbols(text: str, symbols: Iterable[str]) -> list[str]:
    """The configured ``symbols`` (``BTC/USDT``, ...) that ``text`` mentions, in their order.

    A symbol is mentioned by its base ticker or a name of its asset (``BTC``, ``XBT``,
    ``bitcoin``; ``ETH``, ``ether``, ``Ethereum``; ``BNB``, ``Binance Coin``, ...) as a whole
    word: ``ETHE`` or ``Solanart`` do not count, ``BTC/USD`` and ``$BTC`` do. Tickers that are
    also common words (``SOL``, ``ADA``, ``DOT``, ``LINK``) count only in upper case or as a
    cashtag (``$sol``); the names ``Ether``, ``Ripple``, ``Tron``, ``Avalanche`` only capitalized.
    "Binance" alone is the exchange, not BNB.
    """
    return [s for s, pats in _matchers(tuple(symbols)) if any(p.search(text) for p in pats)]


# --------------------------------------------------------------------------------------------
# Sentiment

_PHRASES = sorted((k for k in CRYPTO_LEXICON if " " in k), key=len, reverse=True)
_PHRASE_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in _PHRASES)
    + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def _token(phrase: str) -> str:
    return "_".join(phrase.lower().split())


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()  # reads the lexicon shipped inside the package
    analyzer.lexicon.update({_token(k): v for k, v in CRYPTO_LEXICON.items()})
    return analyzer


def score(text: str) -> float:
    """VADER's compound sentiment of ``text`` in [-1, 1], with the crypto vocabulary added."""
    joined = _PHRASE_RE.sub(lambda m: _token(m.group(1)), text)
    return float(_analyzer().polarity_scores(joined)["compound"])


def enrich(headline: Headline, symbols: Iterable[str]) -> dict[str, Any]:
    """The fields of a ``NewsItem`` for ``headline``: its id, symbols and sentiment."""
    return {
        "id": headline.id,
        "source": headline.source,
        "published_ms": headline.published_ms,
        "title": headline.title,
        "url": headline.url,
        "symbols": detect_symbols(headline.title, symbols),
        "sentiment": score(headline.title),
    }


def message_keys(mentioned: Iterable[str]) -> list[str]:
    """The keys one headline is sent under: each mentioned symbol, or ``*`` for none."""
    keys = list(dict.fromkeys(mentioned))
    return keys or [NO_SYMBOL_KEY]


# --------------------------------------------------------------------------------------------
# Per-symbol sentiment state
#
# state = {
#   "half_life_s": float,
#   "latest_ms": int | None,          newest published_ms seen
#   "recent": [[published_ms, sentiment, id], ...]   sorted, every headline of the last
#                                     KEEP_MS before latest_ms (bounded by MAX_RECENT)
#   "folded": {"ref_ms": int | None, "sum": float, "weight": float, "count": int,
#              "max_ms": int | None}  older headlines, summed and decayed to ref_ms
# }
# An as-of query at t is exact when every folded headline is older than t - 1 day
# (t > folded.max_ms + DAY_MS): the decayed score needs only published_ms < t, the
# 24 h count needs the individual times of the last day before t.

KEEP_MS = 2 * DAY_MS
MAX_RECENT = 5000


def new_state(half_life_s: float) -> dict[str, Any]:
    """An empty sentiment state with the given half-life (seconds)."""
    if not half_life_s > 0:
        raise ValueError(f"half_life_s must be positive, not {half_life_s!r}")
    return {
        "half_life_s": float(half_life_s),
        "latest_ms": None,
        "recent": [],
        "folded": {"ref_ms": None, "sum": 0.0, "weight": 0.0, "count": 0, "max_ms": None},
    }


def _decay(half_life_s: float, dt_ms: float) -> float:
    return math.pow(2.0, -dt_ms / (half_life_s * 1000.0))


def apply_headline(
    state: Mapping[str, Any] | None,
    published_ms: int,
    sentiment: float,
    id: str,
    *,
    half_life_s: float,
) -> dict[str, Any]:
    """A new state with the headline added; ``state`` is not changed.

    Order-independent (a late headline lands where it belongs) and idempotent for a headline
    id still among the recent ones (a redelivered message changes nothing). ``half_life_s``
    is used for a new state; an existing state keeps its own.
    """
    if state is None:
        state = new_state(half_life_s)
    hl = float(state["half_life_s"])
    recent = [list(r) for r in state["recent"]]
    if any(r[2] == id for r in recent):
        return _copy(state)
    folded = dict(state["folded"])
    latest = state["latest_ms"]
    latest = published_ms if latest is None else max(int(latest), published_ms)
    entry = [int(published_ms), float(sentiment), id]
    if published_ms < latest - KEEP_MS:
        _fold(folded, [entry], hl)
    else:
        recent.append(entry)
        recent.sort(key=lambda r: (r[0], r[2]))
    cut = latest - KEEP_MS
    old = [r for r in recent if r[0] < cut]
    recent = [r for r in recent if r[0] >= cut]
    if len(recent) > MAX_RECENT:
        old += recent[: len(recent) - MAX_RECENT]
        recent = recent[len(recent) - MAX_RECENT :]
    if old:
        _fold(folded, old, hl)
    return {"half_life_s": hl, "latest_ms": latest, "recent": recent, "folded": folded}


def _copy(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "half_life_s": state["half_life_s"],
        "latest_ms": state["latest_ms"],
        "recent": [list(r) for r in state["recent"]],
        "folded": dict(state["folded"]),
    }


def _fold(folded: dict[str, Any], entries: list[list[Any]], hl: float) -> None:
    ref = max(
        [e[0] for e in entries] + ([folded["ref_ms"]] if folded["ref_ms"] is not None else [])
    )
    s = w = 0.0
    if folded["ref_ms"] is not None:
        k = _decay(hl, ref - folded["ref_ms"])
        s, w = folded["sum"] * k, folded["weight"] * k
    for t, sentiment, _id in entries:
        k = _decay(hl, ref - t)
        s += sentiment * k
        w += k
    folded.update(ref_ms=ref, sum=s, weight=w, count=folded["count"] + len(entries))
    folded["max_ms"] = ref


def state_as_of(state: Mapping[str, Any] | None, t_ms: int) -> dict[str, Any]:
    """The sentiment at time ``t_ms`` from the headlines published strictly before it.

    Returns ``{"as_of_ms", "score", "mean", "count_1h", "count_24h", "total"}``: ``score`` is
    the sum of the sentiments decayed to ``t_ms`` with the state's half-life (0 when there is
    no news, fading while it is quiet), ``mean`` the decayed-weighted mean sentiment (``None``
    without headlines), the counts those published in the hour / day before ``t_ms``.

    Raises ``ValueError`` when ``t_ms`` is older than the state can answer exactly (its
    headlines of the day before ``t_ms`` have been folded): compute such times from the
    headline history with :func:`sentiment_from_headlines`.
    """
    if state is None:
        return {
            "as_of_ms": t_ms,
            "score": 0.0,
            "mean": None,
            "count_1h": 0,
            "count_24h": 0,
            "total": 0,
        }
    folded = state["folded"]
    if folded["max_ms"] is not None and t_ms <= folded["max_ms"] + DAY_MS:
        raise ValueError(
            f"as-of time {t_ms} is too old for this state (headlines up to {folded['max_ms']} "
            "are folded); compute it from the headline history"
        )
    hl = float(state["half_life_s"])
    s = w = 0.0
    total = 0
    if folded["ref_ms"] is not None:
        k = _decay(hl, t_ms - folded["ref_ms"])
        s, w, total = folded["sum"] * k, folded["weight"] * k, folded["count"]
    c1 = c24 = 0
    for t, sentiment, _id in state["recent"]:
        if t >= t_ms:
            break
        k = _decay(hl, t_ms - t)
        s += sentiment * k
        w += k
        total += 1
        c1 += t >= t_ms - HOUR_MS
        c24 += t >= t_ms - DAY_MS
    return {
        "as_of_ms": t_ms,
        "score": s,
        "mean": (s / w) if w > 0 else None,
        "count_1h": c1,
        "count_24h": c24,
        "total": total,
    }


def sentiment_from_headlines(
    headlines: Iterable[tuple[int, float]], t_ms: int, *, half_life_s: float
) -> dict[str, Any]:
    """The same answer as :func:`state_as_of`, from ``(published_ms, sentiment)`` pairs (any
    order), for any ``t_ms``: the reference for backtests over the whole history."""
    state = new_state(half_life_s)
    state["recent"] = sorted(
        [int(t), float(x), str(i)] for i, (t, x) in enumerate(headlines) if t < t_ms
    )
    return state_as_of(state, t_ms)
