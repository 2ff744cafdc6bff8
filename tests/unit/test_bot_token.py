"""load_token: settings first, then token.txt with a warning; never shows the token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tinhieu.bot.token import BotTokenError, load_token
from tinhieu.settings import load_settings

TOKEN = "MTAxNDk2NTA0.Gx7abc.SeCrEt-TeSt-ToKeN_0123456789"


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests build settings themselves: no real token or .env may leak in."""
    for name in ("DISCORD_BOT_TOKEN", "BOT_TOKEN", "TINHIEU_DISCORD_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the repository


def test_discord_bot_token_from_the_environment(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", TOKEN)
    (tmp_path / "token.txt").write_text("from-the-file\n")
    caplog.set_level(logging.DEBUG)

    assert load_token(load_settings(), tmp_path) == TOKEN
    assert "token.txt" not in caplog.text  # the file is not even looked at


def test_bot_token_is_the_second_name(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BOT_TOKEN", f"  {TOKEN}\n")

    assert load_token(load_settings(), tmp_path) == TOKEN


def test_discord_bot_token_wins_over_bot_token(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BOT_TOKEN", "the-other-one")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", TOKEN)

    assert load_token(load_settings(), tmp_path) == TOKEN


def test_token_file_with_a_warning_that_never_contains_the_token(tmp_path, caplog) -> None:
    path = tmp_path / "token.txt"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    caplog.set_level(logging.DEBUG)

    assert load_token(load_settings(), tmp_path) == TOKEN

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("token.txt" in r.getMessage() for r in warnings)
    assert any("chmod 600" in r.getMessage() for r in warnings)  # readable by others
    assert TOKEN not in caplog.text


def test_no_token_anywhere_says_how_to_set_one(tmp_path, caplog) -> None:
    with pytest.raises(BotTokenError) as info:
        load_token(load_settings(), tmp_path)

    message = str(info.value)
    assert "DISCORD_BOT_TOKEN" in message and "BOT_TOKEN" in message
    assert str(tmp_path / "token.txt") in message


def test_a_bad_token_is_refused_without_echoing_it(tmp_path, caplog) -> None:
    secret_words = "first-half-of-a-secret second-half-of-a-secret"
    (tmp_path / "token.txt").write_text(secret_words)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(BotTokenError) as info:
        load_token(load_settings(), tmp_path)

    assert "first-half-of-a-secret" not in str(info.value)
    assert "first-half-of-a-secret" not in caplog.text


def test_settings_never_print_the_token(monkeypatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", TOKEN)
    settings = load_settings()

    assert TOKEN not in repr(settings) and TOKEN not in str(settings.discord_bot_token)
