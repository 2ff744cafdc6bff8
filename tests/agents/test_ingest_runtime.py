"""The ingest's runtime holder (agents/ingest.py): /health's exchange section, ticks that wait
for the backoff without touching the exchange, and closing the client on shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from agents import ingest
from streams.app import app
from streams.views import health_sections
from tinhieu.exchange import ExchangeUnavailable, PollBackoff
from tinhieu.settings import load_settings

SETTINGS = load_settings(ingest_enabled=True, poll_interval_s=10, symbols="BTC,ETH")


class FakeClient:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def test_the_exchange_section_is_registered_and_says_disabled_here() -> None:
    assert health_sections["exchange"] == ingest.ingest_runtime.health
    assert health_sections["exchange"]() == {"status": "disabled"}  # tests run without ingest


def test_health_on_a_standby_and_on_the_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = ingest.IngestRuntime(SETTINGS)
    monkeypatch.setattr(app, "is_leader", lambda: False)
    assert runtime.health()["status"] == "standby"
    monkeypatch.setattr(app, "is_leader", lambda: True)
    assert runtime.health() == {"status": "starting"}
    runtime.backoff = PollBackoff(10, 300, "binance")
    runtime.backoff.failed({"BTC/USDT": ExchangeUnavailable("down")}, 2)
    assert runtime.health()["status"] == "failing"  # ETH still answers


async def test_a_tick_before_the_next_attempt_leaves_the_exchange_alone() -> None:
    now = [100.0]
    runtime = ingest.IngestRuntime(SETTINGS, clock=lambda: now[0])
    runtime.backoff = PollBackoff(10, 300, "binance", clock=lambda: now[0])
    for _ in range(2):
        runtime.backoff.failed({"BTC/USDT": ExchangeUnavailable("down")}, 2)  # wait 20 s

    async def no_poller(rebuild: bool) -> Any:
        raise AssertionError("the exchange was asked before the attempt was due")

    runtime._poller = no_poller  # type: ignore[method-assign]
    for tick in (100.0, 105.0, 114.0):  # the next attempt is due at 120 s
        now[0] = tick
        assert await runtime.poll() == {}
    assert runtime.backoff.next_attempt_in() == 6


async def test_close_closes_the_client_and_stops_the_ticks() -> None:
    runtime = ingest.IngestRuntime(SETTINGS)
    client = FakeClient()
    runtime.client = client  # type: ignore[assignment]
    await runtime.close()
    assert client.closed == 1 and runtime.closed
