"""The exchange client: closed candles and tickers through ccxt (async), errors mapped, retried.

Everything that talks to the exchange goes through :class:`ExchangeClient`. ccxt errors never
leave it: they become :class:`~tinhieu.exchange.errors.ExchangeError` subclasses that say what
failed, for which symbol, and what to do. Every network call goes through one retry helper
(exponential backoff with jitter, capped at ``settings.retry_max_delay_s``; ``Retry-After``
honoured on 429/418).

A candle is *closed* when ``open_time + timeframe_ms <= now`` by the injected clock; the
still-forming candle the exchange returns last is never handed out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from tinhieu import i18n
from tinhieu.candles import Bar, CandleError, validate_candle
from tinhieu.exchange.errors import (
    ExchangeConfigError,
    ExchangeDataError,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    float_or_none,
    logger,
    map_error,
    short,
)
from tinhieu.settings import Settings
from tinhieu.symbols import canonical

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
Progress = Callable[[int, int], Any]

DEFAULT_ATTEMPTS = 3
"""Attempts per call unless told otherwise (the bot, the CLI). ``None`` retries forever."""
BASE_DELAY_S = 1.0
"""First backoff delay for network errors, timeouts and 5xx; doubled per attempt."""
RATE_LIMIT_BASE_DELAY_S = 5.0
"""First backoff delay after 429/418 without a ``Retry-After`` header."""
DEFAULT_PAGE_LIMIT = 500
"""Candles per request when ccxt does not tell the exchange's own limit."""

_BINANCE_FAMILY = ("binance", "binanceus")


# --- helpers -------------------------------------------------------------------------


