"""The exchange edge against a fake Binance HTTP server: the real ccxt ``binance`` class runs.

Only the exchange's HTTP edge is faked (tests/fakes/binance.py, Binance's real response format,
candles from ../shared/data). Backoff sleeps are recorded by an injected fast ``sleep``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.binance import FakeBinance
from tinhieu import i18n
from tinhieu.candles import Bar
from tinhieu.data import load_candles
from tinhieu.exchange import (
    CandlePoller,
    ExchangeClient,
    ExchangeConfigError,
    ExchangeDataError,
    ExchangeUnavailable,
    RateLimited,
)
from tinhieu.settings import Settings, load_settings

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-spot-1m-2021"
MIN = 60_000
NOW = 1_620_648_030_000  # 2021-05-10 12:00:30 UTC: the 12:00 candle is still forming
FORMING = NOW // MIN * MIN
KLINES = "/api/v3/klines"
API_KEY = "tinhieu-test-KEY-7f3a9c0d1e2b"
API_SECRET = "tinhieu-test-SECRET-55aa66bb"

_csv_cache: dict[str, list[Bar]] = {}


def csv_bars(symbol_id: str, start_ms: int, end_ms: int) -> list[Bar]:
    """The CSV rows with start_ms <= ts < end_ms, as Bars."""
    if symbol_id not in _csv_cache:
        df = load_candles(DATA / f"{symbol_id}_1m.csv.gz")
        _csv_cache[symbol_id] = [Bar(int(r[0]), *map(float, r[1:])) for r in df.to_numpy()]
    return [b for b in _csv_cache[symbol_id] if start_ms <= b.ts < end_ms]


def last_closed(symbol_id: str, count: int, now_ms: int) -> list[Bar]:
    current_open = now_ms // MIN * MIN
    return csv_bars(symbol_id, current_open - 10 * count * MIN, current_open)[-count:]


class Sleeps:
    """Fast injected sleep that records every backoff delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(now_ms=NOW) as server:
        yield server


@pytest.fixture
def english() -> Iterator[None]:
    before = i18n.language()
    i18n.set_language("en")
    yield
    i18n.set_language(before)


@pytest.fixture
def vietnamese() -> Iterator[None]:
    before = i18n.language()
    i18n.set_language("vi")
    yield
    i18n.set_language(before)


