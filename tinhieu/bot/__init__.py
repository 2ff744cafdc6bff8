"""The Discord bot of tinhieu: Vietnamese commands over a service layer, and the orders feed.

- :mod:`tinhieu.bot.service`: :class:`TradingService` (no discord imports);
- :mod:`tinhieu.bot.commands`: ``create_bot(settings, service)``, ``serve_bot``, ``run_bot``;
- :mod:`tinhieu.bot.orders_feed`: :class:`OrdersFeed` (``orders`` topic -> channel);
- :mod:`tinhieu.bot.token`: ``load_token(settings, cwd)``.

Importing this package does not import discord.py; :func:`run_bot` and :func:`serve_bot`
import it when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinhieu.settings import Settings

__all__ = ["run_bot", "serve_bot"]


def run_bot(settings: Settings, *, cwd: Path | None = None) -> None:
    """Run the Discord bot and the orders feed until Ctrl-C (blocking). See ``commands``."""
    from tinhieu.bot.commands import run_bot as _run

    _run(settings, cwd=cwd)


async def serve_bot(settings: Settings, *, cwd: Path | None = None) -> None:
    """Same as :func:`run_bot`, awaited inside a running event loop (a Faust command)."""
    from tinhieu.bot.commands import serve_bot as _serve

    await _serve(settings, cwd=cwd)
