"""``symbol_to_sentiment``: per symbol, the news sentiment state and the latest headlines.

The value is ``{"state": <tinhieu.news state>, "latest": [headline, ...]}``, written once per
batch of ``news`` messages by ``agents.news.track_sentiment``. Headlines that mention no
configured symbol are kept under the key ``*`` (market-wide news). See docs/NEWS.md.
"""

from __future__ import annotations

from tables import symbol_table

symbol_to_sentiment = symbol_table(
    "symbol_to_sentiment",
    "Per symbol: decayed news sentiment, headline times of the last days, latest headlines.",
)
