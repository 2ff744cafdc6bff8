"""The whole pipeline on one worker: throughput, Kafka writes per candle, live latency.

market_data -> process_candles (window, features, ensemble with production-size models)
-> signals -> broker rules -> orders and the SQLite trade log, in a real
``faust -A streams.app worker`` on the embedded Apache Kafka.

1. Throughput: N days of the 5 symbols of shared/data/binance-spot-1m-2021 are in
   ``market_data`` before the worker starts; the clock runs from the first signal the worker
   writes to the last book write (Kafka CreateTime stamps, one machine clock). Baseline in
   the same run: a bare aiokafka consumer that reads and JSON-decodes the same messages.
2. Kafka messages written per candle, counted from the topics' end offsets (signals,
   orders, dead letters, signal outcomes, alerts, shadow signals and the tables'
   changelogs), over the throughput run and over the live-rate run.
3. Latency at live rate: 5 symbols, one candle per symbol per simulated minute (a minute
   is ``--minute-s`` seconds); from the moment a candle is produced to the moment a client
   consumer receives its signal, and the order when one is placed on that candle. Baseline
   in the same run: a bare produce -> consume round trip through the same broker.

    .venv/bin/python bench/pipeline.py [--days 2] [--rounds 200] [--models-dir DIR]

Production-size models: ``train_symbol`` with the default model sizes on 20,000 candles
per symbol (2 folds), trained before anything is timed (or reused from ``--models-dir``).
They are trained on candles AFTER the replayed ones: this bench measures speed, not skill,
and the promotion gate is bypassed (the newest models are served whatever their edge).

The worker's CPU time per candle (its main thread, where Faust runs the agents, and the
whole process) is printed too: on a shared machine the wall-clock rate depends on what
else runs, the CPU cost does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from tests.integration.procs import Worker, app_env, run_command, wait_for  # noqa: E402
from tinhieu.candles import bar_to_dict  # noqa: E402
from tinhieu.data import load_candles, parse_time  # noqa: E402
from tinhieu.kafka_embedded import EmbeddedKafka  # noqa: E402
from tinhieu.kafka_io import bootstrap_servers, make_producer  # noqa: E402
from tinhieu.registry import ModelRegistry  # noqa: E402
from tinhieu.settings import load_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance-spot-1m-2021"
NAMES = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "BNBUSDT"]
SYMBOLS = [n[:-4] + "/USDT" for n in NAMES]
START = "2021-04-05"
TRAIN_ROWS = 20_000
# Every topic the worker writes per candle (the tables' changelogs are counted as well).
PIPELINE_TOPICS = ("signals", "orders", "dead_letters", "signal_outcomes", "alerts",
                   "signals.shadow")


def train_models(models: Path, start_ms: int) -> None:
    """Production-size models for the 5 symbols, trained on candles after ``start_ms``
    plus a margin (the bench's candles come before them)."""
    from tinhieu.training import train_symbol

    settings = load_settings(model_dir=models)
    registry = ModelRegistry(models)
    for name, symbol in zip(NAMES, SYMBOLS, strict=True):
        if registry.production_fingerprint(symbol) != "none":
            continue
        df = load_candles(DATA / f"{name}_1m.csv.gz", start_ms + 10 * 86_400_000, None)
        df = df.iloc[:TRAIN_ROWS]
        began = time.perf_counter()
        train_symbol(df, symbol, settings, registry, n_splits=2, progress=False)
        # The bench measures serving, not the promotion gate: serve the newest models.
        for algo in ("rf", "svm", "lr"):
            if registry.production(symbol, algo) is None:
                versions = [m for m in registry.list(symbol) if m.get("algorithm") == algo]
                if versions:
                    registry.promote(symbol, algo, str(versions[-1]["version"]))
        print(f"trained {symbol} in {time.perf_counter() - began:.0f} s", flush=True)


async def _consumer(url: str, **kw: Any) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(url), enable_auto_commit=False, **kw
    )
    await consumer.start()
    return consumer


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    consumer._client.add_topic(topic)  # ask the cluster for this topic's partitions
    await consumer._client.force_metadata_update()
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def end_offsets(url: str) -> dict[str, int]:
    """Messages per topic (sum of end offsets over partitions), every topic but internal."""
    consumer = await _consumer(url)
    try:
        names = [t for t in await consumer.topics() if not t.startswith("__")]
        tps = []
        for name in names:
            tps.extend(await _partitions(consumer, name))
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    out: dict[str, int] = {}
    for tp, end in ends.items():
        out[tp.topic] = out.get(tp.topic, 0) + int(end)
    return out


