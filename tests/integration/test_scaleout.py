"""Three workers share the partitions; each one's web views answer for every symbol
(routed to the owner); tables have standby replicas on other workers."""

from __future__ import annotations

import pytest

from tests.integration.procs import Worker, app_env, run_command, wait_for
from tinhieu.data import load_candles, parse_time

pytestmark = pytest.mark.integration
NAMES = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "BNBUSDT"]
START, END = "2021-04-22", "2021-04-22T03:00"
PARTITIONS = 6


def test_three_workers_share_partitions_and_route_every_symbol(kafka, data_1m, tmp_path):
    envs = [
        app_env(
            kafka.url, tmp_path / f"w{i}", "it-scale", partitions=PARTITIONS, standby_replicas=1
        )
        for i in range(3)
    ]
    workers = [Worker(e, tmp_path / f"w{i}.log").start() for i, e in enumerate(envs)]
    try:
        for w in workers:
            w.wait_ready(timeout=120)

        def spread():
            healths = [w.get("/health")[1] for w in workers]
            owned = [{a for a in h["assigned"] if a.startswith("market_data[")} for h in healths]
            if any(h.get("rebalancing") for h in healths) or not all(owned):
                return None
            return healths, owned

        healths, owned = wait_for(spread, 120, "partitions spread over 3 workers")
        assert set().union(*owned) == {f"market_data[{p}]" for p in range(PARTITIONS)}
        assert sum(len(o) for o in owned) == PARTITIONS  # each partition on one worker only
        standbys = set().union(*(h["standbys"] for h in healths))
        assert any(s.startswith("it-scale-symbol_to_window-changelog[") for s in standbys)

        files = [str(data_1m / f"{n}_1m.csv.gz") for n in NAMES]
        run_command(envs[0], "replay", *files, "--max", "--start", START, "--end", END)
        for name in NAMES:
            tail = load_candles(
                data_1m / f"{name}_1m.csv.gz", parse_time(START), parse_time(END)
            ).tail(60)
            for w in workers:  # every worker answers for every symbol

                def same(w=w, name=name, tail=tail):
                    status, body = w.get(f"/windows/{name}")
                    return (
                        status == 200
                        and [c["timestamp"] for c in body["candles"]] == tail["timestamp"].tolist()
                    )

                wait_for(same, 60, f"{name} on {w.url}")
    finally:
        for w in workers:
            w.stop()
