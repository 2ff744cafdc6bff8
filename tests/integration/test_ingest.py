"""The leader worker's exchange ingest against Binance's HTTP edge (the real ccxt binance
class, the fake answering in Binance's format): back-fill fills the windows at once, only
closed candles are published, faults are retried, and a restart repeats nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.fakes.binance import FakeBinance
from tests.integration.procs import Worker, app_env, wait_for
from tinhieu.data import load_candles
from tinhieu.kafka_io import decode_json, read_topic

pytestmark = pytest.mark.integration
MINUTE = 60_000
NOW = 1_620_648_030_000  # 2021-05-10 12:00:30 UTC: the 12:00 candle is still forming
WINDOW = 60


@pytest.fixture(scope="module")
def fake():
    server = FakeBinance(now_ms=NOW)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def env(kafka, fake, tmp_path_factory):
    return app_env(
        kafka.url,
        tmp_path_factory.mktemp("worker"),
        "it-ingest",
        ingest_enabled="true",
        exchange_base_url=fake.base_url,
        poll_interval_s=1,
        symbols="BTC/USDT,ETH/USDT",
        window_size=WINDOW,
        backfill_candles=WINDOW,
        retry_max_delay_s=1,
    )


def published(env) -> list[dict]:
    rows = asyncio.run(read_topic(env["TINHIEU_BROKER_URL"], "market_data"))
    return [o for o in (decode_json(v) for _, _, _, v in rows) if o]


def last_of(worker: Worker, sym: str) -> int | None:
    status, body = worker.get(f"/windows/{sym}")
    return body.get("last") if status == 200 else None


def test_backfill_poll_faults_and_restart(env, fake, data_1m, tmp_path) -> None:
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        last_closed = NOW - NOW % MINUTE - MINUTE  # 11:59, the newest closed candle
        for sym in ("BTC-USDT", "ETH-USDT"):
            wait_for(lambda s=sym: last_of(worker, s) == last_closed, 60, f"{sym} back-fill")
        status, body = worker.get("/windows/BTC-USDT")
        csv = load_candles(
            data_1m / "BTCUSDT_1m.csv.gz", last_closed - (WINDOW - 1) * MINUTE, last_closed + MINUTE
        )
        assert body["size"] == WINDOW  # signals need not wait 52 minutes
        assert [c["timestamp"] for c in body["candles"]] == csv["timestamp"].tolist()
        assert [c["close"] for c in body["candles"]] == csv["close"].tolist()

        # Time passes with faults on the way: a 429, a timeout, a 5xx and malformed JSON.
        for kind in ("429", "timeout", "500", "malformed"):
            fake.queue_fault(kind, symbol="BTCUSDT")
        fake.advance(minutes=3)
        for sym in ("BTC-USDT", "ETH-USDT"):
            wait_for(
                lambda s=sym: last_of(worker, s) == last_closed + 3 * MINUTE,
                90,
                f"{sym} after 3 minutes",
            )
    finally:
        worker.stop()

    # A restart (same data dir, cursor from what Kafka holds) re-publishes nothing.
    fake.advance(minutes=2)
    worker = Worker(env, tmp_path / "worker2.log").start()
    try:
        worker.wait_ready()
        wait_for(
            lambda: last_of(worker, "BTC-USDT") == last_closed + 5 * MINUTE, 90, "BTC after restart"
        )
    finally:
        worker.stop()
    rows = [o for o in published(env) if o.get("source") == "exchange"]
    counts = Counter((o["symbol"], o["timestamp"]) for o in rows)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    btc = sorted(ts for sym, ts in counts if sym == "BTC/USDT")
    # Every closed candle exactly once, no hole, never the forming one.
    assert btc == list(range(btc[0], last_closed + 5 * MINUTE + 1, MINUTE))
    assert len(btc) == WINDOW + 5
