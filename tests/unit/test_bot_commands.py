"""The Discord commands, through discord.py's real command processing under dpytest 0.7.0.

Faked: the Discord gateway (dpytest), the exchange (an injected object) and the workers'
web views (an aiohttp server on 127.0.0.1); the service, the cog, the error handler and the
embeds are the real ones.

dpytest 0.7.0 with discord.py 2.7 needs two shims (both in the ``bot`` fixture):

- dpytest adds its fake members through ``GUILD_MEMBER_ADD``, which discord.py 2.x only caches
  with the (privileged) members intent; the bot does not ask for it, so the test turns it on in
  the connection state before ``dpytest.configure`` (otherwise ``dpytest.message`` fails with
  ``'NoneType' object has no attribute 'id'``);
- dpytest never calls ``login``, so discord.py never calls ``setup_hook``: the test calls it
  (``_async_setup_hook`` then ``setup_hook``), as dpytest's own README does for cogs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from aiohttp import ClientSession, web
from discord.ext import commands

from tests.fakes.records import ORDER_FIELDS
from tests.unit.test_bot_service import MODELS_V3_V4, monitoring_json, sentiment_json
from tinhieu.bot import run_bot
from tinhieu.bot.commands import channel_poster, create_bot
from tinhieu.bot.messages import order_embed
from tinhieu.bot.orders_feed import bootstrap_servers, decode_order, group_id
from tinhieu.bot.service import ServiceUnavailable, TradingService
from tinhieu.bot.token import BotTokenError
from tinhieu.settings import load_settings
from tinhieu.symbols import UnknownSymbolError

SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")

SIGNAL = {
    "symbol": "BTC/USDT",
    "candle_time": 1_742_540_700_000,  # 2025-03-21 07:05 UTC = 14:05 giờ VN
    "action": "BUY",
    "confidence": 0.724,
    "open": 84000.0,
    "high": 84100.0,
    "low": 83900.0,
    "close": 84050.5,
    "volume": 12.5,
    "votes": [
        {"model": "rf", "action": "BUY", "confidence": 0.81, "version": "rf-20250321",
         "weight": 1.2},
        {"model": "svm", "action": "SELL", "confidence": 0.55, "version": "svm-20250321",
         "weight": 1.0},
        {"model": "lr", "action": "NEUTRAL", "confidence": 0.51, "version": "lr-20250321",
         "weight": 0.8},
    ],
    "model_version": "ens-20250321",
    "feature_schema": "v1",
    "latency_ms": 12.3,
    "emitted_at": 1_742_540_761.5,
}

TICKERS = {
    "BTC/USDT": {"last": 84050.5, "percentage": 2.35},
    "ETH/USDT": {"last": 1980.25, "percentage": -4.1},
    "XRP/USDT": {"last": 2.4312, "percentage": 7.8},
    "SOL/USDT": {"last": 131.7, "percentage": -0.6},
    "BNB/USDT": {"last": 612.0, "percentage": 0.0},
}


class FakeExchange:
    def __init__(self) -> None:
        self.down = False

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        if self.down:
            raise ConnectionError("api.binance.com: connection reset")
        return {s: TICKERS[s] for s in symbols if s in TICKERS}


class Worker:
    """One worker's web views on 127.0.0.1: /health (with the models section),
    /signals/{symbol}, /sentiment/{symbol} (the empty answer for a symbol without news, as
    the real view gives it) and /monitoring/{symbol}."""

    def __init__(self) -> None:
        self.signals: dict[str, dict[str, Any]] = {"BTC-USDT": SIGNAL}
        self.sentiments: dict[str, dict[str, Any]] = {"BTC-USDT": sentiment_json()}
        self.monitoring: dict[str, dict[str, Any]] = {"BTC-USDT": monitoring_json(40, 12)}
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/signals/{symbol}", self._signal)
        app.router.add_get("/sentiment/{symbol}", self._sentiment)
        app.router.add_get("/monitoring/{symbol}", self._monitoring)
        self.runner = web.AppRunner(app)
        self.rebalancing = False
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "models": MODELS_V3_V4})

    async def _sentiment(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if self.rebalancing:
            return web.json_response({"error": "no worker can answer", "retry": True}, status=503)
        empty = sentiment_json(symbol.replace("-", "/"), [])
        return web.json_response(self.sentiments.get(symbol, empty))

    async def _monitoring(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if self.rebalancing:
            return web.json_response({"error": "no worker can answer", "retry": True}, status=503)
        if symbol not in self.monitoring:
            return web.json_response({"error": f"no signal for {symbol} yet"}, status=404)
        return web.json_response(self.monitoring[symbol])

    async def _signal(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if self.rebalancing:
            return web.json_response({"error": "no worker can answer", "retry": True}, status=503)
        if symbol not in self.signals:
            return web.json_response({"error": f"no signal yet for {symbol}"}, status=404)
        return web.json_response(self.signals[symbol])


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Env(SimpleNamespace):
    bot: commands.Bot
    worker: Worker
    exchange: FakeExchange
    service: TradingService


async def _make_env(worker_alive: bool = True) -> tuple[Env, ClientSession]:
    worker = Worker()
    await worker.start()
    url = worker.url if worker_alive else dead_url()
    settings = load_settings(symbols=",".join(SYMBOLS), web_urls=url, vnd_per_usdt=26000)
    http = ClientSession()
    exchange = FakeExchange()
    service = TradingService(settings, http, exchange, timeout_s=2.0)
    bot = create_bot(settings, service)
    await bot._async_setup_hook()
    # shim 1 (see module docstring): let dpytest's fake members be cached
    bot._connection._intents.members = True
    bot._connection.member_cache_flags = discord.MemberCacheFlags.from_intents(
        bot._connection._intents
    )
    await bot.setup_hook()  # shim 2: discord.py calls it on login, dpytest never logs in
    dpytest.configure(bot)
    return Env(bot=bot, worker=worker, exchange=exchange, service=service), http


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    env, http = await _make_env()
    yield env
    await dpytest.empty_queue()
    await http.close()
    await env.worker.runner.cleanup()


@pytest.fixture
async def env_workers_down() -> AsyncIterator[Env]:
    env, http = await _make_env(worker_alive=False)
    yield env
    await dpytest.empty_queue()
    await http.close()
    await env.worker.runner.cleanup()


async def error_reply(text: str, error: type[Exception]) -> discord.Message:
    """Send ``text``; check the command failed with ``error`` and return the bot's reply.

    dpytest re-raises every error that reached ``on_command_error`` from ``message()``, even
    handled ones; ``error`` is matched against ``CommandInvokeError.original`` too.
    """
    with pytest.raises(commands.CommandError) as info:
        await dpytest.message(text)
    raised = getattr(info.value, "original", info.value)
    assert isinstance(raised, error), f"{raised!r} is not a {error.__name__}"
    message = dpytest.get_message()
    assert dpytest.verify().message().nothing(), "the bot sent more than one reply"
    return message


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name or "": f.value or "" for f in embed.fields}


async def reply_to(text: str) -> discord.Message:
    """Send ``text`` as a user; return the bot's only reply."""
    await dpytest.message(text)
    message = dpytest.get_message()
    assert dpytest.verify().message().nothing(), "the bot sent more than one reply"
    return message


