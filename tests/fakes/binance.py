"""A fake Binance spot REST server for tests, built from the real 1m candles in ``../shared/data``.

It answers the public endpoints that ccxt's real ``binance`` class calls for spot market data,
in Binance's real response format, so the real ccxt request building and parsing code runs:

* ``GET /api/v3/ping``, ``GET /api/v3/time``
* ``GET /api/v3/exchangeInfo`` (BTC ETH XRP SOL BNB against USDT)
* ``GET /api/v3/klines`` (12 fields per row, prices as strings; ``symbol``, ``interval``,
  ``startTime``, ``endTime``, ``limit`` <= 1000)
* ``GET /api/v3/ticker/24hr`` (``symbol`` or ``symbols`` = JSON list)

The server has its own simulated clock (``now_ms``): candles opening after it do not exist yet,
and the candle open at ``now_ms`` is returned still forming (its close is the price so far, a
straight line from its open towards the final close), so a client that leaks the forming candle
is caught because its values differ from the CSV row.

Faults for the next requests are queued with :meth:`FakeBinance.queue_fault`; every request is
counted per path (:meth:`FakeBinance.requests`). Use it as an async context manager inside a
test's event loop, or from a plain thread with :meth:`start_in_thread` / :meth:`stop` (all
setters are thread-safe).

Example::

    async with FakeBinance(now_ms=ts) as fake:
        settings = load_settings(exchange_base_url=fake.base_url)
        fake.queue_fault("429", retry_after=2)
        fake.advance(minutes=3)
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from aiohttp import web

from tinhieu.data import load_candles

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-spot-1m-2021"
SYMBOLS = {"BTCUSDT": "BTC", "ETHUSDT": "ETH", "XRPUSDT": "XRP", "SOLUSDT": "SOL", "BNBUSDT": "BNB"}
MINUTE_MS = 60_000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500

FaultKind = Literal["timeout", "429", "418", "500", "503", "malformed", "stale", "empty", "bad_row"]
FAULT_KINDS: tuple[str, ...] = (
    "timeout",
    "429",
    "418",
    "500",
    "503",
    "malformed",
    "stale",
    "empty",
    "bad_row",
)

_CACHE: dict[str, np.ndarray] = {}
_CACHE_LOCK = threading.Lock()


def candles(symbol_id: str, data_dir: Path = DATA_DIR) -> np.ndarray:
    """The CSV rows of ``symbol_id`` (``BTCUSDT``) as an (n, 6) float array, cached per process."""
    with _CACHE_LOCK:
        if symbol_id not in _CACHE:
            df = load_candles(data_dir / f"{symbol_id}_1m.csv.gz")
            _CACHE[symbol_id] = df.to_numpy(dtype=np.float64)
        return _CACHE[symbol_id]


def _fmt(x: float) -> str:
    """A number as Binance quotes it: a string with 8 decimals (more when 8 lose precision)."""
    text = f"{x:.8f}"
    return text if float(text) == x else repr(float(x))


@dataclass
class Fault:
    """One injected fault, used by the next request whose path matches (any path when None)."""

    kind: FaultKind
    path: str | None = "/api/v3/klines"
    retry_after: int | None = None
    delay_s: float = 3.0
    stale_by: int = 3
    symbol: str | None = None


class FakeBinance:
    """Fake Binance spot REST API on 127.0.0.1 (free port), with a simulated clock and faults.

    Parameters
    ----------
    now_ms:
        The simulated time in ms UTC; default: 12:00:30 on 2021-05-10 (inside all five files).
    data_dir:
        Folder with ``<SYMBOL>_1m.csv.gz`` files.
    """

    def __init__(self, now_ms: int = 1_620_648_030_000, data_dir: Path = DATA_DIR) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._now_ms = int(now_ms)
        self._faults: deque[Fault] = deque()
        self._counts: Counter[str] = Counter()
        self._log: list[tuple[str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.base_url = ""

    # --- control (thread-safe) ---------------------------------------------------------
    @property
    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def set_now(self, now_ms: int) -> None:
        with self._lock:
            self._now_ms = int(now_ms)

    def advance(self, *, minutes: float = 0, ms: int = 0) -> int:
        """Move the simulated clock forward; returns the new time in ms."""
        with self._lock:
            self._now_ms += int(minutes * MINUTE_MS) + int(ms)
            return self._now_ms

    def clock(self) -> float:
        """The simulated time in seconds, usable as the client's injected clock."""
        return self.now_ms / 1000

    def queue_fault(
        self,
        kind: FaultKind,
        *,
        path: str | None = "/api/v3/klines",
        times: int = 1,
        retry_after: int | None = None,
        delay_s: float = 3.0,
        stale_by: int = 3,
        symbol: str | None = None,
    ) -> None:
        """Make the next ``times`` requests to ``path`` (any path when None) fail with ``kind``.

        ``symbol`` (Binance form, ``BTCUSDT``) limits the fault to requests for that symbol.

        ``timeout`` holds the answer ``delay_s`` seconds (set the client timeout below it);
        ``429``/``418`` send ``Retry-After: retry_after`` when given; ``500`` is Binance's JSON
        internal error, ``503`` the load balancer's HTML page; ``malformed`` is truncated JSON;
        ``stale`` starts the klines ``stale_by`` rows before ``startTime`` (rows the client
        already has; without ``startTime`` the newest ``stale_by`` rows are missing: a lagging
        answer); ``empty`` is ``[]``; ``bad_row`` answers normally but the first row's high
        is below its low.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, path, retry_after, delay_s, stale_by, symbol))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def requests(self, path: str | None = None) -> int:
        """How many requests reached ``path`` (all paths when None)."""
        with self._lock:
            return self._counts[path] if path else sum(self._counts.values())

    def request_log(self) -> list[tuple[str, dict[str, str]]]:
        """Every request as (path, query parameters), oldest first."""
        with self._lock:
            return list(self._log)

    def _take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        with self._lock:
            self._counts[path] += 1
            for fault in self._faults:
                if (fault.path is None or fault.path == path) and (
                    fault.symbol is None or fault.symbol == query.get("symbol")
                ):
                    self._faults.remove(fault)
                    return fault
            return None

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> str:
        """Start on a free port of 127.0.0.1 in the running loop; returns the base URL."""
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=0.5)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def aclose(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def start_in_thread(self) -> str:
        """Run the server in its own thread and event loop; returns the base URL."""
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # report to the starting thread
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.aclose())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise RuntimeError(f"fake Binance server did not start: {errors[0]}") from errors[0]
        return self.base_url

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None
            self._loop = None

    # --- HTTP ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = dict(request.query)
        with self._lock:
            self._log.append((path, query))
        fault = self._take_fault(path, query)
        if fault is not None:
            response = await self._fault_response(fault, path, query)
            if response is not None:
                return response
        handlers = {
            "/api/v3/ping": self._ping,
            "/api/v3/time": self._time,
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/klines": self._klines,
            "/api/v3/ticker/24hr": self._ticker_24hr,
        }
        handler = handlers.get(path)
        if handler is None:
            return web.Response(
                status=404,
                text="<html><body><h1>404 Not Found</h1></body></html>",
                content_type="text/html",
            )
        return handler(query, fault)

    async def _fault_response(
        self, fault: Fault, path: str, query: dict[str, str]
    ) -> web.StreamResponse | None:
        """The response for a fault, or None when the fault changes the normal answer."""
        kind = fault.kind
        if kind == "timeout":
            assert self._stopping is not None
            try:  # hold the answer; wake early when the server stops
                await asyncio.wait_for(self._stopping.wait(), fault.delay_s)
            except TimeoutError:
                pass
            return None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if kind == "429":
            body = {
                "code": -1003,
                "msg": "Too many requests; current limit of IP(127.0.0.1) is "
                "6000 requests per minute. Please use the websocket for live updates to "
                "avoid polling the API.",
            }
            return web.json_response(body, status=429, headers=headers)
        if kind == "418":
            body = {
                "code": -1003,
                "msg": f"Way too many requests; IP(127.0.0.1) banned until "
                f"{self.now_ms + 120_000}. Please use the websocket for live updates to avoid "
                "bans.",
            }
            return web.json_response(body, status=418, headers=headers)
        if kind == "500":
            body = {
                "code": -1001,
                "msg": "Internal error; unable to process your request. Please try again.",
            }
            return web.json_response(body, status=500)
        if kind == "503":
            return web.Response(
                status=503,
                content_type="text/html",
                text="<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
            )
        if kind == "malformed":
            return web.Response(
                status=200,
                content_type="application/json",
                text='[[1620648000000,"57800.01000000","5790',
            )
        if kind == "empty":
            return web.json_response([])
        return None  # stale, bad_row: handled by the klines handler

    def _error(self, status: int, code: int, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    def _ping(self, query: dict[str, str], fault: Fault | None) -> web.Response:
        return web.json_response({})

    def _time(self, query: dict[str, str], fault: Fault | None) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    def _exchange_info(self, query: dict[str, str], fault: Fault | None) -> web.Response:
        symbols = [self._symbol_info(sid, base) for sid, base in SYMBOLS.items()]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    @staticmethod
    def _symbol_info(symbol_id: str, base: str) -> dict[str, Any]:
        return {
            "symbol": symbol_id,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00010000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.00010000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "100.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": "5",
                    "bidMultiplierDown": "0.2",
                    "askMultiplierUp": "5",
                    "askMultiplierDown": "0.2",
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _rows_until_now(self, symbol_id: str, now_ms: int) -> np.ndarray:
        """CSV rows opened at or before ``now_ms``; the last one forming if opened < 1 min ago."""
        data = candles(symbol_id, self._data_dir)
        end = int(np.searchsorted(data[:, 0], now_ms, side="right"))
        rows = data[:end].copy()
        if len(rows) and rows[-1, 0] + MINUTE_MS > now_ms:
            ts, o, _h, _low, c, v = rows[-1]
            part = (now_ms - ts) / MINUTE_MS
            so_far = round(o + (c - o) * part, 8)
            rows[-1] = (ts, o, max(o, so_far), min(o, so_far), so_far, round(v * part, 8))
        return rows

    def _klines(self, query: dict[str, str], fault: Fault | None) -> web.Response:
        symbol_id = query.get("symbol", "")
        if symbol_id not in SYMBOLS:
            return self._error(400, -1121, "Invalid symbol.")
        if query.get("interval") != "1m":
            return self._error(400, -1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return self._error(400, -1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= MAX_LIMIT:
            return self._error(400, -1130, "Invalid data sent for a parameter.")
        # stale: the answer starts (or, without startTime, ends) ``stale_by`` rows too early
        shift = fault.stale_by if fault is not None and fault.kind == "stale" else 0
        rows = self._rows_until_now(symbol_id, self.now_ms)
        times = rows[:, 0]
        hi = int(np.searchsorted(times, end, side="right")) if end is not None else len(rows)
        if start is not None:
            lo = max(0, int(np.searchsorted(times, start, side="left")) - shift)
            picked = rows[lo:hi][:limit]
        else:
            hi = max(0, hi - shift)
            picked = rows[max(0, hi - limit) : hi]
        answer = [self._kline_row(r) for r in picked]
        if fault is not None and fault.kind == "bad_row" and answer:
            answer[0][2] = _fmt(float(answer[0][3]) / 2)  # high below low
        return web.json_response(answer, headers={"x-mbx-used-weight-1m": "2"})

    @staticmethod
    def _kline_row(r: np.ndarray) -> list[Any]:
        ts, o, h, low, c, v = (float(x) for x in r)
        quote_volume = round(v * (o + c) / 2, 8)
        return [
            int(ts),
            _fmt(o),
            _fmt(h),
            _fmt(low),
            _fmt(c),
            _fmt(v),
            int(ts) + MINUTE_MS - 1,
            _fmt(quote_volume),
            max(1, int(v * 10)),
            _fmt(round(v / 2, 8)),
            _fmt(round(quote_volume / 2, 8)),
            "0",
        ]

    def _ticker_24hr(self, query: dict[str, str], fault: Fault | None) -> web.Response:
        if "symbols" in query:
            try:
                ids = json.loads(query["symbols"])
            except ValueError:
                return self._error(400, -1100, "Illegal characters found in parameter 'symbols'.")
        elif "symbol" in query:
            ids = [query["symbol"]]
        else:
            ids = list(SYMBOLS)
        if any(i not in SYMBOLS for i in ids):
            return self._error(400, -1121, "Invalid symbol.")
        now = self.now_ms
        tickers = [self._ticker(i, now) for i in ids]
        if "symbol" in query:
            return web.json_response(tickers[0])
        return web.json_response(tickers)

    def _ticker(self, symbol_id: str, now: int) -> dict[str, Any]:
        rows = self._rows_until_now(symbol_id, now)
        day = rows[rows[:, 0] > now - 86_400_000]
        if not len(day):
            day = rows[-1:]
        first, last = day[0], day[-1]
        change = last[4] - first[1]
        quote_volume = float(np.sum(day[:, 5] * (day[:, 1] + day[:, 4]) / 2))
        base_volume = float(np.sum(day[:, 5]))
        return {
            "symbol": symbol_id,
            "priceChange": _fmt(round(change, 8)),
            "priceChangePercent": f"{change / first[1] * 100:.3f}",
            "weightedAvgPrice": _fmt(
                round(quote_volume / base_volume, 8) if base_volume else last[4]
            ),
            "prevClosePrice": _fmt(first[1]),
            "lastPrice": _fmt(last[4]),
            "lastQty": "0.01000000",
            "bidPrice": _fmt(last[4]),
            "bidQty": "1.00000000",
            "askPrice": _fmt(last[4]),
            "askQty": "1.00000000",
            "openPrice": _fmt(first[1]),
            "highPrice": _fmt(float(day[:, 2].max())),
            "lowPrice": _fmt(float(day[:, 3].min())),
            "volume": _fmt(round(base_volume, 8)),
            "quoteVolume": _fmt(round(quote_volume, 8)),
            "openTime": int(first[0]),
            "closeTime": int(now),
            "firstId": 1,
            "lastId": len(day),
            "count": len(day),
        }
