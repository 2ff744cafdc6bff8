"""Streaming (/api/v1/ws): latency to 50 WebSocket clients at live rate, and the worker's
throughput with those clients connected against none, in one run.

A real ``faust -A streams.app worker`` on the embedded Apache Kafka, the 5 symbols of
shared/data/binance-spot-1m-2021, no models (every signal is NEUTRAL ``no_model``; pass
``--models-dir`` with bench/pipeline.py's models to serve real ones):

1. Throughput without clients: a ``replay --max`` backlog of ``--days`` days while the
   worker runs; measured as bench/pipeline.py measures it, from the phase's first signal
   to its last book write (Kafka CreateTime stamps), plus the worker's CPU per candle.
2. 50 WebSocket clients connect (``?types=signal,order``: every symbol), in a child process.
3. Throughput with the 50 clients: the next ``--days`` days the same way. The clients keep
   reading; how many were dropped for falling behind (``stream_client_queue``) is printed.
4. Latency at live rate: one candle per symbol per simulated minute (``--minute-s``, 0.5 s),
   from the moment a candle is produced to the moment each client receives its signal
   (wall clock, one machine), over all clients.

    .venv/bin/python bench/streaming.py [--days 1] [--rounds 120] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from pipeline import (  # noqa: E402
    DATA,
    NAMES,
    START,
    SYMBOLS,
    _bar,
    _consumer,
    _partitions,
    cpu_seconds,
    pct,
)

from tests.integration.procs import Worker, app_env, run_command, wait_for  # noqa: E402
from tinhieu.candles import bar_to_dict  # noqa: E402
from tinhieu.data import load_candles, parse_time  # noqa: E402
from tinhieu.kafka_embedded import EmbeddedKafka  # noqa: E402
from tinhieu.kafka_io import make_producer  # noqa: E402

DAY_MS = 86_400_000
CHANGELOG = "bench-streaming-symbol_to_window-changelog"


# --- the clients (a child process, so that their CPU is not the bench's event loop) ----
def run_clients(url: str, n: int, live: Any, stop: Any, ready: Any, results: Any) -> None:
    asyncio.run(_clients(url, n, live, stop, ready, results))


async def _clients(url: str, n: int, live: Any, stop: Any, ready: Any, results: Any) -> None:
    counts = [0] * n
    closed: list[Any] = [None] * n
    received: list[tuple[str, int, float]] = []
    async with aiohttp.ClientSession() as http:
        sockets = []
        for _ in range(n):
            ws = await http.ws_connect(f"{url}/api/v1/ws?types=signal,order", max_msg_size=0)
            first = json.loads((await ws.receive(timeout=30)).data)
            assert first["type"] == "subscribed", first
            sockets.append(ws)
        ready.put(n)

        async def read(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                counts[i] += 1
                if live.is_set() and msg.data.startswith('{"type":"signal"'):
                    now = time.time()
                    data = json.loads(msg.data)["data"]
                    received.append((data["symbol"], data["candle_time"], now))
            closed[i] = (ws.close_code, (ws.exception() or "") and str(ws.exception()))

        readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        dropped = [c for c in closed if c is not None]
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    results.put({"counts": counts, "dropped": dropped, "received": received})


# --- throughput phases --------------------------------------------------------------------
async def _ends(url: str, topic: str) -> dict[int, int]:
    consumer = await _consumer(url)
    try:
        tps = await _partitions(consumer, topic)
        return {tp.partition: int(end) for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _stamp(url: str, topic: str, at: dict[int, int], first: bool) -> int:
    """Earliest CreateTime at offsets ``at`` (first) or the latest of the topic (last)."""
    consumer = await _consumer(url, auto_offset_reset="earliest")
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        best = 1 << 62 if first else 0
        for tp in tps:
            start = at.get(tp.partition, 0)
            if ends[tp] <= start:
                continue
            consumer.seek(tp, start if first else ends[tp] - 1)
            rec = (await consumer.getmany(tp, timeout_ms=5000, max_records=1))[tp][0]
            best = min(best, rec.timestamp) if first else max(best, rec.timestamp)
        return best
    finally:
        await consumer.stop()


def throughput(kafka_url: str, env: dict[str, str], worker: Worker, begin: int, end: int,
               label: str) -> dict[str, float]:
    """Replay [begin, end) of the 5 symbols as fast as possible while the worker runs."""
    files = [str(DATA / f"{n}_1m.csv.gz") for n in NAMES]
    lasts = {s: int(load_candles(DATA / f"{n}_1m.csv.gz", begin, end)["timestamp"].iloc[-1])
             for n, s in zip(NAMES, SYMBOLS, strict=True)}
    before = asyncio.run(_ends(kafka_url, "signals"))
    cpu_before = cpu_seconds(worker.proc.pid)
    out = run_command(env, "replay", *files, "--max", "--start", str(begin), "--end", str(end))
    total = int(out.split("replayed ")[1].split()[0])
    for symbol, last in lasts.items():
        path = f"/positions/{symbol.replace('/', '-')}"
        wait_for(lambda p=path: worker.get(p), 1200, f"{symbol} book ({label})", interval=0.2,
                 ready=lambda r, t=last: r[0] == 200 and r[1].get("last_candle_time") == t)
    cpu_after = cpu_seconds(worker.proc.pid)
    first = asyncio.run(_stamp(kafka_url, "signals", before, first=True))
    last = asyncio.run(_stamp(kafka_url, CHANGELOG, {}, first=False))
    seconds = (last - first) / 1000.0
    return {"candles": total, "seconds": seconds, "rate": total / seconds,
            "main_us": (cpu_after[0] - cpu_before[0]) / total * 1e6,
            "proc_us": (cpu_after[1] - cpu_before[1]) / total * 1e6}


# --- live rate ------------------------------------------------------------------------------
async def live_candles(url: str, frames: dict[str, Any], rounds: int,
                       minute_s: float) -> dict[tuple[str, int], float]:
    """One candle per symbol per simulated minute; returns when each was produced."""
    produced: dict[tuple[str, int], float] = {}
    producer = make_producer(url, linger_ms=0)
    await producer.start()
    try:
        for i in range(rounds):
            began = time.perf_counter()
            for symbol, df in frames.items():
                bar = bar_to_dict(symbol, _bar(df.iloc[i]), "1m", "bench")
                produced[(symbol, bar["timestamp"])] = time.time()
                await producer.send(
                    "market_data", json.dumps(bar).encode(), key=symbol.encode()
                )
            await asyncio.sleep(max(0.0, minute_s - (time.perf_counter() - began)))
        await asyncio.sleep(2.0)
    finally:
        await producer.stop()
    return produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=1.0, help="days per throughput phase")
    parser.add_argument("--rounds", type=int, default=120, help="live-rate simulated minutes")
    parser.add_argument("--minute-s", type=float, default=0.5, help="a simulated minute, s")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients")
    parser.add_argument("--models-dir", type=Path, default=None, help="serve these models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = parse_time(START)
    warm_end = start + DAY_MS // 8
    mid = warm_end + int(args.days * DAY_MS)
    end = mid + int(args.days * DAY_MS)
    frames = {s: load_candles(DATA / f"{n}_1m.csv.gz", end, None).iloc[: args.rounds]
              for n, s in zip(NAMES, SYMBOLS, strict=True)}
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedKafka(tmp / "kafka") as kafka:
            extra = {"model_dir": args.models_dir} if args.models_dir else {}
            env = app_env(kafka.url, tmp / "var", "bench-streaming", **extra)
            worker = Worker(env, tmp / "worker.log").start()
            clients = None
            stop = ctx.Event()
            try:
                worker.wait_ready(timeout=180)
                throughput(kafka.url, env, worker, start, warm_end, "warm-up")
                bare = throughput(kafka.url, env, worker, warm_end, mid, "no clients")
                live, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
                clients = ctx.Process(target=run_clients, daemon=True, args=(
                    worker.url, args.clients, live, stop, ready, results))
                clients.start()
                ready.get(timeout=120)
                loaded = throughput(kafka.url, env, worker, mid, end, f"{args.clients} clients")
                live.set()
                produced = asyncio.run(live_candles(kafka.url, frames, args.rounds,
                                                    args.minute_s))
                health = worker.get("/health")[1]
                stop.set()
                result = results.get(timeout=120)
                clients.join(30)
            finally:
                stop.set()
                if clients is not None and clients.is_alive():
                    clients.kill()
                worker.stop()

    latencies = [(now - produced[(sym, t)]) * 1000 for sym, t, now in result["received"]
                 if (sym, t) in produced]
    expected = len(produced) * args.clients
    p99 = pct(latencies, 99)
    print(f"clients                      : {args.clients} WebSocket (types=signal,order, "
          f"every symbol), dropped {len(result['dropped'])} {result['dropped'][:3]}")
    for label, r in (("no clients", bare), (f"{args.clients} clients", loaded)):
        print(f"throughput, {label:<17}: {r['rate']:,.0f} candles/s ({r['candles']} candles "
              f"in {r['seconds']:.1f} s); worker CPU per candle: main thread "
              f"{r['main_us']:.0f} us, process {r['proc_us']:.0f} us")
    print(f"  with clients / without     : {loaded['rate'] / bare['rate']:.2f} x wall-clock "
          f"rate, {loaded['main_us'] / bare['main_us']:.2f} x main-thread CPU per candle")
    print(f"messages per client          : min {min(result['counts'])} max "
          f"{max(result['counts'])} (throughput phase and live phase)")
    print(f"candle -> client, live rate  : n={len(latencies)} of {expected} "
          f"p50={pct(latencies, 50):.1f} ms p99={p99:.1f} ms "
          f"max={max(latencies, default=float('nan')):.1f} ms  goal p99 <= 100 ms: "
          f"{'met' if p99 <= 100 else 'NOT met'}")
    print(f"worker: candle -> delivered  : {health.get('candle_to_delivered_latency', {})}")


if __name__ == "__main__":
    main()
