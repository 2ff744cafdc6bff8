"""Reliability figures of the whole pipeline on the embedded Apache Kafka.

Quick real models (``tinhieu.training.train_quick``, 2021-04-10..04-17, the 5 symbols) are
trained first, so every candle runs windows -> predict -> signals -> broker -> orders.
Then, each phase on real ``faust -A streams.app worker`` processes:

1. throughput: ``replay --max`` of ``--days`` of the 5 symbols from ``--start``, timed from
   the replay's start until every window holds its symbol's last candle, the ``signals``
   topic holds one signal per warm candle and every symbol's book has taken its last
   signal (the orders are out); once with 1 worker (own broker),
   once with 2 workers (own broker), side by side with the ratio;
2. failover: on the 2-worker broker, a replay at a steady ``--speed`` of the days that
   follow; ``--kills`` times: SIGKILL the worker that owns symbols, and time until the
   survivor holds the killed worker's partitions (rebalance) and until every symbol the
   killed worker owned gets newer candles in the survivor's windows (resumed); the killed
   worker is restarted and the assignment settles before the next kill; a worker that
   exits on its own meanwhile is reported with its logged reason and started again;
3. table recovery: both workers stopped; a fresh worker with an EMPTY data dir on the same
   broker and app id restores every table from the changelog topics; records counted from
   the changelog topics' offsets (end - beginning), time from the worker's log lines
   "Restoring state from changelog topics" .. "Done reading from changelog topics"; its
   windows and books are compared with what the stopped workers held;
4. RSS of every worker after its phase.

Prints its figures, asserts nothing about speed. About 3-4 minutes on 2 cores (plus ~15 s
of training). Results and their meaning: docs/RELIABILITY.md.

    .venv/bin/python bench/reliability.py [--days 1] [--start 2021-04-21] [--kills 3]
        [--speed 600] [--models-dir DIR]
        [--skip-failover] [--skip-recovery] [--keep DIR]

``--models-dir`` reuses models trained by an earlier run (``--keep DIR`` keeps the run's
folder, models under ``DIR/models``); ``--speed 600`` = 10 market minutes per second,
50 candles/s for the 5 symbols.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from tests.integration.procs import FAUST, Worker, app_env, run_command, wait_for  # noqa: E402
from tinhieu.data import load_candles, parse_time  # noqa: E402
from tinhieu.kafka_embedded import EmbeddedKafka  # noqa: E402
from tinhieu.kafka_io import bootstrap_servers, ensure_topics, read_topic  # noqa: E402
from tinhieu.registry import ModelRegistry  # noqa: E402
from tinhieu.settings import load_settings  # noqa: E402
from tinhieu.training import train_quick  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance-spot-1m-2021"
NAMES = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "BNBUSDT"]
TRAIN = ("2021-04-10", "2021-04-17")
MIN_CONFIDENCE = 0.45  # as the integration tests: quick models trade at all
MINUTE_MS = 60_000
PARTITIONS = 4  # tests/integration/procs.app_env's TINHIEU_PARTITIONS
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def sym(name: str) -> str:
    return name[:-4] + "/USDT"


def rss_mib(worker: Worker) -> float:
    if worker.proc is None or worker.proc.poll() is not None:
        return float("nan")
    with open(f"/proc/{worker.proc.pid}/status") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
    return kb / 1024


def health(worker: Worker) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        status, body = worker.get("/health", timeout=2)
        if status == 200 and isinstance(body, dict):
            return body
    return None


def owned_partitions(worker: Worker, topic: str = "market_data") -> set[int]:
    body = health(worker) or {}
    return {int(a[len(topic) + 1:-1]) for a in body.get("assigned", [])
            if a.startswith(topic + "[")}


async def _offsets(url: str, topics: list[str] | None = None,
                   suffix: str = "") -> tuple[int, dict[str, int]]:
    """Sum over partitions of (end - beginning) offsets, per topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(url),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics()
                       if (topics is None or t in topics) and t.endswith(suffix))
        per: dict[str, int] = {}
        for name in names:
            consumer._client.add_topic(name)
        await consumer._client.force_metadata_update()
        for name in names:
            tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            per[name] = sum(ends[tp] - begins[tp] for tp in tps)
        return sum(per.values()), per
    finally:
        await consumer.stop()


