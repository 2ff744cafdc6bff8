"""Retraining from the stream: a fresh worker creates market_data with the configured
retention; a week of real candles is replayed through Kafka (one day twice); with a champion
trained by ``train`` on an earlier period, ``retrain --symbols BTC/USDT --days 6`` reads the
symbol's partition (no CSV, no exchange) and registers a new version: ``challenger`` when the
promotion gate passes, no alias (the reason printed and tagged) when it does not. The version
records the candle range read from Kafka; a symbol with no candles is refused with the number
needed."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.integration.procs import FAUST, ROOT, app_env, run_command
from tinhieu.data import load_candles, parse_time
from tinhieu.kafka_io import ensure_topics, topic_configs
from tinhieu.mlflow_registry import model_name
from tinhieu.registry import open_registry
from tinhieu.retrain import DAY_MS, iso, retention_warning
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration
SYM, NAME = "BTC/USDT", "BTCUSDT"
SYMBOLS = "BTC/USDT,ETH/USDT"
CHAMPION_PERIOD = ("2021-04-10", "2021-04-13")
REPLAY = ("2021-04-20", "2021-04-27")
DAYS = 6
RETENTION_DAYS = 10


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory, data_1m):
    data_dir = tmp_path_factory.mktemp("worker")
    settings = load_settings(_env_file=None, data_dir=data_dir, symbols=SYMBOLS)
    registry = open_registry(settings)
    df = load_candles(data_1m / f"{NAME}_1m.csv.gz", *map(parse_time, CHAMPION_PERIOD))
    train_quick(df, SYM, settings, registry)
    assert registry.aliases(SYM) == {"champion": "v1"}
    return app_env(kafka.url, data_dir, "it-retrain", symbols=SYMBOLS,
                   market_data_retention_days=RETENTION_DAYS)


def test_retrain_reads_market_data_and_registers_a_version(kafka, env, worker,
                                                          data_1m) -> None:
    # A fresh worker declared market_data with the configured retention.
    configs = asyncio.run(topic_configs(kafka.url, "market_data"))
    assert configs is not None
    assert configs["retention.ms"] == str(RETENTION_DAYS * DAY_MS)
    worker.stop()  # the rest needs Kafka only; the CPU goes to training
    log = worker.tail(1_000_000)
    assert "cannot read the configs" not in log and "keeps" not in log, log[-3000:]

    path = str(data_1m / f"{NAME}_1m.csv.gz")
    run_command(env, "replay", path, "--start", REPLAY[0], "--end", REPLAY[1], "--max")
    run_command(env, "replay", path, "--start", "2021-04-26", "--end", REPLAY[1], "--max")

    out = run_command(env, "retrain", "--symbols", SYM, "--days", str(DAYS), "--splits", "3",
                      timeout=240)
    print(out)  # the per-symbol summary, shown with -rP
    csv = load_candles(path, *map(parse_time, REPLAY))
    end_ms = int(csv["timestamp"].iloc[-1])
    window = csv[csv["timestamp"] > end_ms - DAYS * DAY_MS]
    start_ms, rows = int(window["timestamp"].iloc[0]), len(window)
    assert (f"{SYM}: {rows} candles from market_data ({iso(start_ms)} -> {iso(end_ms)} UTC"
            in out), out
    assert "1440 duplicates" in out, out

    settings = load_settings(_env_file=None, data_dir=env["TINHIEU_DATA_DIR"], symbols=SYMBOLS)
    registry = open_registry(settings)
    aliases = registry.aliases(SYM)
    rows_v2 = [r for r in registry.list(SYM) if r.get("version") == "v2"]
    assert rows_v2, out  # the retrain registered a new version
    if "gate passed" in out:
        assert aliases == {"champion": "v1", "challenger": "v2"}, out
        assert "version v2 -> challenger" in out
        history = run_command(env, "models", "history", SYM)
        assert "challenger -> v2" in history and "by retrain" in history
    else:  # the gate refused it: registered without alias, the reason said and kept
        assert aliases == {"champion": "v1"}, out
        assert "gate NOT passed" in out and "version v2 -> no alias" in out
    client = registry._reader()
    tags = client.get_model_version(model_name(SYM), "2").tags
    assert tags["data_source.kind"] == "kafka" and tags["data_source.topic"] == "market_data"
    assert tags["data_source.start_ms"] == str(start_ms)
    assert tags["data_source.end_ms"] == str(end_ms)
    assert tags["data_source.candles"] == str(rows)
    assert tags["tinhieu.kind"] == "retrain"
    if "gate NOT passed" in out:
        assert tags["promotion.reason"] and tags["promotion.reason"] in out
    run = client.get_run(tags["run_id"])
    assert run.data.params["data_source.start_ms"] == str(start_ms)
    assert run.data.params["data_source.end_ms"] == str(end_ms)

    # A symbol with no candles on the topic is refused, saying how many are needed.
    done = subprocess.run([FAUST, "-A", "streams.app", "retrain", "--symbols", "ETH/USDT"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ETH/USDT: refused: only 0 candles on market_data in the last 10 days" in done.stdout
    assert "retraining needs at least" in done.stdout


def test_an_existing_topic_with_a_shorter_retention_is_reported(kafka) -> None:
    # What the worker does at start for market_data (streams/topics.py), on a topic created
    # the way `replay` and `make run` create it, with the broker's default week.
    week = {"retention.ms": str(7 * DAY_MS)}
    asyncio.run(ensure_topics(kafka.url, ["old_market_data"], 2, 1, {"old_market_data": week}))
    configs = asyncio.run(topic_configs(kafka.url, "old_market_data"))
    assert configs is not None and configs["retention.ms"] == week["retention.ms"]
    warning = retention_warning("old_market_data", configs, 30)
    assert warning is not None and "keeps 7 days" in warning
    assert "TINHIEU_MARKET_DATA_RETENTION_DAYS" in warning and "kafka-configs" in warning
    assert asyncio.run(topic_configs(kafka.url, "no_such_topic")) is None
