"""Models trained on real data run in a real worker on the embedded Apache Kafka:
replay yields one signal per candle (a model verdict once the indicators settled, NEUTRAL
with the reason before), and the orders the broker
agent places are exactly the orders the offline backtest computes from the same candles
(same ids, sides, prices, amounts): one code path for features, ensemble and risk rules."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.procs import Worker, app_env, run_command, topic_rows, wait_for
from tinhieu.backtest import read_orders_jsonl, run_backtest
from tinhieu.candles import Bar, bar_to_dict
from tinhieu.data import load_candles, parse_time
from tinhieu.features import WARMUP
from tinhieu.kafka_embedded import EmbeddedKafka
from tinhieu.kafka_io import make_producer
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration
TRAIN = ("2021-04-10", "2021-04-17")
DAY = ("2021-04-21", "2021-04-22")
SYMBOLS = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
# A lower bar than the 60 % default so that a single day of quick models trades at all.
MIN_CONFIDENCE = 0.45
# Quick models are not calibrated, so their walk-forward log-loss skill (the default
# ensemble weights) is about zero: weigh the three equally, in the worker and offline alike.
WEIGHTS = "rf=1,svm=1,lr=1"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, data_1m) -> Path:
    root = tmp_path_factory.mktemp("var")
    settings = load_settings(data_dir=root, min_confidence=MIN_CONFIDENCE, ensemble_weights=WEIGHTS)
    registry = ModelRegistry(settings.models_path)
    for sym, name in SYMBOLS.items():
        df = load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(TRAIN[0]), parse_time(TRAIN[1]))
        train_quick(df, sym, settings, registry)
    return root



def test_replay_signals_and_orders_equal_the_backtest(data_dir, data_1m, tmp_path):
    with EmbeddedKafka(tmp_path / "kafka") as kafka:
        _run(kafka, data_dir, data_1m, tmp_path, "at_least_once")


def _run(kafka, data_dir, data_1m, tmp_path, guarantee):
    env = app_env(
        kafka.url,
        tmp_path / "var",
        f"it-signals-{guarantee}",
        min_confidence=MIN_CONFIDENCE,
        ensemble_weights=WEIGHTS,
        processing_guarantee=guarantee,
        model_dir=data_dir / "models",
        trade_db=tmp_path / "trades.db",
    )
    frames = {
        sym: load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(DAY[0]), parse_time(DAY[1]))
        for sym, name in SYMBOLS.items()
    }
    expected_signals = sum(len(df) for df in frames.values())

    # Offline: the backtest over the same candles.
    settings = load_settings(
        data_dir=data_dir, min_confidence=MIN_CONFIDENCE, ensemble_weights=WEIGHTS
    )
    result = run_backtest(
        frames,
        settings,
        ModelRegistry(settings.models_path),
        start_ms=parse_time(DAY[0]),
        end_ms=parse_time(DAY[1]),
        out_dir=tmp_path / "bt",
        progress=False,
    )
    offline = read_orders_jsonl(tmp_path / "bt" / "orders.jsonl")
    assert len(offline) >= 2, "the day must trade for the comparison to mean anything"
    del result

    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        files = [str(data_1m / f"{name}_1m.csv.gz") for name in SYMBOLS.values()]
        run_command(env, "replay", *files, "--max", "--start", DAY[0], "--end", DAY[1])
        signals = wait_for(
            lambda: topic_rows(kafka.url, "signals"),
            180,
            "all signals",
            interval=2,
            ready=lambda r: len(r) >= expected_signals,
        )
        # One signal per candle, never two: a verdict once the indicators settled.
        per_candle = Counter((s["symbol"], s["candle_time"]) for s in signals)
        assert len(signals) == expected_signals and max(per_candle.values()) == 1
        for sym, df in frames.items():
            times = sorted(t for s, t in per_candle if s == sym)
            assert times == df["timestamp"].tolist()
            settled = df["timestamp"].iloc[WARMUP - 1]
            mine = [s for s in signals if s["symbol"] == sym]
            assert {s["reason"] for s in mine if s["candle_time"] < settled} == {"warming_up"}
            verdicts = [s for s in mine if s["candle_time"] >= settled]
            assert all(s["reason"] == "" and len(s["votes"]) == 3 for s in verdicts)
            assert all(0 <= s["confidence"] <= 1 for s in verdicts)

        live = wait_for(
            lambda: topic_rows(kafka.url, "orders"),
            60,
            "orders",
            interval=1,
            ready=lambda r: len(r) >= len(offline),
        )
        key = lambda o: (o["id"], o["side"], o["price"], o["amount"], o["reason"])  # noqa: E731
        assert sorted(map(key, live)) == sorted(map(key, offline))

        # The views read the worker's tables, which the agents update as they go: wait
        # (bounded) until the latest signal and the book describe the last candle.
        last_btc = int(frames["BTC/USDT"]["timestamp"].iloc[-1])
        last_eth = int(frames["ETH/USDT"]["timestamp"].iloc[-1])
        wait_for(
            lambda: worker.get("/signals/BTC-USDT"),
            60,
            "the latest BTC signal",
            ready=lambda r: r[0] == 200 and r[1]["candle_time"] == last_btc,
        )
        wait_for(
            lambda: worker.get("/positions/ETH-USDT"),
            60,
            "the ETH book",
            ready=lambda r: r[0] == 200 and r[1]["last_candle_time"] == last_eth,
        )
        status, allbooks = worker.get("/positions")
        assert status == 200 and set(allbooks["positions"]) >= set(SYMBOLS)
        status, health = worker.get("/health")
        assert set(health["models"]["loaded"]) == set(SYMBOLS)
    finally:
        worker.stop()
    # A full-speed replay fills no producer buffer: the record is written once per batch
    # (the earlier design logged "producer buffer full" 229 times in such a replay).
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "producer buffer full" not in log
    assert "Traceback" not in log
    # The SQLite trade log holds each order exactly once.
    db = sqlite3.connect(tmp_path / "trades.db")
    ids = [r[0] for r in db.execute("SELECT id FROM trades")]
    equity = db.execute("SELECT COUNT(*), COUNT(DISTINCT symbol) FROM equity").fetchone()
    positions = db.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
    db.close()
    assert equity[0] >= 2 * 20 and equity[1] == 2  # every fill and every hour, per symbol
    assert positions >= 1
    assert sorted(ids) == sorted(o["id"] for o in offline)


def test_a_gap_through_the_stop_fills_live_as_in_the_backtest_without_models(
    data_dir, data_1m, tmp_path
):
    """A position is open, the symbol's models are removed, and the next candle opens below
    the stop: the worker still checks the stop on that candle (its signal is a NEUTRAL with
    the reason) and fills at the open, exactly as the backtest does."""
    sym, name = "BTC/USDT", "BTCUSDT"
    day = load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(DAY[0]), parse_time(DAY[1]))
    settings = load_settings(
        data_dir=data_dir, min_confidence=MIN_CONFIDENCE, ensemble_weights=WEIGHTS
    )
    registry = ModelRegistry(settings.models_path)
    full = run_backtest(
        {sym: day},
        settings,
        registry,
        start_ms=parse_time(DAY[0]),
        end_ms=parse_time(DAY[1]),
        out_dir=tmp_path / "bt-day",
        progress=False,
    )
    res = full.symbols[sym]
    times = day["timestamp"].tolist()
    # An entry whose candle's own signal does not also ask to sell (that would exit at the
    # next open by signal, before any stop).
    entry = next(
        f
        for f in res.fills
        if f.side == "BUY"
        and not (
            res.actions[times.index(f.fill_time)] == -1
            and res.confidences[times.index(f.fill_time)] >= MIN_CONFIDENCE
        )
    )
    upto = day.iloc[: times.index(entry.fill_time) + 1]
    gap_open = entry.stop_loss * 0.97
    crafted = {
        "timestamp": entry.fill_time + 60_000,
        "open": gap_open,
        "high": gap_open * 1.001,
        "low": gap_open * 0.995,
        "close": gap_open * 0.998,
        "volume": 1.0,
    }
    frame = pd.concat([upto, pd.DataFrame([crafted])], ignore_index=True)
    offline = run_backtest(
        {sym: frame},
        settings,
        registry,
        start_ms=parse_time(DAY[0]),
        end_ms=None,
        out_dir=tmp_path / "bt-gap",
        progress=False,
    )
    expected = offline.symbols[sym].fills[-1]
    assert (expected.side, expected.reason, expected.price) == ("SELL", "stop_loss", gap_open)
    assert expected.fill_time == crafted["timestamp"]

    models = tmp_path / "models"
    shutil.copytree(settings.models_path, models)
    with EmbeddedKafka(tmp_path / "kafka") as kafka:
        env = app_env(
            kafka.url,
            tmp_path / "var",
            "it-gap",
            min_confidence=MIN_CONFIDENCE,
            ensemble_weights=WEIGHTS,
            model_dir=models,
            model_check_interval_s=1,
            symbols=sym,
            trade_db=tmp_path / "trades.db",
        )
        worker = Worker(env, tmp_path / "worker.log").start()
        try:
            worker.wait_ready()
            run_command(
                env,
                "replay",
                str(data_1m / f"{name}_1m.csv.gz"),
                "--max",
                "--start",
                DAY[0],
                "--end",
                str(entry.fill_time + 60_000),
            )
            wait_for(
                lambda: worker.get("/positions/BTC-USDT"),
                120,
                "the open position",
                ready=lambda r: r[0] == 200 and r[1]["last_candle_time"] == entry.fill_time,
            )
            book = worker.get("/positions/BTC-USDT")[1]
            assert book["qty"] == pytest.approx(entry.amount, rel=1e-12)
            assert book["stop_loss"] == pytest.approx(entry.stop_loss, rel=1e-12)

            shutil.rmtree(ModelRegistry(models)._symbol_dir(sym))
            wait_for(
                lambda: worker.get("/health"),
                60,
                "the models to be gone",
                ready=lambda r: sym in r[1]["models"]["missing"],
            )
            asyncio.run(produce_candle(kafka.url, sym, crafted))
            live = wait_for(
                lambda: topic_rows(kafka.url, "orders"),
                60,
                "the stop fill",
                ready=lambda r: any(o["side"] == "SELL" for o in r),
            )
            signal = worker.get("/signals/BTC-USDT")[1]
        finally:
            worker.stop()
    stop = [o for o in live if o["side"] == "SELL"]
    assert len(stop) == 1
    assert (stop[0]["id"], stop[0]["reason"], stop[0]["fill_time"]) == (
        expected.id,
        "stop_loss",
        crafted["timestamp"],
    )
    assert stop[0]["price"] == pytest.approx(expected.price, rel=1e-12)
    assert stop[0]["amount"] == pytest.approx(expected.amount, rel=1e-12)
    assert (signal["candle_time"], signal["action"], signal["reason"]) == (
        crafted["timestamp"],
        "NEUTRAL",
        "no_model",
    )


async def produce_candle(url: str, symbol: str, row: dict) -> None:
    producer = make_producer(url)
    await producer.start()
    try:
        value = bar_to_dict(
            symbol,
            Bar(
                int(row["timestamp"]),
                row["open"],
                row["high"],
                row["low"],
                row["close"],
                row["volume"],
            ),
            "1m",
            "test",
        )
        await producer.send_and_wait("market_data", json.dumps(value).encode(), key=symbol.encode())
    finally:
        await producer.stop()
