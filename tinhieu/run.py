"""``make run``: the embedded Apache Kafka, one worker (with the exchange ingest), Ctrl-C.

Order of start: broker, then worker. Order of stop (Ctrl-C, SIGTERM, or a child that dies):
worker first (it commits offsets and flushes its tables), then the broker. Every child runs
in its own process group and is waited for, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tinhieu.kafka_embedded import EmbeddedKafka, EmbeddedKafkaError
from tinhieu.kafka_io import bootstrap_servers, ensure_topics
from tinhieu.retrain import market_data_configs
from tinhieu.settings import SettingsError, load_settings


def _reachable(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 40.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"[LOI] {exc}", file=sys.stderr)
        return 2
    servers = bootstrap_servers(settings.broker_url)
    broker: EmbeddedKafka | None = None
    env = dict(os.environ)
    if "retrain_interval_h" not in settings.model_fields_set:  # not chosen: once a day
        env["TINHIEU_RETRAIN_INTERVAL_H"] = "24"
    if not _reachable(servers[0]):
        host, _, port = servers[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            print(
                f"[LOI] cannot reach the Kafka broker {servers[0]} (TINHIEU_BROKER_URL)",
                file=sys.stderr,
            )
            return 2
        broker = EmbeddedKafka(settings.data_dir / "kafka", int(port))
        print(f"[KHOI TAO] starting the embedded Apache Kafka on 127.0.0.1:{port} ...", flush=True)
        try:
            broker.start()
        except EmbeddedKafkaError as exc:
            print(f"[LOI] {exc}", file=sys.stderr)
            return 2
        env["TINHIEU_BROKER_URL"] = broker.url
        print(f"[KHOI TAO] Kafka ready at {broker.bootstrap}", flush=True)
    try:  # topics first, so the worker subscribes to topics that exist
        asyncio.run(
            ensure_topics(
                env.get("TINHIEU_BROKER_URL", settings.broker_url),
                ["market_data", "signals", "orders", "dead_letters"],
                settings.partitions,
                settings.replicas,
                {"market_data": market_data_configs(settings.market_data_retention_days)},
            )
        )
    except Exception as exc:  # the worker declares them too; say so and go on
        print(f"[CANH BAO] could not create the topics up front: {exc}", file=sys.stderr)
    faust_bin = Path(sys.executable).with_name("faust")
    worker = subprocess.Popen(
        [str(faust_bin), "-A", "streams.app", "worker", "-l", "info"],
        env=env,
        start_new_session=True,
    )
    print(
        f"[KHOI TAO] worker started (pid {worker.pid}); web views on "
        f"http://{settings.web_host}:{settings.web_port}/health ; Ctrl-C stops everything",
        flush=True,
    )
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 0
    try:
        while not stopping:
            if worker.poll() is not None:
                print(f"[LOI] the worker exited with code {worker.returncode}", file=sys.stderr)
                code = worker.returncode or 1
                break
            time.sleep(0.3)
    finally:
        print("[DUNG] stopping the worker ...", flush=True)
        _stop(worker)
        if broker is not None:
            print("[DUNG] stopping Kafka ...", flush=True)
            broker.stop()
        print("[DUNG] stopped", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