def _rewrite_urls(api: Any, base_url: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` with its scheme and host replaced by ``base_url``."""
    if isinstance(api, str):
        base = urlsplit(base_url)
        parts = urlsplit(api)
        return f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{parts.path}"
    if isinstance(api, dict):
        return {key: _rewrite_urls(value, base_url) for key, value in api.items()}
    return api


def _first_host(api: Any) -> str:
    if isinstance(api, str):
        return urlsplit(api).netloc or api
    if isinstance(api, dict):
        for key in ("public", "rest", "spot"):
            if isinstance(api.get(key), str):
                return _first_host(api[key])
        for value in api.values():
            host = _first_host(value)
            if host:
                return host
    return ""


class ExchangeClient:
    """The one wrapper around a ccxt async exchange.

    Parameters
    ----------
    settings:
        Uses ``exchange_id``, ``exchange_base_url``, ``exchange_timeout_s``,
        ``exchange_api_key``/``exchange_secret``, ``timeframe``, ``retry_max_delay_s``.
    clock:
        Seconds since the epoch; decides which candle is still forming.
    sleep:
        Awaited between retries (tests pass a fast one).
    rng:
        Source of the backoff jitter.
    sync_time:
        Measure the offset between ``clock`` and the exchange's server time (on loading the
        markets and at every :meth:`CandlePoller.poll`) and decide closedness by the exchange's
        time, so a host clock that runs ahead never releases a candle early (and a fake
        exchange with a simulated clock is followed by a worker process).
    report_failures:
        Log a call's final failure (given up after its last attempt, bad data) as a warning
        or error. ``False`` when the caller reports failures itself: the ingest logs one line
        per failed poll, so here they go to the debug level. Retries are logged either way.

    Raises
    ------
    ExchangeConfigError
        ``settings.exchange_id`` is not an exchange ccxt knows.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        sync_time: bool = True,
        report_failures: bool = True,
    ) -> None:
        self._settings = settings
        self._sync_time = sync_time
        self._report = report_failures
        self._offset_ms = 0
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.exchange_id = settings.exchange_id
        self.timeframe = settings.timeframe
        self.timeframe_ms = settings.timeframe_ms
        self.max_delay_s = settings.retry_max_delay_s
        exchange_class = getattr(ccxt_async, settings.exchange_id, None)
        if settings.exchange_id not in ccxt_async.exchanges or exchange_class is None:
            raise ExchangeConfigError(
                f"unknown exchange id {settings.exchange_id!r} (TINHIEU_EXCHANGE_ID); "
                f"use a ccxt exchange id such as 'binance', 'okx', 'bybit', 'kraken'"
            )
        options: dict[str, Any] = {"defaultType": "spot"}
        if settings.exchange_id in _BINANCE_FAMILY:
            # spot markets only (one exchangeInfo request), no signed currency/margin calls
            options.update(
                {
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                }
            )
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(settings.exchange_timeout_s * 1000),
            "options": options,
        }
        if settings.exchange_api_key is not None:
            config["apiKey"] = settings.exchange_api_key.get_secret_value()
        if settings.exchange_secret is not None:
            config["secret"] = settings.exchange_secret.get_secret_value()
        self._has_keys = "apiKey" in config
        self._ex: Any = exchange_class(config)
        if settings.exchange_base_url:
            self._ex.urls["api"] = _rewrite_urls(self._ex.urls["api"], settings.exchange_base_url)
        self.host = _first_host(self._ex.urls.get("api")) or settings.exchange_id
        self._ex.on_rest_response = self._check_body
        self.page_limit = self._page_limit()
        i18n.log(
            logger,
            logging.INFO,
            "exchange.connect",
            exchange=self.exchange_id,
            host=self.host,
            timeframe=self.timeframe,
            timeout_s=settings.exchange_timeout_s,
            keys="****" if self._has_keys else "-",
        )

    # --- public API ----------------------------------------------------------------------
    def now_ms(self) -> int:
        """The exchange's time in integer ms: the injected clock plus the measured offset."""
        return int(self._clock() * 1000) + self._offset_ms

    async def sync_clock(self) -> int | None:
        """Measure ``exchange time - clock`` with one request; returns it (None: not measured).

        A failure is not an error here (logged at debug level): the offset measured before
        stays, and the next candle request reports the problem through the retry helper.
        """
        if not self._sync_time or not self._ex.has.get("fetchTime"):
            return None
        before = self._clock()
        try:
            server_ms = await self._ex.fetch_time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported by the next real request
            logger.debug("exchange time not measured: %s", short(exc))
            return None
        after = self._clock()
        if isinstance(server_ms, int) and not isinstance(server_ms, bool):
            self._offset_ms = server_ms - int((before + after) / 2 * 1000)
            return self._offset_ms
        return None

    def current_open_ms(self) -> int:
        """Open time of the candle forming now; every candle before it is closed."""
        return self.now_ms() // self.timeframe_ms * self.timeframe_ms

    async def load_markets(self, *, attempts: int | None = DEFAULT_ATTEMPTS) -> None:
        """Load the exchange's markets once (later calls return at once)."""
        if self._ex.markets:
            return
        await self._call("load_markets", None, self._ex.load_markets, attempts)
        await self.sync_clock()

    async def check_symbols(
        self, symbols: Iterable[str], *, attempts: int | None = DEFAULT_ATTEMPTS
    ) -> list[str]:
        """Canonical symbols, each checked to be listed; raises ``ExchangeConfigError`` if not."""
        try:
            wanted = [canonical(s) for s in symbols]
        except ValueError as exc:
            raise ExchangeConfigError(f"{exc}; use a symbol such as BTC/USDT or btc") from None
        await self.load_markets(attempts=attempts)
        missing = [s for s in wanted if s not in self._ex.markets]
        if missing:
            listed = sorted(s for s in self._ex.markets if s.endswith("/USDT"))[:10]
            raise ExchangeConfigError(
                f"symbol(s) {', '.join(missing)} not listed on {self.exchange_id} (spot); "
                f"fix TINHIEU_SYMBOLS (listed, for example: {', '.join(listed) or 'none'})"
            )
        return wanted

    async def fetch_closed_candles(
        self,
        symbol: str,
        since_ms: int | None,
        limit: int,
        *,
        attempts: int | None = DEFAULT_ATTEMPTS,
    ) -> list[Bar]:
        """Closed candles of ``symbol`` from one request, ascending, without duplicates.

        Parameters
        ----------
        symbol:
            Any form (``btc``, ``BTCUSDT``, ``BTC/USDT``).
        since_ms:
            Earliest open time wanted; ``None`` for the latest candles.
        limit:
            Candles asked for (at most :attr:`page_limit`). The still-forming candle counts
            towards the exchange's limit but is dropped, so fewer may come back.
        attempts:
            Tries before the mapped error is raised; ``None`` retries forever.

        Raises
        ------
        ExchangeUnavailable, RateLimited
            After ``attempts`` failed tries.
        ExchangeDataError
            The response is not candle data (not retried here).
        ExchangeConfigError
            The symbol is not listed on the exchange.
        """
        bars, _ = await self._fetch_page(symbol, since_ms, limit, attempts)
        return bars

    async def backfill(
        self, symbol: str, count: int, *, attempts: int | None = DEFAULT_ATTEMPTS
    ) -> list[Bar]:
        """The last ``count`` closed candles (fewer when the exchange has a gap or less history).

        One request when ``count`` fits in a page, otherwise paginated forward over the time
        range of the last ``count`` candles.
        """
        if count <= 0:
            return []
        sym = (await self.check_symbols([symbol], attempts=attempts))[0]
        if count + 1 <= self.page_limit:
            bars, _ = await self._fetch_page(sym, None, count + 1, attempts)
            return bars[-count:]
        end = self.current_open_ms()
        bars = await self._fetch_range(sym, end - count * self.timeframe_ms, end, None, attempts)
        return bars[-count:]

    async def fetch_history(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int | None = None,
        progress: Progress | None = None,
        *,
        attempts: int | None = DEFAULT_ATTEMPTS,
    ) -> list[Bar]:
        """Closed candles with ``start_ms <= open time < end_ms`` (``None``: up to now), paginated.

        ``progress(candles_so_far, candles_expected)`` is called after every page.
        """
        sym = (await self.check_symbols([symbol], attempts=attempts))[0]
        end = self.current_open_ms() if end_ms is None else min(end_ms, self.current_open_ms())
        return await self._fetch_range(sym, start_ms, end, progress, attempts)

    async def fetch_tickers(
        self, symbols: Sequence[str], *, attempts: int | None = DEFAULT_ATTEMPTS
    ) -> dict[str, dict[str, Any]]:
        """``{symbol: {"last", "percentage" (24 h change %), "quoteVolume", "timestamp"}}``.

        A symbol the exchange returns no ticker for is left out (and logged).
        """
        syms = await self.check_symbols(symbols, attempts=attempts)
        raw = await self._call(
            "fetch_tickers", ",".join(syms), lambda: self._ex.fetch_tickers(syms), attempts
        )
        if not isinstance(raw, dict):
            raise self._data_error(
                "fetch_tickers", None, f"expected a mapping of tickers, got {type(raw).__name__}"
            )
        result: dict[str, dict[str, Any]] = {}
        for sym in syms:
            ticker = raw.get(sym)
            last = ticker.get("last") if isinstance(ticker, dict) else None
            if last is None:
                i18n.log(
                    logger,
                    logging.WARNING,
                    "exchange.no_ticker",
                    exchange=self.exchange_id,
                    symbol=sym,
                )
                continue
            result[sym] = {
                "last": float(last),
                "percentage": float_or_none(ticker.get("percentage")),
                "quoteVolume": float_or_none(ticker.get("quoteVolume")),
                "timestamp": ticker.get("timestamp"),
            }
        return result

    async def close(self) -> None:
        """Close the HTTP session (safe to call twice)."""
        await self._ex.close()

    async def __aenter__(self) -> ExchangeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- candles -------------------------------------------------------------------------
    async def _fetch_page(
        self, symbol: str, since_ms: int | None, limit: int, attempts: int | None
    ) -> tuple[list[Bar], int | None]:
        """Closed, valid candles of one request, and the newest open time the exchange sent."""
        sym = (await self.check_symbols([symbol], attempts=attempts))[0]
        limit = max(1, min(limit, self.page_limit))
        rows = await self._call(
            "fetch_ohlcv",
            sym,
            lambda: self._ex.fetch_ohlcv(sym, self.timeframe, since_ms, limit),
            attempts,
        )
        if not isinstance(rows, list):
            raise self._data_error("fetch_ohlcv", sym, f"expected a list of candles, got {rows!r}")
        closed_before = self.current_open_ms()
        bars: dict[int, Bar] = {}
        newest: int | None = None
        for row in rows:
            if not isinstance(row, (list, tuple)) or len(row) < 6:
                raise self._data_error("fetch_ohlcv", sym, f"not a candle row: {short(row, 120)}")
            ts = row[0]
            if isinstance(ts, int) and not isinstance(ts, bool):
                newest = ts if newest is None else max(newest, ts)
            try:
                bar = validate_candle(
                    dict(
                        zip(
                            ("timestamp", "open", "high", "low", "close", "volume"),
                            row[:6],
                            strict=True,
                        ),
                        symbol=sym,
                    ),
                    (sym,),
                    self.timeframe_ms,
                ).bar
            except CandleError as exc:
                i18n.log(
                    logger,
                    logging.WARNING,
                    "exchange.bad_row",
                    symbol=sym,
                    ts=ts,
                    reason=exc.reason,
                )
                continue
            if bar.ts >= closed_before:  # still forming
                continue
            if since_ms is not None and bar.ts < since_ms:
                continue
            bars.setdefault(bar.ts, bar)
        return [bars[ts] for ts in sorted(bars)], newest

    async def _fetch_range(
        self,
        sym: str,
        start_ms: int,
        end_ms: int,
        progress: Progress | None,
        attempts: int | None,
    ) -> list[Bar]:
        tf = self.timeframe_ms
        start_ms = -(-start_ms // tf) * tf  # first aligned open time at or after start
        expected = max(0, (end_ms - start_ms) // tf)
        out: dict[int, Bar] = {}
        cursor = start_ms
        while cursor < end_ms:
            bars, newest = await self._fetch_page(sym, cursor, self.page_limit, attempts)
            for bar in bars:
                if bar.ts < end_ms:
                    out.setdefault(bar.ts, bar)
            if progress is not None:
                progress(len(out), expected)
            if newest is None or newest < cursor:
                break  # nothing at or after the cursor: the exchange has no more
            cursor = newest + tf
        return [out[ts] for ts in sorted(out)]

    def _page_limit(self) -> int:
        features = getattr(self._ex, "features", None) or {}
        spot = features.get("spot") if isinstance(features, dict) else None
        ohlcv = spot.get("fetchOHLCV") if isinstance(spot, dict) else None
        limit = ohlcv.get("limit") if isinstance(ohlcv, dict) else None
        return int(limit) if isinstance(limit, int) and limit > 1 else DEFAULT_PAGE_LIMIT

    # --- the retry helper ------------------------------------------------------------------
    async def _call(
        self,
        what: str,
        target: str | None,
        fn: Callable[[], Awaitable[T]],
        attempts: int | None,
    ) -> T:
        """Run ``fn`` with retries; the one path every network call takes.

        ``ExchangeUnavailable`` (and ``RateLimited``) is retried with backoff, at most
        ``attempts`` tries in all (forever when ``None``); other errors are raised at once.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as caught:  # every ccxt / parsing error is mapped here
                exc: Exception = caught
                error = self._map_error(caught, what, target)
            if error is exc:
                raise error
            fields = {
                "exchange": self.exchange_id,
                "host": self.host,
                "what": what,
                "target": f" {target}" if target else "",
                "attempt": attempt,
                "of": f"/{attempts}" if attempts is not None else "",
                "error": short(exc.__cause__ or exc),
            }
            if not isinstance(error, ExchangeUnavailable):
                if isinstance(error, ExchangeDataError):
                    i18n.log(logger, self._level(logging.WARNING), "exchange.bad_data", **fields)
                raise error from exc
            if attempts is not None and attempt >= attempts:
                i18n.log(logger, self._level(logging.ERROR), "exchange.gave_up", **fields)
                raise error from exc
            delay = self._delay(attempt, error)
            fields["delay"] = delay
            if isinstance(error, RateLimited):
                hint = (
                    f" (Retry-After {error.retry_after_s:g} s)"
                    if error.retry_after_s is not None
                    else ""
                )
                i18n.log(logger, logging.WARNING, "exchange.rate_limited", hint=hint, **fields)
            elif isinstance(exc, ccxt.RequestTimeout):
                i18n.log(
                    logger,
                    logging.WARNING,
                    "exchange.timeout",
                    timeout_s=self._settings.exchange_timeout_s,
                    **fields,
                )
            elif isinstance(exc, ccxt.ExchangeNotAvailable) and exc.__cause__ is not None:
                i18n.log(logger, logging.WARNING, "exchange.unreachable", **fields)
            else:
                i18n.log(logger, logging.WARNING, "exchange.unavailable", **fields)
            await self._sleep(delay)

    def _delay(self, attempt: int, error: ExchangeUnavailable) -> float:
        """Exponential backoff with jitter (half fixed, half random), capped.

        A ``Retry-After`` from the exchange is obeyed as given, above the cap: retrying early
        during a Binance 418 ban lengthens the ban.
        """
        if isinstance(error, RateLimited):
            if error.retry_after_s is not None:
                return max(0.0, error.retry_after_s)
            base = RATE_LIMIT_BASE_DELAY_S
        else:
            base = BASE_DELAY_S
        delay = min(self.max_delay_s, base * 2 ** min(attempt - 1, 30))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _map_error(self, exc: Exception, what: str, target: str | None) -> ExchangeError:
        """A ccxt (or parsing) exception as one of ours (see :func:`errors.map_error`)."""
        return map_error(
            exc,
            f"{self.exchange_id} ({self.host}) {what}{' ' + target if target else ''}",
            headers=getattr(self._ex, "last_response_headers", None),
            timeout_s=self._settings.exchange_timeout_s,
        )

    def _level(self, level: int) -> int:
        """``level`` for a call's final failure, or debug when the caller reports it."""
        return level if self._report else logging.DEBUG

    def _data_error(self, what: str, target: str | None, reason: str) -> ExchangeDataError:
        where = f"{self.exchange_id} ({self.host}) {what}{' ' + target if target else ''}"
        error = ExchangeDataError(f"{where}: {short(reason)}")
        i18n.log(
            logger,
            self._level(logging.WARNING),
            "exchange.bad_data",
            exchange=self.exchange_id,
            what=what,
            target=f" {target}" if target else "",
            error=short(reason),
        )
        return error

    def _check_body(
        self,
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        response_headers: Any,
        response_body: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        """ccxt hook on every REST response: a 2xx body must be JSON.

        ccxt alone turns a truncated JSON body into an empty candle list, which would look
        like "no new candles"; here it becomes ``BadResponse`` (mapped to ExchangeDataError).
        """
        body = response_body.strip() if isinstance(response_body, str) else response_body
        if isinstance(code, int) and 200 <= code < 300 and isinstance(body, str) and body:
            try:
                json.loads(body)
            except ValueError as exc:
                raise ccxt.BadResponse(
                    f"{self.exchange_id} {method} {urlsplit(str(url)).path}: HTTP {code} body is "
                    f"not valid JSON ({exc}); starts with {body[:60]!r}"
                ) from None
        return body
