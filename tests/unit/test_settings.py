import pytest

from tinhieu.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings(_env_file=None)
    assert s.symbols == ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")
    assert s.window_size >= 52
    assert s.timeframe_ms == 60_000


def test_symbols_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINHIEU_SYMBOLS", "btc, ethusdt,SOL-USDT,btc")
    assert load_settings().symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT")


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("TINHIEU_WINDOW_SIZE", "20", "window_size"),
        ("TINHIEU_PARTITIONS", "zero", "partitions"),
        ("TINHIEU_BROKER_URL", "localhost:9092", "broker_url"),
        ("TINHIEU_TIMEFRAME", "7m", "timeframe"),
        ("TINHIEU_LOG_LANGUAGE", "fr", "log_language"),
        ("TINHIEU_POLL_INTERVAL_S", "0", "poll_interval_s"),
    ],
)
def test_a_wrong_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert named in str(err.value)
    assert env in str(err.value)


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "super-secret-token-value")
    s = load_settings()
    assert "super-secret-token-value" not in repr(s)
    assert "super-secret-token-value" not in str(s.model_dump())
    assert s.discord_bot_token is not None
    assert s.discord_bot_token.get_secret_value() == "super-secret-token-value"
