"""The candle poller: a per-symbol cursor, so closed candles are handed out once, in order.

:class:`CandlePoller` keeps a cursor per symbol so that closed candles are handed out exactly
once, in order, across polls and restarts (the caller seeds it from what Kafka already holds).
"""

from __future__ import annotations

import asyncio
import logging

from tinhieu import i18n
from tinhieu.candles import Bar
from tinhieu.exchange.client import DEFAULT_ATTEMPTS, ExchangeClient
from tinhieu.exchange.errors import ExchangeConfigError, ExchangeError, logger, short
from tinhieu.symbols import canonical

i18n.register(
    {
        "poller.start": (
            i18n.TAGS["data"],
            "{symbol}: nạp {count} nến đã đóng ({how})",
            "{symbol}: loaded {count} closed candles ({how})",
        ),
        "poller.catchup_capped": (
            i18n.TAGS["warn"],
            "{symbol}: nến cuối đã có lúc {last_ts}, quá xa; chỉ lấy lại {max_catchup} nến "
            "gần nhất (từ {start_ts})",
            "{symbol}: last held candle {last_ts} is too old; fetching only the latest "
            "{max_catchup} candles (from {start_ts})",
        ),
        "poller.stale": (
            i18n.TAGS["skip"],
            "{symbol}: bỏ {count} nến cũ (không mới hơn con trỏ {cursor})",
            "{symbol}: dropped {count} stale candle(s) (not newer than cursor {cursor})",
        ),
        "poller.failed": (
            i18n.TAGS["skip"],
            "{symbol}: lần lấy nến này thất bại ({error}); giữ con trỏ {cursor}, lần sau "
            "lấy lại từ đó",
            "{symbol}: this poll failed ({error}); cursor kept at {cursor}, the next poll "
            "fetches again from there",
        ),
    }
)


class CandlePoller:
    """Per-symbol cursor: what has been handed out already.

    No duplicates across polls; a restart seeds the cursor from what Kafka already holds
    (``last_ts``: newest candle open time per symbol).

    Parameters
    ----------
    client:
        The exchange client.
    symbols:
        Symbols to poll (any form; canonical ``BASE/QUOTE`` in the results).
    timeframe_ms:
        Candle length in ms (must match the client's timeframe).
    backfill:
        Candles fetched on the first poll of a symbol without ``last_ts``.
    last_ts:
        Newest candle already published per symbol; the first poll continues after it.
    attempts:
        Tries per symbol per poll for network errors (``None``: retry until it works, which
        holds the whole poll while the exchange is down).
    max_catchup:
        When ``last_ts`` is older than this many candles, only the latest ``max_catchup`` are
        fetched (logged); ``None`` fetches everything since ``last_ts``.
    report_failures:
        Log each symbol whose fetch failed as a warning. ``False`` when the caller reports
        :attr:`last_errors` itself (the ingest: one line per failed poll); debug level then.
    """

    def __init__(
        self,
        client: ExchangeClient,
        symbols: list[str],
        timeframe_ms: int,
        backfill: int,
        last_ts: dict[str, int] | None = None,
        *,
        attempts: int | None = DEFAULT_ATTEMPTS,
        max_catchup: int | None = None,
        report_failures: bool = True,
    ) -> None:
        if timeframe_ms != client.timeframe_ms:
            raise ValueError(
                f"timeframe_ms {timeframe_ms} differs from the client's {client.timeframe_ms} "
                f"({client.timeframe}); build both from the same settings"
            )
        self._client = client
        self._symbols = list(dict.fromkeys(canonical(s) for s in symbols))
        self._tf = timeframe_ms
        self._backfill = backfill
        self._attempts = attempts
        self._max_catchup = max_catchup
        self._report = report_failures
        self._cursor: dict[str, int] = {
            canonical(s): int(ts)
            for s, ts in (last_ts or {}).items()
            if canonical(s) in self._symbols and ts is not None
        }
        self._checked = False
        self.last_errors: dict[str, ExchangeError] = {}
        """The error of each symbol whose last fetch failed (cleared when it succeeds)."""

    def cursor(self) -> dict[str, int]:
        """Open time of the newest candle handed out (or seeded) per symbol."""
        return dict(self._cursor)

    async def poll(self) -> dict[str, list[Bar]]:
        """New closed candles per symbol (every symbol is a key; ``[]`` when none or failed).

        The first call back-fills (``backfill`` candles, or everything after ``last_ts``); later
        calls return only candles after the cursor, paginating when the gap is longer than a
        page. A symbol whose fetch fails keeps its cursor and is fetched again next poll; the
        others are not held back by it.

        Raises
        ------
        ExchangeConfigError
            A symbol is not listed on the exchange (fix ``TINHIEU_SYMBOLS``).
        """
        result: dict[str, list[Bar]] = {s: [] for s in self._symbols}
        if not self._checked:
            try:
                await self._client.check_symbols(self._symbols, attempts=self._attempts)
            except ExchangeConfigError:
                raise
            except ExchangeError as exc:
                for sym in self._symbols:
                    self._failed(sym, exc)
                return result
            self._checked = True
        else:
            await self._client.sync_clock()
        outcomes = await asyncio.gather(
            *(self._poll_one(s) for s in self._symbols), return_exceptions=True
        )
        for sym, outcome in zip(self._symbols, outcomes, strict=True):
            if isinstance(outcome, ExchangeConfigError):
                raise outcome
            if isinstance(outcome, ExchangeError):
                self._failed(sym, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self.last_errors.pop(sym, None)
                result[sym] = outcome
        return result

    def _failed(self, sym: str, exc: ExchangeError) -> None:
        self.last_errors[sym] = exc
        i18n.log(
            logger,
            logging.WARNING if self._report else logging.DEBUG,
            "poller.failed",
            symbol=sym,
            error=short(exc, 200),
            cursor=self._cursor.get(sym, "-"),
        )

    async def _poll_one(self, sym: str) -> list[Bar]:
        cursor = self._cursor.get(sym)
        client = self._client
        if cursor is None:
            bars = await client.backfill(sym, self._backfill, attempts=self._attempts)
            how = f"backfill {self._backfill}"
        else:
            start = cursor + self._tf
            if self._max_catchup is not None:
                floor = client.current_open_ms() - self._max_catchup * self._tf
                if start < floor:
                    i18n.log(
                        logger,
                        logging.WARNING,
                        "poller.catchup_capped",
                        symbol=sym,
                        last_ts=cursor,
                        max_catchup=self._max_catchup,
                        start_ts=floor,
                    )
                    start = floor
            bars = await client.fetch_history(sym, start, None, attempts=self._attempts)
            how = f"> {cursor}"
        if cursor is not None:
            fresh = [b for b in bars if b.ts > cursor]
            if len(fresh) != len(bars):
                i18n.log(
                    logger,
                    logging.INFO,
                    "poller.stale",
                    symbol=sym,
                    count=len(bars) - len(fresh),
                    cursor=cursor,
                )
            bars = fresh
        if bars:
            self._cursor[sym] = bars[-1].ts
            if cursor is None or len(bars) > 1:
                i18n.log(logger, logging.INFO, "poller.start", symbol=sym, count=len(bars), how=how)
        return bars
