"""Where the Discord bot token comes from, without ever showing it.

Order: ``DISCORD_BOT_TOKEN``, then ``BOT_TOKEN`` (both read by the settings object into
``settings.discord_bot_token``, from the environment or ``.env``), then a ``token.txt`` file in
the working directory. A file is the least safe place (it is easy to commit or to share), so
using it logs a warning. The token itself is never logged, printed or put in an error.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from tinhieu import i18n
from tinhieu.settings import Settings

__all__ = ["TOKEN_FILE", "BotTokenError", "load_token"]

logger = logging.getLogger(__name__)

TOKEN_FILE = "token.txt"

i18n.register(
    {
        "bot.token_file": (
            i18n.TAGS["warn"],
            "dang doc token Discord tu {path}: mot tep de bi commit hoac chia se nham, kem an "
            "toan hon bien moi truong DISCORD_BOT_TOKEN (hay dat no trong .env)",
            "reading the Discord token from {path}: a file is easy to commit or share by "
            "mistake, less safe than the DISCORD_BOT_TOKEN environment variable (or .env)",
        ),
        "bot.token_file_mode": (
            i18n.TAGS["warn"],
            "{path} cho phep nguoi khac doc (quyen {mode}); hay chay: chmod 600 {path}",
            "{path} can be read by other users (mode {mode}); run: chmod 600 {path}",
        ),
        "bot.token_missing": (
            i18n.TAGS["error"],
            "chua co token Discord bot. Dat bien moi truong DISCORD_BOT_TOKEN (hoac BOT_TOKEN), "
            "trong moi truong hay trong tep .env, hoac ghi token vao {path}. Lay token o "
            "https://discord.com/developers/applications > ung dung > Bot > Reset Token.",
            "no Discord bot token. Set the DISCORD_BOT_TOKEN (or BOT_TOKEN) environment "
            "variable, in the environment or in .env, or write the token into {path}. Get it at "
            "https://discord.com/developers/applications > your application > Bot > Reset Token.",
        ),
        "bot.token_bad": (
            i18n.TAGS["error"],
            "token Discord lay tu {source} khong hop le (rong hoac co khoang trang/xuong dong "
            "ben trong); hay dan lai dung mot dong token",
            "the Discord token from {source} is not valid (empty, or has spaces/line breaks "
            "inside); paste the token again as a single line",
        ),
    }
)


class BotTokenError(RuntimeError):
    """No usable Discord token; the message says how to set one (and never contains it)."""


def load_token(settings: Settings, cwd: Path) -> str:
    """The Discord bot token: settings (DISCORD_BOT_TOKEN / BOT_TOKEN), then ``cwd/token.txt``.

    Raises
    ------
    BotTokenError
        When there is no token anywhere, or the one found is empty or spans several words.
    """
    secret = settings.discord_bot_token
    if secret is not None and secret.get_secret_value().strip():
        return _checked(secret.get_secret_value(), "DISCORD_BOT_TOKEN/BOT_TOKEN")
    path = Path(cwd) / TOKEN_FILE
    if path.is_file():
        i18n.log(logger, logging.WARNING, "bot.token_file", path=path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            i18n.log(logger, logging.WARNING, "bot.token_file_mode", path=path, mode=oct(mode))
        return _checked(path.read_text(encoding="utf-8"), str(path))
    raise BotTokenError(i18n.t("bot.token_missing", path=path))


def _checked(raw: str, source: str) -> str:
    token = raw.strip()
    if not token or any(ch.isspace() for ch in token):
        raise BotTokenError(i18n.t("bot.token_bad", source=source))
    return token