def make_settings(base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "exchange_base_url": base_url,
        "exchange_timeout_s": 0.5,
        "retry_max_delay_s": 8.0,
        "symbols": "BTC,ETH",
        "timeframe": "1m",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(fake: FakeBinance, sleeps: Sleeps) -> AsyncIterator[ExchangeClient]:
    c = ExchangeClient(
        make_settings(fake.base_url), clock=fake.clock, sleep=sleeps, rng=random.Random(7)
    )
    yield c
    await c.close()


# --- closed candles ------------------------------------------------------------------------


async def test_backfill_returns_exactly_the_last_n_closed_csv_candles(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    bars = await client.backfill("BTC/USDT", 60)

    assert bars == last_closed("BTCUSDT", 60, NOW)
    assert bars[-1].ts == FORMING - MIN
    assert fake.requests(KLINES) == 1
    assert fake.requests("/api/v3/exchangeInfo") == 1


async def test_backfill_larger_than_a_page_paginates(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    bars = await client.backfill("btcusdt", 2500)

    assert bars == last_closed("BTCUSDT", 2500, NOW)
    assert len(bars) == 2500
    assert fake.requests(KLINES) == 3  # 1000 + 1000 + 500 (the last page holds the forming one)


@pytest.mark.parametrize(
    ("now_ms", "newest_closed"),
    [
        (FORMING + 30_000, FORMING - MIN),  # 30 s into the 12:00 candle
        (FORMING, FORMING - MIN),  # the 12:00 candle just opened: 11:59 has just closed
        (FORMING - 1, FORMING - 2 * MIN),  # 1 ms before 12:00: 11:59 is still forming
    ],
)
async def test_the_still_forming_candle_is_never_returned(
    fake: FakeBinance, client: ExchangeClient, now_ms: int, newest_closed: int
) -> None:
    fake.set_now(now_ms)

    bars = await client.fetch_closed_candles("BTC/USDT", None, 5)
    since = await client.fetch_closed_candles("BTC/USDT", newest_closed - 2 * MIN, 10)

    assert bars[-1].ts == newest_closed
    assert bars == csv_bars("BTCUSDT", newest_closed - 3 * MIN, newest_closed + MIN)
    assert since == csv_bars("BTCUSDT", newest_closed - 2 * MIN, newest_closed + MIN)


async def test_fetch_history_paginates_follows_real_gaps_and_reports_progress(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    # 2021-04-20 00:00 to 06:00 holds Binance's 151-minute outage at 01:59
    start, end = 1_618_876_800_000, 1_618_876_800_000 + 6 * 60 * MIN
    progress: list[tuple[int, int]] = []

    bars = await client.fetch_history(
        "ETH/USDT", start, end, lambda n, total: progress.append((n, total))
    )

    expected = csv_bars("ETHUSDT", start, end)
    assert bars == expected
    assert len(bars) < 360  # the outage stays a gap: no candle is invented
    assert progress[-1] == (len(expected), 360)
    assert [n for n, _ in progress] == sorted(n for n, _ in progress)


async def test_fetch_tickers_gives_last_price_24h_change_and_volume(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    fake.set_now(FORMING)  # the forming candle has just opened: last price = its open

    tickers = await client.fetch_tickers(["btc", "ETHUSDT"])

    assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
    forming = csv_bars("BTCUSDT", FORMING, FORMING + MIN)[0]
    day_ago = csv_bars("BTCUSDT", FORMING - 1439 * MIN, FORMING)[0]
    btc = tickers["BTC/USDT"]
    assert btc["last"] == forming.open
    assert btc["percentage"] == pytest.approx((forming.open / day_ago.open - 1) * 100, abs=1e-3)
    assert btc["quoteVolume"] > 0


# --- the poller ----------------------------------------------------------------------------


async def test_poller_backfills_then_returns_nothing_new_then_exactly_the_new_candles(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    poller = CandlePoller(client, ["BTC/USDT", "ETH/USDT"], MIN, 60)

    first = await poller.poll()
    assert first == {s: last_closed(s.replace("/", ""), 60, NOW) for s in first}
    assert set(first) == {"BTC/USDT", "ETH/USDT"}

    requests = fake.requests(KLINES)
    assert await poller.poll() == {"BTC/USDT": [], "ETH/USDT": []}
    assert fake.requests(KLINES) == requests  # nothing can have closed: no request at all

    fake.advance(minutes=3)
    third = await poller.poll()
    for symbol, bars in third.items():
        assert bars == csv_bars(symbol.replace("/", ""), FORMING, FORMING + 3 * MIN)
        assert len(bars) == 3
    assert poller.cursor() == {"BTC/USDT": FORMING + 2 * MIN, "ETH/USDT": FORMING + 2 * MIN}


async def test_a_real_clock_follows_the_exchange_time(fake: FakeBinance, sleeps: Sleeps) -> None:
    # as a worker process does next to the fake: its own clock says 2026, the exchange 2021
    client = ExchangeClient(make_settings(fake.base_url), sleep=sleeps)
    try:
        poller = CandlePoller(client, ["BTC/USDT"], MIN, 5)
        assert (await poller.poll())["BTC/USDT"] == last_closed("BTCUSDT", 5, NOW)
        fake.advance(minutes=3)
        assert (await poller.poll())["BTC/USDT"] == csv_bars("BTCUSDT", FORMING, FORMING + 3 * MIN)
    finally:
        await client.close()


async def test_poller_seeded_from_kafka_continues_after_last_ts(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    held = FORMING - 10 * MIN
    poller = CandlePoller(client, ["BTC/USDT"], MIN, 60, last_ts={"BTCUSDT": held})

    bars = (await poller.poll())["BTC/USDT"]

    assert bars == csv_bars("BTCUSDT", held + MIN, FORMING)
    assert len(bars) == 9


async def test_poller_catches_up_a_gap_longer_than_a_page(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    poller = CandlePoller(client, ["BTC/USDT"], MIN, 60)
    await poller.poll()
    fake.advance(minutes=1500)
    fake.queue_fault("malformed")

    failed = await poller.poll()
    assert failed == {"BTC/USDT": []}
    assert isinstance(poller.last_errors["BTC/USDT"], ExchangeDataError)
    assert poller.cursor()["BTC/USDT"] == FORMING - MIN  # kept

    caught_up = (await poller.poll())["BTC/USDT"]
    assert caught_up == csv_bars("BTCUSDT", FORMING, FORMING + 1500 * MIN)
    assert "BTC/USDT" not in poller.last_errors


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [("timeout", None), ("429", 7), ("429", None), ("418", 30), ("500", None), ("503", None)],
)
async def test_transient_faults_are_retried_with_backoff_without_gaps_or_duplicates(
    fake: FakeBinance,
    client: ExchangeClient,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    retry_after: int | None,
) -> None:
    caplog.set_level(logging.WARNING, logger="tinhieu")
    poller = CandlePoller(client, ["BTC/USDT"], MIN, 60)
    seen = (await poller.poll())["BTC/USDT"]
    fake.advance(minutes=3)
    fake.queue_fault(kind, retry_after=retry_after, delay_s=3.0)  # type: ignore[arg-type]
    before = fake.requests(KLINES)

    seen += (await poller.poll())["BTC/USDT"]

    assert seen == last_closed("BTCUSDT", 63, fake.now_ms)  # nothing missing, nothing twice
    assert fake.requests(KLINES) == before + 2  # the failed request and its retry
    assert len(sleeps.delays) == 1
    if retry_after is not None:
        assert sleeps.delays == [retry_after]  # Retry-After obeyed
    elif kind in ("429", "418"):
        assert sleeps.delays[0] >= 2.5  # the longer rate-limit backoff
    else:
        assert 0.5 <= sleeps.delays[0] <= 1.0
    retry_lines = [r.getMessage() for r in caplog.records if "[THU LAI]" in r.getMessage()]
    assert len(retry_lines) == 1
    assert "BTC/USDT" in retry_lines[0] and "binance" in retry_lines[0]


@pytest.mark.parametrize("kind", ["malformed", "stale", "empty"])
async def test_bad_responses_skip_that_poll_and_the_next_poll_recovers(
    fake: FakeBinance,
    client: ExchangeClient,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    poller = CandlePoller(client, ["BTC/USDT", "ETH/USDT"], MIN, 60)
    seen = await poller.poll()
    fake.advance(minutes=3)
    fake.queue_fault(kind)  # type: ignore[arg-type]  # hits whichever symbol asks first

    for _ in range(2):
        for symbol, bars in (await poller.poll()).items():
            seen[symbol] += bars

    for symbol, bars in seen.items():
        assert bars == last_closed(symbol.replace("/", ""), 63, fake.now_ms)
    assert sleeps.delays == []  # not retried inside the poll: the next poll fetches again
    if kind == "malformed":
        assert "[LOI]" in caplog.text and "not valid JSON" in caplog.text


async def test_malformed_json_is_a_data_error_and_not_retried_in_the_call(
    fake: FakeBinance, client: ExchangeClient, sleeps: Sleeps
) -> None:
    fake.queue_fault("malformed")

    with pytest.raises(ExchangeDataError, match="not valid JSON"):
        await client.fetch_closed_candles("BTC/USDT", None, 5)

    assert fake.requests(KLINES) == 1 and sleeps.delays == []


async def test_an_invalid_row_is_skipped_and_logged_the_others_kept(
    fake: FakeBinance, client: ExchangeClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue_fault("bad_row")
    since = FORMING - 5 * MIN

    bars = await client.fetch_closed_candles("BTC/USDT", since, 10)

    assert bars == csv_bars("BTCUSDT", since + MIN, FORMING)
    skipped = [r.getMessage() for r in caplog.records if "[BO QUA]" in r.getMessage()]
    assert len(skipped) == 1 and str(since) in skipped[0] and "high" in skipped[0]


async def test_one_failing_symbol_does_not_hold_back_the_others(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    poller = CandlePoller(client, ["BTC/USDT", "ETH/USDT"], MIN, 60, attempts=2)
    await poller.poll()
    fake.advance(minutes=2)
    fake.queue_fault("503", times=2, symbol="ETHUSDT")  # both attempts for ETH fail

    result = await poller.poll()

    assert result == {"BTC/USDT": csv_bars("BTCUSDT", FORMING, FORMING + 2 * MIN), "ETH/USDT": []}
    assert list(poller.last_errors) == ["ETH/USDT"]
    assert isinstance(poller.last_errors["ETH/USDT"], ExchangeUnavailable)
    assert poller.cursor()["ETH/USDT"] == FORMING - MIN
    assert (await poller.poll())["ETH/USDT"] == csv_bars("ETHUSDT", FORMING, FORMING + 2 * MIN)


async def test_retry_forever_backs_off_exponentially_up_to_the_cap(
    fake: FakeBinance, client: ExchangeClient, sleeps: Sleeps
) -> None:
    fake.queue_fault("503", times=7)

    bars = await client.fetch_closed_candles("BTC/USDT", None, 3, attempts=None)

    assert bars == last_closed("BTCUSDT", 2, NOW)  # limit 3 includes the forming candle
    assert len(sleeps.delays) == 7
    for n, delay in enumerate(sleeps.delays):
        full = min(8.0, 2.0**n)  # retry_max_delay_s = 8
        assert full / 2 <= delay <= full


async def test_limited_attempts_raise_the_mapped_error(
    fake: FakeBinance, client: ExchangeClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue_fault("429", times=2, retry_after=1)

    with pytest.raises(RateLimited) as raised:
        await client.fetch_closed_candles("ETH/USDT", None, 3, attempts=2)

    assert raised.value.retry_after_s == 1
    assert "[LOI]" in caplog.text
    assert fake.requests(KLINES) == 2


# --- configuration errors and an unreachable exchange ------------------------------------


async def test_unknown_symbol_is_a_config_error_that_names_the_setting(
    fake: FakeBinance, client: ExchangeClient
) -> None:
    with pytest.raises(ExchangeConfigError, match=r"DOGE/USDT.*not listed.*TINHIEU_SYMBOLS"):
        await client.fetch_closed_candles("DOGE/USDT", None, 5)
    poller = CandlePoller(client, ["BTC/USDT", "DOGE/USDT"], MIN, 60)
    with pytest.raises(ExchangeConfigError, match="DOGE/USDT"):
        await poller.poll()
    assert fake.requests(KLINES) == 0


def test_unknown_exchange_id_is_a_config_error() -> None:
    with pytest.raises(ExchangeConfigError, match=r"'nosuchexchange'.*TINHIEU_EXCHANGE_ID"):
        ExchangeClient(load_settings(exchange_id="nosuchexchange"))


async def test_default_urls_point_at_the_real_exchange() -> None:
    client = ExchangeClient(load_settings(exchange_base_url=None))
    try:
        assert client.host == "api.binance.com"
        assert client.page_limit == 1000
    finally:
        await client.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_exchange_raises_unavailable_and_says_so(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture, english: None
) -> None:
    port = closed_port()
    client = ExchangeClient(
        make_settings(f"http://127.0.0.1:{port}"), sleep=sleeps, rng=random.Random(1)
    )
    try:
        with pytest.raises(ExchangeUnavailable, match="cannot reach the exchange"):
            await client.backfill("BTC/USDT", 10, attempts=3)
        poller = CandlePoller(client, ["BTC/USDT"], MIN, 60, attempts=1)
        assert await poller.poll() == {"BTC/USDT": []}
    finally:
        await client.close()

    retries = [r.getMessage() for r in caplog.records if "[THU LAI]" in r.getMessage()]
    assert len(retries) == 2 == len(sleeps.delays)
    assert retries[0].startswith(f"[THU LAI] cannot reach the exchange binance (127.0.0.1:{port})")
    assert "retrying in" in retries[0]


async def test_unreachable_message_in_vietnamese(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture, vietnamese: None
) -> None:
    client = ExchangeClient(make_settings(f"http://127.0.0.1:{closed_port()}"), sleep=sleeps)
    try:
        with pytest.raises(ExchangeUnavailable):
            await client.load_markets(attempts=2)
    finally:
        await client.close()
    assert "[THU LAI] không kết nối được sàn binance (127.0.0.1:" in caplog.text
    assert "thử lại sau" in caplog.text


async def test_api_key_never_appears_in_logs_or_errors(
    fake: FakeBinance, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt's own request logging included
    settings = make_settings(fake.base_url, exchange_api_key=API_KEY, exchange_secret=API_SECRET)
    client = ExchangeClient(settings, clock=fake.clock, sleep=sleeps)
    errors: list[str] = [repr(settings)]
    try:
        fake.queue_fault("429", retry_after=1)
        assert len(await client.backfill("BTC/USDT", 5)) == 5
        fake.queue_fault("503", times=3)
        with pytest.raises(ExchangeUnavailable) as raised:
            await client.fetch_closed_candles("BTC/USDT", None, 3)
        errors.append(str(raised.value))
        with pytest.raises(ExchangeConfigError) as config_error:
            await client.fetch_tickers(["DOGE"])
        errors.append(str(config_error.value))
    finally:
        await client.close()

    assert "[THU LAI]" in caplog.text
    for secret in (API_KEY, API_SECRET):
        assert secret not in caplog.text
        assert all(secret not in text for text in errors)


# --- the fake itself, from a plain thread (the integration tests use it so) ----------------


def test_fake_runs_in_a_thread_with_a_settable_clock_and_faults() -> None:
    fake = FakeBinance(now_ms=NOW)
    base_url = fake.start_in_thread()
    try:
        with urllib.request.urlopen(f"{base_url}/api/v3/time", timeout=5) as response:
            assert json.load(response) == {"serverTime": NOW}
        fake.advance(minutes=2)
        url = f"{base_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2"
        with urllib.request.urlopen(url, timeout=5) as response:
            rows = json.load(response)
        assert [r[0] for r in rows] == [FORMING + MIN, FORMING + 2 * MIN]
        assert all(len(r) == 12 and isinstance(r[1], str) for r in rows)
        fake.queue_fault("500")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(url, timeout=5)
        assert raised.value.code == 500
        assert fake.requests(KLINES) == 2 and fake.pending_faults() == 0
    finally:
        fake.stop()
