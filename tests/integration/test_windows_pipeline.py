"""Replay real candles through the embedded Apache Kafka into a real worker; check the
windows over HTTP, and that malformed messages end in dead_letters while valid ones pass."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from tests.integration.procs import Worker, app_env, run_command, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.kafka_io import decode_json, make_producer, read_topic

pytestmark = pytest.mark.integration
WINDOW = 60
DAY_START, DAY_END = "2021-04-05", "2021-04-06"


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory):
    return app_env(kafka.url, tmp_path_factory.mktemp("worker"), "it-windows", window_size=WINDOW)


def window_last(worker: Worker, path: str) -> int | None:
    status, body = worker.get(path)
    return body.get("last") if status == 200 else None


@pytest.fixture(scope="module")
def replayed(worker, env, data_1m):
    files = [str(data_1m / "BTCUSDT_1m.csv.gz"), str(data_1m / "ETHUSDT_1m.csv.gz")]
    out = run_command(env, "replay", *files, "--max", "--start", DAY_START, "--end", DAY_END)
    assert "replayed 2880 candles of 2 symbol(s)" in out
    expected = {}
    for sym, name in (("BTC-USDT", "BTCUSDT"), ("ETH-USDT", "ETHUSDT")):
        df = load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(DAY_START), parse_time(DAY_END))
        expected[sym] = df
        last = int(df["timestamp"].iloc[-1])
        wait_for(
            lambda s=sym, t=last: window_last(worker, f"/windows/{s}") == t,
            60,
            f"{sym} window to reach {last}",
        )
    return expected


def test_each_window_equals_the_last_n_candles_of_the_csv(worker, replayed) -> None:
    for sym, df in replayed.items():
        status, body = worker.get(f"/windows/{sym}")
        assert status == 200
        tail = df.tail(WINDOW)
        assert body["size"] == WINDOW
        assert [c["timestamp"] for c in body["candles"]] == tail["timestamp"].tolist()
        for col in ("open", "high", "low", "close", "volume"):
            assert [c[col] for c in body["candles"]] == tail[col].tolist(), col
        assert body["gaps"] == []


@pytest.mark.parametrize("form", ["BTC/USDT", "btc", "BTCUSDT", "btc-usdt"])
def test_every_symbol_form_is_served(worker, replayed, form) -> None:
    status, body = worker.get(f"/windows/{form}")
    assert status == 200 and body["symbol"] == "BTC/USDT"


def test_unknown_symbol_is_404_with_the_supported_list(worker) -> None:
    status, body = worker.get("/windows/DOGE")
    assert status == 404
    assert "DOGE" in body["error"] and "BTC/USDT" in body["supported"]


def _bad_and_good(df_next, t_old: int) -> list[tuple[bytes, bytes, str | None]]:
    """Interleave malformed messages with valid BTC candles: (key, value, expected code)."""

    def candle(row, **over):
        d = {
            "symbol": "BTC/USDT",
            "timestamp": int(row.timestamp),
            "open": row.open,
            "high": row.high,
            "low": row.low,
            "close": row.close,
            "volume": row.volume,
            "timeframe": "1m",
            "source": "test",
        }
        d.update(over)
        return json.dumps(d).encode()

    rows = list(df_next.itertuples(index=False))
    bad = [
        (b"BTC/USDT", b"\x00\xffnot json", "decode_error"),
        (b"BTC/USDT", candle(rows[0], close=math.nan), "non_finite"),
        (b"BTC/USDT", candle(rows[0], high=rows[0].low / 2), "invalid_range"),
        (b"BTC/USDT", candle(rows[0], volume=-5.0), "invalid_volume"),
        (b"DOGE/USDT", candle(rows[0], symbol="DOGE/USDT"), "unknown_symbol"),
        (b"BTC/USDT", candle(rows[0], timestamp=int(rows[0].timestamp) + 7), "misaligned_time"),
        (b"BTC/USDT", json.dumps({"symbol": "BTC/USDT", "open": 1.0}).encode(), "missing_field"),
        (b"BTC/USDT", candle(rows[0], timestamp=t_old), "out_of_order"),
        (b"ETH/USDT", candle(rows[0]), "key_mismatch"),
        (b"BTC/USDT", candle(rows[0], close=-1.0), "invalid_price"),
    ]
    out: list[tuple[bytes, bytes, str | None]] = []
    for i, row in enumerate(rows):
        out.append((b"BTC/USDT", candle(row), None))
        if i < len(bad):
            out.append(bad[i])
    out.append((b"BTC/USDT", candle(rows[5]), None))  # a re-sent valid candle: idempotent
    return out


def test_malformed_messages_go_to_dead_letters_and_lose_nothing(
    worker, env, replayed, data_1m
) -> None:
    day2 = load_candles(
        data_1m / "BTCUSDT_1m.csv.gz", parse_time(DAY_END), parse_time("2021-04-06T00:30")
    )
    t_old = int(replayed["BTC-USDT"]["timestamp"].iloc[100])
    messages = _bad_and_good(day2, t_old)

    async def produce() -> None:
        producer = make_producer(env["TINHIEU_BROKER_URL"])
        await producer.start()
        try:
            for key, value, _ in messages:
                await producer.send_and_wait("market_data", value, key=key)
        finally:
            await producer.stop()

    asyncio.run(produce())
    last = int(day2["timestamp"].iloc[-1])
    wait_for(lambda: window_last(worker, "/windows/BTC-USDT") == last, 60, "BTC window")
    # Every valid candle reached the window, in order, nothing else did.
    status, body = worker.get("/windows/BTC-USDT")
    expected = load_candles(
        data_1m / "BTCUSDT_1m.csv.gz", parse_time(DAY_START), parse_time("2021-04-06T00:30")
    ).tail(WINDOW)
    assert [c["timestamp"] for c in body["candles"]] == expected["timestamp"].tolist()
    assert [c["close"] for c in body["candles"]] == expected["close"].tolist()

    # Every bad message is in dead_letters with its reason and source offset.
    want = sorted(code for _, _, code in messages if code)

    def letters():
        found = asyncio.run(read_topic(env["TINHIEU_BROKER_URL"], "dead_letters"))
        objs = [decode_json(v) for _, _, _, v in found]
        objs = [o for o in objs if o]
        return objs if len(objs) >= len(want) else (len(objs), [o["code"] for o in objs])

    found = wait_for(letters, 30, "dead letters", ready=lambda r: isinstance(r, list))
    assert sorted(o["code"] for o in found) == want
    for letter in found:
        assert letter["source_topic"] == "market_data"
        assert letter["offset"] >= 0 and letter["partition"] >= 0
        assert letter["reason"] and letter["agent"] == "process_candles"
    decode = next(o for o in found if o["code"] == "decode_error")
    assert "not json" in decode["payload"]
    # The worker is still healthy after all of it.
    assert worker.get("/health")[0] == 200


def test_health_reports_broker_lag_models_and_last_candles(worker, replayed) -> None:
    status, health = worker.get("/health")
    assert status == 200 and health["status"] == "ok"
    assert health["broker"]["reachable"] is True
    lag = {k: v for k, v in health["lag"].items() if k.startswith("market_data[")}
    assert lag and all(v["lag"] == 0 and not v["stalled"] for v in lag.values())
    for sym in replayed:
        assert health["last_candle"][sym.replace("-", "/")] == window_last(
            worker, f"/windows/{sym}"
        )
    # No model trained in this worker's registry: said clearly, and every candle still has
    # a signal (NEUTRAL, no votes, the reason) so the broker advances the book.
    assert "BTC/USDT" in health["models"]["missing"]
    status, body = worker.get("/signals/BTC-USDT")
    assert status == 200, body
    assert body["candle_time"] == health["last_candle"]["BTC/USDT"]
    assert (body["action"], body["reason"], body["votes"]) == ("NEUTRAL", "no_model", [])