# --- set-up --------------------------------------------------------------------------------


async def test_bot_asks_for_the_message_content_intent_and_uses_the_prefix(env: Env) -> None:
    settings = load_settings(symbols="btc", bot_prefix="?")
    fresh = create_bot(settings, TradingService(settings, None, FakeExchange()))

    assert fresh.intents.message_content
    assert not fresh.intents.members  # privileged and not needed by the bot itself
    assert fresh.command_prefix == "?"
    assert {c.name for c in env.bot.commands} == {
        "ping", "dudoan", "price", "movers", "tintuc", "mohinh", "help"}


# --- !ping ---------------------------------------------------------------------------------


async def test_ping_gives_the_latency_in_ms_and_the_workers(env: Env) -> None:
    env.bot.ws._keep_alive = SimpleNamespace(latency=0.0423)  # the gateway is faked

    reply = await reply_to("!ping")

    assert reply.content.startswith("🏓 Pong! Độ trễ tới Discord: 42 ms")
    assert f"✅ Worker {env.worker.url}: hoạt động" in reply.content


async def test_ping_before_the_first_heartbeat_and_with_workers_down(
    env_workers_down: Env,
) -> None:
    reply = await reply_to("!ping")

    assert reply.content.startswith("🏓 Pong! (chưa đo được độ trễ tới Discord)")
    assert "❌ Worker http://127.0.0.1:" in reply.content
    assert "không trả lời" in reply.content


