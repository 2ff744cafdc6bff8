"""The model lifecycle end to end, on real candles through a real Kafka and a real worker:

1. a champion trained (``train``) on 10-13 April 2021 serves BTC/USDT;
2. four later days (20-24 April) are replayed through ``market_data``;
3. ``retrain`` trains a new version from the topic (no CSV); it becomes the challenger (or,
   when its promotion gate refuses it, it is made challenger by hand with a reason, which
   the history keeps: the shadow is what this test is about);
4. the worker picks the challenger up without a restart and runs it as a shadow on the next
   days (24-27 April): ``signals.shadow`` gets its signals, ``orders`` never does;
5. once both models have ``promotion_min_outcomes`` scored verdicts on the same candles, the
   shadow decides (promote or keep) with its numbers, in the worker's log, the trade log's
   ``model_decisions`` and the challenger's MLflow history; a promotion moves the champion.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.integration.procs import app_env, run_command, topic_rows, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.registry import open_registry
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration
SYM, FILE = "BTC/USDT", "BTCUSDT_1m.csv.gz"
CHAMPION_PERIOD = ("2021-04-10", "2021-04-13")
RETRAIN_PERIOD = ("2021-04-20", "2021-04-24")
SHADOW_PERIOD = ("2021-04-24", "2021-04-27")
SETTINGS = dict(symbols=SYM, ensemble_weights="rf=1,svm=1,lr=1", min_confidence=0.45,
                max_holding_candles=60, promotion_min_outcomes=400, promotion_min_trades=3,
                model_check_interval_s=2)


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory, data_1m):
    data_dir = tmp_path_factory.mktemp("worker")
    settings = load_settings(_env_file=None, data_dir=data_dir, **SETTINGS)
    df = load_candles(data_1m / FILE, *map(parse_time, CHAMPION_PERIOD))
    registry = open_registry(settings)
    train_quick(df, SYM, settings, registry)
    assert registry.aliases(SYM) == {"champion": "v1"}
    return app_env(kafka.url, data_dir, "it-lifecycle", **SETTINGS)



def replay(env, data_1m, period) -> int:
    run_command(env, "replay", str(data_1m / FILE), "--max", "--start", period[0],
                "--end", period[1])
    return len(load_candles(data_1m / FILE, *map(parse_time, period)))


def test_retrain_shadow_and_a_decision_on_evidence(kafka, env, worker, data_1m) -> None:
    n_first = replay(env, data_1m, RETRAIN_PERIOD)
    wait_for(lambda: topic_rows(kafka.url, "signals"), 180, "the first days' signals", interval=2,
             ready=lambda r: len(r) >= n_first)

    out = run_command(env, "retrain", "--symbols", SYM, "--days", "4", "--splits", "3",
                      timeout=300)
    settings = load_settings(_env_file=None, data_dir=env["TINHIEU_DATA_DIR"], **SETTINGS)
    registry = open_registry(settings)
    if registry.aliases(SYM).get("challenger") != "v2":  # the gate refused the retrain
        assert "gate NOT passed" in out, out
        run_command(env, "models", "promote", SYM, "v2", "--alias", "challenger", "--reason",
                    "lifecycle test: shadow the refused retrain")
    assert registry.aliases(SYM) == {"champion": "v1", "challenger": "v2"}

    def shadow_loaded() -> bool:
        status, body = worker.get("/health")
        return status == 200 and SYM in body["models"].get("shadow", {})

    wait_for(shadow_loaded, 60, "the worker loads the challenger as its shadow")
    n_shadow = replay(env, data_1m, SHADOW_PERIOD)
    shadow = wait_for(lambda: topic_rows(kafka.url, "signals.shadow"), 240, "the shadow's signals",
                      interval=2, ready=lambda r: len(r) >= n_shadow)
    times = [s["candle_time"] for s in shadow]
    assert len(times) == len(set(times)) == n_shadow  # one per candle, every candle
    challenger_models = {s["model_version"] for s in shadow}
    assert all(":v2" in v for v in challenger_models), challenger_models
    orders = topic_rows(kafka.url, "orders")
    assert not [o for o in orders if ":v2" in o["model_version"]], "the shadow placed an order"

    # the decision, with its numbers, in the trade log and in MLflow
    db = Path(env["TINHIEU_DATA_DIR"]) / "trades.db"

    def decisions() -> list[dict]:
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute("SELECT * FROM model_decisions")]
            except sqlite3.OperationalError:
                return []

    try:
        made = wait_for(decisions, 120, "a decision on the challenger", interval=2, ready=bool)
    except AssertionError:
        raise AssertionError(f"no decision; /models: {worker.get('/models/BTC-USDT')}") from None
    first = made[0]
    assert first["challenger"] == "v2" and first["actor"] == "shadow"
    assert first["decision"] in ("promote", "keep")
    evidence = json.loads(first["evidence"])
    assert evidence["challenger"]["n"] >= 400 and evidence["champion"]["n"] >= 400
    assert "over" in first["reason"] and "edge" in first["reason"], first["reason"]
    assert f"challenger v2: {first['decision']}" in worker.tail(10**7)
    history = run_command(env, "models", "history", SYM)
    assert "shadow" in history, history
    _, body = worker.get("/models/BTC-USDT")
    if first["decision"] == "promote":
        assert registry.aliases(SYM) == {"champion": "v2"}
    else:
        assert registry.aliases(SYM) == {"champion": "v1", "challenger": "v2"}
        assert body["shadow"]["challenger"] == "v2"
        assert body["shadow"]["decisions"][0]["decision"] == "keep"
        assert body["shadow"]["challenger_figures"]["n"] >= 400
