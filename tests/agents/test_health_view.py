"""/health's lag section: a partition with lag whose read offset stops moving is stalled."""

from __future__ import annotations

from faust.types import TP

import streams.views as views
from streams.app import app


def test_a_partition_that_stops_moving_with_lag_is_stalled(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(views.time, "monotonic", lambda: now[0])
    monitor = app.monitor
    tp, idle = TP("market_data", 3), TP("market_data", 4)
    monkeypatch.setattr(monitor, "tp_end_offsets", {tp: 500, idle: 10})
    monkeypatch.setattr(monitor, "tp_read_offsets", {tp: 100, idle: 9})
    views._progress.clear()

    first = views.partition_lag()
    assert first["market_data[3]"] == {"end": 500, "read": 100, "lag": 399, "stalled": False}
    now[0] += views.STALL_AFTER_S + 1  # no progress on partition 3 since
    second = views.partition_lag()
    assert second["market_data[3]"]["stalled"] is True
    assert second["market_data[4]"] == {"end": 10, "read": 9, "lag": 0, "stalled": False}

    monitor.tp_read_offsets[tp] = 450  # it moves again
    assert views.partition_lag()["market_data[3]"]["stalled"] is False