# --- !dudoan -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["btc", "BTCUSDT", "btc/usdt", "BTC-USDT"])
async def test_dudoan_shows_the_ensemble_and_each_vote(env: Env, form: str) -> None:
    reply = await reply_to(f"!dudoan {form}")

    embed = reply.embeds[0]
    assert embed.title == "🔮 Dự đoán BTC/USDT: 🟢 MUA"
    assert "Độ tin cậy tổng hợp: **72,4%**" in (embed.description or "")
    assert "14:05 21/03/2025 (giờ VN)" in (embed.description or "")
    votes = fields(embed)
    assert votes["Random Forest (rf)"].startswith("🟢 MUA · 81,0%")
    assert "`rf-20250321`" in votes["Random Forest (rf)"]
    assert votes["SVM (svm)"].startswith("🔴 BÁN · 55,0%")
    assert votes["Hồi quy logistic (lr)"].startswith("⚪ ĐỨNG NGOÀI · 51,0%")
    assert "ens-20250321" in (embed.footer.text or "")
    # the news of the last day: the decayed score and the count (2 headlines in 24 h)
    # 0.62 * 2**(-5/360) - 0.83 * 2**(-90/360) = -0.084 (half-life 6 h = 360 min)
    assert fields(embed)["📰 Tin tức"] == "Điểm tâm lý 🔴 **-0,08** · 2 tin trong 24 giờ qua"


async def test_dudoan_labels_an_lstm_vote_and_says_when_there_is_no_news(env: Env) -> None:
    lstm = {"model": "lstm", "action": "SELL", "confidence": 0.58, "version": "lstm-20250321",
            "weight": 0.5}
    env.worker.signals["ETH-USDT"] = dict(SIGNAL, symbol="ETH/USDT",
                                          votes=[*SIGNAL["votes"], lstm])
    reply = await reply_to("!dudoan eth")

    values = fields(reply.embeds[0])
    assert values["LSTM (lstm)"].startswith("🔴 BÁN · 58,0%")
    assert "`lstm-20250321`" in values["LSTM (lstm)"]
    assert values["📰 Tin tức"] == "chưa có tin"


async def test_dudoan_says_plainly_when_no_model_trades_the_symbol(env: Env) -> None:
    env.worker.signals["ETH-USDT"] = dict(
        SIGNAL, symbol="ETH/USDT", action="NEUTRAL", confidence=0.0, votes=[],
        model_version="", reason="no_model",
    )
    reply = await reply_to("!dudoan eth")

    embed = reply.embeds[0]
    assert embed.title == "🔮 Dự đoán ETH/USDT: ⚪ ĐỨNG NGOÀI"
    text = fields(embed)["Không có dự đoán của mô hình"]
    assert text.startswith("Chưa có mô hình nào được dùng để giao dịch mã này")
    assert "cắt lỗ / chốt lời" in text


async def test_dudoan_without_a_symbol_gets_the_usage(env: Env) -> None:
    reply = await error_reply("!dudoan", commands.MissingRequiredArgument)

    assert reply.content == "ℹ️ Thiếu mã coin. Cách dùng: `!dudoan <mã>`, ví dụ `!dudoan btc`."


async def test_dudoan_unknown_symbol_lists_the_supported_ones(env: Env) -> None:
    reply = await error_reply("!dudoan doge", UnknownSymbolError)

    assert reply.content.startswith("❓ Không nhận ra mã `doge`.")
    assert "BTC/USDT, ETH/USDT, XRP/USDT, SOL/USDT, BNB/USDT" in reply.content


async def test_quoted_user_text_cannot_ping_or_break_the_reply(env: Env) -> None:
    reply = await error_reply("!gia `@everyone`", UnknownSymbolError)

    assert reply.content.startswith("❓ Không nhận ra mã `'@everyone'`.")
    # dpytest replaces the connection state that holds allowed_mentions: check a fresh bot
    settings = load_settings(symbols="btc")
    mentions = create_bot(settings, env.service).allowed_mentions
    assert mentions is not None
    assert not (mentions.everyone or mentions.users or mentions.roles)


async def test_dudoan_before_the_first_signal(env: Env) -> None:
    reply = await error_reply("!dudoan eth", ServiceUnavailable)

    assert reply.content.startswith("⏳ Chưa có tín hiệu cho ETH/USDT")


