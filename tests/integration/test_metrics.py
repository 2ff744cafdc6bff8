"""``/metrics`` of a real worker after a replay of real candles, then scraped by a real
Prometheus server (Debian's ``prometheus`` package) whose query API returns the series."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.procs import ROOT, Worker, app_env, run_command, wait_for
from tests.integration.procs import prometheus_query as query
from tinhieu.kafka_io import make_producer

pytestmark = pytest.mark.integration
START, END = "2021-04-05T00:00", "2021-04-05T02:00"  # 120 candles per symbol
SYMBOLS = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
REPLAYED = 240
BAD = [(b"BTC/USDT", b"{not json"), (b"DOGE/USDT", b'{"symbol": "DOGE/USDT"}')]


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory):
    return app_env(kafka.url, tmp_path_factory.mktemp("worker"), "it-metrics")


def scrape(worker: Worker) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` as ``{sample name: {sorted labels: value}}``."""
    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(series: dict[tuple[tuple[str, str], ...], float] | None, **labels: str) -> float:
    return sum(
        value for key, value in (series or {}).items()
        if all(dict(key).get(k) == v for k, v in labels.items())
    )


async def send_bad_messages(broker_url: str) -> None:
    producer = make_producer(broker_url)
    await producer.start()
    try:
        for key, value in BAD:
            await producer.send_and_wait("market_data", value, key=key)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def replayed(worker, env, data_1m):
    asyncio.run(send_bad_messages(env["TINHIEU_BROKER_URL"]))
    files = [str(data_1m / f"{name}_1m.csv.gz") for name in SYMBOLS.values()]
    out = run_command(env, "replay", *files, "--max", "--start", START, "--end", END)
    assert f"replayed {REPLAYED} candles of 2 symbol(s)" in out
    return wait_for(
        lambda: scrape(worker), 60, f"{REPLAYED} signals counted on /metrics",
        ready=lambda m: total(m.get("tinhieu_signals_total")) >= REPLAYED
        and total(m.get("tinhieu_dead_letters_total")) >= len(BAD),
    )


def test_metrics_count_every_replayed_candle_and_signal(replayed) -> None:
    candles = replayed["tinhieu_candles_total"]
    signals = replayed["tinhieu_signals_total"]
    for symbol in SYMBOLS:
        assert total(candles, symbol=symbol) == REPLAYED / 2, symbol
        assert total(signals, symbol=symbol) == REPLAYED / 2, symbol
        # no model in this worker's registry: every signal is NEUTRAL and says why
        assert total(signals, symbol=symbol, action="NEUTRAL", reason="no_model") == REPLAYED / 2
        assert total(replayed["tinhieu_paper_equity"], symbol=symbol) == 10_000.0
    assert total(candles) == REPLAYED and total(signals) == REPLAYED
    assert total(replayed.get("tinhieu_orders_total")) == 0
    letters = replayed["tinhieu_dead_letters_total"]
    assert total(letters, code="decode_error") == 1
    assert total(letters, code="missing_field") == 1
    assert total(letters) == len(BAD)
    assert "tinhieu_model_info" not in replayed or not replayed["tinhieu_model_info"]


def test_latency_histograms_and_lag_are_sane(replayed) -> None:
    delivered = replayed["tinhieu_candle_to_delivered_seconds_count"][()]
    assert 1 <= delivered <= REPLAYED  # one observation per delivered batch
    seconds = replayed["tinhieu_candle_to_delivered_seconds_sum"][()] / delivered
    assert 0 < seconds < 120
    inf = replayed["tinhieu_candle_to_delivered_seconds_bucket"][(("le", "+Inf"),)]
    assert inf == delivered
    lag = replayed.get("tinhieu_consumer_lag", {})
    assert lag and all(value >= 0 for value in lag.values())
    assert any(dict(k)["topic"] == "market_data" for k in lag)


def test_faust_sensor_series_are_served(replayed) -> None:
    received = replayed["faust_messages_received_per_topic_total"]
    assert total(received, topic="market_data") >= REPLAYED
    # signals and orders go straight to the producer (streams.topics.publish_json), so the
    # sensor counts only Faust's own sends here: the table's changelog
    sent = replayed["faust_topic_messages_sent_total"]
    assert total(sent, topic="topic.it-metrics-symbol_to_window-changelog") >= 1
    assert replayed["process_resident_memory_bytes"][()] > 10e6


def test_prometheus_scrapes_the_worker_and_answers_queries(replayed, prometheus) -> None:
    began = time.monotonic()
    result = wait_for(
        lambda: query(prometheus, "sum by (symbol) (tinhieu_signals_total)"), 30,
        "the project's series in Prometheus", ready=lambda r: len(r) == len(SYMBOLS),
    )
    assert {r["metric"]["symbol"]: float(r["value"][1]) for r in result} == {
        symbol: REPLAYED / 2 for symbol in SYMBOLS
    }
    candles = query(prometheus, "sum(tinhieu_candles_total)")
    assert float(candles[0]["value"][1]) == REPLAYED
    up = query(prometheus, 'up{job="tinhieu"}')
    assert [float(r["value"][1]) for r in up] == [1.0]
    equity = query(prometheus, "tinhieu_paper_equity")
    assert {r["metric"]["symbol"] for r in equity} == set(SYMBOLS)
    letters = query(prometheus, "sum(tinhieu_dead_letters_total)")
    assert float(letters[0]["value"][1]) == len(BAD)
    assert query(prometheus, "faust_messages_received_total")
    assert query(prometheus, "histogram_quantile(0.99, tinhieu_candle_to_delivered_seconds_bucket)")
    assert time.monotonic() - began < 30


def test_every_dashboard_query_is_valid_promql_with_data(replayed, prometheus) -> None:
    """The Grafana dashboard in the repository asks this Prometheus only valid queries, and
    the project's panels have data after the replay."""
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/tinhieu.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    # two scrapes at least, so that rate() and increase() have two samples
    wait_for(lambda: query(prometheus, "count_over_time(tinhieu_candles_total[1m]) >= 3"),
             30, "three scrapes")
    empty = [e for e in exprs if not query(prometheus, e.replace("$__rate_interval", "1m"))]
    # without a model nothing is predicted, ordered, scored or drifting; only these panels
    # may be empty here (tests/integration/test_monitoring.py has models)
    allowed = ("tinhieu_predict_seconds", "tinhieu_orders_total", "tinhieu_model_info",
               "faust_total_error_messages_sent_total", 'reason!=""}', "tinhieu_rolling_",
               "tinhieu_drift_", "tinhieu_signal_outcomes_total")
    assert all(any(a in e for a in allowed) for e in empty), "\n".join(empty)


def test_the_compose_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    done = subprocess.run([promtool, "check", "config",
                           str(ROOT / "deploy/prometheus/prometheus.yml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
