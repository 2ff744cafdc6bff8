"""The ingest's outage state (tinhieu/exchange/backoff.py): growing, capped waits between
failed polls, reset on success, one log line per failed poll, /health. An injected clock:
no test sleeps."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from tests.fakes.binance import FakeBinance
from tinhieu import i18n
from tinhieu.exchange import (
    CandlePoller,
    ExchangeClient,
    ExchangeConfigError,
    ExchangeDataError,
    ExchangeUnavailable,
    PollBackoff,
    RateLimited,
)
from tinhieu.settings import load_settings

MIN = 60_000
NOW = 1_620_648_030_000
WALL0 = 1_764_562_000.0  # 2025-12-01T04:06:40Z
DOWN = ExchangeUnavailable("binance (127.0.0.1:9) load_markets: cannot reach the exchange")


class Clock:
    """Monotonic and wall time that move only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL0 + self.t - 1000.0

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def english() -> Iterator[None]:
    before = i18n.language()
    i18n.set_language("en")
    yield
    i18n.set_language(before)


def make(clock: Clock, base_s: float = 10.0, max_s: float = 300.0) -> PollBackoff:
    return PollBackoff(base_s, max_s, "binance (127.0.0.1:9)", clock=clock, wall=clock.wall)


def edge_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records of the exchange edge at warning level or above."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("tinhieu.exchange") and r.levelno >= logging.WARNING
    ]