async def test_dudoan_with_every_worker_down(env_workers_down: Env) -> None:
    reply = await error_reply("!dudoan btc", ServiceUnavailable)

    assert reply.content.startswith("⚠️ Không kết nối được tới worker tinhieu nào.")
    assert "faust -A streams.app worker" in reply.content


async def test_dudoan_while_the_workers_rebalance(env: Env) -> None:
    env.worker.rebalancing = True

    reply = await error_reply("!dudoan btc", ServiceUnavailable)

    assert reply.content.startswith("⏳ Các worker đang chia lại dữ liệu (rebalance).")


async def test_the_bot_keeps_answering_after_an_error(env_workers_down: Env) -> None:
    await error_reply("!dudoan btc", ServiceUnavailable)

    reply = await reply_to("!help")

    assert reply.embeds[0].title == "📖 Các lệnh của tinhieu"


# --- !tintuc / !news -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["tintuc", "news", "TINTUC"])
async def test_tintuc_lists_the_newest_headlines_with_their_scores(env: Env, command: str) -> None:
    reply = await reply_to(f"!{command} btc")

    embed = reply.embeds[0]
    assert embed.title == "📰 Tin tức BTC/USDT"
    description = embed.description or ""
    assert "(giảm một nửa sau 6 giờ): 🔴 **-0,08**" in description
    assert "Số tin: **1** trong 1 giờ qua · **2** trong 24 giờ qua · 3 tổng cộng" in description
    items = list(embed.fields)
    assert [f.name for f in items] == [
        "🟢 +0,62 · coindesk.com", "🔴 -0,83 · cointelegraph.com", "⚪ 0,00 · file:history.csv"]
    assert items[0].value == (
        "[Bitcoin rallies to a new all-time high](https://www.coindesk.com/markets/btc-ath)\n"
        "🕒 14:00 21/03/2025 (giờ VN) · 07:00 21/03/2025 UTC"
    )
    assert (items[2].value or "").startswith("**BTC miners hold steady**\n")  # no URL: no link


async def test_tintuc_quotes_titles_and_links_safely(env: Env) -> None:
    tricky = [(1, "[Breaking] *BTC* pumps @everyone", "https://ex.com/a_(b) c",
               "https://www.ex.com/rss", 0.4),
              (2, "Bitcoin ETF approved", "javascript:alert(1)", "https://ex.com/rss", 0.8)]
    env.worker.sentiments["BTC-USDT"] = sentiment_json(headlines=tricky)

    reply = await reply_to("!tintuc btc")

    first, second = (f.value or "" for f in reply.embeds[0].fields)
    assert first.startswith(r"[(Breaking) \*BTC\* pumps @everyone](https://ex.com/a_%28b%29%20c)")
    assert second.startswith("**Bitcoin ETF approved**")  # not an http(s) link: no link


async def test_tintuc_keeps_the_embed_within_discord_limits(env: Env) -> None:
    long = [(i, "Bitcoin " + "surges " * 40, "https://example.com/" + "a" * 380,
             "https://example.com/rss", 0.5) for i in range(20)]
    env.worker.sentiments["BTC-USDT"] = sentiment_json(headlines=long)

    reply = await reply_to("!tintuc btc")

    embed = reply.embeds[0]
    assert 0 < len(embed.fields) < 10 and len(embed) <= 6000


async def test_tintuc_without_headlines(env: Env) -> None:
    reply = await error_reply("!tintuc eth", ServiceUnavailable)

    assert reply.content.startswith("📭 Chưa có tin tức nào nhắc tới ETH/USDT.")
    assert "TINHIEU_NEWS_FEEDS" in reply.content


async def test_tintuc_without_a_symbol_and_with_an_unknown_one(env: Env) -> None:
    missing = await error_reply("!news", commands.MissingRequiredArgument)
    unknown = await error_reply("!tintuc doge", UnknownSymbolError)

    assert missing.content == "ℹ️ Thiếu mã coin. Cách dùng: `!news <mã>`, ví dụ `!news btc`."
    assert unknown.content.startswith("❓ Không nhận ra mã `doge`.")


async def test_tintuc_with_every_worker_down(env_workers_down: Env) -> None:
    reply = await error_reply("!tintuc btc", ServiceUnavailable)

    assert reply.content.startswith("⚠️ Không kết nối được tới worker tinhieu nào.")