def topic_offsets(url: str, topic: str) -> int:
    return asyncio.run(_offsets(url, [topic]))[0]


def count_committed(url: str, topic: str) -> int:
    return len(asyncio.run(read_topic(url, topic, timeout_s=60)))


def train_models(root: Path) -> float:
    began = time.perf_counter()
    settings = load_settings(model_dir=root, min_confidence=MIN_CONFIDENCE)
    registry = ModelRegistry(root)
    for name in NAMES:
        df = load_candles(DATA / f"{name}_1m.csv.gz", parse_time(TRAIN[0]), parse_time(TRAIN[1]))
        train_quick(df, sym(name), settings, registry)
    return time.perf_counter() - began


class Run:
    """Settings shared by every worker of the bench."""

    def __init__(self, tmp: Path, models: Path, guarantee: str) -> None:
        self.tmp, self.models, self.guarantee = tmp, models, guarantee

    def env(self, url: str, name: str, app_id: str) -> dict[str, str]:
        return app_env(url, self.tmp / name, app_id, model_dir=self.models,
                       trade_db=self.tmp / name / "trades.db", min_confidence=MIN_CONFIDENCE,
                       processing_guarantee=self.guarantee)

    def workers(self, url: str, app_id: str, n: int, prefix: str = "w") -> list[Worker]:
        # The input topic exists before the first worker subscribes: a worker that creates
        # it itself on a fresh broker can miss it in its first assignment (see
        # docs/RELIABILITY.md, "Known issues") and wait minutes for a metadata refresh.
        asyncio.run(ensure_topics(url, ["market_data"], PARTITIONS))
        workers = [Worker(self.env(url, f"{app_id}-{prefix}{i}", app_id),
                          self.tmp / f"{app_id}-{prefix}{i}.log").start() for i in range(n)]
        try:
            for w in workers:
                w.wait_ready(timeout=180)
            wait_until_balanced(workers)
        except BaseException:  # never leave a worker behind
            for w in workers:
                w.stop()
            raise
        return workers


def wait_until_balanced(workers: list[Worker], timeout: float = 120) -> None:
    """Every worker serves /health, none rebalancing, each owns market_data partitions."""
    def ok() -> bool:
        bodies = [health(w) for w in workers]
        return all(b and not b.get("rebalancing")
                   and any(a.startswith("market_data[") for a in b.get("assigned", []))
                   for b in bodies)

    wait_for(ok, timeout, "a settled assignment", interval=0.5)


def throughput(run: Run, files: list[str], start: int, end: int, lasts: dict[str, int],
               expected_signals: int) -> dict:
    """Phase 1 with 1 worker on its own broker."""
    app_id = "rel-tp1"
    with EmbeddedKafka(run.tmp / f"kafka-{app_id}") as kafka:
        result = _throughput_on(run, kafka, app_id, 1, files, start, end, lasts,
                                expected_signals)
        for w in result.pop("workers_procs"):
            w.stop()
    return result


