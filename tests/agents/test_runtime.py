"""Blocking work leaves the event loop: the trade log's writes run on its own thread and
model loading in an executor, so a slow disk or a large model cannot stall heartbeats."""

from __future__ import annotations

import asyncio
import threading
import time

from streams.runtime import Runtime
from tinhieu.broker import RiskConfig, new_state
from tinhieu.settings import load_settings


async def _ticks_while(work) -> tuple[int, object]:
    """How often the loop ran a 10 ms ticker while ``work`` was awaited."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        task.cancel()
    return ticks, result


async def test_trade_log_writes_run_on_their_own_thread(tmp_path) -> None:
    runtime = Runtime(load_settings(_env_file=None, data_dir=tmp_path))
    loop_thread = threading.current_thread()

    def slow_write(db):  # a slow disk: 0.3 s of blocking I/O
        time.sleep(0.3)
        db.upsert_position("BTC/USDT", new_state("BTC/USDT", RiskConfig()))
        return threading.current_thread()

    try:
        ticks, thread = await _ticks_while(runtime.trade_log(slow_write))
        rows = await runtime.trade_log(lambda db: db.positions())
    finally:
        runtime.close()
    assert thread is not loop_thread and thread.name.startswith("tradelog")
    assert ticks >= 10  # the loop kept running while the disk was slow
    assert [r["symbol"] for r in rows] == ["BTC/USDT"]


async def test_model_loading_runs_in_an_executor(tmp_path) -> None:
    runtime = Runtime(load_settings(_env_file=None, data_dir=tmp_path, symbols="btc,eth"))
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []

    def slow_refresh_all(symbols) -> None:  # a large model: 0.3 s to load
        seen.append(threading.current_thread())
        time.sleep(0.3)

    runtime.models.refresh_all = slow_refresh_all  # type: ignore[method-assign]
    try:
        assert not runtime.models_loaded.is_set()
        ticks, _ = await _ticks_while(runtime.refresh_models())
    finally:
        runtime.close()
    assert seen and seen[0] is not loop_thread
    assert ticks >= 10
    assert runtime.models_loaded.is_set()  # the candle agent may start


async def test_a_registry_that_fails_does_not_hold_the_agent_back(tmp_path) -> None:
    runtime = Runtime(load_settings(_env_file=None, data_dir=tmp_path))

    def broken(symbols) -> None:
        raise PermissionError("models folder not readable")

    runtime.models.refresh_all = broken  # type: ignore[method-assign]
    try:
        await runtime.refresh_models()  # logged, not raised: the timer tries again
    finally:
        runtime.close()
    assert runtime.models_loaded.is_set()