async def test_tintuc_while_the_workers_rebalance(env: Env) -> None:
    env.worker.rebalancing = True

    reply = await error_reply("!tintuc btc", ServiceUnavailable)

    assert reply.content.startswith("⏳ Các worker đang chia lại dữ liệu (rebalance).")


# --- !mohinh / !models -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["mohinh", "models"])
async def test_mohinh_shows_versions_members_and_quality(env: Env, command: str) -> None:
    reply = await reply_to(f"!{command} btc")

    embed = reply.embeds[0]
    assert embed.title == "🧠 Mô hình BTC/USDT"
    description = embed.description or ""
    assert "🏆 Champion: **v3**" in description
    assert "🥊 Challenger: **v4** (đang chạy thử song song, không giao dịch)" in description
    values = fields(embed)
    members = values["🧩 Các mô hình thành viên (tín hiệu mới nhất)"].splitlines()
    assert members[0] == "Random Forest (rf) · `rf-20250321` · trọng số 1,20"
    assert members[-1].endswith("phiên bản `ens-20250321`")
    assert values["🧪 Walk-forward (lúc huấn luyện)"].splitlines() == [
        "Độ chính xác **54,2%** · cân bằng 41,0% · n = 5.000",
        "Mốc so sánh: luôn lớp nhiều nhất 50,1% · lặp lại nhãn trước 38,0%",
    ]
    day = values["📈 Thực tế 1 ngày (champion)"].splitlines()
    assert day[0] == "n = 40 kết quả"
    assert day[1] == "Độ chính xác **75,0%** (walk-forward 54,2% · luôn ĐỨNG NGOÀI 50,0%)"
    assert day[3] == "Lệnh MUA có lãi 50,0% (10 lệnh)"
    assert day[4].startswith("Sai số hiệu chuẩn ") and day[5].startswith("Lợi nhuận giấy ")
    assert "📈 Thực tế 7 ngày (champion)" in values
    versus = values["⚖️ Champion vs challenger · 1 ngày"]
    assert versus.startswith("```") and "champion v3" in versus and "challenger v4" in versus
    assert [line.split()[-2:] for line in versus.splitlines() if line.startswith("n ")] == [
        ["40", "12"]]


async def test_mohinh_without_a_challenger_has_no_comparison(env: Env) -> None:
    env.worker.monitoring["BTC-USDT"] = monitoring_json(40, 0)

    reply = await reply_to("!mohinh btc")

    assert not [n for n in fields(reply.embeds[0]) if n.startswith("⚖️")]


async def test_mohinh_of_a_symbol_without_a_model(env: Env) -> None:
    env.worker.signals["ETH-USDT"] = dict(
        SIGNAL, symbol="ETH/USDT", action="NEUTRAL", confidence=0.0, votes=[],
        model_version="", reason="no_model",
    )
    env.worker.monitoring["ETH-USDT"] = monitoring_json(0, 0, walk_forward=False,
                                                        symbol="ETH/USDT")
    reply = await reply_to("!mohinh eth")

    embed = reply.embeds[0]
    description = embed.description or ""
    assert "🏆 Champion: chưa có mô hình nào được dùng để giao dịch mã này." in description
    assert "🥊 Challenger: không có" in description
    assert "Lý do (từ worker): no model in production" in description
    values = fields(embed)
    assert values["🧩 Các mô hình thành viên (tín hiệu mới nhất)"].startswith(
        "Chưa có mô hình nào được dùng để giao dịch mã này")
    assert values["🧪 Walk-forward (lúc huấn luyện)"] == "Mô hình không kèm số liệu walk-forward."
    assert values["📈 Chất lượng thực tế"].startswith("⏳ Chưa có kết quả thực tế nào")


async def test_mohinh_before_the_first_signal(env: Env) -> None:
    reply = await reply_to("!mohinh sol")

    values = fields(reply.embeds[0])
    assert values["🧩 Các mô hình thành viên (tín hiệu mới nhất)"] == (
        "⏳ Chưa có tín hiệu nào cho mã này.")
    assert values["📈 Chất lượng thực tế"] == "⏳ Chưa có dữ liệu giám sát (chưa có tín hiệu nào)."


