"""TradingService against real aiohttp servers on 127.0.0.1 that answer like the worker views.

Only the workers' HTTP views and the exchange are faked (they are outside the bot). The
bodies of ``/sentiment`` and ``/monitoring`` are built with the code the worker views call
(``tinhieu.news.state_as_of``, ``tinhieu.monitor.Monitors.summary``), so a change of their
shape shows here.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tinhieu import news
from tinhieu.bot.service import (
    BUSY,
    EXCHANGE,
    NO_DATA,
    NO_NEWS,
    WORKER,
    ServiceUnavailable,
    TradingService,
)
from tinhieu.monitor import Monitors
from tinhieu.monitoring.quality import QualityState
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


NOW_MS = 1_742_540_700_000  # 2025-03-21 07:05 UTC = 14:05 giờ VN
HEADLINES = [  # (minutes before NOW_MS, title, url, source, sentiment)
    (5, "Bitcoin rallies to a new all-time high", "https://www.coindesk.com/markets/btc-ath",
     "https://www.coindesk.com/arc/outboundfeeds/rss/", 0.62),
    (90, "Exchange hacked, users rekt", "https://cointelegraph.com/news/hack",
     "https://cointelegraph.com/rss", -0.83),
    (30 * 60, "BTC miners hold steady", "", "file:history.csv", 0.0),
]


def sentiment_json(symbol: str = "BTC/USDT", headlines: list[tuple] | None = None) -> dict:
    """What ``GET /sentiment/{symbol}`` answers (agents/news.py SentimentView._local), from
    the state :func:`tinhieu.news.apply_headline` builds; no headlines: the empty answer."""
    rows = HEADLINES if headlines is None else headlines
    state = None
    latest = []
    for minutes, title, url, source, sentiment in sorted(rows, key=lambda r: -r[0]):
        published = NOW_MS - minutes * 60_000
        state = news.apply_headline(state, published, sentiment, url or title,
                                    half_life_s=21_600)
        latest.append({"id": url or title, "published_ms": published, "title": title,
                       "url": url, "source": source, "sentiment": sentiment})
    return {
        "symbol": symbol,
        "half_life_s": state["half_life_s"] if state else None,
        **news.state_as_of(state, NOW_MS),
        "latest": latest[::-1],
    }


ALGOS = ("rf", "svm", "lr")


def monitoring_json(
    champion_n: int = 40, challenger_n: int = 0, walk_forward: bool = True,
    symbol: str = "BTC/USDT",
) -> dict:
    """What ``GET /monitoring/{symbol}`` answers: :meth:`Monitors.summary` over
    ``champion_n`` (and ``challenger_n``) outcomes of the last hours before NOW_MS."""
    quality = QualityState()
    for model, count in (("champion", champion_n), ("challenger", challenger_n)):
        for i in range(count):
            t = NOW_MS - (count - i) * 600_000
            quality.add({
                "candle_time": t, "exit_time": t + 300_000, "true": (1, 0, -1, 0)[i % 4],
                "pred": (1, 0, 0, 0)[i % 4] if model == "champion" else (1, 0, -1, 1)[i % 4],
                "confidence": 0.62, "model": model,
                "net_return": (0.012 if i % 8 == 0 else -0.004) if i % 4 in (0, 3) else None,
            })
    metrics = {"ensemble": {"n": 5_000, "accuracy": 0.542, "balanced_accuracy": 0.41},
               "baselines": {"majority": {"accuracy": 0.501},
                             "persistence": {"accuracy": 0.38}}}
    ensemble = SimpleNamespace(
        model_version="v3",
        metadata={a: {"metrics": metrics} for a in ALGOS} if walk_forward else {},
    )
    return Monitors(load_settings()).summary(symbol, {"quality": quality.to_dict()},
                                             ensemble, NOW_MS)


def health_json(models: dict[str, Any] | None = None) -> dict:
    """``GET /health`` with the ``models`` section (``ModelCache.status``)."""
    body: dict[str, Any] = {"status": "ok", "worker": "w1"}
    if models is not None:
        body["models"] = models
    return body


MODELS_V3_V4 = {
    "loaded": {"BTC/USDT": "v3"},
    "aliases": {"BTC/USDT": {"champion": "v3", "challenger": "v4"}},
    "shadow": {"BTC/USDT": "v4"},
    "shadow_missing": {},
    "missing": {"ETH/USDT": "no model in production: the newest models (v1) were not "
                "promoted (no edge after fees)"},
    "feature_schema": "v1",
    "registry": "sqlite:///var/mlflow.db",
}


class FakeWorker:
    """A worker's web views: answers what ``signals``, ``sentiments``, ``monitoring`` and
    ``health_body`` hold (a symbol without a sentiment gets the empty answer, as the real
    view gives it); counts the requests."""

    def __init__(self, status: int = 200) -> None:
        self.signals: dict[str, dict[str, Any]] = {}
        self.sentiments: dict[str, dict[str, Any]] = {}
        self.monitoring: dict[str, dict[str, Any]] = {}
        self.health_body: dict[str, Any] = health_json()
        self.status = status  # anything but 200 makes every answer that status
        self.requests: list[str] = []
        self.auth: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/signals/{symbol}", self.signal)
        self.app.router.add_get("/sentiment/{symbol}", self.sentiment)
        self.app.router.add_get("/monitoring/{symbol}", self.monitor)

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
        return web.json_response(self.health_body)

    async def sentiment(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.status != 200:
            return self._failure()
        symbol = request.match_info["symbol"]
        empty = sentiment_json(symbol.replace("-", "/"), [])
        return web.json_response(self.sentiments.get(symbol, empty))

    async def monitor(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.status != 200:
            return self._failure()
        symbol = request.match_info["symbol"]
        if symbol not in self.monitoring:
            return web.json_response({"error": f"no signal for {symbol} yet"}, status=404)
        return web.json_response(self.monitoring[symbol])

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


# --- sentiment (!tintuc) and the signal with it (!dudoan) ---------------------------------


async def test_sentiment_gives_the_score_counts_and_newest_headlines(serve, http) -> None:
    worker = FakeWorker()
    worker.sentiments["BTC-USDT"] = sentiment_json()
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    view = await service.sentiment("btc", limit=2)

    assert worker.requests == ["/sentiment/BTC-USDT"]
    assert view.symbol == "BTC/USDT" and view.as_of_ms == NOW_MS
    assert (view.count_1h, view.count_24h, view.total) == (1, 2, 3)
    assert view.score == pytest.approx(
        0.62 * 2 ** (-5 / 360) - 0.83 * 2 ** (-90 / 360) + 0.0, abs=1e-9)
    assert view.half_life_s == 21_600 and view.mean is not None
    assert [h.title for h in view.headlines] == [  # newest first, at most ``limit``
        "Bitcoin rallies to a new all-time high", "Exchange hacked, users rekt"]
    first = view.headlines[0]
    assert (first.url, first.sentiment) == ("https://www.coindesk.com/markets/btc-ath", 0.62)
    assert first.published_ms == NOW_MS - 5 * 60_000
    assert first.source == "https://www.coindesk.com/arc/outboundfeeds/rss/"


async def test_sentiment_without_headlines_is_no_news(serve, http) -> None:
    service = TradingService(make_settings(await serve(FakeWorker())), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.sentiment("eth")

    assert (info.value.what, info.value.symbol) == (NO_NEWS, "ETH/USDT")


async def test_sentiment_from_a_worker_without_the_view_is_no_news(serve, http) -> None:
    worker = FakeWorker()
    worker.app = web.Application()  # an older worker: /sentiment answers aiohttp's 404
    worker.app.router.add_get("/health", worker.health)
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.sentiment("btc")

    assert info.value.what == NO_NEWS


@pytest.mark.parametrize(("status", "what"), [(503, BUSY), (500, WORKER)])
async def test_sentiment_when_the_workers_cannot_answer(serve, http, status, what) -> None:
    urls = (await serve(FakeWorker(status=status)), dead_url())
    service = TradingService(make_settings(*urls), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.sentiment("btc")

    assert info.value.what == what


async def test_sentiment_unknown_symbol_is_refused_before_any_request(serve, http) -> None:
    worker = FakeWorker()
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(UnknownSymbolError):
        await service.sentiment("doge")

    assert worker.requests == []


async def test_sentiment_of_the_wrong_shape_is_worker_unavailable(serve, http) -> None:
    worker = FakeWorker()
    worker.sentiments["BTC-USDT"] = {"symbol": "BTC/USDT", "latest": [{"title": "x"}]}
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.sentiment("btc")

    assert info.value.what == WORKER


async def test_signal_with_sentiment_asks_both_and_never_fails_on_the_news(serve, http) -> None:
    worker = FakeWorker()
    worker.signals["BTC-USDT"] = signal_json()
    worker.signals["ETH-USDT"] = signal_json("ETH/USDT")
    worker.sentiments["BTC-USDT"] = sentiment_json()
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    signal, view, missing = await service.signal_with_sentiment("btc")
    eth_signal, eth_view, eth_missing = await service.signal_with_sentiment("eth")

    assert signal.action == "BUY" and view is not None and missing is None
    assert view.count_24h == 2
    assert eth_signal.symbol == "ETH/USDT" and (eth_view, eth_missing) == (None, NO_NEWS)


async def test_signal_with_sentiment_still_raises_for_the_signal(serve, http) -> None:
    worker = FakeWorker()
    worker.sentiments["SOL-USDT"] = sentiment_json("SOL/USDT")
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.signal_with_sentiment("sol")

    assert info.value.what == NO_DATA


# --- models (!mohinh) -----------------------------------------------------------------------


async def test_models_gathers_aliases_members_walk_forward_and_live_quality(serve, http) -> None:
    worker = FakeWorker()
    worker.health_body = health_json(MODELS_V3_V4)
    worker.signals["BTC-USDT"] = signal_json()
    worker.monitoring["BTC-USDT"] = monitoring_json(champion_n=40, challenger_n=12)
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    view = await service.models("BTC")

    assert sorted(worker.requests) == ["/health", "/monitoring/BTC-USDT", "/signals/BTC-USDT"]
    assert (view.champion, view.challenger, view.loaded, view.shadow) == ("v3", "v4", "v3", "v4")
    assert view.why_no_model is None
    assert view.signal is not None
    assert [(v.model, v.version) for v in view.signal.votes] == [
        ("rf", "rf-20250321"), ("svm", "svm-20250321"), ("lr", "lr-20250321")]
    assert view.walk_forward is not None and view.walk_forward["accuracy"] == 0.542
    assert view.walk_forward["baselines"] == {"majority": 0.501, "persistence": 0.38}
    assert [w for w, _, _ in view.quality] == [86_400, 604_800]
    _, day, day_challenger = view.quality[0]
    assert day.n == 40 and day.accuracy == pytest.approx(30 / 40)
    assert day.neutral_accuracy == pytest.approx(20 / 40)  # always NEUTRAL on the same rows
    assert day.buy_trades == 10 and day.buy_hit_rate == pytest.approx(0.5)
    assert day.calibration_error is not None and day.paper_return_pct is not None
    assert day_challenger is not None and day_challenger.n == 12
    assert (view.health_missing, view.signal_missing, view.monitoring_missing) == (
        None, None, None)


async def test_models_of_a_symbol_without_a_model_or_outcomes(serve, http) -> None:
    worker = FakeWorker()
    worker.health_body = health_json(MODELS_V3_V4)
    worker.signals["ETH-USDT"] = dict(signal_json("ETH/USDT", "NEUTRAL", 0.0), votes=[],
                                      model_version="", reason="no_model")
    worker.monitoring["ETH-USDT"] = monitoring_json(0, 0, walk_forward=False,
                                                    symbol="ETH/USDT")
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    view = await service.models("eth")

    assert (view.champion, view.challenger, view.loaded) == (None, None, None)
    assert view.why_no_model is not None and "not promoted" in view.why_no_model
    assert view.signal is not None and view.signal.reason == "no_model"
    assert view.walk_forward is None
    assert all(c.n == 0 and c.accuracy is None and ch is None for _, c, ch in view.quality)


async def test_models_before_the_first_signal_says_what_is_missing(serve, http) -> None:
    worker = FakeWorker()  # /health without a models section, no signal, no monitoring
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    view = await service.models("xrp")

    assert view.health_missing == NO_DATA
    assert (view.signal, view.signal_missing) == (None, NO_DATA)
    assert view.monitoring_missing == NO_DATA and view.quality == ()


@pytest.mark.parametrize(("status", "what"), [(503, BUSY), (500, WORKER)])
async def test_models_when_no_worker_answers(serve, http, status, what) -> None:
    urls = (await serve(FakeWorker(status=status)), dead_url())
    service = TradingService(make_settings(*urls), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.models("btc")

    assert info.value.what == what


async def test_models_of_the_wrong_shape_is_worker_unavailable(serve, http) -> None:
    worker = FakeWorker()
    worker.monitoring["BTC-USDT"] = {"quality": {"86400s": {"champion": {"n": "many"}}}}
    service = TradingService(make_settings(await serve(worker)), http, FakeExchange())

    with pytest.raises(ServiceUnavailable) as info:
        await service.models("btc")

    assert info.value.what == WORKER


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
