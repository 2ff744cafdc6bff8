"""A real worker follows the MLflow aliases while candles flow: two versions are trained into
the default store (``<data_dir>/mlflow.db``), v1 champion and v2 challenger; candles are
replayed at a steady pace and ``models promote BTC/USDT v2`` runs in the middle. Every candle
gets exactly one signal, and the version in the verdicts switches from v1 to v2 once and
never back (the new ensemble is loaded off the loop and swapped in one assignment)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.procs import app_env, run_command, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.kafka_io import decode_json, read_topic
from tinhieu.registry import open_registry
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration
SYM, NAME = "BTC/USDT", "BTCUSDT"
TRAIN_V1 = ("2021-04-10", "2021-04-13")
TRAIN_V2 = ("2021-04-13", "2021-04-16")
DAY = "2021-04-21"
CANDLES = 900  # 300 warm-up candles, then verdicts
SPEED = 1200  # 20 candles a second: the replay lasts ~45 s
WEIGHTS = "rf=1,svm=1,lr=1"
V1 = "rf:v1,svm:v1,lr:v1"
V2 = "rf:v2,svm:v2,lr:v2"


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory, data_1m):
    data_dir = tmp_path_factory.mktemp("worker")
    settings = load_settings(_env_file=None, data_dir=data_dir, symbols=SYM,
                             ensemble_weights=WEIGHTS, min_confidence=0.45)
    registry = open_registry(settings)
    for start, end in (TRAIN_V1, TRAIN_V2):
        df = load_candles(data_1m / f"{NAME}_1m.csv.gz", parse_time(start), parse_time(end))
        train_quick(df, SYM, settings, registry)
    assert registry.aliases(SYM) == {"champion": "v1", "challenger": "v2"}
    return app_env(kafka.url, data_dir, "it-model-alias", symbols=SYM,
                   ensemble_weights=WEIGHTS, min_confidence=0.45, model_check_interval_s=1)


def signals(url: str) -> list[dict]:
    rows = asyncio.run(read_topic(url, "signals"))
    return [o for o in (decode_json(v) for _, _, _, v in rows) if o]


def test_worker_switches_to_the_new_champion_without_losing_a_signal(
    kafka, env, worker, data_1m: Path
) -> None:
    # The first poll imports MLflow and loads v1 off the loop: wait for it (bounded).
    status, health = wait_for(lambda: worker.get("/health"), 60, "v1 loaded",
                              ready=lambda r: r[0] == 200 and r[1]["models"]["loaded"])
    assert health["models"]["loaded"] == {SYM: V1}, health["models"]
    assert health["models"]["aliases"][SYM] == {"champion": "v1", "challenger": "v2"}

    failed: list[BaseException] = []

    def replay() -> None:
        try:
            run_command(env, "replay", str(data_1m / f"{NAME}_1m.csv.gz"), "--start", DAY,
                        "--limit", str(CANDLES), "--speed", str(SPEED))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failed.append(exc)

    thread = threading.Thread(target=replay, daemon=True)
    thread.start()
    # Verdicts of v1 are flowing: promote the challenger in the middle of the stream.
    wait_for(lambda: signals(kafka.url), 120, "verdicts of v1", interval=1,
             ready=lambda r: sum(s["model_version"] == V1 for s in r) >= 20)
    out = run_command(env, "models", "promote", SYM, "v2", "--reason", "integration test")
    assert "champion -> v2 (was v1)" in out
    thread.join(timeout=180)
    assert not failed, failed
    rows = wait_for(lambda: signals(kafka.url), 120, "every signal", interval=1,
                    ready=lambda r: len(r) >= CANDLES)

    per_candle = Counter(s["candle_time"] for s in rows)
    assert len(rows) == CANDLES and set(per_candle.values()) == {1}  # none lost, none twice
    verdicts = [s["model_version"] for s in sorted(rows, key=lambda s: s["candle_time"])
                if s["reason"] == ""]
    assert set(verdicts) == {V1, V2}
    switch = verdicts.index(V2)
    assert switch > 0 and all(v == V2 for v in verdicts[switch:])  # once, never back

    status, health = worker.get("/health")
    assert health["models"]["loaded"] == {SYM: V2}
    assert health["models"]["aliases"][SYM] == {"champion": "v2"}
    history = run_command(env, "models", "history", SYM)
    assert "champion   -> v2" in history and "by manual" in history
    assert "integration test" in history
