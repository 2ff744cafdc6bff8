"""The scheduled retrain's runtime (agents/retrain.py): off by default, one run at a time in a
child process whose summary lines reach the worker's log and /health, stopped on shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from agents import retrain
from streams.app import app
from streams.views import health_sections
from tinhieu.settings import load_settings

SETTINGS = load_settings(_env_file=None, retrain_interval_h=24, symbols="BTC")


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_off_by_default_no_timer_and_health_says_so() -> None:
    assert health_sections["retrain"] == retrain.retrain_runtime.health
    assert health_sections["retrain"]() == {"status": "off",
                                            "note": "TINHIEU_RETRAIN_INTERVAL_H=0"}
    assert not hasattr(retrain, "retrain_models")  # retrain_interval_h=0: no timer


async def test_one_run_at_a_time_and_its_summary(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(app, "is_leader", lambda: True)
    caplog.set_level(logging.INFO, logger="tinhieu.retrain")
    runtime = retrain.RetrainRuntime(SETTINGS, command=child(
        "import time; print('[DU LIEU] BTC/USDT: 5000 candles', flush=True); "
        "time.sleep(0.5); print('[MO HINH] BTC/USDT: version v2 -> challenger'); "
        "print('noise')"))
    assert runtime.health()["status"] == "scheduled"
    assert runtime.start() is True
    await asyncio.sleep(0.1)
    assert runtime.health()["status"] == "running"
    assert runtime.start() is False  # the lock: the second tick is skipped
    assert runtime.task is not None
    await runtime.task
    assert runtime.last is not None and runtime.last["exit_code"] == 0
    assert runtime.last["summary"] == ["[DU LIEU] BTC/USDT: 5000 candles",
                                       "[MO HINH] BTC/USDT: version v2 -> challenger"]
    assert "still running" in caplog.text and "v2 -> challenger" in caplog.text
    assert runtime.health()["status"] == "scheduled"
    assert runtime.start() is True  # free again
    await runtime.task


async def test_close_stops_a_run_in_progress() -> None:
    runtime = retrain.RetrainRuntime(SETTINGS, command=child("import time; time.sleep(60)"))
    runtime.start()
    await asyncio.sleep(0.3)
    assert runtime.proc is not None
    await asyncio.wait_for(runtime.close(), 10)
    await asyncio.wait_for(runtime.task, 10)
    assert runtime.last is not None and runtime.last["exit_code"] != 0
    assert runtime.start() is False  # closed: later ticks do nothing