def window_last(worker: Worker, name: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        status, body = worker.get(f"/windows/{name}", timeout=5)
        if status == 200 and isinstance(body, dict):
            return body.get("last")
    return None


def book_last(worker: Worker, name: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        status, body = worker.get(f"/positions/{name}", timeout=5)
        if status == 200 and isinstance(body, dict):
            return body.get("last_candle_time")
    return None


def partitions_of_symbols(url: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for partition, _offset, key, _value in asyncio.run(
            read_topic(url, "market_data", tail=50, timeout_s=30)):
        name = (key or b"").decode(errors="replace")
        if name in {sym(n) for n in NAMES} and name not in out.get(partition, []):
            out.setdefault(partition, []).append(name)
    return out


def failover(run: Run, kafka: EmbeddedKafka, app_id: str, workers: list[Worker],
             files: list[str], start: int, kills: int, speed: float) -> list[dict]:
    """Phase 2: SIGKILL one worker during a steady replay; time the survivor's takeover."""
    env = run.env(kafka.url, "replay2", app_id)
    replay = subprocess.Popen(
        [FAUST, "-A", "streams.app", "replay", *files, "--speed", str(speed), "--start",
         str(start), "--end", str(start + 4 * 86_400_000)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    margin_ms = 3 * MINUTE_MS  # newer than anything the victim may have had in flight
    results = []
    try:
        time.sleep(8)  # the replay is running and every worker is processing
        symbols_by_partition = partitions_of_symbols(kafka.url)
        for i in range(kills):
            order = workers[i % 2:] + workers[:i % 2]
            victim = next((w for w in order if any(
                symbols_by_partition.get(p) for p in owned_partitions(w))), None)
            if victim is None:
                raise RuntimeError("no worker owns a symbol's partition")
            survivor = next(w for w in workers if w is not victim)
            parts = owned_partitions(victim)
            symbols = sorted(s for p in parts for s in symbols_by_partition.get(p, []))
            before = (health(victim) or {}).get("last_candle", {})
            victim.kill()
            killed_at = time.perf_counter()
            rebalanced_s = resumed_s = None
            deadline = killed_at + 120
            while time.perf_counter() < deadline and resumed_s is None:
                body = health(survivor) or {}
                now = time.perf_counter() - killed_at
                if rebalanced_s is None and parts <= {
                        int(a[12:-1]) for a in body.get("assigned", [])
                        if a.startswith("market_data[")} and not body.get("rebalancing"):
                    rebalanced_s = now
                last = body.get("last_candle", {})
                if all(s in before and last.get(s, 0) > before[s] + margin_ms for s in symbols):
                    resumed_s = now
                time.sleep(0.2)
            results.append({"symbols": symbols, "partitions": sorted(parts),
                            "rebalanced_s": rebalanced_s, "resumed_s": resumed_s})
            print(f"  kill {i + 1}: {', '.join(symbols)} (market_data{sorted(parts)}): "
                  f"survivor owns them after {_s(rebalanced_s)}, newer candles after "
                  f"{_s(resumed_s)}", flush=True)
            victim.start()
            crashes = restart_until_balanced(workers)
            results[-1]["crashes"] = crashes
            for crash in crashes:
                print(f"    after the restart: {crash}", flush=True)
            time.sleep(5)  # standbys catch up before the next kill
    finally:
        replay.kill()
        replay.wait(10)
    return results


def crash_reason(worker: Worker) -> str:
    reasons = [line for line in worker.tail(200_000).splitlines() if "Crashed reason=" in line]
    return reasons[-1].split("Crashed reason=", 1)[1][:160] if reasons else "no reason logged"


def restart_until_balanced(workers: list[Worker], attempts: int = 3) -> list[str]:
    """Wait until every worker is ready again; a worker that exits meanwhile (a crash, not
    a kill of ours) is noted with its logged reason and started again."""
    crashes: list[str] = []
    for _ in range(attempts):
        try:
            for w in workers:
                w.wait_ready(timeout=180)
            wait_until_balanced(workers)
            return crashes
        except AssertionError:
            for i, w in enumerate(workers):
                if w.proc is not None and w.proc.poll() is not None:
                    crashes.append(f"worker {i} exited ({w.proc.returncode}): {crash_reason(w)}")
                    w.start()
    raise RuntimeError(f"workers did not settle after {attempts} attempts: {crashes}")


def _s(x: float | None) -> str:
    return "never (120 s)" if x is None else f"{x:.1f} s"


def log_times(log: Path, needle: str) -> list[float]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = LOG_TIME.match(line)
        if m and needle in line:
            out.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


def settled_state(worker: Worker) -> dict[str, tuple[int | None, int | None]]:
    """(last candle, last book candle) per symbol, once two reads 3 s apart agree (the
    workers have drained what the stopped replay sent)."""
    def read() -> dict[str, tuple[int | None, int | None]]:
        return {n: (window_last(worker, n), book_last(worker, n)) for n in NAMES}

    state = read()
    for _ in range(40):
        time.sleep(3)
        again = read()
        if again == state:
            break
        state = again
    return state


def recovery(run: Run, kafka: EmbeddedKafka, app_id: str,
             held: dict[str, tuple[int | None, int | None]]) -> dict:
    """Phase 3: a fresh worker, empty data dir, restores every table from the changelogs."""
    records, per_topic = asyncio.run(_offsets(kafka.url, suffix="-changelog"))
    per_topic = {t: n for t, n in per_topic.items() if t.startswith(app_id + "-")}
    records = sum(per_topic.values())
    name = f"{app_id}-fresh"
    shutil.rmtree(run.tmp / name, ignore_errors=True)
    log = run.tmp / f"{name}.log"
    fresh = Worker(run.env(kafka.url, name, app_id), log)
    began = time.perf_counter()
    fresh.start()
    try:
        fresh.wait_ready(timeout=300)
        ready_s = time.perf_counter() - began
        wait_for(lambda: log_times(log, "Done reading from changelog topics"), 60,
                 "the recovery log line", interval=0.5)
        starts = log_times(log, "Restoring state from changelog topics")
        dones = log_times(log, "Done reading from changelog topics")
        restore_s = max(dones[-1] - starts[0], 1e-3) if starts and dones else float("nan")
        rss = rss_mib(fresh)
        # The restored tables hold what the stopped workers held (last candle, last book).
        got = {n: (window_last(fresh, n), book_last(fresh, n)) for n in NAMES}
        restored = sum(held[n] == got[n] for n in NAMES)
        for n in NAMES:
            if held[n] != got[n]:
                print(f"  {n}: stopped workers held {held[n]}, fresh worker {got[n]}")
    finally:
        fresh.stop()
    return {"records": records, "per_topic": per_topic, "restore_s": restore_s,
            "ready_s": ready_s, "rss": rss, "restored": restored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=1.0, help="days replayed for throughput")
    parser.add_argument("--start", default="2021-04-21", help="first day replayed (UTC)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs in the failover phase")
    parser.add_argument("--speed", type=float, default=600.0,
                        help="failover replay speed (market seconds per second)")
    parser.add_argument("--guarantee", default="at_least_once", choices=["at_least_once"])
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="reuse trained models (default: train into the run folder)")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this folder and keep it (logs, models)")
    args = parser.parse_args()

    bench_began = time.perf_counter()
    start = parse_time(args.start)
    end = start + int(args.days * 86_400_000)
    files = [str(DATA / f"{n}_1m.csv.gz") for n in NAMES]
    frames = {n: load_candles(DATA / f"{n}_1m.csv.gz", start, end) for n in NAMES}
    lasts = {n: int(df["timestamp"].iloc[-1]) for n, df in frames.items()}
    expected_signals = sum(len(df) for df in frames.values())  # one per candle

    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep.resolve()
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tinhieu-rel-")))
        models = args.models_dir.resolve() if args.models_dir else tmp / "models"
        if args.models_dir is None:
            print(f"training quick models {TRAIN[0]}..{TRAIN[1]} for {len(NAMES)} symbols: "
                  f"{train_models(models):.1f} s", flush=True)
        run = Run(tmp, models, args.guarantee)
        print(f"guarantee {args.guarantee}; throughput over {args.start} + {args.days} days",
              flush=True)

        one = throughput(run, files, start, end, lasts, expected_signals)
        print(f"  1 worker : {one['candles'] / one['total_s']:,.0f} candles/s", flush=True)
        app_id = "rel-tp2"
        with EmbeddedKafka(tmp / f"kafka-{app_id}") as kafka:
            # The 2-worker throughput run, then failover and recovery on the same broker.
            two = _throughput_on(run, kafka, app_id, 2, files, start, end, lasts,
                                 expected_signals)
            print(f"  2 workers: {two['candles'] / two['total_s']:,.0f} candles/s", flush=True)
            workers = two.pop("workers_procs")
            try:
                kills = [] if args.skip_failover else failover(
                    run, kafka, app_id, workers, files, end, args.kills, args.speed)
                after_failover_rss = [rss_mib(w) for w in workers]
                held = settled_state(workers[0])
            finally:
                for w in workers:
                    w.stop()
            rec = None if args.skip_recovery else recovery(run, kafka, app_id, held)

    total_bench_s = time.perf_counter() - bench_began
    print()
    print(f"pipeline: windows -> predict -> signals -> broker -> orders; {args.guarantee}; "
          f"{len(NAMES)} symbols, {args.days} day(s) from {args.start}")
    print(f"{'':34}{'1 worker':>14}{'2 workers':>14}")
    print(f"{'candles':34}{one['candles']:>14,}{two['candles']:>14,}")
    print(f"{'signals / orders':34}{one['signals']:>8,} / {one['orders']:<3}"
          f"{two['signals']:>8,} / {two['orders']:<3}")
    print(f"{'replay -> windows complete':34}{one['windows_s']:>12.1f} s"
          f"{two['windows_s']:>12.1f} s")
    print(f"{'replay -> every signal':34}{one['signals_s']:>12.1f} s"
          f"{two['signals_s']:>12.1f} s")
    print(f"{'replay -> every book (the end)':34}{one['total_s']:>12.1f} s"
          f"{two['total_s']:>12.1f} s")
    rate1, rate2 = one["candles"] / one["total_s"], two["candles"] / two["total_s"]
    print(f"{'throughput (candles/s)':34}{rate1:>14,.0f}{rate2:>14,.0f}   "
          f"ratio 2/1 = {rate2 / rate1:.2f}")
    rss_two = ", ".join(f"{r:.0f}" for r in two["rss"])
    print(f"{'RSS per worker after (MiB)':34}{one['rss'][0]:>14.0f}{rss_two:>14}")
    if kills:
        res = [k["resumed_s"] for k in kills]
        reb = [k["rebalanced_s"] for k in kills]
        print(f"failover (SIGKILL, session timeout 10 s, --speed {args.speed:g}):")
        print("  survivor owns the partitions : " + ", ".join(_s(x) for x in reb))
        print("  newer candles on the survivor: " + ", ".join(_s(x) for x in res)
              + f"; max {_s(None if None in res else max(res))} (goal <= 30 s)")
        n_crashes = sum(len(k.get("crashes", [])) for k in kills)
        print(f"  workers that crashed on their own after a restart: {n_crashes}")
        print("  RSS per worker after (MiB)   : "
              + ", ".join(f"{r:.0f}" for r in after_failover_rss))
    if rec:
        markers = ", offsets incl. commit markers" if args.guarantee == "exactly_once" else ""
        print(f"table recovery, fresh worker with an empty data dir ({rec['records']:,} "
              f"changelog records{markers}):")
        for t, n in sorted(rec["per_topic"].items()):
            print(f"    {t:48}{n:>9,}")
        print(f"  restore (log: Restoring .. Done reading): {rec['restore_s']:.1f} s = "
              f"{rec['records'] / rec['restore_s']:,.0f} records/s")
        print(f"  process start -> ready (/health)        : {rec['ready_s']:.1f} s")
        print(f"  restored = the stopped workers' tables  : {rec['restored']} of {len(NAMES)} "
              "symbols (last candle and last book)")
        print(f"  RSS after recovery                      : {rec['rss']:.0f} MiB")
    print(f"bench wall time: {total_bench_s:.0f} s")


def _throughput_on(run: Run, kafka: EmbeddedKafka, app_id: str, n_workers: int,
                   files: list[str], start: int, end: int, lasts: dict[str, int],
                   expected_signals: int) -> dict:
    """Phase 1: seconds from the start of ``replay --max`` until every window holds its
    last candle and every signal is on the topic. The workers are left running."""
    workers = run.workers(kafka.url, app_id, n_workers)
    try:
        env = run.env(kafka.url, "replay", app_id)
        began = time.perf_counter()
        out = run_command(env, "replay", *files, "--max", "--start", str(start),
                          "--end", str(end))
        produced = int(out.split("replayed ")[1].split()[0])
        for name in NAMES:
            wait_for(lambda name=name: window_last(workers[0], name) == lasts[name],
                     900, f"{name} window", interval=0.2)
        windows_s = time.perf_counter() - began
        wait_for(lambda: topic_offsets(kafka.url, "signals") >= expected_signals, 900,
                 "signal offsets", interval=0.2)
        wait_for(lambda: count_committed(kafka.url, "signals") >= expected_signals, 900,
                 "every signal", interval=0.5)
        signals_s = time.perf_counter() - began
        for name in NAMES:  # the broker agent has taken the last signal of every symbol
            wait_for(lambda name=name: book_last(workers[0], name) == lasts[name],
                     900, f"{name} book", interval=0.2)
        total_s = time.perf_counter() - began
        orders = count_committed(kafka.url, "orders")
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return {"workers": n_workers, "candles": produced, "windows_s": windows_s,
            "signals_s": signals_s, "total_s": total_s,
            "signals": expected_signals, "orders": orders,
            "rss": [rss_mib(w) for w in workers], "workers_procs": workers}


if __name__ == "__main__":
    main()