async def first_last_stamp(url: str, topic: str) -> tuple[int, int]:
    """Earliest and latest CreateTime (ms) of ``topic``'s messages."""
    consumer = await _consumer(url, auto_offset_reset="earliest")
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        first, last = 1 << 62, 0
        for tp in tps:
            if ends[tp] == 0:
                continue
            consumer.seek(tp, 0)
            rec = (await consumer.getmany(tp, timeout_ms=5000, max_records=1))[tp][0]
            first = min(first, rec.timestamp)
            consumer.seek(tp, ends[tp] - 1)
            rec = (await consumer.getmany(tp, timeout_ms=5000, max_records=1))[tp][0]
            last = max(last, rec.timestamp)
    finally:
        await consumer.stop()
    return first, last


async def bare_consume(url: str, total: int) -> float:
    consumer = await _consumer(url, group_id="bench-baseline", auto_offset_reset="earliest")
    consumer.subscribe(["market_data"])
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


async def live_rate(url: str, frames: dict[str, Any], rounds: int, minute_s: float) -> dict:
    """Produce one candle per symbol per simulated minute; time signals and orders."""
    produced: dict[tuple[str, int], float] = {}
    stamped: dict[tuple[str, int], int] = {}  # the candle message's CreateTime, ms
    signal_ms: list[float] = []
    in_worker_ms: list[float] = []  # candle CreateTime -> signal CreateTime
    order_ms: list[float] = []
    consumer = await _consumer(url, auto_offset_reset="latest", group_id=None)
    consumer.subscribe(["signals", "orders"])
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    producer = make_producer(url, linger_ms=0)
    await producer.start()

    async def listen() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batch.items():
                for rec in records:
                    obj = json.loads(rec.value)
                    if tp.topic == "signals":
                        key = (obj["symbol"], obj["candle_time"])
                        sent = produced.get(key)
                        if sent is not None:
                            signal_ms.append((now - sent) * 1000)
                        if key in stamped:
                            in_worker_ms.append(rec.timestamp - stamped[key])
                    else:
                        sent = produced.get((obj["symbol"], obj["fill_time"]))
                        if sent is not None:
                            order_ms.append((now - sent) * 1000)

    listener = asyncio.create_task(listen())
    try:
        for i in range(rounds):
            began = time.perf_counter()
            for symbol, df in frames.items():
                row = df.iloc[i]
                bar = bar_to_dict(symbol, _bar(row), "1m", "bench")
                key = (symbol, bar["timestamp"])
                produced[key] = time.perf_counter()
                stamped[key] = int(time.time() * 1000)
                await producer.send(
                    "market_data", json.dumps(bar).encode(), key=symbol.encode(),
                    timestamp_ms=stamped[key],
                )
            await asyncio.sleep(max(0.0, minute_s - (time.perf_counter() - began)))
        await asyncio.sleep(2.0)
    finally:
        listener.cancel()
        await producer.stop()
        await consumer.stop()
    return {"signal_ms": signal_ms, "order_ms": order_ms, "in_worker_ms": in_worker_ms,
            "candles": rounds * len(frames)}


def _bar(row: Any) -> Any:
    from tinhieu.candles import Bar

    return Bar(int(row["timestamp"]), float(row["open"]), float(row["high"]),
               float(row["low"]), float(row["close"]), float(row["volume"]))


