"""The leader worker's exchange ingest against Binance's HTTP edge (the real ccxt binance
class, the fake answering in Binance's format): back-fill fills the windows at once, only
closed candles are published, faults are retried, and a restart repeats nothing. While the
exchange is unreachable the log stays quiet and /health says so; a stop closes the client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.binance import FakeBinance
from tests.integration.procs import Worker, app_env, wait_for
from tinhieu.data import load_candles
from tinhieu.kafka_embedded import free_port
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
    assert_closed_cleanly(worker)
    rows = [o for o in published(env) if o.get("source") == "exchange"]
    counts = Counter((o["symbol"], o["timestamp"]) for o in rows)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    btc = sorted(ts for sym, ts in counts if sym == "BTC/USDT")
    # Every closed candle exactly once, no hole, never the forming one.
    assert btc == list(range(btc[0], last_closed + 5 * MINUTE + 1, MINUTE))
    assert len(btc) == WINDOW + 5


# --- an unreachable exchange ---------------------------------------------------------------

UNCLOSED = ("Unclosed client session", "Unclosed connector")
EDGE_TAGS = ("[THU LAI]", "[BO QUA]", "[LOI]")


def assert_closed_cleanly(worker: Worker) -> None:
    log = worker.log_path.read_text(errors="replace")
    assert not [m for m in UNCLOSED if m in log], worker.tail()


class Relay:
    """A TCP relay in front of the fake exchange, switched off (connection refused: the
    exchange is unreachable) and on again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> Relay:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        self._run(self._listen())

    def down(self) -> None:
        self._run(self._close())

    def stop(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()
            self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def exchange_health(worker: Worker) -> dict:
    status, body = worker.get("/health")
    return body.get("exchange", {}) if status == 200 else {}


def edge_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(tag in line for tag in EDGE_TAGS)]


def test_unreachable_exchange_quiet_log_health_and_clean_stop(kafka, tmp_path: Path) -> None:
    # market_data is shared with the test above: start after the candles it published.
    now = NOW + 3 * 60 * MINUTE
    fake = FakeBinance(now_ms=now)
    fake.start_in_thread()
    relay = Relay(int(fake.base_url.rsplit(":", 1)[1])).start()
    env = app_env(
        kafka.url,
        tmp_path / "data",
        "it-ingest-down",
        ingest_enabled="true",
        exchange_base_url=relay.url,
        poll_interval_s=1,
        symbols="BTC/USDT,ETH/USDT",
        window_size=WINDOW,
        backfill_candles=WINDOW,
        retry_max_delay_s=1,
        ingest_backoff_max_s=8,
    )
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        last_closed = now - now % MINUTE - MINUTE
        wait_for(lambda: last_of(worker, "BTC-USDT") == last_closed, 60, "back-fill")
        wait_for(lambda: exchange_health(worker).get("status") == "ok", 20, "exchange ok")

        # The ingest asks for candles only when one has closed by the exchange's time (its
        # last measurement plus the time since): 5 s before a close, then down.
        forming = now - now % MINUTE
        fake.set_now(forming + 55_000)
        time.sleep(2)  # a poll or two measure the exchange's new time
        # Down for 30 s: the old ingest (3 tries per symbol per 1 s poll, each logged, plus
        # one line per failed symbol) logged about 8 lines every 2-3 s here, ~100 in all.
        down_at = worker.log_path.stat().st_size
        relay.down()
        health = wait_for(
            lambda: exchange_health(worker),
            20,
            "/health: exchange unreachable",
            ready=lambda h: h.get("status") == "unreachable",
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", health["since"])
        assert "cannot reach the exchange" in health["last_error"]
        assert 0 <= health["next_attempt_in_s"] <= 8
        assert health["failed_symbols"] == ["BTC/USDT", "ETH/USDT"]
        time.sleep(30 - 1)
        assert exchange_health(worker)["since"] == health["since"]  # the same outage
        with worker.log_path.open("rb") as f:
            f.seek(down_at)
            during = f.read().decode(errors="replace")
        lines = edge_lines(during)
        assert 3 <= len(lines) <= 8, "\n".join(lines)
        assert all("[WARNING]" in line and "cannot fetch candles for" in line for line in lines)
        waits = [float(w) for w in re.findall(r"next attempt in ([\d.]+) s", during)]
        assert waits == sorted(waits) and waits[-1] == 8.0, waits  # growing, capped

        # Back: the missed candles arrive at the next attempt (at most 8 s away), one line.
        fake.set_now(forming + 3 * MINUTE + 30_000)
        relay.up()
        wait_for(lambda: last_of(worker, "BTC-USDT") == forming + 2 * MINUTE, 30, "catch-up")
        back = worker.log_path.read_text(errors="replace")
        assert f"it had been failing since {health['since']}" in back
        assert exchange_health(worker)["status"] == "ok"
    finally:
        # Ctrl-C: SIGINT to the worker's process group.
        if worker.proc is not None and worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGINT)
            try:
                worker.proc.wait(40)
            except Exception:
                worker.kill()
        relay.stop()
        fake.stop()
    assert_closed_cleanly(worker)