async def test_mohinh_errors(env: Env) -> None:
    missing = await error_reply("!models", commands.MissingRequiredArgument)
    unknown = await error_reply("!mohinh doge", UnknownSymbolError)

    assert missing.content == "ℹ️ Thiếu mã coin. Cách dùng: `!models <mã>`, ví dụ `!models btc`."
    assert unknown.content.startswith("❓ Không nhận ra mã `doge`.")


async def test_mohinh_with_every_worker_down(env_workers_down: Env) -> None:
    reply = await error_reply("!mohinh btc", ServiceUnavailable)

    assert reply.content.startswith("⚠️ Không kết nối được tới worker tinhieu nào.")


# --- !price / !gia ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["price", "gia", "GIA"])
async def test_price_in_usdt_and_vnd_with_the_quick_prediction(env: Env, command: str) -> None:
    reply = await reply_to(f"!{command} btcusdt")

    embed = reply.embeds[0]
    assert embed.title == "💰 Giá BTC/USDT"
    values = fields(embed)
    assert values["USDT"] == "**84.050,50 USDT**"
    assert values["VND"] == "**2.185.313.000 ₫**"  # 84 050.5 x 26 000
    assert values["24 giờ"] == "📈 +2,35%"
    assert values["Dự đoán nhanh"].startswith("🟢 MUA · độ tin cậy 72,4%")
    assert "1 USDT = 26.000 ₫" in (embed.footer.text or "")


async def test_price_of_a_small_coin_keeps_its_decimals(env: Env) -> None:
    reply = await reply_to("!gia xrp")

    values = fields(reply.embeds[0])
    assert values["USDT"] == "**2,4312 USDT**"
    assert values["Dự đoán nhanh"].startswith("⏳ Chưa có tín hiệu")


async def test_price_with_workers_down_still_gives_the_price(env_workers_down: Env) -> None:
    reply = await reply_to("!price eth")

    values = fields(reply.embeds[0])
    assert values["USDT"] == "**1.980,25 USDT**"
    assert values["24 giờ"] == "📉 -4,10%"
    assert values["Dự đoán nhanh"].startswith("⚠️ Chưa hỏi được worker")


async def test_price_with_the_exchange_down(env: Env) -> None:
    env.exchange.down = True

    reply = await error_reply("!gia btc", ServiceUnavailable)

    assert reply.content.startswith("⚠️ Sàn giao dịch không phản hồi")


async def test_price_without_a_symbol_and_with_an_unknown_one(env: Env) -> None:
    missing = await error_reply("!gia", commands.MissingRequiredArgument)
    unknown = await error_reply("!price pepe", UnknownSymbolError)

    assert missing.content.startswith("ℹ️ Thiếu mã coin. Cách dùng: `!gia <mã>`")
    assert unknown.content.startswith("❓ Không nhận ra mã `pepe`.")


# --- !movers ------------------------------------------------------------------------------


async def test_movers_lists_gainers_and_losers(env: Env) -> None:
    reply = await reply_to("!movers")

    values = fields(reply.embeds[0])
    assert values["🚀 Tăng mạnh nhất"].splitlines() == [
        "1. **XRP/USDT** +7,80% (2,4312 USDT)",
        "2. **BTC/USDT** +2,35% (84.050,50 USDT)",
    ]
    assert values["🔻 Giảm mạnh nhất"].splitlines() == [
        "1. **ETH/USDT** -4,10% (1.980,25 USDT)",
        "2. **SOL/USDT** -0,60% (131,70 USDT)",
    ]


async def test_movers_with_the_exchange_down(env: Env) -> None:
    env.exchange.down = True

    reply = await error_reply("!movers", ServiceUnavailable)

    assert reply.content.startswith("⚠️ Sàn giao dịch không phản hồi")


# --- !help and unknown commands -----------------------------------------------------------


async def test_help_lists_every_command(env: Env) -> None:
    reply = await reply_to("!help")

    embed = reply.embeds[0]
    names = list(fields(embed))
    assert names == [
        "`!dudoan <mã>`", "`!price <mã>`", "`!gia <mã>`", "`!movers`", "`!tintuc <mã>`",
        "`!news <mã>`", "`!mohinh <mã>`", "`!models <mã>`", "`!ping`", "`!help`",
    ]
    assert "BTC/USDT" in (embed.footer.text or "")


