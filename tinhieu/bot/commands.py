"""The Discord front end: ``commands.Bot`` + one Cog over :class:`TradingService`.

Commands (prefix from ``settings.bot_prefix``): ``ping``, ``dudoan <mã>``, ``price <mã>``
(alias ``gia``), ``movers``, ``tintuc <mã>`` (alias ``news``), ``mohinh <mã>`` (alias
``models``), ``help``. Every reply is Vietnamese (see
:mod:`tinhieu.bot.messages`); every error becomes a reply, the bot keeps running.

:func:`serve_bot` (async, for a Faust ``@app.command``) and :func:`run_bot` (sync) run the
bot with the orders feed until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from tinhieu import i18n
from tinhieu.bot import messages
from tinhieu.bot.orders_feed import OrdersFeed, alerts_feed
from tinhieu.bot.service import Exchange, ServiceUnavailable, TradingService
from tinhieu.bot.token import load_token
from tinhieu.settings import Settings
from tinhieu.symbols import UnknownSymbolError

__all__ = ["TinhieuBot", "TradingCog", "channel_poster", "create_bot", "run_bot", "serve_bot"]

logger = logging.getLogger(__name__)

i18n.register(
    {
        "bot.command_failed": (
            i18n.TAGS["error"],
            "lenh {command!r} cua {user} bi loi: {error}",
            "command {command!r} from {user} failed: {error}",
        ),
        "bot.source_down": (
            i18n.TAGS["warn"],
            "lenh {command!r}: {what} khong san sang: {detail}",
            "command {command!r}: {what} unavailable: {detail}",
        ),
        "bot.reply_failed": (
            i18n.TAGS["error"],
            "khong gui duoc tra loi len Discord: {error}",
            "could not send a reply to Discord: {error}",
        ),
        "bot.ready": (
            i18n.TAGS["init"],
            "bot Discord da ket noi voi ten {name}, prefix {prefix!r}",
            "Discord bot connected as {name}, prefix {prefix!r}",
        ),
        "bot.no_channel": (
            i18n.TAGS["warn"],
            "chua dat TINHIEU_DISCORD_CHANNEL_ID: bot se khong dang cac lenh giao dich",
            "TINHIEU_DISCORD_CHANNEL_ID is not set: the bot will not post orders",
        ),
        "bot.stopping": (
            i18n.TAGS["stop"],
            "dang dung bot Discord",
            "stopping the Discord bot",
        ),
    }
)

_COMMAND_NAME = re.compile(r"\w{1,32}")


class TinhieuBot(commands.Bot):
    """``commands.Bot`` whose errors become Vietnamese replies. Build it with :func:`create_bot`."""

    def __init__(self, settings: Settings, service: TradingService) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # prefix commands need the message text
        super().__init__(
            command_prefix=settings.bot_prefix,
            intents=intents,
            help_command=None,  # replaced by the Vietnamese !help of TradingCog
            case_insensitive=True,
            # replies quote what users typed: never let "@everyone" in a symbol ping anyone
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.service = service

    async def setup_hook(self) -> None:
        """Called once by discord.py before connecting: registers the commands."""
        await self.add_cog(TradingCog(self.service, self.settings.bot_prefix))

    async def on_ready(self) -> None:
        i18n.log(logger, logging.INFO, "bot.ready", name=str(self.user),
                 prefix=self.settings.bot_prefix)

    async def on_command_error(  # type: ignore[override]
        self, ctx: commands.Context[Any], error: commands.CommandError
    ) -> None:
        """Turn every command error into a reply; unexpected ones are also logged."""
        prefix = self.settings.bot_prefix
        original = getattr(error, "original", error)
        if isinstance(error, commands.CommandNotFound):
            name = ctx.invoked_with or ""
            if not _COMMAND_NAME.fullmatch(name):
                return  # "!!!" or "! hi": not meant for us
            reply = messages.unknown_command(prefix, name)
        elif isinstance(error, commands.MissingRequiredArgument | commands.BadArgument):
            reply = messages.usage(prefix, ctx.invoked_with or str(ctx.command))
        elif isinstance(original, UnknownSymbolError):
            reply = messages.unknown_symbol(original.raw, original.supported)
        elif isinstance(original, ServiceUnavailable):
            i18n.log(logger, logging.WARNING, "bot.source_down", command=ctx.invoked_with,
                     what=original.what, detail=original.detail)
            reply = messages.unavailable(original)
        else:
            logger.error(
                i18n.t("bot.command_failed", command=ctx.invoked_with, user=str(ctx.author),
                       error=repr(original)),
                exc_info=original,
            )
            reply = messages.internal_error()
        try:
            await ctx.send(reply)
        except discord.DiscordException as exc:
            i18n.log(logger, logging.ERROR, "bot.reply_failed", error=repr(exc))


class TradingCog(commands.Cog, name="tinhieu"):
    """The trading commands. Thin: ask the service, format with :mod:`messages`, reply."""

    def __init__(self, service: TradingService, prefix: str) -> None:
        self.service = service
        self.prefix = prefix

    @commands.command(name="ping")
    async def ping(self, ctx: commands.Context[Any]) -> None:
        """Pong with the gateway latency in ms and each worker's health."""
        workers = await self.service.ping_workers()
        await ctx.send(messages.pong(ctx.bot.latency, workers))

    @commands.command(name="dudoan")
    async def dudoan(self, ctx: commands.Context[Any], symbol: str) -> None:
        """The latest ensemble signal of ``symbol`` with every model's vote and its news."""
        signal, news, news_missing = await self.service.signal_with_sentiment(symbol)
        await ctx.send(embed=messages.signal_embed(signal, news, news_missing))

    @commands.command(name="price", aliases=["gia"])
    async def price(self, ctx: commands.Context[Any], symbol: str) -> None:
        """Price in USDT and VND with the latest quick prediction."""
        quote = await self.service.price(symbol)
        await ctx.send(embed=messages.price_embed(quote))

    @commands.command(name="movers")
    async def movers(self, ctx: commands.Context[Any]) -> None:
        """Top gainers and losers over 24 h among the tracked symbols."""
        movers = await self.service.movers()
        await ctx.send(embed=messages.movers_embed(movers))

    @commands.command(name="tintuc", aliases=["news"])
    async def tintuc(self, ctx: commands.Context[Any], symbol: str) -> None:
        """The newest headlines mentioning ``symbol`` with their sentiment, and its score."""
        view = await self.service.sentiment(symbol)
        await ctx.send(embed=messages.news_embed(view))

    @commands.command(name="mohinh", aliases=["models"])
    async def mohinh(self, ctx: commands.Context[Any], symbol: str) -> None:
        """Champion and challenger, members, walk-forward and live quality of ``symbol``."""
        view = await self.service.models(symbol)
        await ctx.send(embed=messages.models_embed(view))

    @commands.command(name="help", aliases=["trogiup"])
    async def help(self, ctx: commands.Context[Any]) -> None:
        """Every command, in Vietnamese."""
        await ctx.send(embed=messages.help_embed(self.prefix, self.service.symbols))


