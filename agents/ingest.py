"""Exchange ingest: the leader worker polls the exchange and publishes closed candles.

One ingest per cluster: the timer runs only on the leader worker. When a worker becomes
leader, it learns from the tail of ``market_data`` which candles the cluster already has,
so a restart or a leader change neither repeats nor skips a closed candle.

While the exchange fails, polls are spaced out (``poll_interval_s`` doubling up to
``ingest_backoff_max_s``) and each failed poll is one log line; ``/health`` shows the outage
in its ``exchange`` section. The exchange client is closed when the worker stops.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist before topics/tables  # isort: skip

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.records import Candle
from streams.topics import MARKET_DATA, market_data_topic
from streams.views import health_sections
from tinhieu import i18n
from tinhieu.kafka_io import decode_json, read_topic
from tinhieu.settings import Settings

if TYPE_CHECKING:  # ccxt is heavy: imported on the first poll, not by every CLI command
    from tinhieu.candles import Bar
    from tinhieu.exchange import CandlePoller, ExchangeClient, PollBackoff

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


class IngestRuntime:
    """What the ingest keeps between timer ticks: the client, the poller, the outage state.

    One per worker process. The poller is (re)built on the first tick and after a gap in the
    ticks (this worker was not the leader for a while), from what Kafka already holds.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.client: ExchangeClient | None = None
        self.poller: CandlePoller | None = None
        self.backoff: PollBackoff | None = None
        self.closed = False
        self._last_tick: float | None = None

    async def poll(self) -> dict[str, list[Bar]]:
        """One timer tick: new closed candles per symbol, or ``{}`` when waiting or failed.

        A failed poll is logged once (by the backoff) and the next attempt waits longer; a
        tick before that attempt is due does nothing.
        """
        from tinhieu.exchange import ExchangeError, PollBackoff

        interval = self.settings.poll_interval_s
        now = self._clock()
        stale = self._last_tick is None or now - self._last_tick > 3 * interval + 30
        self._last_tick = now
        if self.backoff is None:
            self.backoff = PollBackoff(
                interval, self.settings.ingest_backoff_max_s, self.settings.exchange_id
            )
        backoff = self.backoff
        if not backoff.due(slack_s=interval / 2):
            return {}
        try:
            poller = await self._poller(rebuild=stale or self.poller is None)
        except Exception as exc:  # Kafka not readable: the exchange was not asked
            i18n.log(log, logging.ERROR, "ingest_failed", error=exc)
            return {}
        if self.client is not None:
            backoff.exchange = f"{self.client.exchange_id} ({self.client.host})"
        symbols = list(self.settings.symbols)
        try:
            fresh = await poller.poll()
        except Exception as exc:  # a setting to fix (symbol not listed) or a bug
            if not self.closed:
                backoff.failed({s: exc for s in symbols}, len(symbols))
            return {}
        if self.closed:  # stopped while the poll was in flight: publish nothing more
            return {}
        errors: dict[str, ExchangeError] = dict(poller.last_errors)
        if errors:
            backoff.failed(errors, len(symbols))
        else:
            backoff.succeeded()
        return fresh

    async def _poller(self, rebuild: bool) -> CandlePoller:
        from tinhieu.exchange import CandlePoller, ExchangeClient

        if not rebuild and self.poller is not None:
            return self.poller
        if self.client is not None:
            await self.client.close()
            self.client = None
        cursor = await _kafka_cursor()
        if cursor:
            i18n.log(log, logging.INFO, "ingest_resume", cursor=cursor)
        # One attempt per call: the retry policy is the backoff between polls, and the
        # failures are logged by it, one line per poll.
        client = ExchangeClient(self.settings, report_failures=False)
        self.client = client
        # After a long stop, catch up at most a day (or the backfill) of candles.
        self.poller = CandlePoller(
            client,
            list(self.settings.symbols),
            self.settings.timeframe_ms,
            self.settings.backfill,
            cursor,
            attempts=1,
            max_catchup=max(self.settings.backfill, 86_400_000 // self.settings.timeframe_ms),
            report_failures=False,
        )
        i18n.log(
            log,
            logging.INFO,
            "ingest_start",
            exchange=self.settings.exchange_id,
            symbols=", ".join(self.settings.symbols),
            interval=self.settings.poll_interval_s,
        )
        return self.poller

    async def close(self) -> None:
        """Close the exchange's HTTP session; later ticks do nothing."""
        self.closed = True
        if self.client is not None:
            await self.client.close()

    def health(self) -> dict[str, Any]:
        """The ``exchange`` section of ``/health`` on this worker."""
        if not self.settings.ingest_enabled:
            return {"status": "disabled"}
        if not app.is_leader():
            return {"status": "standby", "note": "the leader worker polls the exchange"}
        if self.backoff is None:
            return {"status": "starting"}
        return self.backoff.health()


ingest_runtime = IngestRuntime(settings)
health_sections["exchange"] = ingest_runtime.health


@app.on_before_shutdown.connect
async def close_exchange(sender: Any, **kwargs: Any) -> None:
    """Close the ccxt session on shutdown (no "Unclosed client session" at Ctrl-C)."""
    await ingest_runtime.close()


@app.timer(settings.poll_interval_s, on_leader=True, name="ingest_candles")
async def ingest_candles() -> None:
    """Poll the exchange once (when due) and publish the new closed candles (leader only)."""
    if not settings.ingest_enabled or ingest_runtime.closed:
        return
    fresh = await ingest_runtime.poll()
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
