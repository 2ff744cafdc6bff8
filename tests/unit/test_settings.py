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


def test_exactly_once_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINHIEU_PROCESSING_GUARANTEE", "exactly_once")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert "TINHIEU_PROCESSING_GUARANTEE" in text
    assert "at_least_once" in text and "RELIABILITY.md" in text


def test_one_fee_setting_for_labels_and_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinhieu.broker import RiskConfig

    monkeypatch.setenv("TINHIEU_FEE_PCT", "0.075")
    s = load_settings(_env_file=None)
    assert s.fee_pct == 0.075
    assert RiskConfig.from_settings(s).commission_pct == 0.075
    monkeypatch.delenv("TINHIEU_FEE_PCT")
    monkeypatch.setenv("TINHIEU_COMMISSION_PCT", "0.05")  # the former name still reads
    assert load_settings(_env_file=None).fee_pct == 0.05
    monkeypatch.setenv("TINHIEU_COMMISSION_PCT", "-1")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert "TINHIEU_COMMISSION_PCT" in str(err.value) or "TINHIEU_FEE_PCT" in str(err.value)
