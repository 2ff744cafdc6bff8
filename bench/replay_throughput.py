"""Replay throughput: candles per second from replay into the windows on one worker.

Starts the embedded Apache Kafka and one real ``faust -A streams.app worker``, publishes
N days of the 5 symbols of shared/data/binance-spot-1m-2021 with ``replay --max``, and
times until every window holds its symbol's last candle. Baseline measured in the same
run: a bare aiokafka consumer that reads and JSON-decodes the same messages (the most
a Python consumer on this machine can do before any window logic).

    .venv/bin/python bench/replay_throughput.py [--days 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from tests.integration.procs import Worker, app_env, run_command, wait_for  # noqa: E402
from tinhieu.data import load_candles, parse_time  # noqa: E402
from tinhieu.kafka_embedded import EmbeddedKafka  # noqa: E402
from tinhieu.kafka_io import bootstrap_servers  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance-spot-1m-2021"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "BNBUSDT"]


async def bare_consume(url: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        "market_data",
        bootstrap_servers=bootstrap_servers(url),
        group_id="bench-baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    began = time.perf_counter()
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for rec in records:
                    json.loads(rec.value)
                    seen += 1
    finally:
        await consumer.stop()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=2.0)
    args = parser.parse_args()
    start = parse_time("2021-04-05")
    end = start + int(args.days * 86_400_000)
    files = [str(DATA / f"{s}_1m.csv.gz") for s in SYMBOLS]
    lasts = {
        s: int(load_candles(DATA / f"{s}_1m.csv.gz", start, end)["timestamp"].iloc[-1])
        for s in SYMBOLS
    }
    with tempfile.TemporaryDirectory() as tmp, EmbeddedKafka(Path(tmp) / "kafka") as kafka:
        env = app_env(kafka.url, Path(tmp) / "var", "bench-replay")
        worker = Worker(env, Path(tmp) / "worker.log").start()
        try:
            worker.wait_ready()
            began = time.perf_counter()
            out = run_command(
                env, "replay", *files, "--max", "--start", str(start), "--end", str(end)
            )
            produced_s = time.perf_counter() - began
            total = int(out.split("replayed ")[1].split()[0])
            for s in SYMBOLS:
                sym = s[:-4] + "-USDT"
                wait_for(
                    lambda sym=sym, t=lasts[s]: worker.get(f"/windows/{sym}")[1].get("last") == t,
                    600,
                    f"{sym} window",
                    interval=0.1,
                )
            windows_s = time.perf_counter() - began
            rss_kb = int(
                next(
                    line.split()[1]
                    for line in open(f"/proc/{worker.proc.pid}/status")
                    if line.startswith("VmRSS")
                )
            )
        finally:
            worker.stop()
        baseline_s = asyncio.run(bare_consume(kafka.url, total))
    print(f"candles replayed            : {total} ({len(SYMBOLS)} symbols, {args.days} days)")
    print(
        f"replay command (produce)    : {total / produced_s:,.0f} candles/s "
        f"({produced_s:.1f} s incl. start-up)"
    )
    print(f"replay -> windows, 1 worker : {total / windows_s:,.0f} candles/s ({windows_s:.1f} s)")
    print(f"baseline bare consumer+json : {total / baseline_s:,.0f} candles/s ({baseline_s:.1f} s)")
    print(f"ratio windows / baseline    : {baseline_s / windows_s:.2f}")
    print(f"worker RSS after the run    : {rss_kb / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
