"""One settings object, built once from the environment (prefix ``TINHIEU_``) and ``.env``.

Nothing else in the project reads ``os.environ``. A wrong value stops the start with a
message that names the setting (see :func:`load_settings`). Secrets are ``SecretStr`` and
print as ``**********``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tinhieu.symbols import DEFAULT_SYMBOLS, canonical

TIMEFRAME_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}

MIN_WINDOW = 52
LOCAL_WEB_HOSTS = ("127.0.0.1", "::1", "localhost")  # binds that need no web_token
_SECRET = re.compile(r"token|key|secret|password", re.I)  # SMA_50 plus a buffer of two candles


class SettingsError(ValueError):
    """A setting has a wrong value; the message names the setting and the fix."""


class Settings(BaseSettings):
    """tinhieu settings. Environment variable = ``TINHIEU_`` + upper-case field name."""

    model_config = SettingsConfigDict(
        env_prefix="TINHIEU_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- streaming core -------------------------------------------------------------
    app_id: str = Field("tinhieu", description="Faust app id = Kafka consumer group prefix.")
    broker_url: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers, e.g. kafka://host1:9092;host2:9092.",
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_SYMBOLS, description="Comma-separated symbols, any form (btc, BTCUSDT, ...)."
    )
    timeframe: Literal["1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d"] = Field(
        "1m", description="Candle timeframe."
    )
    window_size: int = Field(60, ge=MIN_WINDOW, le=5000, description="Candles kept per symbol.")
    partitions: int = Field(8, ge=1, le=1024, description="Partitions of every topic.")
    replicas: int = Field(1, ge=1, le=10, description="Replication factor of topics.")
    standby_replicas: int = Field(1, ge=0, le=5, description="Table standbys per partition.")
    data_dir: Path = Field(Path("var"), description="Worker data: RocksDB, SQLite, models.")
    web_host: str = Field("127.0.0.1", description="Address the web views bind to.")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the web views.")
    web_token: SecretStr | None = Field(
        None,
        validate_default=True,
        description="Bearer token every /api/v1/ request must carry when set; required "
        "when web_host is not local (127.0.0.1, ::1, localhost). Never logged.",
    )
    web_auth_failures_per_minute: int = Field(
        10,
        ge=0,
        le=100_000,
        description="Wrong tokens one client address may send in a minute (API bearer, "
        "table views, dashboard sign-in); beyond it every request of that address that needs "
        "the token gets 429 until the minute is over (0: no limit). Only with web_token set.",
    )
    web_advertised_host: str | None = Field(
        None,
        description="Host other workers use to reach this one; default web_host, or "
        "the machine's hostname when web_host is 0.0.0.0.",
    )
    stream_client_queue: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Messages queued for one /api/v1/ws or /api/v1/stream client; a client "
        "that falls this far behind is dropped, never slowing the agents or other clients.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    session_timeout_s: float = Field(
        10.0,
        ge=3,
        le=300,
        description="A worker silent this long is presumed dead and its partitions move.",
    )
    batch_max_candles: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Most candles the candle agent takes in one batch: what is already "
        "queued (replays, catch-up); live, a batch is the one candle that arrived.",
    )
    producer_linger_ms: float = Field(
        1.0,
        ge=0,
        le=1000,
        description="How long the producer waits to fill a batch before sending: latency "
        "of every signal and order live, fewer requests during replays.",
    )
    model_check_interval_s: float = Field(
        5.0, ge=0.5, le=3600, description="Seconds between checks for new or changed models."
    )
    log_language: Literal["vi", "en"] = Field("vi", description="Language of log messages.")
    future_tolerance_timeframes: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="A candle whose open time lies more than this many timeframes after the "
        "current time is refused (dead letter future_time): a wrong clock or a forged "
        "timestamp would otherwise block the symbol's window until that time.",
    )
    max_message_bytes: int = Field(
        65_536,
        ge=1024,
        le=10_485_760,
        description="Largest market_data message value, in bytes, the agent will decode; "
        "larger ones become dead letters (too_large) without being parsed.",
    )

    # --- exchange ingest ------------------------------------------------------------
    ingest_enabled: bool = Field(True, description="Leader polls the exchange for candles.")
    exchange_id: str = Field("binance", description="ccxt exchange id.")
    exchange_base_url: str | None = Field(
        None, description="Override of the exchange REST base URL (proxies, test servers)."
    )
    exchange_timeout_s: float = Field(10.0, gt=0, le=120)
    exchange_api_key: SecretStr | None = None
    exchange_secret: SecretStr | None = None
    poll_interval_s: float = Field(10.0, ge=0.5, le=3600, description="Seconds between polls.")
    backfill_candles: int = Field(
        300,
        ge=0,
        le=5000,
        description="Closed candles fetched per symbol at start; 0 means window_size. RSI "
        "and MACD need a few hundred candles to settle to the values training saw.",
    )
    retry_max_delay_s: float = Field(60.0, gt=0, le=3600)
    ingest_backoff_max_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Longest wait between two ingest polls while the exchange fails: the "
        "wait starts at poll_interval_s and doubles per failed poll up to this.",
    )

    # --- news headlines (docs/NEWS.md) ------------------------------------------------
    news_feeds: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="RSS/Atom feed URLs, comma-separated; empty: no news ingest."
    )
    news_poll_interval_s: float = Field(
        300.0, ge=0.5, le=86_400, description="Seconds between two polls of the news feeds."
    )
    news_timeout_s: float = Field(15.0, gt=0, le=300, description="Timeout of one feed fetch.")
    news_half_life_s: float = Field(
        21_600.0, gt=0, le=30 * 86_400, description="Half-life of the decayed sentiment score."
    )

    # --- ML signals -----------------------------------------------------------------
    model_dir: Path | None = Field(None, description="Model registry; default data_dir/models.")
    model_registry: Literal["mlflow", "file"] = Field(
        "mlflow", description="mlflow (aliases, runs; file registry read as fallback) or file."
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; default sqlite:///<data_dir>/mlflow.db."
    )
    label_horizon: int = Field(5, ge=1, le=1440, description="Candles ahead for the label.")
    label_threshold_pct: float = Field(0.25, ge=0, description="Move that counts as UP/DOWN.")
    fee_pct: float = Field(
        0.1,
        ge=0,
        le=5,
        validation_alias=AliasChoices("TINHIEU_FEE_PCT", "TINHIEU_COMMISSION_PCT", "fee_pct"),
        description="Exchange fee per side, percent: the broker's commission and the cost "
        "the labels are net of (one setting for both).",
    )
    min_confidence: float = Field(
        0.45,
        ge=0,
        le=1,
        description="Least calibrated probability to act on: a BUY needs P(take profit first) "
        ">= max(min_confidence, break-even), a SELL P(SELL) >= it. 0.45 chosen by walk-forward "
        "(docs/ML.md); 0.6 is the seed's value.",
    )
    label_scheme: Literal["triple_barrier", "fixed_horizon"] = Field(
        "triple_barrier",
        description="triple_barrier: the outcome of the broker's own long entered at the next "
        "open (take profit, stop loss or max_holding_candles, net of fees); fixed_horizon: "
        "the move over label_horizon candles beyond label_threshold_pct (docs/ML.md).",
    )
    max_holding_candles: int = Field(
        240,
        ge=1,
        le=10_080,
        description="Triple-barrier labels: candles a long is held at most; then it is "
        "closed at the next open. Also the purge/embargo between walk-forward folds.",
    )
    barrier_mode: Literal["fixed", "volatility"] = Field(
        "fixed",
        description="fixed: stop_loss_pct / take_profit_pct; volatility: barrier_*_vol_mult "
        "times the rolling volatility scaled to max_holding_candles.",
    )
    barrier_vol_window: int = Field(
        60, ge=2, le=10_000, description="Candles of the rolling volatility (volatility mode)."
    )
    barrier_stop_vol_mult: float = Field(
        1.0, gt=0, le=50, description="Stop loss distance in volatilities (volatility mode)."
    )
    barrier_take_vol_mult: float = Field(
        2.5, gt=0, le=100, description="Take profit distance in volatilities (volatility mode)."
    )
    promotion_min_trades: int = Field(
        10,
        ge=0,
        le=100_000,
        description="Walk-forward round trips the gated strategy needs before train promotes.",
    )
    market_data_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Days Kafka keeps market_data (the topic's retention.ms, set when a worker "
        "or a command creates it): the history `retrain` reads (docs/ML.md).",
    )
    retrain_interval_h: float = Field(
        0.0,
        ge=0,
        le=24 * 365,
        description="Hours between scheduled retrains from market_data on the leader worker "
        "(0 = off; `make run` sets 24). One at a time, in a subprocess (docs/ML.md).",
    )
    shadow_enabled: bool = Field(
        True, description="Run the challenger (MLflow alias) as a shadow on the live candles: "
        "signals.shadow and a paper book of its own, never orders."
    )
    promotion_auto: bool = Field(
        True, description="Let the shadow promote a challenger that beats the champion on the "
        "same candles (promotion_* settings); off: decisions are logged, aliases untouched."
    )
    promotion_margin_pct: float = Field(
        0.5, ge=0, le=100, description="Points of after-fee return (BUY verdicts' longs) by "
        "which the challenger must beat the champion on the same candles."
    )
    promotion_min_outcomes: int = Field(
        1000, ge=1, le=10_000_000, description="Scored verdicts each model needs (from the "
        "challenger's start) before the shadow decides; then again at every multiple."
    )
    # --- monitoring (docs/MONITORING.md) ----------------------------------------------
    outcome_flush_candles: int = Field(
        5,
        ge=1,
        le=1440,
        description="Outcomes of a symbol wait in its record and go to signal_outcomes in "
        "one message once the oldest is this many candles old (1: every batch that has "
        "one): fewer Kafka writes per candle; monitoring scores them at once.",
    )
    monitor_windows_s: Annotated[tuple[int, ...], NoDecode] = Field(
        (86_400, 604_800),
        description="Windows of the rolling live quality, seconds, comma-separated (default "
        "1 day and 7 days); each at most 604800 (the 7 days the quality buckets keep).",
    )
    drift_window: int = Field(
        1440,
        ge=60,
        le=100_000,
        description="Candles in the rolling window the drift monitor compares with the "
        "training data (1440: one day of 1-minute candles).",
    )
    drift_psi_threshold: float = Field(
        0.25,
        gt=0,
        le=10,
        description="PSI over which a feature may drift; a feature whose training days "
        "already moved more uses that larger figure (docs/MONITORING.md, Drift).",
    )
    drift_ks_pvalue: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="KS p-value under which a PSI candidate is confirmed as drifting.",
    )
    drift_min_features: int = Field(
        10,
        ge=1,
        le=1000,
        description="Features that must drift together for feature_drift (measured: 10 of "
        "the 40 kept 79 of 92 stable real periods quiet and caught all 10 crashes).",
    )
    drift_prediction_psi_threshold: float = Field(
        0.25,
        gt=0,
        le=10,
        description="PSI of the BUY/NEUTRAL/SELL shares in the drift window against training "
        "over which prediction_drift is raised.",
    )
    drift_adwin_delta: float = Field(
        0.002,
        gt=0,
        lt=1,
        description="ADWIN confidence on the stream of outcome errors (smaller: fewer false "
        "changes, later detection).",
    )
    drift_check_every: int = Field(
        60,
        ge=1,
        le=100_000,
        description="Candles between two drift checks (PSI, then KS of the candidates); at "
        "most drift_window.",
    )
    alert_clear_after: int = Field(
        3,
        ge=1,
        le=1000,
        description="Consecutive checks without the condition before an alert is cleared.",
    )
    losing_streak_max: int = Field(
        5, ge=1, le=1000, description="Losing round trips in a row that raise losing_streak."
    )
    accuracy_drop_pct: float = Field(
        10.0,
        ge=0,
        le=100,
        description="accuracy_drop is raised when the 1-day live accuracy is this many "
        "percentage points below the walk-forward accuracy.",
    )
    accuracy_min_outcomes: int = Field(
        200,
        ge=1,
        le=1_000_000,
        description="Outcomes in the day before accuracy_drop may be raised.",
    )
    ensemble_weights: str | None = Field(
        None, description="rf=1,svm=1,lr=1; default from walk-forward scores."
    )
    algorithms: str = Field(
        "rf,svm,lr",
        pattern=r"^\s*(rf|svm|lr|lstm)\s*(,\s*(rf|svm|lr|lstm)\s*)*$",
        description="Models train fits per symbol, comma-separated, of rf, svm, lr and lstm "
        "(lstm: the LSTM with attention, needs pip install -e .[deep]; docs/ML.md).",
    )

    # --- broker ---------------------------------------------------------------------
    starting_cash: float = Field(10_000.0, gt=0)
    position_size_pct: float = Field(95.0, gt=0, le=100, description="Cash share per entry.")
    stop_loss_pct: float = Field(2.0, gt=0, lt=100)
    take_profit_pct: float = Field(5.0, gt=0)
    trade_db: Path | None = Field(None, description="SQLite trade log; default data_dir/trades.db")

    # --- Discord bot ----------------------------------------------------------------
    discord_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DISCORD_BOT_TOKEN", "BOT_TOKEN")
    )
    discord_channel_id: int | None = None
    bot_prefix: str = Field("!", min_length=1, max_length=5)
    vnd_per_usdt: float = Field(26_000.0, gt=0, description="VND rate for !gia.")
    web_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Worker web URLs the bot asks; default http://web_host:web_port."
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        symbols = tuple(dict.fromkeys(canonical(str(s)) for s in items if str(s).strip()))
        if not symbols:
            raise ValueError("at least one symbol is needed")
        return symbols

    @field_validator("web_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return tuple(str(u).strip().rstrip("/") for u in items if str(u).strip())

    @field_validator("news_feeds", mode="before")
    @classmethod
    def _split_feeds(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        feeds = tuple(dict.fromkeys(str(u).strip() for u in items if str(u).strip()))
        for url in feeds:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"feed {url!r} is not an http:// or https:// URL")
        return feeds

    @field_validator("monitor_windows_s", mode="before")
    @classmethod
    def _split_windows(cls, value: object) -> tuple[int, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        try:
            windows = tuple(sorted({int(str(w).strip()) for w in items if str(w).strip()}))
        except ValueError:
            raise ValueError(
                "windows are whole seconds, comma-separated, e.g. 86400,604800") from None
        if not windows or windows[0] <= 0 or windows[-1] > 604_800:
            raise ValueError("give at least one window, each from 1 to 604800 seconds (7 days)")
        return windows

    @field_validator("drift_check_every")
    @classmethod
    def _check_within_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("drift_window")
        if window is not None and value > window:
            raise ValueError(f"must be at most drift_window ({window} candles)")
        return value

    @field_validator("web_token")
    @classmethod
    def _token_beyond_localhost(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            value = None  # TINHIEU_WEB_TOKEN= (empty) means no token
        host = str(info.data.get("web_host", "127.0.0.1")).strip().strip("[]").lower()
        if value is None and host not in LOCAL_WEB_HOSTS:
            raise ValueError(
                f"web_host (TINHIEU_WEB_HOST) {host!r} is not local: set a token in "
                "TINHIEU_WEB_TOKEN (web_token) so the API is not open to the network, or "
                "bind web_host to 127.0.0.1"
            )
        return value

    @field_validator("processing_guarantee")
    @classmethod
    def _refuse_exactly_once(cls, value: str) -> str:
        if value == "exactly_once":
            raise ValueError(
                "exactly_once is refused: with faust-streaming 0.15 its Kafka transactions "
                "produced different orders than a clean run after killed workers, and a "
                "surviving worker stalled for minutes on takeover (docs/RELIABILITY.md). "
                "Use at_least_once (the default): every effect is idempotent (deterministic "
                "order ids, UNIQUE trade-log rows, per-symbol last-candle markers), so "
                "re-delivery never places a second order"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        for part in value.split(";"):
            if not part.startswith(("kafka://", "aiokafka://")):
                raise ValueError("must look like kafka://host:port (several joined by ';')")
        return value

    # --- derived values ---------------------------------------------------------------
    @property
    def timeframe_ms(self) -> int:
        return TIMEFRAME_MS[self.timeframe]

    @property
    def advertised_url(self) -> str:
        host = self.web_advertised_host or self.web_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    @property
    def backfill(self) -> int:
        return self.backfill_candles or self.window_size

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def trade_db_path(self) -> Path:
        return self.trade_db or self.data_dir / "trades.db"

    @property
    def worker_urls(self) -> tuple[str, ...]:
        return self.web_urls or (f"http://{self.web_host}:{self.web_port}",)


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings; raise ``SettingsError`` naming each wrong one."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "?"
            env = field.upper()
            env = env if env.startswith("TINHIEU_") else f"TINHIEU_{env}"
            shown = "<hidden>" if _SECRET.search(field) else repr(err.get("input"))
            lines.append(f"  {field} ({env}): {err['msg']} (got {shown})")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return load_settings()
