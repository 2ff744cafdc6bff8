"""Every topic of tinhieu, keyed by the normalized symbol (``BTC/USDT``).

Keys are raw UTF-8 so that the partition of a symbol is the same for producers (ingest,
replay), the tables co-partitioned with the topics, and the web-view router.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any

from models.records import Alert, Candle, DeadLetter, NewsItem, Order, Signal, SignalOutcomes
from streams.app import app, settings
from tinhieu.kafka_io import topic_configs
from tinhieu.retrain import retention_warning

MARKET_DATA = "market_data"
SIGNALS = "signals"
ORDERS = "orders"
DEAD_LETTERS = "dead_letters"
NEWS = "news"
SIGNAL_OUTCOMES = "signal_outcomes"
SIGNALS_SHADOW = "signals.shadow"
ALERTS = "alerts"

_common = dict(partitions=settings.partitions, key_type=str, key_serializer="raw", internal=True)

# market_data keeps market_data_retention_days: the history `retrain` reads (docs/ML.md).
_retention = timedelta(days=settings.market_data_retention_days)

# Typed topics, for producers.
market_data_topic = app.topic(MARKET_DATA, value_type=Candle, retention=_retention, **_common)
signals_topic = app.topic(SIGNALS, value_type=Signal, **_common)
# The challenger's signals (shadow A/B, tinhieu.shadow): never read by the broker.
signals_shadow_topic = app.topic(SIGNALS_SHADOW, value_type=Signal, **_common)
orders_topic = app.topic(ORDERS, value_type=Order, **_common)
dead_letters_topic = app.topic(DEAD_LETTERS, value_type=DeadLetter, **_common)
# Headlines: one message per mentioned symbol, keyed by it; "*" for none (docs/NEWS.md).
news_topic = app.topic(NEWS, value_type=NewsItem, **_common)
# Monitoring: the outcome of every verdict once known, and alerts raised / cleared.
signal_outcomes_topic = app.topic(SIGNAL_OUTCOMES, value_type=SignalOutcomes, **_common)
alerts_topic = app.topic(ALERTS, value_type=Alert, **_common)

# The sentiment agent decodes news itself: a bad message goes to dead_letters.
news_raw_topic = app.topic(
    NEWS,
    partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
    internal=True,
)

# The window agent reads market data as raw bytes and decodes them itself, so that a
# message that is not a valid Candle goes to dead_letters with its offset instead of
# crashing the stream.
market_data_raw_topic = app.topic(
    MARKET_DATA,
    retention=_retention,
    partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
    internal=True,
)


@app.task
async def declare_topics() -> None:
    """Create the topics this worker only produces to, with the configured partitions
    (a topic auto-created by the broker would get the broker's default count)."""
    for topic in (signals_topic, orders_topic, dead_letters_topic, signal_outcomes_topic,
                  alerts_topic, signals_shadow_topic):
        await topic.maybe_declare()
    # A market_data created before the retention setting keeps its own: say so.
    await market_data_topic.maybe_declare()
    try:
        configs = await topic_configs(settings.broker_url, MARKET_DATA)
    except Exception as exc:  # the check is advice; the worker runs without it
        logging.getLogger("tinhieu").warning("[CANH BAO] cannot read the configs of %s: %s",
                                             MARKET_DATA, exc)
        return
    warning = retention_warning(MARKET_DATA, configs, settings.market_data_retention_days)
    if warning:
        logging.getLogger("tinhieu").warning("[CANH BAO] %s", warning)


async def publish_json(topic: str, key: str, value: Mapping[str, Any]) -> Awaitable[Any]:
    """Send ``value`` (the fields of the topic's record, e.g. a Signal's) as JSON straight
    to the producer; returns the delivery future.

    The hot path's shortcut around ``Topic.send``: a dict built with the record's field names
    is already what ``Record.dumps`` would write (records here carry no metadata), and going
    through Faust's channel and record layers cost a fifth of the candle agent's time. The
    partition is the producer's partitioner over the raw key: the symbol's partition.
    Consumers still read typed records (``tests/unit/test_signals.py`` proves the shape).
    """
    return await app.producer.send(
        topic, key.encode(), json.dumps(value).encode(), None, None, None
    )
