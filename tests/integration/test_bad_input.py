"""Every kind of bad market_data message, interleaved with real candles, into a real worker.

Each bad message (tests/fakes/bad_messages.py) must end in ``dead_letters`` with its code
and its source partition and offset; every real candle must reach its window; the window
agent must never crash or restart; a refused far-future candle must not block its symbol.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bad_messages import MAX_BYTES, BadMessage, bad_messages
from tests.integration.procs import Worker, app_env, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.kafka_io import decode_json, make_producer, read_topic

pytestmark = pytest.mark.integration
WINDOW = 250  # holds every valid candle produced, so all of them can be checked
N_CANDLES = 200
START, END = "2021-04-05", "2021-04-05T03:20"  # 200 one-minute candles, long past
SYMBOLS = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
# What Faust (mode) logs when an agent's actor dies and when its supervisor restarts it:
# mode/services.py Service.crash, mode/supervisors.py restart_service and its give-up.
CRASH_LINES = ("Crashed reason=", "Restarting dead", "Max restarts exceeded")


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    symbol: str | None  # the valid candle's symbol; None for a bad message
    ts: int | None
    bad: BadMessage | None


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory) -> dict[str, str]:
    return app_env(
        kafka.url,
        tmp_path_factory.mktemp("worker"),
        "it-bad-input",
        window_size=WINDOW,
        max_message_bytes=MAX_BYTES,
        future_tolerance_timeframes=2,
    )


def _candles(data_1m: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for symbol, name in SYMBOLS.items():
        df = load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(START), parse_time(END))
        rows = [
            {
                "symbol": symbol,
                "timestamp": int(r.timestamp),
                "open": float(r.open),
                "high": float(r.high),
                "low": float(r.low),
                "close": float(r.close),
                "volume": float(r.volume),
                "timeframe": "1m",
                "source": "test",
            }
            for r in df.itertuples(index=False)
        ]
        assert len(rows) == N_CANDLES, f"{name}: {len(rows)} candles in {START}..{END}"
        out[symbol] = rows
    return out


def _plan(candles: dict[str, list[dict[str, Any]]], now_ms: int) -> list[tuple[Any, ...]]:
    """(key, value, symbol, ts, bad): each BTC candle is followed by one ETH candle and
    then by one bad message built from that BTC candle (the newest held, for the window
    kinds), until the corpus is used up; one valid candle is re-sent (a no-op)."""
    btc, eth = candles["BTC/USDT"], candles["ETH/USDT"]
    n_kinds = len(bad_messages(btc[0], now_ms))
    assert n_kinds < N_CANDLES
    plan: list[tuple[Any, ...]] = []
    for i in range(N_CANDLES):
        for c in (btc[i], eth[i]):
            plan.append(
                (c["symbol"].encode(), json.dumps(c).encode(), c["symbol"], c["timestamp"], None)
            )
        if i < n_kinds:
            bad = bad_messages(btc[i], now_ms)[i]
            plan.append((bad.key, bad.value, None, None, bad))
        if i == n_kinds + 10:  # a re-sent candle already held: idempotent, no dead letter
            c = btc[5]
            plan.append((b"BTC/USDT", json.dumps(c).encode(), c["symbol"], c["timestamp"], None))
    return plan


@pytest.fixture(scope="module")
def produced(worker, env, data_1m) -> dict[str, Any]:
    candles = _candles(data_1m)
    plan = _plan(candles, int(time.time() * 1000))

    async def produce() -> list[Sent]:
        producer = make_producer(env["TINHIEU_BROKER_URL"], max_request_size=2**20)
        await producer.start()
        sent = []
        try:
            for key, value, symbol, ts, bad in plan:
                meta = await producer.send_and_wait("market_data", value, key=key)
                sent.append(Sent(meta.partition, meta.offset, symbol, ts, bad))
        finally:
            await producer.stop()
        return sent

    sent = asyncio.run(produce())
    bad = [s for s in sent if s.bad is not None]

    def letters() -> Any:
        found = asyncio.run(read_topic(env["TINHIEU_BROKER_URL"], "dead_letters"))
        objs = [o for o in (decode_json(v) for _, _, _, v in found) if o]
        objs = [o for o in objs if o.get("source_topic") == "market_data"]
        return objs if len(objs) >= len(bad) else (len(objs), len(bad))

    try:
        found = wait_for(
            letters,
            90,
            "a dead letter per bad message",
            interval=1.0,
            ready=lambda r: isinstance(r, list),
        )
    except AssertionError as exc:  # show what every task of the worker waits for
        os.kill(worker.proc.pid, signal.SIGUSR2)
        time.sleep(2)
        raise AssertionError(f"{exc}\nworker log:\n{worker.tail(20000)}") from None
    time.sleep(2)  # let any extra letters (valid candles refused by mistake) arrive too
    again = letters()
    if isinstance(again, list):
        found = again
    return {"candles": candles, "sent": sent, "letters": found}


def _window(worker: Worker, symbol: str) -> dict[str, Any]:
    status, body = worker.get(f"/windows/{symbol.replace('/', '-')}")
    return body if status == 200 else {}


def test_every_bad_message_is_a_dead_letter_with_its_code_and_offset(produced) -> None:
    by_place = {(o["partition"], o["offset"]): o for o in produced["letters"]}
    problems = []
    for s in produced["sent"]:
        if s.bad is None:
            continue
        letter = by_place.get((s.partition, s.offset))
        if letter is None:
            problems.append(
                f"{s.bad.name}: no dead letter at market_data[{s.partition}]@{s.offset}"
            )
        elif letter["code"] != s.bad.code:
            problems.append(
                f"{s.bad.name}: expected {s.bad.code}, got {letter['code']}: {letter['reason']}"
            )
        elif not letter["reason"]:
            problems.append(f"{s.bad.name}: dead letter without a reason")
    total = sum(1 for s in produced["sent"] if s.bad is not None)
    assert not problems, f"{len(problems)} of {total} bad messages wrong:\n" + "\n".join(problems)


def test_no_valid_candle_is_a_dead_letter(produced) -> None:
    valid = {(s.partition, s.offset): s for s in produced["sent"] if s.bad is None}
    wrong = [
        f"{valid[(o['partition'], o['offset'])].symbol} "
        f"{valid[(o['partition'], o['offset'])].ts}: {o['code']}: {o['reason']}"
        for o in produced["letters"]
        if (o["partition"], o["offset"]) in valid
    ]
    assert not wrong, f"{len(wrong)} valid candles dead-lettered:\n" + "\n".join(wrong[:20])


def test_every_valid_candle_reaches_its_window(worker, produced) -> None:
    for symbol, rows in produced["candles"].items():
        want = [c["timestamp"] for c in rows]
        deadline = time.monotonic() + 60
        while True:
            body = _window(worker, symbol)
            held = [c["timestamp"] for c in body.get("candles", [])]
            if held == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        missing = sorted(set(want) - set(held))
        extra = sorted(set(held) - set(want))
        assert held == want, (
            f"{symbol} window: {len(missing)} valid candles missing (first {missing[:3]}), "
            f"extra {extra[:5]}, {len(held)} held"
        )
        assert [c["close"] for c in body["candles"]] == [c["close"] for c in rows]
        assert [c["volume"] for c in body["candles"]] == [c["volume"] for c in rows]
        assert body["gaps"] == []


def test_a_refused_far_future_candle_does_not_block_its_symbol(worker, produced) -> None:
    sent = produced["sent"]
    at = next(i for i, s in enumerate(sent) if s.bad and s.bad.name == "far_future_2100")
    after = next(s for s in sent[at:] if s.symbol == "BTC/USDT")
    held = [c["timestamp"] for c in _window(worker, "BTC/USDT").get("candles", [])]
    assert after.ts in held, f"BTC candle {after.ts} after the 2100 candle is not in the window"
    assert max(held) < 4_102_444_800_000, "the 2100 candle entered the window"


def test_the_window_agent_never_crashed(worker, produced) -> None:
    assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
    log = worker.log_path.read_text(errors="replace")
    crashes = [line for line in log.splitlines() if any(c in line for c in CRASH_LINES)]
    assert not crashes, "agent crashed or restarted:\n" + "\n".join(crashes[:10])
    status, health = worker.get("/health")
    assert status == 200, health
