"""News sentiment as per-candle features: a vectorised as-of join of headlines onto candles.

Pure numpy (no Faust, no pandas in the join itself). A candle that opens at ``open_ms``
closes at ``close_ms = open_ms + timeframe_ms``; its features read **only the headlines
published strictly before that close** (``published_ms < close_ms``): a headline stamped
exactly at the close, or later, never counts for it, whatever order the headlines come in.
That is the rule of :func:`tinhieu.news.state_as_of`, which the live worker answers from the
``symbol_to_sentiment`` table, so the columns equal the live state's answer at the candle's
close (tested on the real history file in ``tests/unit/test_sentiment_features.py``).

Columns per headline stream (the caller picks the stream: the headlines that mention the
symbol, or all of them), for a candle closing at ``t``:

===================  ===========================================================================
``score``            ``sum(s_i * 2 ** (-(t - t_i) / half_life))`` over ``t_i < t``: the live
                     state's decayed score (0 without news, fading while it is quiet)
``count_1h``         headlines in ``[t - 1 h, t)``
``count_24h``        headlines in ``[t - 24 h, t)``
``mean_24h``         plain mean sentiment of those ``count_24h`` headlines; 0 when there are none
===================  ===========================================================================

The decayed score is a linear recurrence over the headlines (``D_j = D_{j-1} * decay + s_j``),
computed once per headline; every candle then takes its last headline with ``searchsorted``
and decays ``D`` to its close: ``O(headlines + candles log headlines)``, no reference time that
could overflow over a long history.

These columns are **optional**: they are not part of ``tinhieu.features.MODEL_FEATURES`` nor of
the feature schema, and the live worker does not compute them (docs/ML.md, "News sentiment
features", says why). ``tinhieu.sentiment_compare`` feeds them to the walk-forward harness.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
COLUMNS = ("score", "count_1h", "count_24h", "mean_24h")
"""The feature names of one headline stream, in column order."""


@dataclass(frozen=True)
class HeadlineArrays:
    """Headlines as sorted arrays: ``published_ms`` (int64 ms UTC, ascending), ``sentiment``
    (float64, -1..1) and the ``symbols`` each mentions (for :meth:`mentioning`)."""

    published_ms: np.ndarray
    sentiment: np.ndarray
    symbols: tuple[tuple[str, ...], ...]

    @classmethod
    def from_items(cls, items: Iterable[tuple[int, float, Sequence[str]]]) -> HeadlineArrays:
        """From ``(published_ms, sentiment, symbols)`` triples in any order (sorted by time;
        the caller removes duplicates, as the live agent does by id)."""
        rows = sorted((int(t), float(s), tuple(sym)) for t, s, sym in items)
        return cls(
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.float64),
            tuple(r[2] for r in rows),
        )

    def mentioning(self, symbol: str | None) -> HeadlineArrays:
        """The headlines that mention ``symbol``; ``None``: those that mention no symbol
        (the live ``*`` key, market-wide news)."""
        keep = np.array([(symbol in s) if symbol is not None else not s for s in self.symbols],
                        dtype=bool)
        return HeadlineArrays(self.published_ms[keep], self.sentiment[keep],
                              tuple(s for s, k in zip(self.symbols, keep, strict=True) if k))

    def __len__(self) -> int:
        return int(self.published_ms.shape[0])


def decayed_running_sum(published_ms: np.ndarray, sentiment: np.ndarray,
                        half_life_s: float) -> np.ndarray:
    """``D_j = sum_{i <= j} s_i * 2 ** (-(t_j - t_i) / half_life)`` for sorted headlines."""
    t = np.asarray(published_ms, dtype=np.float64)
    s = np.asarray(sentiment, dtype=np.float64)
    out = np.empty_like(s)
    if s.size == 0:
        return out
    decay = np.exp2(-np.diff(t) / (half_life_s * 1000.0))
    acc = s[0]
    out[0] = acc
    for j in range(1, s.size):  # sequential by nature; once per headline, not per candle
        acc = acc * decay[j - 1] + s[j]
        out[j] = acc
    return out


def asof_sentiment(close_ms: np.ndarray, published_ms: np.ndarray, sentiment: np.ndarray,
                   *, half_life_s: float) -> dict[str, np.ndarray]:
    """The :data:`COLUMNS` at each time of ``close_ms`` from the headlines published strictly
    before it.

    Parameters
    ----------
    close_ms : array of int
        As-of times (candle closes), ms UTC, any order.
    published_ms, sentiment : arrays
        The headlines, sorted by ``published_ms`` (ascending).
    half_life_s : float
        Half-life of the decayed score: the live ``news_half_life_s``.

    Raises
    ------
    ValueError
        ``published_ms`` not sorted, lengths differ, or a non-positive half-life.
    """
    if not half_life_s > 0:
        raise ValueError(f"half_life_s must be positive, not {half_life_s!r}")
    pub = np.asarray(published_ms, dtype=np.int64)
    sent = np.asarray(sentiment, dtype=np.float64)
    if pub.shape != sent.shape:
        raise ValueError(f"{pub.shape[0]} publication times for {sent.shape[0]} sentiments")
    if pub.size and (np.diff(pub) < 0).any():
        raise ValueError("published_ms must be sorted ascending (HeadlineArrays sorts them)")
    t = np.asarray(close_ms, dtype=np.int64)
    # side="left": headlines at index < n were published strictly before t
    n = np.searchsorted(pub, t, side="left")
    n1 = np.searchsorted(pub, t - HOUR_MS, side="left")
    n24 = np.searchsorted(pub, t - DAY_MS, side="left")
    running = decayed_running_sum(pub, sent, half_life_s)
    last = np.maximum(n - 1, 0)
    if pub.size:
        age = (t - pub[last]).astype(np.float64)
        score = np.where(n > 0, running[last] * np.exp2(-age / (half_life_s * 1000.0)), 0.0)
    else:
        score = np.zeros(t.shape, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(sent)])
    count_24h = n - n24
    sum_24h = csum[n] - csum[n24]
    mean_24h = np.divide(sum_24h, count_24h, out=np.zeros(t.shape, dtype=np.float64),
                         where=count_24h > 0)
    return {
        "score": score,
        "count_1h": (n - n1).astype(np.float64),
        "count_24h": count_24h.astype(np.float64),
        "mean_24h": mean_24h,
    }


def candle_sentiment(open_ms: np.ndarray, timeframe_ms: int, headlines: HeadlineArrays,
                     symbol: str, *, half_life_s: float,
                     market: bool = True) -> dict[str, np.ndarray]:
    """Per candle: ``sent_<column>`` from the headlines mentioning ``symbol`` and, with
    ``market``, ``mkt_<column>`` from every headline (any symbol or none), each as of the
    candle's close ``open_ms + timeframe_ms``. Returns ``{name: float64 array}`` in a fixed
    order (:func:`feature_names`)."""
    close = np.asarray(open_ms, dtype=np.int64) + int(timeframe_ms)
    streams = [("sent", headlines.mentioning(symbol))]
    if market:
        streams.append(("mkt", headlines))
    out: dict[str, np.ndarray] = {}
    for prefix, h in streams:
        cols = asof_sentiment(close, h.published_ms, h.sentiment, half_life_s=half_life_s)
        out.update({f"{prefix}_{c}": cols[c] for c in COLUMNS})
    return out


def feature_names(market: bool = True) -> tuple[str, ...]:
    """Column names :func:`candle_sentiment` returns, in order."""
    prefixes = ("sent", "mkt") if market else ("sent",)
    return tuple(f"{p}_{c}" for p in prefixes for c in COLUMNS)


def load_history_headlines(path: str, symbols: Sequence[str], zone: str = "UTC") -> HeadlineArrays:
    """A headline history file (``timestamp,headline``) scored and tagged exactly as
    ``news-replay`` does (:func:`tinhieu.news.load_history` with the stated timezone, then
    :func:`tinhieu.news.enrich`), one row per headline id."""
    from tinhieu import news

    history = news.load_history(path, zone)
    items = {}
    for h in history.headlines:
        item = news.enrich(h, symbols)
        items[item["id"]] = (item["published_ms"], item["sentiment"], item["symbols"])
    return HeadlineArrays.from_items(items.values())