async def round_trip_baseline(url: str, n: int, minute_s: float) -> list[float]:
    """Bare produce -> consume through the same broker, at the same rate."""
    topic = "bench_round_trip"
    producer = make_producer(url, linger_ms=0)
    await producer.start()
    await producer.send_and_wait(topic, b"{}", key=b"warm-up")
    consumer = await _consumer(url, auto_offset_reset="latest", group_id=None)
    consumer.subscribe([topic])
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    out: list[float] = []
    try:
        for i in range(n):
            sent = time.perf_counter()
            await producer.send(topic, str(i).encode(), key=str(i % 5).encode())
            got = False
            while not got:
                batch = await consumer.getmany(timeout_ms=1000)
                got = any(r.value == str(i).encode() for rs in batch.values() for r in rs)
            out.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(minute_s / 5)
    finally:
        await producer.stop()
        await consumer.stop()
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of ``pid``'s main thread and of the whole process."""
    import os

    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        fields = open(path).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return read(f"/proc/{pid}/task/{pid}/stat"), read(f"/proc/{pid}/stat")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2.0, help="days replayed for throughput")
    parser.add_argument("--rounds", type=int, default=200, help="live-rate simulated minutes")
    parser.add_argument("--minute-s", type=float, default=0.5, help="a simulated minute, s")
    parser.add_argument("--min-confidence", type=float, default=0.4,
                        help="lower than the default so that orders happen to be timed")
    parser.add_argument("--models-dir", type=Path, default=None, help="reuse trained models")
    parser.add_argument("--linger-ms", type=float, default=None,
                        help="TINHIEU_PRODUCER_LINGER_MS of the worker (default: the setting's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = parse_time(START)
    end = start + int(args.days * 86_400_000)
    files = [str(DATA / f"{n}_1m.csv.gz") for n in NAMES]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = args.models_dir or tmp / "models"
        train_models(models, start)
        after = {
            s: load_candles(DATA / f"{n}_1m.csv.gz", end, None).iloc[: args.rounds]
            for n, s in zip(NAMES, SYMBOLS, strict=True)
        }
        lasts = {s: int(load_candles(DATA / f"{n}_1m.csv.gz", start, end)["timestamp"].iloc[-1])
                 for n, s in zip(NAMES, SYMBOLS, strict=True)}
        with EmbeddedKafka(tmp / "kafka") as kafka:
            tuning = {k: v for k, v in (("producer_linger_ms", args.linger_ms),) if v is not None}
            env = app_env(kafka.url, tmp / "var", "bench-pipeline", model_dir=models,
                          min_confidence=args.min_confidence, **tuning)
            began = time.perf_counter()
            out = run_command(env, "replay", *files, "--max", "--start", START,
                              "--end", str(end))
            replay_s = time.perf_counter() - began
            total = int(out.split("replayed ")[1].split()[0])
            worker = Worker(env, tmp / "worker.log").start()
            try:
                worker.wait_ready(timeout=180)
                cpu_before = cpu_seconds(worker.proc.pid)
                for symbol, last in lasts.items():
                    path = f"/positions/{symbol.replace('/', '-')}"
                    wait_for(lambda p=path, t=last: worker.get(p), 1200, f"{symbol} book",
                             interval=0.5,
                             ready=lambda r, t=last: r[0] == 200
                             and r[1].get("last_candle_time") == t)
                cpu_after = cpu_seconds(worker.proc.pid)
                health = worker.get("/health")[1]
                loaded = health.get("models", {}).get("loaded", {})
                first, _ = asyncio.run(first_last_stamp(kafka.url, "signals"))
                _, last = asyncio.run(
                    first_last_stamp(kafka.url, "bench-pipeline-symbol_to_window-changelog"))
                pipeline_s = (last - first) / 1000.0
                counts = asyncio.run(end_offsets(kafka.url))
                live = asyncio.run(live_rate(kafka.url, after, args.rounds, args.minute_s))
                counts_after = asyncio.run(end_offsets(kafka.url))
                rss_kb = int(next(line.split()[1]
                                  for line in open(f"/proc/{worker.proc.pid}/status")
                                  if line.startswith("VmRSS")))
                health = worker.get("/health")[1]
                predict = health.get("predict_latency", {})
                intake = health.get("candle_to_agent_latency", {})
                delivered = health.get("candle_to_delivered_latency", {})
            finally:
                worker.stop()
            baseline_s = asyncio.run(bare_consume(kafka.url, total))
            rtt = asyncio.run(round_trip_baseline(kafka.url, args.rounds, args.minute_s))

    def written(c: dict[str, int]) -> int:
        return sum(v for k, v in c.items()
                   if k in PIPELINE_TOPICS or k.endswith("-changelog"))

    live_written = written(counts_after) - written(counts)
    rate = total / pipeline_s
    print(f"models served               : {len(loaded)} symbols "
          f"({next(iter(loaded.values()), 'none')})")
    print(f"candles replayed            : {total} ({len(SYMBOLS)} symbols, {args.days} days)")
    print(f"replay command (produce)    : {total / replay_s:,.0f} candles/s incl. start-up "
          f"({replay_s:.1f} s)")
    print(f"pipeline, 1 worker          : {rate:,.0f} candles/s ({pipeline_s:.1f} s, first "
          f"signal -> last book write)  goal >= 2,000: {'met' if rate >= 2000 else 'NOT met'}")
    main_us = (cpu_after[0] - cpu_before[0]) / total * 1e6
    proc_us = (cpu_after[1] - cpu_before[1]) / total * 1e6
    print(f"worker CPU per candle       : main thread {main_us:.0f} us "
          f"(= {1e6 / main_us:,.0f} candles/s on a free core), process {proc_us:.0f} us "
          "(after ready; recovery before it not counted)")
    print(f"baseline bare consumer+json : {total / baseline_s:,.0f} candles/s "
          f"(pipeline = {rate / (total / baseline_s):.3f} x baseline)")
    per = written(counts) / total
    print(f"Kafka writes per candle     : replay {per:.3f} (+1 market_data = {per + 1:.3f}); "
          f"live rate {live_written / live['candles']:.3f} "
          f"(+1 = {live_written / live['candles'] + 1:.3f})  goal <= 4: "
          f"{'met' if live_written / live['candles'] + 1 <= 4 else 'NOT met'}")
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"  messages by topic         : {detail}")
    live_detail = ", ".join(f"{k} {counts_after.get(k, 0) - v}" for k, v in sorted(counts.items())
                            if counts_after.get(k, 0) != v)
    print(f"  at live rate ({live['candles']} candles): {live_detail}")
    sig, orders = live["signal_ms"], live["order_ms"]
    p99 = pct(sig, 99)
    print(f"candle -> signal, live rate : n={len(sig)} p50={pct(sig, 50):.1f} ms "
          f"p99={p99:.1f} ms max={max(sig, default=float('nan')):.1f} ms  goal p99 <= 50 ms: "
          f"{'met' if p99 <= 50 else 'NOT met'}")
    inside = live["in_worker_ms"]
    print(f"  of which candle -> signal written (CreateTime stamps): p50={pct(inside, 50):.1f} "
          f"ms p99={pct(inside, 99):.1f} ms")
    print(f"candle -> order, live rate  : n={len(orders)} p50={pct(orders, 50):.1f} ms "
          f"p99={pct(orders, 99):.1f} ms")
    print(f"baseline produce -> consume : n={len(rtt)} p50={pct(rtt, 50):.1f} ms "
          f"p99={pct(rtt, 99):.1f} ms")
    print(f"predict step (worker)       : {predict}")
    print(f"worker: candle -> agent     : {intake} (last {args.rounds * 5} batches or fewer)")
    print(f"worker: candle -> delivered : {delivered}")
    print(f"worker RSS after the run    : {rss_kb / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
