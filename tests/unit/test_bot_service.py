"""TradingService against real aiohttp servers on 127.0.0.1 that answer like the worker views.

Only the workers' HTTP views and the exchange are faked (they are outside the bot).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tinhieu.bot.service import (
    BUSY,
    EXCHANGE,
    NO_DATA,
    WORKER,
    ServiceUnavailable,
    TradingService,
)
from tinhieu.settings import Settings, load_settings
from tinhieu.symbols import UnknownSymbolError

SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


def signal_json(symbol: str = "BTC/USDT", action: str = "BUY", confidence: float = 0.72) -> dict:
    """A Signal as ``GET /signals/{symbol}`` serves it."""
    return {
        "symbol": symbol,
        "candle_time": 1_742_540_700_000,
        "action": action,
        "confidence": confidence,
        "open": 84000.0,
        "high": 84100.0,
        "low": 83900.0,
        "close": 84050.5,
        "volume": 12.5,
        "votes": [
            {
                "model": "rf",
                "action": "BUY",
                "confidence": 0.81,
                "version": "rf-20250321",
                "weight": 1.2,
            },
            {
                "model": "svm",
                "action": "BUY",
                "confidence": 0.66,
                "version": "svm-20250321",
                "weight": 1.0,
            },
            {
                "model": "lr",
                "action": "NEUTRAL",
                "confidence": 0.51,
                "version": "lr-20250321",
                "weight": 0.8,
            },
        ],
        "model_version": "rf-20250321+svm-20250321+lr-20250321",
        "feature_schema": "v1",
        "latency_ms": 12.3,
        "emitted_at": 1_742_540_761.5,
    }


class FakeWorker:
    """A worker's web views: answers what ``signals`` holds; counts the requests."""

    def __init__(self, status: int = 200) -> None:
        self.signals: dict[str, dict[str, Any]] = {}
        self.status = status  # anything but 200 makes every answer that status
        self.requests: list[str] = []
        self.auth: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/signals/{symbol}", self.signal)

    def _failure(self) -> web.Response:
        if self.status == 503:  # what the views answer while partitions move
            return web.json_response(
                {"error": "no worker can answer for it right now", "retry": True}, status=503
            )
        return web.json_response({"error": "boom"}, status=self.status)

    async def health(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.status != 200:
            return self._failure()
        return web.json_response({"status": "ok", "worker": "w1"})

    async def signal(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        self.auth.append(request.headers.get("Authorization"))
        if self.status != 200:
            return self._failure()
        symbol = request.match_info["symbol"]
        if symbol not in self.signals:
            return web.json_response({"error": f"no signal yet for {symbol}"}, status=404)
        return web.json_response(self.signals[symbol])


Serve = Callable[[FakeWorker], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start FakeWorkers on 127.0.0.1 (free ports); stop them after the test."""
    runners: list[web.AppRunner] = []

    async def start(worker: FakeWorker) -> str:
        runner = web.AppRunner(worker.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def dead_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeExchange:
    """The exchange wrapper's surface: async ``fetch_tickers(symbols)``."""

    def __init__(
        self, tickers: dict[str, dict[str, Any]] | None = None, error: Exception | None = None
    ) -> None:
        self.tickers = tickers if tickers is not None else {}
        self.error = error
        self.calls: list[list[str]] = []

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append(list(symbols))
        if self.error is not None:
            raise self.error
        return {s: t for s, t in self.tickers.items() if s in symbols}


TICKERS = {
    "BTC/USDT": {"last": 84050.5, "percentage": 2.35},
    "ETH/USDT": {"last": 1980.25, "percentage": -4.1},
    "XRP/USDT": {"last": 2.4312, "percentage": 7.8},
    "SOL/USDT": {"last": 131.7, "percentage": -0.6},
    "BNB/USDT": {"last": 612.0, "percentage": 0.0},
}


def make_settings(*urls: str) -> Settings:
    return load_settings(web_urls=",".join(urls), symbols=",".join(SYMBOLS), vnd_per_usdt=26000)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- latest_signal ------------------------------------------------------------------------


async def test_latest_signal_parses_the_view_and_accepts_any_symbol_form(serve, http) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json()
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    signal = await service.latest_signal("btcusdt")

    assert worker.requests == ["/signals/BTC-USDT"]
    assert (signal.symbol, signal.action, signal.confidence) == ("BTC/USDT", "BUY", 0.72)
    assert signal.candle_time == 1_742_540_700_000
    assert [(v.model, v.action, v.version) for v in signal.votes] == [
        ("rf", "BUY", "rf-20250321"),
        ("svm", "BUY", "svm-20250321"),
        ("lr", "NEUTRAL", "lr-20250321"),
    ]
    assert signal.votes[0].weight == 1.2
    assert signal.model_version == "rf-20250321+svm-20250321+lr-20250321"


async def test_unknown_symbol_is_refused_before_any_request(serve, http) -> None:
    worker = FakeWorker()
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(UnknownSymbolError) as info:
        await service.latest_signal("doge")

    assert info.value.supported == SYMBOLS
    assert worker.requests == []


async def test_404_means_no_data_yet_and_stops_at_that_worker(serve, http) -> None:
    first, second = FakeWorker(), FakeWorker()
    second.signals["ETH-USDT"] = signal_json("ETH/USDT")
    service = TradingService(
        make_settings(await serve(first), await serve(second)), http, FakeExchange()
    )

    with pytest.raises(ServiceUnavailable) as info:
        await service.latest_signal("eth")

    assert info.value.what == NO_DATA
    assert info.value.symbol == "ETH/USDT"
    assert "no signal yet" in info.value.detail
    assert second.requests == []  # the key's owner answered for the cluster


async def test_a_down_worker_is_skipped_for_the_next_one(serve, http) -> None:
    broken, alive = FakeWorker(status=500), FakeWorker()
    alive.signals["SOL-USDT"] = signal_json("SOL/USDT", "SELL", 0.9)
    urls = (dead_url(), await serve(broken), await serve(alive))
    service = TradingService(make_settings(*urls), http, FakeExchange())

    signal = await service.latest_signal("SOL/USDT")

    assert (signal.symbol, signal.action) == ("SOL/USDT", "SELL")
    assert broken.requests == ["/signals/SOL-USDT"]


async def test_all_workers_down_is_worker_unavailable(http) -> None:
    urls = (dead_url(), dead_url())
    service = TradingService(make_settings(*urls), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.latest_signal("btc")

    assert info.value.what == WORKER
    assert all(url in info.value.detail for url in urls)  # says which workers were tried


async def test_workers_rebalancing_is_busy_not_down(serve, http) -> None:
    urls = (await serve(FakeWorker(status=503)), dead_url())
    service = TradingService(make_settings(*urls), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.latest_signal("btc")

    assert info.value.what == BUSY


async def test_a_signal_of_the_wrong_shape_is_worker_unavailable(serve, http) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = {"symbol": "BTC/USDT", "action": "MAYBE"}
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.latest_signal("btc")

    assert info.value.what == WORKER


async def test_the_service_opens_and_closes_its_own_session_when_given_none(serve) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json()
    service = TradingService(make_settings(await serve(worker)), None, FakeExchange())
    try:
        assert (await service.latest_signal("btc")).action == "BUY"
    finally:
        await service.close()
    assert service._http is None


async def test_the_bot_sends_the_web_token_when_one_is_set(serve) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json()
    url = await serve(worker)
    settings = load_settings(web_urls=url, symbols=",".join(SYMBOLS), web_token="bot-secret-1")
    service = TradingService(settings, None, FakeExchange())
    try:
        assert (await service.latest_signal("btc")).action == "BUY"
    finally:
        await service.close()
    plain = TradingService(make_settings(url), None, FakeExchange())
    try:
        await plain.latest_signal("btc")
    finally:
        await plain.close()
    assert worker.auth == ["Bearer bot-secret-1", None]


# --- price ------------------------------------------------------------------------------


async def test_price_in_usdt_and_vnd_with_the_quick_prediction(serve, http) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json(confidence=0.66)
    exchange = FakeExchange(TICKERS)
    service = TradingService(make_settings(await serve(worker)), http, exchange)

    quote = await service.price("BTC")

    assert exchange.calls == [["BTC/USDT"]]
    assert quote.last_usdt == 84050.5
    assert quote.last_vnd == pytest.approx(84050.5 * 26000)
    assert quote.change_24h_pct == 2.35
    assert quote.prediction is not None and quote.prediction.confidence == 0.66
    assert quote.prediction_missing is None


async def test_price_without_signal_still_answers_and_says_why(serve, http) -> None:
    service = TradingService(make_settings(dead_url()), http, FakeExchange(TICKERS))

    quote = await service.price("eth")

    assert quote.last_usdt == 1980.25
    assert quote.prediction is None
    assert quote.prediction_missing == WORKER


async def test_price_when_the_exchange_is_down(serve, http) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json()
    down = FakeExchange(error=ConnectionError("binance.com unreachable"))
    service = TradingService(make_settings(await serve(worker)), http, down)

    with pytest.raises(ServiceUnavailable) as info:
        await service.price("btc")

    assert info.value.what == EXCHANGE
    assert "binance.com unreachable" in info.value.detail


async def test_price_when_the_exchange_has_no_ticker_for_the_symbol(http) -> None:
    service = TradingService(make_settings(dead_url()), http, FakeExchange({}))

    with pytest.raises(ServiceUnavailable) as info:
        await service.price("xrp")

    assert (info.value.what, info.value.symbol) == (EXCHANGE, "XRP/USDT")


async def test_a_sync_exchange_object_works_too(http) -> None:
    class SyncExchange:
        def fetch_tickers(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
            return {s: TICKERS[s] for s in symbols}

    service = TradingService(make_settings(dead_url()), http, SyncExchange())

    assert (await service.price("bnb")).last_usdt == 612.0


# --- movers ------------------------------------------------------------------------------


async def test_movers_ranks_gainers_and_losers(http) -> None:
    exchange = FakeExchange(TICKERS)
    service = TradingService(make_settings(dead_url()), http, exchange)

    movers = await service.movers(limit=3)

    assert exchange.calls == [list(SYMBOLS)]
    assert [(m.symbol, m.change_24h_pct) for m in movers.gainers] == [
        ("XRP/USDT", 7.8),
        ("BTC/USDT", 2.35),
    ]
    assert [(m.symbol, m.change_24h_pct) for m in movers.losers] == [
        ("ETH/USDT", -4.1),
        ("SOL/USDT", -0.6),
    ]
    assert movers.missing == ()


async def test_movers_limit_and_missing_tickers(http) -> None:
    tickers = dict(TICKERS)
    del tickers["XRP/USDT"]
    tickers["SOL/USDT"] = {"last": 131.7, "percentage": None}
    service = TradingService(make_settings(dead_url()), http, FakeExchange(tickers))

    movers = await service.movers(limit=1)

    assert [m.symbol for m in movers.gainers] == ["BTC/USDT"]
    assert [m.symbol for m in movers.losers] == ["ETH/USDT"]
    assert movers.missing == ("XRP/USDT", "SOL/USDT")


async def test_movers_when_the_exchange_is_down(http) -> None:
    down = FakeExchange(error=TimeoutError())
    service = TradingService(make_settings(dead_url()), http, down)

    with pytest.raises(ServiceUnavailable) as info:
        await service.movers()

    assert info.value.what == EXCHANGE


# --- ping_workers -------------------------------------------------------------------------


async def test_ping_workers_reports_each_worker_in_order(serve, http) -> None:
    alive, broken = FakeWorker(), FakeWorker(status=503)
    urls = (await serve(alive), dead_url(), await serve(broken))
    service = TradingService(make_settings(*urls), http, FakeExchange())

    health = await service.ping_workers()

    assert [h.url for h in health] == list(urls)
    assert [h.ok for h in health] == [True, False, False]
    assert health[0].detail == "ok" and health[0].latency_ms is not None
    assert health[1].latency_ms is None
    assert health[2].detail == "HTTP 503"


# --- with the real exchange client, faked only at Binance's HTTP edge ---------------------


async def test_price_and_movers_through_the_real_exchange_client(http) -> None:
    from tests.fakes.binance import FakeBinance
    from tinhieu.exchange import ExchangeClient

    async with FakeBinance() as fake:
        settings = load_settings(
            exchange_base_url=fake.base_url, web_urls=dead_url(), symbols=",".join(SYMBOLS)
        )
        exchange = ExchangeClient(settings, clock=fake.clock, sleep=_no_sleep)
        try:
            service = TradingService(settings, http, exchange)
            quote = await service.price("btc")
            movers = await service.movers(limit=5)

            fake.queue_fault("500", path=None, times=20)
            with pytest.raises(ServiceUnavailable) as info:
                await service.price("eth")
        finally:
            await exchange.close()

    assert quote.last_usdt > 0 and quote.change_24h_pct is not None
    assert quote.last_vnd == pytest.approx(quote.last_usdt * settings.vnd_per_usdt)
    ranked = [m.change_24h_pct for m in movers.gainers] + [
        m.change_24h_pct for m in reversed(movers.losers)
    ]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) + len(movers.missing) <= 5
    assert info.value.what == EXCHANGE


async def _no_sleep(seconds: float) -> None:
    return None
