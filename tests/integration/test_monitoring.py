"""Live monitoring in a real worker on the embedded Apache Kafka, on real candles.

Models are trained on one period of BTC/USDT (``TRAIN``), then the worker gets a replay of
the days right after it (``STABLE``, the same regime) and then of a day whose volatility is
of another order (``SHIFT``: the crash of 19 May 2021). The test reads what an operator sees:

* ``signal_outcomes``: one outcome per verdict whose trade resolved, never two, written in
  the order the deciding candles came (partition order), each next to a published signal,
  several to a message;
* ``alerts``: no drift alert during the stable days; a feature drift alert within a bounded
  number of candles of the regime change, once (hysteresis), tagged ``[CANH BAO]`` in the
  worker's log;
* ``/monitoring/{symbol}`` and ``/api/v1/monitoring/{symbol}``: rolling quality beside the
  walk-forward figures, drift scores, the active alerts;
* ``/metrics``: the rolling accuracy and drift series.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.procs import app_env, run_command, topic_rows, wait_for
from tests.integration.procs import prometheus_query as query
from tinhieu.data import load_candles, parse_time
from tinhieu.registry import open_registry
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration

TRAIN = ("2021-05-04", "2021-05-11")
STABLE = ("2021-05-11", "2021-05-13")
SHIFT = ("2021-05-19", "2021-05-20")
SYMBOL, FILE = "BTC/USDT", "BTCUSDT_1m.csv.gz"
WEIGHTS = "rf=1,svm=1,lr=1"
# The drift monitor runs with its defaults (a window of 1440 candles, checks every 60); the
# bound on the detection delay is one window.
MONITOR: dict = {}
DELAY_BOUND = 1440


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, data_1m) -> Path:
    root = tmp_path_factory.mktemp("var")
    settings = load_settings(data_dir=root, ensemble_weights=WEIGHTS, model_registry="file")
    df = load_candles(data_1m / FILE, parse_time(TRAIN[0]), parse_time(TRAIN[1]))
    train_quick(df, SYMBOL, settings, open_registry(settings))
    return root / "models"


@pytest.fixture(scope="module")
def env(kafka, models_dir, tmp_path_factory):
    return app_env(kafka.url, tmp_path_factory.mktemp("worker-var"), "it-monitoring",
                   symbols="BTC/USDT", ensemble_weights=WEIGHTS, model_dir=models_dir,
                   model_registry="file", min_confidence=0.45, **MONITOR)



def replay(env, data_1m, period) -> int:
    run_command(env, "replay", str(data_1m / FILE), "--max", "--start", period[0],
                "--end", period[1])
    return len(load_candles(data_1m / FILE, parse_time(period[0]), parse_time(period[1])))


def test_outcomes_quality_drift_and_alerts(kafka, worker, env, data_1m) -> None:
    # --- the stable days: outcomes and quality, no drift ---------------------------------------
    n_stable = replay(env, data_1m, STABLE)
    signals = wait_for(lambda: topic_rows(kafka.url, "signals"), 180, "the stable days' signals",
                       interval=2, ready=lambda r: len(r) >= n_stable)
    assert len(signals) == n_stable
    verdicts = {s["candle_time"] for s in signals if not s["reason"]}
    messages = wait_for(lambda: topic_rows(kafka.url, "signal_outcomes"), 60, "outcomes",
                        interval=2, ready=lambda r: sum(len(m["outcomes"]) for m in r) > 1000)
    # gathered per symbol (outcome_flush_candles, default 5): far fewer messages than outcomes
    outcomes = [o for m in messages for o in m["outcomes"]]
    assert all(m["symbol"] == SYMBOL for m in messages) and len(messages) < len(outcomes) / 2
    per_candle = Counter(o["candle_time"] for o in outcomes)
    assert max(per_candle.values()) == 1, "an outcome was written twice"
    assert set(per_candle) <= verdicts, "an outcome without its verdict"
    exits = [o["exit_time"] for o in outcomes]
    assert exits == sorted(exits), "outcomes not in the order their deciding candles came"
    assert {o["label"] for o in outcomes} <= {"BUY", "NEUTRAL", "SELL"}
    assert all(o["correct"] == (o["action"] == o["label"]) for o in outcomes)

    stable_alerts = topic_rows(kafka.url, "alerts")
    assert not [a for a in stable_alerts if a["kind"].endswith("_drift")], stable_alerts

    web = worker.url
    status, body = worker.get("/monitoring/BTC-USDT")
    assert status == 200, body
    day = body["quality"]["86400s"]["champion"]
    assert day["n"] > 1000 and 0.0 <= day["accuracy"] <= 1.0
    assert body["walk_forward"]["accuracy"] is not None
    assert body["drift"]["rows"] > 0 and not body["drift"]["drifting"]["feature_drift"]
    assert worker.get("/api/v1/monitoring/btc")[1]["symbol"] == SYMBOL

    # --- the crash day: feature drift raised once, within the bound ---------------------------
    shift_start = parse_time(SHIFT[0])
    replay(env, data_1m, SHIFT)
    raised = wait_for(
        lambda: [a for a in topic_rows(kafka.url, "alerts")
                 if a["kind"] == "feature_drift" and a["state"] == "raised"],
        180, "a feature drift alert", interval=2, ready=bool)
    assert len(raised) == 1, "hysteresis: one alert per condition until it clears"
    delay = (raised[0]["at_ms"] - shift_start) // 60_000 + 1
    assert 0 < delay <= DELAY_BOUND, delay
    assert raised[0]["symbol"] == SYMBOL and raised[0]["message"]
    assert "[CANH BAO]" in worker.tail(10**7)

    status, body = worker.get("/monitoring/BTC-USDT")
    assert status == 200, body
    assert "feature_drift" in {a["kind"] for a in body["alerts"]}
    metrics = urllib.request.urlopen(f"{web}/metrics", timeout=10).read().decode()
    assert 'tinhieu_rolling_accuracy{model="champion",symbol="BTC/USDT",window="86400s"}' in metrics
    assert "tinhieu_drift_psi_max{" in metrics
    assert 'tinhieu_alerts_total{kind="feature_drift",state="raised",symbol="BTC/USDT"} 1.0' \
        in metrics


GRAPH_QUERIES = (
    'tinhieu_rolling_accuracy{window="86400s",model="champion"}',
    "tinhieu_drift_psi_max",
    'sum by (kind) (tinhieu_alerts_total{state="raised"})',
    "sum by (action, label) (tinhieu_signal_outcomes_total)",
)


def test_prometheus_has_the_monitoring_series(worker, prometheus) -> None:
    """After the replays above, a real Prometheus scraping the worker answers the queries of
    the dashboard's monitoring row (and, with MONITORING_SCREENSHOTS=docs/img, its graph page
    is saved as the screenshot docs/MONITORING.md shows)."""
    for promql in GRAPH_QUERIES:
        result = wait_for(lambda q=promql: query(prometheus, q), 30, promql, ready=bool)
        assert all(float(r["value"][1]) >= 0 for r in result)
    raised = {r["metric"]["kind"] for r in query(prometheus, GRAPH_QUERIES[2])}
    assert "feature_drift" in raised
    target = os.environ.get("MONITORING_SCREENSHOTS")
    if target:
        _graph_screenshot(prometheus, Path(target) / "prometheus-monitoring.png")


def _graph_screenshot(prometheus_url: str, path: Path) -> None:
    import time as _time

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.integration.test_dashboard_browser import _chromium

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,2700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        params = "&".join(
            f"g{i}.expr={urllib.parse.quote(q)}&g{i}.tab=0&g{i}.range_input=1m"
            for i, q in enumerate(GRAPH_QUERIES))
        _time.sleep(30)  # half the graphs' range of scrapes (Prometheus started after replays)
        driver.get(f"{prometheus_url}/graph?{params}")
        _time.sleep(4)  # the graphs draw after their queries return
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