async def test_unknown_command_points_to_help(env: Env) -> None:
    reply = await error_reply("!muaban btc", commands.CommandNotFound)

    assert reply.content == "❓ Không có lệnh `!muaban`. Gõ `!help` để xem các lệnh."


async def test_messages_without_the_prefix_are_ignored(env: Env) -> None:
    await dpytest.message("giá btc hôm nay thế nào?")

    assert dpytest.verify().message().nothing()


async def test_punctuation_after_the_prefix_gets_no_reply(env: Env) -> None:
    with pytest.raises(commands.CommandNotFound):
        await dpytest.message("!!! tuyệt vời")

    assert dpytest.verify().message().nothing()


async def test_a_bug_gets_a_generic_reply_and_a_log_line(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(limit: int = 3) -> None:
        raise ZeroDivisionError("division by zero in a ranking")

    monkeypatch.setattr(env.service, "movers", broken)

    reply = await error_reply("!movers", ZeroDivisionError)

    assert reply.content == "❌ Có lỗi khi xử lý lệnh; lỗi đã được ghi vào log của bot."
    errors = [r for r in caplog.records if r.getMessage().startswith("[LOI]")]
    assert len(errors) == 1 and "'movers'" in errors[0].getMessage()
    assert "ZeroDivisionError" in caplog.text


# --- the orders feed's pieces (the loop itself: tests/integration/test_bot_orders.py) -------

ORDER = ORDER_FIELDS


def test_decode_order_reads_the_wire_json() -> None:
    order = decode_order(json.dumps(ORDER).encode())

    assert (order.id, order.side, order.price) == (ORDER["id"], "BUY", 84100.0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({"id": "x"}).encode(), "missing"),
        (json.dumps({**ORDER, "price": "cao"}).encode(), "price"),
        (json.dumps({**ORDER, "side": "HOLD"}).encode(), "side"),
        (json.dumps({**ORDER, "stop_loss": None}).encode(), "stop_loss"),
    ],
)
def test_decode_order_says_what_is_wrong(value: bytes | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_order(value)


def test_bootstrap_servers_and_group() -> None:
    settings = load_settings(broker_url="kafka://k1:9092;kafka://k2:9093", app_id="tinhieu-vn")

    assert bootstrap_servers(settings.broker_url) == ["k1:9092", "k2:9093"]
    assert group_id(settings) == "tinhieu-vn-discord-bot"


def test_order_embeds_in_vietnamese() -> None:
    buy = order_embed(decode_order(json.dumps(ORDER).encode()))
    sell = order_embed(
        decode_order(
            json.dumps(
                {**ORDER, "side": "SELL", "reason": "take_profit", "price": 88305.0,
                 "pnl": 465.12}
            ).encode()
        )
    )

    assert buy.title == "🟢 MUA BTC/USDT · đã khớp"
    assert buy.description == "Lý do: theo tín hiệu mô hình"
    assert fields(buy)["Cắt lỗ 🛑"] == "82.418,00 USDT"
    assert fields(buy)["Chốt lời 🎯"] == "88.305,00 USDT"
    assert fields(buy)["Khớp lúc"] == "14:06 21/03/2025 (giờ VN)"
    assert ORDER["id"] in (buy.footer.text or "")
    assert sell.title == "🔴 BÁN BTC/USDT · đã khớp"
    assert sell.description == "Lý do: chạm chốt lời 🎯"
    assert fields(sell)["Lãi/lỗ"] == "💚 +465,12 USDT"


async def test_channel_poster_sends_to_the_configured_channel(env: Env) -> None:
    channel = dpytest.get_config().channels[0]
    env.bot._ready.set()  # dpytest never sends READY; discord.py sets this on it
    post = channel_poster(env.bot, channel.id)

    await post(discord.Embed(title="lệnh mới"))

    message = dpytest.get_message()
    assert message.channel.id == channel.id
    assert message.embeds[0].title == "lệnh mới"


# --- entry points -------------------------------------------------------------------------


def test_run_bot_without_a_token_stops_with_the_how_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DISCORD_BOT_TOKEN", "BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env, no token.txt

    with pytest.raises(BotTokenError, match="DISCORD_BOT_TOKEN"):
        run_bot(load_settings(), cwd=tmp_path)


async def test_run_bot_inside_an_event_loop_points_to_serve_bot() -> None:
    with pytest.raises(RuntimeError, match="serve_bot"):
        run_bot(load_settings())
