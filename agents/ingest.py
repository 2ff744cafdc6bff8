"""Exchange ingest: the leader worker polls the exchange and publishes closed candles.

One ingest per cluster: the timer runs only on the leader worker. When a worker becomes
leader, it learns from the tail of ``market_data`` which candles the cluster already has,
so a restart or a leader change neither repeats nor skips a closed candle.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist before topics/tables  # isort: skip

import logging
import time
from typing import Any

from models.records import Candle
from streams.topics import MARKET_DATA, market_data_topic
from tinhieu import i18n
from tinhieu.kafka_io import decode_json, read_topic

log = logging.getLogger("tinhieu.ingest")

i18n.register(
    {
        "ingest_start": (
            i18n.TAGS["init"],
            "worker này là leader: lấy nến từ sàn {exchange} cho {symbols} (mỗi {interval} s)",
            "this worker is the leader: fetching candles from {exchange} for {symbols} "
            "(every {interval} s)",
        ),
        "ingest_published": (
            i18n.TAGS["data"],
            "đã gửi {count} nến đã đóng mới ({detail})",
            "published {count} new closed candles ({detail})",
        ),
        "ingest_resume": (
            i18n.TAGS["init"],
            "tiếp tục sau các nến Kafka đã có: {cursor}",
            "resuming after the candles Kafka already holds: {cursor}",
        ),
        "ingest_failed": (
            i18n.TAGS["error"],
            "lần lấy dữ liệu thất bại: {error}; sẽ thử lại ở lần sau",
            "poll failed: {error}; retrying at the next poll",
        ),
    }
)

_state: dict[str, Any] = {"poller": None, "client": None, "last_tick": 0.0}


async def _kafka_cursor() -> dict[str, int]:
    """Newest exchange candle per symbol already on market_data."""
    cursor: dict[str, int] = {}
    for _p, _o, key, value in await read_topic(settings.broker_url, MARKET_DATA, tail=2000):
        obj = decode_json(value)
        if not obj or obj.get("source") != "exchange" or key is None:
            continue
        ts = obj.get("timestamp")
        symbol = key.decode("utf-8", "replace")
        if isinstance(ts, int) and symbol in settings.symbols:
            cursor[symbol] = max(cursor.get(symbol, 0), ts)
    return cursor


async def _poller() -> Any:
    from tinhieu.exchange import CandlePoller, ExchangeClient

    now = time.monotonic()
    stale = now - _state["last_tick"] > 3 * settings.poll_interval_s + 30
    if _state["poller"] is None or stale:
        if _state["client"] is not None:
            await _state["client"].close()
        cursor = await _kafka_cursor()
        if cursor:
            i18n.log(log, logging.INFO, "ingest_resume", cursor=cursor)
        client = ExchangeClient(settings)
        _state["client"] = client
        # After a long stop, catch up at most a day (or the backfill) of candles.
        _state["poller"] = CandlePoller(
            client,
            list(settings.symbols),
            settings.timeframe_ms,
            settings.backfill,
            cursor,
            max_catchup=max(settings.backfill, 86_400_000 // settings.timeframe_ms),
        )
        i18n.log(
            log,
            logging.INFO,
            "ingest_start",
            exchange=settings.exchange_id,
            symbols=", ".join(settings.symbols),
            interval=settings.poll_interval_s,
        )
    _state["last_tick"] = now
    return _state["poller"]


@app.timer(settings.poll_interval_s, on_leader=True, name="ingest_candles")
async def ingest_candles() -> None:
    """Poll the exchange once and publish the new closed candles (leader only)."""
    if not settings.ingest_enabled:
        return
    try:
        poller = await _poller()
        fresh = await poller.poll()
    except Exception as exc:  # the exchange edge maps and logs its own errors
        i18n.log(log, logging.ERROR, "ingest_failed", error=exc)
        return
    count = 0
    for symbol, bars in fresh.items():
        for bar in bars:
            await market_data_topic.send(
                key=symbol,
                value=Candle(
                    symbol=symbol,
                    timestamp=bar.ts,
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    volume=bar.volume,
                    timeframe=settings.timeframe,
                    source="exchange",
                ),
            )
            count += 1
    if count:
        detail = ", ".join(f"{s}: {len(b)}" for s, b in fresh.items() if b)
        i18n.log(log, logging.INFO, "ingest_published", count=count, detail=detail)