def create_bot(settings: Settings, service: TradingService) -> commands.Bot:
    """A bot with the message-content intent and the prefix of ``settings.bot_prefix``.

    The commands are added by ``setup_hook`` (discord.py calls it on login; a test calls
    ``await bot.setup_hook()`` itself).
    """
    return TinhieuBot(settings, service)


def channel_poster(
    bot: commands.Bot, channel_id: int
) -> Callable[[discord.Embed], Awaitable[None]]:
    """A ``post(embed)`` that sends to ``channel_id`` once the bot is connected."""

    async def post(embed: discord.Embed) -> None:
        await bot.wait_until_ready()
        channel = bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"Discord channel {channel_id} cannot receive messages")
        await channel.send(embed=embed)

    return post


async def serve_bot(
    settings: Settings, *, cwd: Path | None = None, exchange: Exchange | None = None
) -> None:
    """Run the bot and the orders and alerts feeds until cancelled (Ctrl-C); close everything after.

    Use this from inside a running event loop, e.g. a Faust ``@app.command``:
    ``await serve_bot(settings)``.
    """
    token = load_token(settings, cwd or Path.cwd())
    if exchange is None:
        from tinhieu.exchange import ExchangeClient  # lazy: ccxt is heavy

        exchange = ExchangeClient(settings)
    feeds: list[OrdersFeed] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        async with aiohttp.ClientSession() as http:
            service = TradingService(settings, http, exchange)
            bot = create_bot(settings, service)
            async with bot:
                if settings.discord_channel_id:
                    post = channel_poster(bot, settings.discord_channel_id)
                    feeds = [OrdersFeed(settings, post), alerts_feed(settings, post)]
                    tasks = [asyncio.create_task(f.run(), name=f"tinhieu-{f.topic}-feed")
                             for f in feeds]
                else:
                    i18n.log(logger, logging.WARNING, "bot.no_channel")
                try:
                    await bot.start(token)
                finally:
                    i18n.log(logger, logging.INFO, "bot.stopping")
                    for feed in feeds:
                        await feed.stop()
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        close = getattr(exchange, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


def run_bot(settings: Settings, *, cwd: Path | None = None) -> None:
    """Blocking entry point: run the bot until Ctrl-C.

    Raises ``RuntimeError`` inside a running event loop (use :func:`serve_bot` there) and
    ``BotTokenError`` when no token is set.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_bot() blocks and cannot run inside an event loop; "
            "use 'await tinhieu.bot.serve_bot(settings)' there"
        )
    try:
        asyncio.run(serve_bot(settings, cwd=cwd))
    except KeyboardInterrupt:
        pass