def test_waits_start_at_the_interval_double_and_stop_at_the_cap(clock: Clock) -> None:
    backoff = make(clock)
    delays = [backoff.failed({"BTC/USDT": DOWN}, 1) for _ in range(8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff.delay_after(1000) == 300  # no overflow after a very long outage


def test_an_attempt_is_due_only_when_its_wait_is_over(clock: Clock) -> None:
    backoff = make(clock)
    assert backoff.due()  # nothing failed yet
    backoff.failed({"BTC/USDT": DOWN}, 1)
    backoff.failed({"BTC/USDT": DOWN}, 1)  # next attempt in 20 s
    clock.advance(10)
    assert not backoff.due(slack_s=5)
    assert backoff.next_attempt_in() == 10
    clock.advance(6)
    assert backoff.due(slack_s=5)  # the timer tick 4 s early still attempts
    assert not backoff.due()
    clock.advance(4)
    assert backoff.due()


def test_success_resets_the_schedule_and_logs_one_recovery_line(
    clock: Clock, caplog: pytest.LogCaptureFixture, english: None
) -> None:
    caplog.set_level(logging.INFO, logger="tinhieu")
    backoff = make(clock)
    backoff.succeeded()
    assert caplog.records == []  # working as usual: silent
    for _ in range(3):
        backoff.failed({"BTC/USDT": DOWN}, 1)
        clock.advance(backoff.next_attempt_in())
    clock.advance(5)
    caplog.clear()
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.due()
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        "[KET NOI] the exchange binance (127.0.0.1:9) answers again, candles fetched; it had "
        "been failing since 2025-12-01T04:06:40+00:00 (1 min 15 s, 3 failed attempt(s))"
    )
    assert backoff.failed({"BTC/USDT": DOWN}, 1) == 10  # a new outage starts from the base


def test_one_warning_per_failed_poll_whatever_the_number_of_symbols(
    clock: Clock, caplog: pytest.LogCaptureFixture, english: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="tinhieu")
    backoff = make(clock)
    errors = {"BTC/USDT": DOWN, "ETH/USDT": DOWN, "SOL/USDT": DOWN}
    for attempt in range(1, 5):
        backoff.failed(errors, 3)
        assert len(edge_lines(caplog)) == attempt
        clock.advance(backoff.next_attempt_in())
    lines = [r.getMessage() for r in edge_lines(caplog)]
    assert all(r.levelno == logging.WARNING for r in edge_lines(caplog))
    assert lines[0] == (
        "[THU LAI] cannot fetch candles for BTC/USDT, ETH/USDT, SOL/USDT from the exchange "
        "binance (127.0.0.1:9) since 2025-12-01T04:06:40+00:00 (failed attempt 1): "
        f"{DOWN}; next attempt in 10.0 s"
    )
    assert "(failed attempt 4)" in lines[3] and "next attempt in 80.0 s" in lines[3]
    assert all("since 2025-12-01T04:06:40+00:00" in line for line in lines)


def test_vietnamese_line(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    before = i18n.language()
    i18n.set_language("vi")
    try:
        make(clock).failed({"BTC/USDT": DOWN}, 1)
    finally:
        i18n.set_language(before)
    assert "[THU LAI] không lấy được nến BTC/USDT từ sàn binance (127.0.0.1:9) từ " in caplog.text
    assert "thử lại sau 10.0 s" in caplog.text


def test_retry_after_is_obeyed_above_the_cap(clock: Clock) -> None:
    backoff = make(clock, base_s=1, max_s=30)
    banned = RateLimited("binance: rate limited", retry_after_s=120)
    assert backoff.failed({"BTC/USDT": banned}, 2) == 120
    assert backoff.failed({"BTC/USDT": RateLimited("binance: rate limited")}, 2) == 2


def test_a_setting_to_fix_or_a_bug_is_an_error_line(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    backoff = make(clock)
    backoff.failed({"DOGE/USDT": ExchangeConfigError("not listed; fix TINHIEU_SYMBOLS")}, 1)
    backoff.failed({"BTC/USDT": KeyError("close")}, 1)
    assert [r.levelno for r in edge_lines(caplog)] == [logging.ERROR, logging.ERROR]
    assert "KeyError: 'close'" in edge_lines(caplog)[1].getMessage()


def test_health_starting_ok_unreachable_and_failing(clock: Clock) -> None:
    backoff = make(clock)
    assert backoff.health() == {"status": "starting"}
    backoff.succeeded()
    assert backoff.health() == {"status": "ok", "last_poll": "2025-12-01T04:06:40+00:00"}

    clock.advance(60)
    backoff.failed({"BTC/USDT": DOWN, "ETH/USDT": DOWN}, 2)
    clock.advance(3)
    assert backoff.health() == {
        "status": "unreachable",
        "since": "2025-12-01T04:07:40+00:00",
        "last_error": str(DOWN),
        "next_attempt_in_s": 7.0,
        "failed_attempts": 1,
        "failed_symbols": ["BTC/USDT", "ETH/USDT"],
        "last_poll": "2025-12-01T04:06:40+00:00",
    }
    # Only one symbol failing, or an answer that is not candles: the exchange is reachable.
    backoff.failed({"BTC/USDT": DOWN}, 2)
    assert backoff.health()["status"] == "failing"
    backoff.failed({"BTC/USDT": ExchangeDataError("bad"), "ETH/USDT": DOWN}, 2)
    health = backoff.health()
    assert health["status"] == "failing" and health["failed_attempts"] == 3
    assert health["since"] == "2025-12-01T04:07:40+00:00"  # since the first failure

    backoff.succeeded()
    assert backoff.health() == {"status": "ok", "last_poll": "2025-12-01T04:07:43+00:00"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_quiet_client_and_poller_leave_one_line_per_failed_poll_to_the_backoff(
    clock: Clock, caplog: pytest.LogCaptureFixture, english: None
) -> None:
    """The real ccxt client against a closed port, as the ingest builds it: one attempt per
    call, failures reported by the backoff only."""
    caplog.set_level(logging.DEBUG, logger="tinhieu")
    settings = load_settings(
        exchange_base_url=f"http://127.0.0.1:{closed_port()}",
        exchange_timeout_s=0.5,
        symbols="BTC,ETH",
        timeframe="1m",
    )
    client = ExchangeClient(settings, report_failures=False)
    backoff = make(clock)
    try:
        poller = CandlePoller(client, ["BTC", "ETH"], MIN, 60, attempts=1, report_failures=False)
        for attempt in range(1, 4):
            assert await poller.poll() == {"BTC/USDT": [], "ETH/USDT": []}
            assert set(poller.last_errors) == {"BTC/USDT", "ETH/USDT"}
            backoff.failed(poller.last_errors, 2)
            assert len(edge_lines(caplog)) == attempt
    finally:
        await client.close()
    assert "cannot reach the exchange" in edge_lines(caplog)[0].getMessage()
    assert backoff.health()["status"] == "unreachable"


async def test_the_same_client_reports_failures_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without report_failures=False (the bot, the CLI) the give-up is logged as before."""
    settings = load_settings(
        exchange_base_url=f"http://127.0.0.1:{closed_port()}",
        exchange_timeout_s=0.5,
        symbols="BTC",
    )
    client = ExchangeClient(settings)
    try:
        poller = CandlePoller(client, ["BTC"], MIN, 60, attempts=1)
        await poller.poll()
    finally:
        await client.close()
    assert [r.levelno for r in edge_lines(caplog)] == [logging.ERROR, logging.WARNING]


async def test_recovery_after_the_fake_comes_back(
    clock: Clock, caplog: pytest.LogCaptureFixture, english: None
) -> None:
    """Faults on every request, then none: failed polls back off, the first good poll
    publishes the missed candles and logs that the exchange answers again."""
    caplog.set_level(logging.INFO, logger="tinhieu")
    async with FakeBinance(now_ms=NOW) as fake:
        settings = load_settings(
            exchange_base_url=fake.base_url, exchange_timeout_s=2, symbols="BTC", timeframe="1m"
        )
        client = ExchangeClient(settings, clock=fake.clock, report_failures=False)
        backoff = make(clock)
        try:
            poller = CandlePoller(client, ["BTC"], MIN, 5, attempts=1, report_failures=False)
            fake.queue_fault("503", path=None, times=2)
            for _ in range(2):
                await poller.poll()
                assert poller.last_errors
                backoff.failed(poller.last_errors, 1)
            bars = await poller.poll()
            assert not poller.last_errors
            backoff.succeeded()
        finally:
            await client.close()
    assert len(bars["BTC/USDT"]) == 5
    messages = [r.getMessage() for r in caplog.records if r.name == "tinhieu.exchange"]
    assert sum("[THU LAI]" in m for m in messages) == 2
    assert any("answers again" in m and "2 failed attempt(s)" in m for m in messages)
